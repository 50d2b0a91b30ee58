package conntrack

import (
	"hash/crc32"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptables/uptables/internal/packet"
)

// node is one direction of a connection in a hash chain (nf_conntrack_tuple_hash).
type node struct {
	t      Tuple
	next   *node // guarded by the stripe lock of bucket
	c      *Conn
	dir    Dir
	bucket uint32 // valid while the connection is confirmed
}

// Conn is one tracked connection (nf_conn).
//
// Ownership: a Conn is reference counted. The table holds one reference
// while the entry is confirmed (hashed); every Result that carries it holds
// one until Release. Memory is recycled through the table's free list when
// the last reference goes, so a *Conn must not be used after Release.
//
// Concurrency: tuples are immutable once confirmed (NAT may change the reply
// tuple only before Confirm, by the packet that owns the new entry). status,
// mark, expires and the TCP state mirror are atomics; the protocol state is
// guarded by mu, taken only by the tracker and by snapshots.
type Conn struct {
	// The four words a connlimit list check reads (ConnlimitCheck) come
	// first and together, in 24 bytes: full slab chunks (256 entries) are
	// page-aligned and the struct is a multiple of 32 bytes, so they share
	// one cache line - the one miss that check costs per listed
	// connection (TestConnLayout).

	// gen counts the entry's recyclings: put bumps it when the last
	// reference goes, before anything else is reset, so a ConnRef taken
	// in one life never passes for a later one.
	gen     atomic.Uint64
	expires atomic.Int64 // packet-clock ns at which the entry dies
	status  atomic.Uint32
	pstate  atomic.Uint32 // TCP state, or SCTP state and flags (sctpPack); readable without mu
	refs    atomic.Int32
	mark    atomic.Uint32
	node    [2]node
	created int64 // packet time of the first packet

	mu  sync.Mutex
	tcp tcpConn
	// sctpVtag is the verification tag expected from each direction
	// (ip_ct_sctp.vtag). It takes the 8 bytes UDP's stream time stamp
	// used to, so that a Conn stays 288 bytes (TestConnLayout): UDP's
	// stream test derives from created instead.
	sctpVtag [2]uint32

	nextFree *Conn // free list link, guarded by Table.freeMu
}

// Tuple returns the tuple of direction d.
func (c *Conn) Tuple(d Dir) Tuple { return c.node[d&1].t }

// Orig returns the ORIGINAL direction tuple.
func (c *Conn) Orig() Tuple { return c.node[Original].t }

// ReplyTuple returns the REPLY direction tuple (the inverse of Orig, modified by NAT).
func (c *Conn) ReplyTuple() Tuple { return c.node[Reply].t }

// Proto returns the L4 protocol number.
func (c *Conn) Proto() uint8 { return c.node[0].t.Proto }

// Zone returns the conntrack zone.
func (c *Conn) Zone() uint16 { return c.node[0].t.Zone }

// Status returns the status bits.
func (c *Conn) Status() Status { return Status(c.status.Load()) }

func (c *Conn) setStatus(s Status) {
	for {
		o := c.status.Load()
		if o&uint32(s) == uint32(s) || c.status.CompareAndSwap(o, o|uint32(s)) {
			return
		}
	}
}

// TCPState returns the TCP state (TCPNone for other protocols).
func (c *Conn) TCPState() TCPState {
	if c.Proto() != ProtoTCP {
		return TCPNone
	}
	return TCPState(c.pstate.Load())
}

// SCTPState returns the SCTP state (SCTPNone for other protocols).
func (c *Conn) SCTPState() SCTPState {
	if c.Proto() != ProtoSCTP {
		return SCTPNone
	}
	return SCTPState(uint8(c.pstate.Load()))
}

// Mark returns the connection mark (ct mark, connmark).
func (c *Conn) Mark() uint32 { return c.mark.Load() }

// SetMark sets the connection mark.
func (c *Conn) SetMark(v uint32) { c.mark.Store(v) }

// XorMark atomically sets mark = (mark AND NOT mask) XOR value (CONNMARK
// --set-xmark, and the and/or/xor forms) and returns the new mark.
func (c *Conn) XorMark(mask, value uint32) uint32 {
	for {
		o := c.mark.Load()
		n := (o &^ mask) ^ value
		if c.mark.CompareAndSwap(o, n) {
			return n
		}
	}
}

// Expires returns the packet-clock time (ns) at which the entry expires.
func (c *Conn) Expires() int64 { return c.expires.Load() }

// Timeout returns the remaining lifetime at now, never negative (what
// `conntrack -L` prints, and `--ctexpire` tests, in whole seconds).
func (c *Conn) Timeout(now int64) time.Duration {
	if d := c.expires.Load() - now; d > 0 {
		return time.Duration(d)
	}
	return 0
}

// Created returns the packet time (ns) of the connection's first packet.
func (c *Conn) Created() int64 { return c.created }

// ClosedForConnlimit reports whether nf_conncount would drop this entry from
// its lists: a TCP connection in TIME_WAIT or CLOSE (spec §3.2).
func (c *Conn) ClosedForConnlimit() bool {
	if c.Proto() != ProtoTCP {
		return false
	}
	s := c.TCPState()
	return s == TCPTimeWait || s == TCPClose
}

func (c *Conn) refresh(now int64, d time.Duration) {
	if Status(c.status.Load())&StatusFixedTimeout != 0 {
		return
	}
	c.expires.Store(now + int64(d))
}

// Result is what conntrack attached to one packet. Conn is nil for INVALID
// and UNTRACKED packets; otherwise the Result holds a reference that the
// engine gives back with Table.Release when the packet leaves the engine
// (delivered, sent, dropped or stolen).
type Result struct {
	Conn    *Conn
	Info    Info
	Verdict Verdict // Drop: conntrack drops the packet itself (table full, clash)
	Reason  Reason  // why INVALID or Drop
}

// StateMask returns the bits the state and conntrack matches test: the
// packet's state plus, for --ctstate, SNAT/DNAT if the connection has them.
func (r *Result) StateMask() StateMask {
	m := StateMask(1) << r.Info.State
	if r.Conn != nil {
		st := r.Conn.Status()
		if st&StatusSrcNAT != 0 {
			m |= MaskSNAT
		}
		if st&StatusDstNAT != 0 {
			m |= MaskDNAT
		}
	}
	return m
}

// UntrackedResult is the Result of a packet marked NOTRACK in raw: state
// UNTRACKED, no connection, no NAT (spec §9.12). The engine uses it instead
// of calling In.
func UntrackedResult() Result { return Result{Info: Info{State: Untracked}} }

type stripe struct {
	sync.RWMutex
	_ [40]byte // keep stripes on separate cache lines
}

// Table is the connection table (one per network namespace).
//
// Locking: bucket i's chain is guarded by locks[i & lockMask] (read lock
// for lookups, write lock for insert/unlink); an operation touching the two
// buckets of one connection takes both stripes in index order. Conn.mu is
// taken after stripe locks, never before. freeMu guards the free list and the
// slab. gcMu serialises GC callers (their cursor).
type Table struct {
	cfg      Config
	buckets  []*node
	bmask    uint32
	locks    []stripe
	lmask    uint32
	count    atomic.Int64 // entries in use, unconfirmed ones included
	stats    Stats
	freeMu   sync.Mutex
	free     *Conn
	slabbed  int // Conns allocated so far, <= cfg.Max
	gcMu     sync.Mutex
	gcCursor uint32
	crc32c   *crc32.Table // Castagnoli, for SCTP checksums
}

// Stats are counters like /proc/net/stat/nf_conntrack (no per-packet
// "found" counter: one shared atomic per packet would serialise the CPUs).
type Stats struct {
	New, Invalid, Drop, EarlyDrop, InsertFailed, Expired atomic.Uint64
}

// NewTable builds a table. Zero config fields take the kernel defaults.
func NewTable(cfg Config) (*Table, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	t := &Table{
		cfg:     cfg,
		buckets: make([]*node, cfg.Buckets),
		bmask:   uint32(cfg.Buckets - 1),
		locks:   make([]stripe, cfg.Locks),
		lmask:   uint32(cfg.Locks - 1),
		crc32c:  crc32.MakeTable(crc32.Castagnoli),
	}
	return t, nil
}

// Config returns the effective configuration (defaults filled in).
func (t *Table) Config() Config { return t.cfg }

// Stats returns the table's counters.
func (t *Table) Stats() *Stats { return &t.stats }

// Count returns the number of entries in use (nf_conntrack_count),
// including unconfirmed ones attached to packets in flight.
func (t *Table) Count() int { return int(t.count.Load()) }

func (t *Table) bucketOf(tu *Tuple) uint32 { return uint32(t.hash(tu)) & t.bmask }

func (t *Table) stripeOf(b uint32) *stripe { return &t.locks[b&t.lmask] }

func (t *Table) lock2(b0, b1 uint32) {
	s0, s1 := b0&t.lmask, b1&t.lmask
	switch {
	case s0 == s1:
		t.locks[s0].Lock()
	case s0 < s1:
		t.locks[s0].Lock()
		t.locks[s1].Lock()
	default:
		t.locks[s1].Lock()
		t.locks[s0].Lock()
	}
}

func (t *Table) unlock2(b0, b1 uint32) {
	s0, s1 := b0&t.lmask, b1&t.lmask
	t.locks[s0].Unlock()
	if s0 != s1 {
		t.locks[s1].Unlock()
	}
}

// lookup finds a live confirmed entry for tu and takes a reference. An
// expired entry met on the way is removed (lazy expiry).
func (t *Table) lookup(tu *Tuple, now int64) (*Conn, Dir) {
	b := t.bucketOf(tu)
	for range 4 {
		var expired *Conn
		s := t.stripeOf(b)
		s.RLock()
		for n := t.buckets[b]; n != nil; n = n.next {
			if n.t != *tu {
				continue
			}
			c := n.c
			if Status(c.status.Load())&StatusDying != 0 {
				continue
			}
			c.refs.Add(1)
			if c.expires.Load() <= now {
				expired = c
				break
			}
			s.RUnlock()
			return c, n.dir
		}
		s.RUnlock()
		if expired == nil {
			return nil, 0
		}
		if t.kill(expired) {
			t.stats.Expired.Add(1)
		}
		t.put(expired)
	}
	return nil, 0
}

// kill removes a connection from the table (nf_ct_delete). It reports false
// if someone else already did. The caller must hold a reference.
func (t *Table) kill(c *Conn) bool {
	var o uint32
	for {
		o = c.status.Load()
		if o&uint32(StatusDying) != 0 {
			return false
		}
		if c.status.CompareAndSwap(o, o|uint32(StatusDying)) {
			break
		}
	}
	if o&uint32(StatusConfirmed) == 0 {
		return true // never hashed; freed when its packets release it
	}
	b0, b1 := c.node[0].bucket, c.node[1].bucket
	t.lock2(b0, b1)
	t.unlinkLocked(&c.node[0])
	t.unlinkLocked(&c.node[1])
	t.unlock2(b0, b1)
	t.put(c) // the table's reference
	return true
}

func (t *Table) unlinkLocked(n *node) {
	for p := &t.buckets[n.bucket]; *p != nil; p = &(*p).next {
		if *p == n {
			*p = n.next
			n.next = nil
			return
		}
	}
}

// put drops one reference; the last one returns the entry to the free list.
func (t *Table) put(c *Conn) {
	if c.refs.Add(-1) != 0 {
		return
	}
	c.gen.Add(1)
	c.node[0] = node{}
	c.node[1] = node{}
	c.tcp = tcpConn{}
	c.status.Store(0)
	c.mark.Store(0)
	c.pstate.Store(0)
	c.expires.Store(0)
	c.created = 0
	c.sctpVtag = [2]uint32{}
	t.freeMu.Lock()
	c.nextFree = t.free
	t.free = c
	t.freeMu.Unlock()
	t.count.Add(-1)
}

// slabChunk bounds each growth step of the entry slab.
const slabChunk = 256

// alloc returns a fresh unconfirmed entry with one reference (the packet's),
// or nil when the table is full and early drop found nothing to evict.
func (t *Table) alloc(tu *Tuple, now int64) *Conn {
	if t.count.Add(1) > int64(t.cfg.Max) {
		if !t.earlyDrop(tu, now) {
			t.count.Add(-1)
			t.stats.Drop.Add(1)
			return nil
		}
	}
	t.freeMu.Lock()
	c := t.free
	if c == nil {
		n := min(slabChunk, t.cfg.Max-t.slabbed)
		if n <= 0 {
			// Every slab entry is in use by packets in flight: the count
			// check raced with releases. Treat as full.
			t.freeMu.Unlock()
			t.count.Add(-1)
			t.stats.Drop.Add(1)
			return nil
		}
		chunk := make([]Conn, n)
		t.slabbed += n
		for i := n - 1; i >= 1; i-- {
			chunk[i].nextFree = t.free
			t.free = &chunk[i]
		}
		c = &chunk[0]
	} else {
		t.free = c.nextFree
	}
	c.nextFree = nil
	t.freeMu.Unlock()
	c.refs.Store(1)
	c.created = now
	c.node[0] = node{t: *tu, c: c, dir: Original}
	return c
}

// earlyDropRange is NF_CT_EVICTION_RANGE: how many buckets early drop scans.
const earlyDropRange = 8

// earlyDrop frees room for a new entry the way the kernel does: starting at
// the new tuple's bucket, scan up to 8 buckets; in the first one holding
// entries that are confirmed and not ASSURED, delete all of those. Expired
// entries met on the way are removed too and count as room made (the kernel
// reaps them continuously; here expiry is lazy).
func (t *Table) earlyDrop(tu *Tuple, now int64) bool {
	b := t.bucketOf(tu)
	var victims [16]*Conn
	for i := 0; i < earlyDropRange; i++ {
		bi := (b + uint32(i)) & t.bmask
		n := 0
		expired := false
		s := t.stripeOf(bi)
		s.RLock()
		for nd := t.buckets[bi]; nd != nil && n < len(victims); nd = nd.next {
			c := nd.c
			st := Status(c.status.Load())
			if st&StatusDying != 0 {
				continue
			}
			if c.expires.Load() <= now {
				expired = true
			} else if st&StatusAssured != 0 {
				continue
			}
			dup := false
			for _, v := range victims[:n] {
				dup = dup || v == c
			}
			if !dup {
				c.refs.Add(1)
				victims[n] = c
				n++
			}
		}
		s.RUnlock()
		drops := 0
		for _, c := range victims[:n] {
			if t.kill(c) {
				drops++
				if c.expires.Load() <= now {
					t.stats.Expired.Add(1)
				} else {
					t.stats.EarlyDrop.Add(1)
				}
			}
			t.put(c)
		}
		if drops > 0 || expired {
			return true
		}
	}
	return false
}

// In is the conntrack hook (nf_conntrack_in) at PREROUTING or OUTPUT,
// priority -200, in zone 0. See InZone.
func (t *Table) In(p *packet.Packet, hook packet.Hook) Result { return t.InZone(p, hook, 0) }

// InZone looks up or creates the packet's connection in the given zone (CT
// --zone), runs the protocol tracker and returns the packet's conntrack
// (spec §2). hook decides whether checksums are verified (PREROUTING only).
// p.TimeNS is the clock. A new connection is returned unconfirmed; it enters
// the table at Confirm. Allocation-free in steady state.
func (t *Table) InZone(p *packet.Packet, hook packet.Hook, zone uint16) Result {
	var k pkt
	if r := t.parse(p, hook, zone, &k); r != ReasonNone {
		t.stats.Invalid.Add(1)
		return Result{Reason: r}
	}
	now := p.TimeNS
	if isICMP(k.tuple.Proto) {
		cl, r := icmpCheck(&k)
		switch {
		case r != ReasonNone:
			t.stats.Invalid.Add(1)
			return Result{Reason: r}
		case cl == icmpNoTrack:
			return UntrackedResult()
		case cl == icmpErr:
			return t.icmpError(&k, now)
		}
	}
	for range 3 {
		c, dir := t.lookup(&k.tuple, now)
		fresh := c == nil
		if fresh {
			if c = t.alloc(&k.tuple, now); c == nil {
				return Result{Verdict: Drop, Reason: ReasonTableFull}
			}
			t.stats.New.Add(1)
		}
		info := Info{Dir: dir}
		st := c.Status()
		switch {
		case dir == Reply || st&StatusSeenReply != 0:
			info.State = Established
		case st&StatusExpected != 0:
			info.State = Related
		default:
			info.State = New
		}
		act, reason := t.track(c, dir, fresh, &k, now)
		switch act {
		case actAccept, actKill:
			if dir == Reply {
				c.setStatus(StatusSeenReply)
			}
			if act == actKill {
				t.kill(c)
			}
			return Result{Conn: c, Info: info}
		case actRepeat:
			t.kill(c)
			t.put(c)
			continue
		}
		t.put(c)
		t.stats.Invalid.Add(1)
		return Result{Reason: reason}
	}
	t.stats.Invalid.Add(1)
	return Result{Reason: ReasonTCPState}
}

// track runs the protocol tracker (nf_conntrack_handle_packet).
func (t *Table) track(c *Conn, dir Dir, fresh bool, k *pkt, now int64) (trackAction, Reason) {
	to := &t.cfg.Timeouts
	switch k.tuple.Proto {
	case ProtoTCP:
		if r := tcpError(k); r != ReasonNone {
			return actInvalid, r
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if fresh {
			if !t.tcpNew(&c.tcp, &k.tcp) {
				return actInvalid, ReasonNoNew
			}
			c.node[1].t, _ = c.node[0].t.Invert()
		}
		return t.tcpPacket(c, dir, &k.tcp, now)
	case ProtoUDP, ProtoUDPLite:
		if r := udpError(k); r != ReasonNone {
			return actInvalid, r
		}
		if fresh {
			c.node[1].t, _ = c.node[0].t.Invert()
		}
		if c.Status()&StatusSeenReply != 0 {
			d := to.UDP
			stream := false
			// The kernel stamps stream_ts = creation + 2 s on the first
			// packet; a reply after that makes the flow a stream.
			if now > c.created+int64(2*time.Second) {
				d = to.UDPStream
				stream = true
			}
			c.refresh(now, d)
			if stream {
				c.setStatus(StatusAssured)
			}
		} else {
			c.refresh(now, to.UDP)
		}
		return actAccept, ReasonNone
	case ProtoSCTP:
		return t.sctpPacket(c, dir, fresh, k, now)
	case ProtoGRE:
		return t.grePacket(c, fresh, now)
	case ProtoICMP, ProtoICMPv6:
		if fresh {
			if !icmpCanCreate(k.tuple) {
				return actInvalid, ReasonNoNew
			}
			c.node[1].t, _ = c.node[0].t.Invert()
		}
		if k.tuple.Proto == ProtoICMP {
			c.refresh(now, to.ICMP)
		} else {
			c.refresh(now, to.ICMPv6)
		}
		return actAccept, ReasonNone
	}
	if fresh {
		c.node[1].t, _ = c.node[0].t.Invert()
	}
	c.refresh(now, to.Generic)
	return actAccept, ReasonNone
}

// icmpError attaches an ICMP error to the connection of the datagram it
// quotes: RELATED in that entry's direction, after checking that the outer
// destination is the connection's destination for that direction
// (nf_conntrack_inet_error). No state or timer changes.
func (t *Table) icmpError(k *pkt, now int64) Result {
	inner, ok := innerTuple(k, k.tuple.Zone)
	if !ok {
		t.stats.Invalid.Add(1)
		return Result{Reason: ReasonTruncated}
	}
	look, ok := inner.Invert()
	if !ok {
		t.stats.Invalid.Add(1)
		return Result{Reason: ReasonICMPNoConn}
	}
	c, dir := t.lookup(&look, now)
	if c == nil {
		t.stats.Invalid.Add(1)
		return Result{Reason: ReasonICMPNoConn}
	}
	if c.node[dir].t.Dst != k.tuple.Dst {
		t.put(c)
		t.stats.Invalid.Add(1)
		return Result{Reason: ReasonICMPOuterDst}
	}
	return Result{Conn: c, Info: Info{State: Related, Dir: dir}}
}

// Attach gives a packet generated in reaction to another (REJECT's RST or
// ICMP error, spec §8.3) the offending packet's connection as RELATED, in the
// opposite direction (nf_ct_attach). ok is false when the offending packet
// had no connection: then the engine runs In for the new packet as usual.
// The returned Result holds its own reference (Release it).
func (t *Table) Attach(offending *Result) (Result, bool) {
	c := offending.Conn
	if c == nil {
		return Result{}, false
	}
	c.refs.Add(1)
	d := Reply
	if offending.Info.Dir == Reply {
		d = Original
	}
	return Result{Conn: c, Info: Info{State: Related, Dir: d}}, true
}

// Confirm inserts the packet's new connection into the table (the
// conntrack confirm hook at the end of INPUT and POSTROUTING,
// __nf_conntrack_confirm). It does nothing for packets without a connection,
// reply/related packets and confirmed entries. On an insertion race with an
// identical entry (possible for UDP/ICMP/other, not TCP) the packet is moved
// to the existing entry; otherwise the verdict is Drop (ReasonClash). The
// Result keeps its reference either way; Release it later.
func (t *Table) Confirm(r *Result) Verdict {
	c := r.Conn
	if c == nil || r.Info.Dir != Original || r.Info.State == Related {
		return Accept
	}
	if c.Status()&StatusConfirmed != 0 {
		return Accept
	}
	n0, n1 := &c.node[0], &c.node[1]
	n1.c, n1.dir = c, Reply
	b0, b1 := t.bucketOf(&n0.t), t.bucketOf(&n1.t)
	for range 3 {
		t.lock2(b0, b1)
		var clash *Conn
		for _, sb := range [2]struct {
			b  uint32
			tu *Tuple
		}{{b0, &n0.t}, {b1, &n1.t}} {
			for n := t.buckets[sb.b]; n != nil && clash == nil; n = n.next {
				if n.t == *sb.tu && Status(n.c.status.Load())&StatusDying == 0 {
					clash = n.c
				}
			}
		}
		if clash == nil {
			o := c.status.Load()
			if o&uint32(StatusDying) != 0 || !c.status.CompareAndSwap(o, o|uint32(StatusConfirmed)) {
				t.unlock2(b0, b1)
				t.stats.InsertFailed.Add(1)
				r.Verdict, r.Reason = Drop, ReasonClash
				return Drop
			}
			n0.bucket, n1.bucket = b0, b1
			n0.next, t.buckets[b0] = t.buckets[b0], n0
			n1.next, t.buckets[b1] = t.buckets[b1], n1
			c.refs.Add(1) // the table's reference
			t.unlock2(b0, b1)
			return Accept
		}
		clash.refs.Add(1)
		t.unlock2(b0, b1)
		if clash.expires.Load() <= c.created {
			if t.kill(clash) {
				t.stats.Expired.Add(1)
			}
			t.put(clash)
			continue
		}
		if c.Proto() != ProtoTCP && clash.node[0].t == n0.t && clash.node[1].t == n1.t {
			// Same flow, same NAT: the packet simply joins the winner.
			t.put(c)
			r.Conn = clash
			return Accept
		}
		t.put(clash)
		break
	}
	t.stats.InsertFailed.Add(1)
	r.Verdict, r.Reason = Drop, ReasonClash
	return Drop
}

// Release gives back the packet's reference to its connection. An entry that
// was never confirmed disappears here (a packet dropped before confirm
// leaves no entry). r.Conn is cleared. Safe on Results without a connection.
func (t *Table) Release(r *Result) {
	if r.Conn != nil {
		t.put(r.Conn)
		r.Conn = nil
	}
}
