package conntrack

import (
	"errors"
	"github.com/uptables/uptables/internal/packet"
	"net/netip"
)

// Entry is a snapshot of one connection, as `conntrack -L` shows it.
type Entry struct {
	Orig, Reply Tuple
	Status      Status
	TCPState    TCPState  // TCPNone for non-TCP
	SCTPState   SCTPState // SCTPNone for non-SCTP
	Mark        uint32
	Expires     int64 // packet-clock ns
	Created     int64
	Use         int32 // references (conntrack's use=)
}

func (c *Conn) snapshot(e *Entry) {
	e.Orig, e.Reply = c.node[0].t, c.node[1].t
	e.Status = c.Status()
	e.TCPState = c.TCPState()
	e.SCTPState = c.SCTPState()
	e.Mark = c.Mark()
	e.Expires = c.expires.Load()
	e.Created = c.created
	e.Use = c.refs.Load()
}

// Lookup returns a snapshot of the live entry that has tu as one of its two
// tuples, and the direction tu matched.
func (t *Table) Lookup(tu Tuple, now int64) (Entry, Dir, bool) {
	c, d := t.lookup(&tu, now)
	if c == nil {
		return Entry{}, 0, false
	}
	var e Entry
	c.snapshot(&e)
	t.put(c)
	e.Use--
	return e, d, true
}

// ConnlimitAlive is nf_conncount's test for a tuple it keeps in a list: the
// connection still exists at now and is not a TCP connection in TIME_WAIT or
// CLOSE. Allocation-free. It always looks tu up; the connlimit bookkeeping
// uses ConnlimitCheck, which gives the same answer from a ConnRef when it can.
func (t *Table) ConnlimitAlive(tu Tuple, now int64) bool {
	c, _ := t.lookup(&tu, now)
	if c == nil {
		return false
	}
	alive := !c.ClosedForConnlimit()
	t.put(c)
	return alive
}

// Delete removes the entry that has tu as one of its tuples (conntrack -D).
func (t *Table) Delete(tu Tuple) bool {
	c, _ := t.lookup(&tu, minTime)
	if c == nil {
		return false
	}
	ok := t.kill(c)
	t.put(c)
	return ok
}

const minTime = -1 << 63

// Range calls fn with a snapshot of every live confirmed entry until fn
// returns false. Entries added or removed meanwhile may or may not be seen.
// Each bucket is read under its stripe's read lock; fn runs without locks.
func (t *Table) Range(now int64, fn func(*Entry) bool) {
	var buf [32]Entry
	for b := range t.buckets {
		skip := 0
		for {
			n, more := t.collect(uint32(b), now, skip, buf[:])
			for i := 0; i < n; i++ {
				if !fn(&buf[i]) {
					return
				}
			}
			if !more {
				break
			}
			skip += n
		}
	}
}

func (t *Table) collect(b uint32, now int64, skip int, out []Entry) (int, bool) {
	s := t.stripeOf(b)
	s.RLock()
	defer s.RUnlock()
	n, seen := 0, 0
	for nd := t.buckets[b]; nd != nil; nd = nd.next {
		c := nd.c
		if nd.dir != Original || c.Status()&StatusDying != 0 || c.expires.Load() <= now {
			continue
		}
		if seen++; seen <= skip {
			continue
		}
		if n == len(out) {
			return n, true
		}
		c.snapshot(&out[n])
		n++
	}
	return n, false
}

// Flush removes every entry (conntrack -F) and returns how many.
func (t *Table) Flush() int {
	return t.sweep(minTime, func(*Conn) bool { return true })
}

// GC is the incremental reaper (the kernel's gc_worker): it examines up to
// budget hash-chain nodes from where the previous call stopped, removes
// the expired entries, and - when the table is above 95% of Max - also
// non-ASSURED entries and TCP entries in a closing state. It returns how
// many entries it removed. Call it from the owner's loop with the packet
// clock; a budget of about Max/64 per second keeps pace with the kernel.
func (t *Table) GC(now int64, budget int) int {
	t.gcMu.Lock()
	defer t.gcMu.Unlock()
	pressure := t.count.Load() > int64(t.cfg.Max)*95/100
	removed := 0
	var victims [64]*Conn
	for budget > 0 {
		b := t.gcCursor & t.bmask
		n := 0
		s := t.stripeOf(b)
		s.RLock()
		for nd := t.buckets[b]; nd != nil && n < len(victims); nd = nd.next {
			budget--
			c := nd.c
			st := c.Status()
			if nd.dir != Original || st&StatusDying != 0 {
				continue
			}
			if c.expires.Load() <= now || (pressure && gcCanEarlyDrop(c, st)) {
				c.refs.Add(1)
				victims[n] = c
				n++
			}
		}
		s.RUnlock()
		for _, c := range victims[:n] {
			if t.kill(c) {
				removed++
				if c.expires.Load() <= now {
					t.stats.Expired.Add(1)
				} else {
					t.stats.EarlyDrop.Add(1)
				}
			}
			t.put(c)
		}
		if n < len(victims) {
			t.gcCursor++
		}
		budget--
	}
	return removed
}

func gcCanEarlyDrop(c *Conn, st Status) bool {
	if st&StatusAssured == 0 {
		return true
	}
	switch c.Proto() {
	case ProtoTCP:
		return tcpCanEarlyDrop(c.TCPState())
	case ProtoSCTP:
		return sctpCanEarlyDrop(c.SCTPState())
	}
	return false
}

// sweep kills every confirmed entry for which pick returns true.
func (t *Table) sweep(now int64, pick func(*Conn) bool) int {
	removed := 0
	var victims [64]*Conn
	for b := range t.buckets {
		for {
			n := 0
			s := t.stripeOf(uint32(b))
			s.RLock()
			for nd := t.buckets[b]; nd != nil && n < len(victims); nd = nd.next {
				c := nd.c
				if nd.dir == Original && c.Status()&StatusDying == 0 && pick(c) {
					c.refs.Add(1)
					victims[n] = c
					n++
				}
			}
			s.RUnlock()
			for _, c := range victims[:n] {
				if t.kill(c) {
					removed++
				}
				t.put(c)
			}
			if n < len(victims) {
				break
			}
		}
	}
	return removed
}

// Manip is the kind of NAT a hook performs (nf_nat_manip_type).
type Manip uint8

const (
	ManipSrc Manip = iota // SNAT, MASQUERADE: POSTROUTING, INPUT
	ManipDst              // DNAT, REDIRECT: PREROUTING, OUTPUT
)

// ManipForHook returns the manip type of the nat chains at hook.
func ManipForHook(h packet.Hook) Manip {
	if h == packet.PreRouting || h == packet.LocalOut {
		return ManipDst
	}
	return ManipSrc
}

func (m Manip) doneBit() Status {
	if m == ManipSrc {
		return StatusSrcNATDone
	}
	return StatusDstNATDone
}

func (m Manip) natBit() Status {
	if m == ManipSrc {
		return StatusSrcNAT
	}
	return StatusDstNAT
}

// NATInitialized reports whether a binding (possibly null) exists for m:
// if so the nat chains are not traversed for this connection at hooks of
// that manip type (spec §1.4: nat sees only the first packet).
func (c *Conn) NATInitialized(m Manip) bool { return c.Status()&m.doneBit() != 0 }

// ErrConfirmed is returned when a NAT binding is set on an entry that is
// already in the table (only the first packet, before confirm, may bind).
var ErrConfirmed = errors.New("conntrack: NAT binding on a confirmed connection")

// ErrNATDone is returned when the manip type already has a binding.
var ErrNATDone = errors.New("conntrack: NAT binding already set for this manip type")

// SetNAT binds the connection (nf_nat_setup_info): the packets of the
// ORIGINAL direction get their source (ManipSrc) or destination (ManipDst)
// rewritten to addr and, for port protocols, port (0 keeps the port); the
// reply tuple becomes the inverse of the rewritten tuple, and SRC_NAT/DST_NAT
// is set if anything changed. Use TupleTaken to pick a free port first.
// Only on an unconfirmed entry held by the calling packet.
func (c *Conn) SetNAT(m Manip, addr netip.Addr, port uint16) error {
	st := c.Status()
	if st&StatusConfirmed != 0 {
		return ErrConfirmed
	}
	if st&m.doneBit() != 0 {
		return ErrNATDone
	}
	cur, ok := c.node[Reply].t.Invert()
	if !ok {
		cur = c.node[Original].t
	}
	nt := cur
	if m == ManipSrc {
		nt.Src = addr
		if port != 0 && hasPorts(nt.Proto) {
			nt.SrcID = port
		}
	} else {
		nt.Dst = addr
		if port != 0 && hasPorts(nt.Proto) {
			nt.DstID = port
		}
	}
	bits := m.doneBit()
	if nt != cur {
		if r, ok := nt.Invert(); ok {
			c.node[Reply].t = r
			bits |= m.natBit()
		}
	}
	c.setStatus(bits)
	return nil
}

// SetNullBinding records that the nat chain for m was traversed without a
// NAT target (nf_nat_alloc_null_binding): the connection is never NATed for
// m later, even if rules change.
func (c *Conn) SetNullBinding(m Manip) { c.setStatus(m.doneBit()) }

// TupleTaken reports whether a live connection already uses tu in either
// direction (nf_conntrack_tuple_taken): a NAT target must not produce a reply
// tuple that is taken.
func (t *Table) TupleTaken(tu Tuple, now int64) bool {
	c, _ := t.lookup(&tu, now)
	if c == nil {
		return false
	}
	t.put(c)
	return true
}

// Rewrite is how one packet must be translated at one hook.
type Rewrite struct {
	Manip   Manip
	Addr    netip.Addr // new source (ManipSrc) or destination (ManipDst) address
	Port    uint16     // new source or destination port
	HasPort bool       // Port applies (TCP, UDP, UDP-Lite)
}

// NAT tells how the packet must be rewritten at hook according to its
// connection's binding (nf_nat_packet): for ManipSrc the new source is the
// inverse of the other direction's tuple, for ManipDst the new destination.
// ok is false when nothing is to be done. For a RELATED ICMP error this is
// the outer header; the quoted header needs the opposite translation.
func (r *Result) NAT(hook packet.Hook) (Rewrite, bool) {
	c := r.Conn
	if c == nil {
		return Rewrite{}, false
	}
	m := ManipForHook(hook)
	bit := m.natBit()
	if r.Info.Dir == Reply {
		bit ^= StatusSrcNAT | StatusDstNAT
	}
	if c.Status()&bit == 0 {
		return Rewrite{}, false
	}
	target, ok := c.node[1-r.Info.Dir].t.Invert()
	if !ok {
		return Rewrite{}, false
	}
	rw := Rewrite{Manip: m, HasPort: hasPorts(target.Proto)}
	if m == ManipSrc {
		rw.Addr, rw.Port = target.Src, target.SrcID
	} else {
		rw.Addr, rw.Port = target.Dst, target.DstID
	}
	return rw, true
}
