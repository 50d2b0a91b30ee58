package conntrack

// What nf_conncount (connlimit) asks the table about the tuples it keeps.
//
// The kernel stores a tuple per counted connection and, on every walk of a
// list, looks each one up in the conntrack hash. Here a list entry may also
// keep a ConnRef: the *Conn the tuple belonged to when it was listed plus
// that entry's generation. While the generation is unchanged, the entry is
// the same connection, its tuples cannot have changed (they are immutable
// once confirmed, and the ORIGINAL tuple from allocation on), and a
// confirmed, non-dying entry is the only hashed entry having that tuple
// (Confirm refuses clashes), so reading its status, expiry and TCP state -
// atomics only - gives the answer the hash lookup would give. Whenever that
// is not certain the tuple is looked up as the kernel does.

// Liveness is what a connlimit list entry's tuple finds in the table.
type Liveness uint8

const (
	// Gone: no live entry has the tuple (nf_conntrack_find_get fails).
	Gone Liveness = iota
	// Closed: an entry has it, a TCP connection in TIME_WAIT or CLOSE
	// (nf_conncount's already_closed).
	Closed
	// Alive: an entry has it and counts.
	Alive
)

func (l Liveness) String() string {
	switch l {
	case Gone:
		return "gone"
	case Closed:
		return "closed"
	case Alive:
		return "alive"
	}
	return "Liveness(?)"
}

// ConnRef is a hint to one life of a connection entry, kept next to a
// tuple so that the tuple's liveness can be read without a hash lookup.
// The zero ConnRef refers to nothing. A ConnRef holds no reference count:
// the entry may be recycled at any time, which the generation detects. It
// means something only to the Table whose entry it names: pass it back to
// that table's ConnlimitCheck only (an engine keeps one table for life).
type ConnRef struct {
	c   *Conn
	gen uint64
}

// Valid reports whether r refers to an entry at all (not whether it lives).
func (r ConnRef) Valid() bool { return r.c != nil }

// Ref returns a ConnRef to c for the tuple of direction d (Conn.Tuple(d)).
// The caller must hold a reference to c (a packet's Result). An
// unconfirmed entry's REPLY tuple may still be rewritten by NAT, so for it
// the zero ConnRef is returned and the tuple will be looked up.
func (c *Conn) Ref(d Dir) ConnRef {
	if d != Original && Status(c.status.Load())&StatusConfirmed == 0 {
		return ConnRef{}
	}
	return ConnRef{c: c, gen: c.gen.Load()}
}

// closedForConnlimit is ClosedForConnlimit from the protocol and the
// atomic TCP state.
func closedForConnlimit(proto uint8, ps uint32) bool {
	if proto != ProtoTCP {
		return false
	}
	s := TCPState(ps)
	return s == TCPTimeWait || s == TCPClose
}

// ConnlimitCheck is nf_conncount's find_or_evict test for one listed tuple
// tu: Gone, Closed or Alive at now, the same answer as looking tu up in the
// hash (lookup, with its lazy expiry) and testing ClosedForConnlimit.
//
// *ref is tried first: when it still refers to the same life of a
// confirmed, non-dying entry that has not expired at now, the answer is
// read from the entry's atomics, with no lookup and no lock. Otherwise (no
// ref, entry recycled, unconfirmed, dying or expired) tu is looked up, and
// *ref is set to the entry found - possibly a new connection that reuses
// the tuple, which the kernel's lookup finds alive too - or cleared.
// Lock-free on the fast path, allocation-free on both.
func (t *Table) ConnlimitCheck(ref *ConnRef, tu *Tuple, now int64) Liveness {
	if l, ok := ref.liveness(tu, now); ok {
		return l
	}
	c, _ := t.lookup(tu, now)
	if c == nil {
		*ref = ConnRef{}
		return Gone
	}
	// The lookup's reference pins this life: gen cannot move until put.
	*ref = ConnRef{c: c, gen: c.gen.Load()}
	l := Alive
	if c.ClosedForConnlimit() {
		l = Closed
	}
	t.put(c)
	return l
}

// liveness is ConnlimitCheck's lookup-free path: ok is false unless r
// still refers to the same life of a confirmed, non-dying entry that has
// not expired at now. Such an entry is the only one in the hash having tu
// (Confirm refuses an entry clashing with a non-dying one), so a lookup of
// tu would find it, expire nothing, and the answer is its TCP state. An
// expired entry is left to the lookup, which removes it (lazy expiry, as
// before). Reads atomics only: r holds no reference, so every other field
// may be rewritten by a recycling at any time (tu.Proto stands for the
// entry's protocol).
func (r *ConnRef) liveness(tu *Tuple, now int64) (Liveness, bool) {
	c := r.c
	if c == nil {
		return Gone, false
	}
	g := c.gen.Load()
	if g != r.gen {
		return Gone, false
	}
	st := Status(c.status.Load())
	exp := c.expires.Load()
	ps := c.pstate.Load()
	// The second read proves the three values belong to the life r
	// refers to: put bumps gen before it resets anything.
	if c.gen.Load() != g || st&(StatusConfirmed|StatusDying) != StatusConfirmed || exp <= now {
		return Gone, false
	}
	if closedForConnlimit(tu.Proto, ps) {
		return Closed, true
	}
	return Alive, true
}
