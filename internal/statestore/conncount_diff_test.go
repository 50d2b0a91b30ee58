package statestore

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// lookupOnlyCT answers every check by a hash lookup of the tuple, never
// from the list entry's ConnRef (the slow path alone).
type lookupOnlyCT struct{ t *conntrack.Table }

func (s lookupOnlyCT) ConnlimitCheck(_ *conntrack.ConnRef, tu *conntrack.Tuple, now int64) conntrack.Liveness {
	var none conntrack.ConnRef
	return s.t.ConnlimitCheck(&none, tu, now)
}

// refCountingCT counts the checks that found a usable ConnRef: the ref is
// left as it was only when the answer came from it (a lookup clears it or
// moves it to another life: a lookup never returns an unconfirmed, dying
// or expired entry, the only ones the ref path refuses in the same life).
type refCountingCT struct {
	t            *conntrack.Table
	checks, hits int
}

func (s *refCountingCT) ConnlimitCheck(ref *conntrack.ConnRef, tu *conntrack.Tuple, now int64) conntrack.Liveness {
	before := *ref
	l := s.t.ConnlimitCheck(ref, tu, now)
	s.checks++
	if before.Valid() && *ref == before {
		s.hits++
	}
	return l
}

// diffSim drives one conntrack table with random traffic and feeds every
// connlimit evaluation to three bookkeepings that must agree on every
// answer and on their whole state: the new one with ConnRefs (fast), the
// new one without (lookupOnlyCT), and the code as it was (oldConncount).
type diffSim struct {
	t     *testing.T
	rnd   *rand.Rand
	tb    *conntrack.Table
	fctx  *refCountingCT
	fast  *Conncount
	slow  *Conncount
	old   *oldConncount
	now   int64
	flows []simFlow
	held  []heldPkt // packets in flight: they keep their entry referenced
	adds  int
	fails int
}

type simFlow struct {
	cli, srv   string
	sport      uint16
	udp        bool
	cseq, sseq uint32
}

type heldPkt struct {
	r conntrack.Result
}

type simParams struct {
	max, buckets int // conntrack table
	limit        int // conncount node cap
	nets, hosts  int // client /24s and hosts per /24
	ports        int // source ports per host
	udpShare     float64
	synShare     float64 // share of packet events that are client SYNs
	confirm      float64 // probability that a new connection is accepted (confirmed)
	hold         float64 // probability that a packet stays in flight
	everyPacket  float64 // probability that a non-SYN packet also passes the connlimit rule
	clock        []time.Duration
	events       int
}

func newDiffSim(t *testing.T, seed uint64, p simParams) *diffSim {
	tb, err := conntrack.NewTable(conntrack.Config{Max: p.max, Buckets: p.buckets, HashKey: [2]uint64{seed, 7}, TCPBeLiberal: true})
	if err != nil {
		t.Fatal(err)
	}
	rnd := func(s uint64) func() uint64 { return func() uint64 { return s } }
	s := &diffSim{
		t: t, rnd: rand.New(rand.NewPCG(seed, 1)), tb: tb, fctx: &refCountingCT{t: tb},
		fast: NewConncount(p.limit, rnd(seed)), slow: NewConncount(p.limit, rnd(seed)), old: newOldConncount(p.limit, rnd(seed)),
		now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(),
	}
	for n := 0; n < p.nets; n++ {
		for h := 0; h < p.hosts; h++ {
			for pt := 0; pt < p.ports; pt++ {
				f := simFlow{cli: fmt.Sprintf("100.64.%d.%d", n, h+1), srv: "10.0.0.2", sport: uint16(40000 + pt)}
				f.udp = s.rnd.Float64() < p.udpShare
				s.flows = append(s.flows, f)
			}
		}
	}
	return s
}

// add runs one connlimit evaluation (what ConnlimitRuntime.Matches does
// with a --connlimit-mask 24 key) on the three bookkeepings.
func (s *diffSim) add(r *conntrack.Result, p *packet.Packet) {
	var tu conntrack.Tuple
	var ref conntrack.ConnRef
	var k ConnKey
	if c := r.Conn; c != nil {
		tu = c.Tuple(r.Info.Dir)
		ref = c.Ref(r.Info.Dir)
		k.Zone = c.Zone()
	} else {
		tu = conntrack.Tuple{Src: p.Src, Dst: p.Dst, Proto: p.Proto, SrcID: p.SrcPort, DstID: p.DstPort}
	}
	a := p.Src.As4()
	copy(k.Addr[:3], a[:3])
	owner := uintptr(1 + s.rnd.IntN(2))
	var n [3]int
	var ok [3]bool
	for _, i := range s.rnd.Perm(3) {
		switch i {
		case 0:
			n[0], ok[0] = s.fast.Add(&k, &tu, ref, owner, s.fctx, s.now)
		case 1:
			n[1], ok[1] = s.slow.Add(&k, &tu, conntrack.ConnRef{}, owner, lookupOnlyCT{s.tb}, s.now)
		case 2:
			n[2], ok[2] = s.old.Add(&k, &tu, owner, s.tb, s.now)
		}
	}
	if n[0] != n[2] || ok[0] != ok[2] || n[1] != n[2] || ok[1] != ok[2] {
		s.t.Fatalf("add #%d %v (owner %d): fast %d %v, lookup-only %d %v, old %d %v", s.adds, tu, owner, n[0], ok[0], n[1], ok[1], n[2], ok[2])
	}
	s.adds++
	if !ok[0] {
		s.fails++
	}
}

// packet sends one packet through conntrack (PREROUTING), optionally the
// connlimit rule, then confirms it (or not: rejected) and releases it (or
// keeps it in flight).
func (s *diffSim) packet(b []byte, connlimit bool, p simParams) {
	var pk packet.Packet
	if st := pk.Decode(b); st != packet.OK {
		s.t.Fatalf("decode: %v", st)
	}
	pk.TimeNS = s.now
	r := s.tb.In(&pk, packet.PreRouting)
	if connlimit {
		s.add(&r, &pk)
	}
	if s.rnd.Float64() < p.hold {
		s.held = append(s.held, heldPkt{r: r})
		return
	}
	if s.rnd.Float64() < p.confirm {
		s.tb.Confirm(&r)
	}
	s.tb.Release(&r)
}

func (s *diffSim) tcp(f *simFlow, fromClient bool, flags uint8) []byte {
	o := packettest.TCPOpts{Src: f.cli, Dst: f.srv, SrcPort: f.sport, DstPort: 80, Flags: flags, Seq: f.cseq, Ack: f.sseq + 1, Window: 64240}
	if !fromClient {
		o = packettest.TCPOpts{Src: f.srv, Dst: f.cli, SrcPort: 80, DstPort: f.sport, Flags: flags, Seq: f.sseq, Ack: f.cseq + 1, Window: 64240}
	}
	if flags&packettest.ACK == 0 {
		o.Ack = 0
	}
	return packettest.TCP(o)
}

func (s *diffSim) step(p simParams) {
	f := &s.flows[s.rnd.IntN(len(s.flows))]
	x := s.rnd.Float64()
	switch {
	case x < p.synShare:
		if f.udp {
			s.packet(packettest.UDP(packettest.UDPOpts{Src: f.cli, Dst: f.srv, SrcPort: f.sport, DstPort: 53, Payload: []byte{1}}), true, p)
			return
		}
		if s.rnd.IntN(3) == 0 { // a new connection on the same tuple (reuse after TIME_WAIT, reopen)
			f.cseq += 100000
		}
		s.packet(s.tcp(f, true, packettest.SYN), true, p)
	case x < p.synShare+0.35:
		// Any other packet of the flow, either way.
		every := s.rnd.Float64() < p.everyPacket
		if f.udp {
			s.packet(packettest.UDP(packettest.UDPOpts{Src: f.srv, Dst: f.cli, SrcPort: 53, DstPort: f.sport, Payload: []byte{2}}), every, p)
			return
		}
		switch s.rnd.IntN(7) {
		case 0:
			f.sseq = s.rnd.Uint32()
			s.packet(s.tcp(f, false, packettest.SYN|packettest.ACK), every, p)
		case 1:
			s.packet(s.tcp(f, true, packettest.ACK), every, p)
		case 2:
			s.packet(s.tcp(f, true, packettest.FIN|packettest.ACK), every, p)
			f.cseq++
		case 3:
			s.packet(s.tcp(f, false, packettest.FIN|packettest.ACK), every, p)
			f.sseq++
		case 4:
			s.packet(s.tcp(f, s.rnd.IntN(2) == 0, packettest.RST), every, p)
		case 5:
			s.packet(s.tcp(f, false, packettest.ACK), every, p)
		case 6:
			s.packet(s.tcp(f, true, packettest.SYN|packettest.FIN), true, p) // INVALID: no conntrack
		}
	case x < p.synShare+0.45:
		if len(s.held) > 0 {
			i := s.rnd.IntN(len(s.held))
			h := s.held[i]
			s.held = slices.Delete(s.held, i, i+1)
			if s.rnd.Float64() < p.confirm {
				s.tb.Confirm(&h.r)
			}
			s.tb.Release(&h.r)
		}
	case x < p.synShare+0.60:
		s.now += int64(p.clock[s.rnd.IntN(len(p.clock))])
	case x < p.synShare+0.70:
		s.tb.GC(s.now, 1+s.rnd.IntN(64))
	case x < p.synShare+0.75:
		g := &s.flows[s.rnd.IntN(len(s.flows))]
		proto, dport := uint8(conntrack.ProtoTCP), uint16(80)
		if g.udp {
			proto, dport = conntrack.ProtoUDP, 53
		}
		s.tb.Delete(conntrack.Tuple{Src: netip.MustParseAddr(g.cli), Dst: netip.MustParseAddr(g.srv), SrcID: g.sport, DstID: dport, Proto: proto})
	case x < p.synShare+0.76:
		s.tb.Flush()
	case x < p.synShare+0.80:
		a := s.fast.Counts(nil, s.fctx, s.now)
		b := s.slow.Counts(nil, lookupOnlyCT{s.tb}, s.now)
		c := s.old.Counts(nil, s.tb, s.now)
		if !slices.Equal(a, c) || !slices.Equal(b, c) {
			s.t.Fatalf("counts differ:\nfast   %v\nlookup %v\nold    %v", a, b, c)
		}
	}
}

// same compares the three bookkeepings entry by entry: keys, list order,
// tuples, owners, ages, free lists, cursor.
func (s *diffSim) same() {
	a, b, o := s.fast, s.slow, s.old
	if a.nkeys != o.nkeys || a.nnodes != o.nnodes || a.kfree != o.kfree || a.nfree != o.nfree || a.cursor != o.cursor || len(a.keys) != len(o.keys) ||
		b.nkeys != o.nkeys || b.nnodes != o.nnodes || b.cursor != o.cursor {
		s.t.Fatalf("after add #%d: shapes differ: fast %d keys %d nodes, lookup-only %d/%d, old %d/%d", s.adds, a.nkeys, a.nnodes, b.nkeys, b.nnodes, o.nkeys, o.nnodes)
	}
	for _, c := range []*Conncount{a, b} {
		for ki := int32(0); ki < int32(len(o.keys)*ccChunk); ki++ {
			ka, ko := c.key(ki), o.key(ki)
			if ka.used != ko.used || ka.k != ko.k || ka.count != ko.count || ka.head != ko.head || ka.tail != ko.tail {
				s.t.Fatalf("after add #%d: key slot %d differs", s.adds, ki)
			}
			if !ko.used {
				continue
			}
			for ia, io := ka.head, ko.head; io >= 0; ia, io = c.node(ia).next, o.node(io).next {
				na, no := c.node(ia), o.node(io)
				if ia != io || na.tu != no.tu || na.owner != no.owner || na.jiff != no.jiff {
					s.t.Fatalf("after add #%d: key slot %d lists differ at node %d: %v / %v", s.adds, ki, io, na.tu, no.tu)
				}
			}
		}
	}
}

func (s *diffSim) run(p simParams) {
	for i := 0; i < p.events; i++ {
		s.step(p)
		s.same()
	}
	for _, h := range s.held {
		s.tb.Release(&h.r)
	}
}

// TestConncountDifferential proves that keeping a conntrack.ConnRef per
// listed tuple changes no answer: on random traffic - new connections
// accepted or rejected, handshakes, FIN/RST closes (TIME_WAIT, CLOSE),
// tuples reused by new connections, packets in flight holding dying
// entries, INVALID packets counted by their own tuple, two owners within
// the 2-jiffy grace, time jumps past every timeout, GC, deletes, flushes,
// a full table (early drop recycles entries) and a full bookkeeping - the
// bookkeeping with refs, the same code doing a lookup for every entry,
// and the code as it was before refs (conncount_old_test.go) return the
// same counts and hold the same lists after every event.
func TestConncountDifferential(t *testing.T) {
	base := simParams{max: 4096, limit: 0, nets: 3, hosts: 4, ports: 6, udpShare: 0.15, synShare: 0.2,
		confirm: 0.75, hold: 0.1, everyPacket: 0.3, events: 5000,
		clock: []time.Duration{time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond, 9 * time.Millisecond,
			time.Second, 11 * time.Second, 31 * time.Second, 61 * time.Second, 121 * time.Second, 301 * time.Second}}
	cases := []struct {
		name string
		mod  func(*simParams)
	}{
		{"mixed", func(*simParams) {}},
		{"full-table", func(p *simParams) { p.max, p.buckets, p.ports = 24, 16, 10 }},
		{"one-net-flood", func(p *simParams) {
			p.nets, p.hosts, p.ports, p.synShare, p.confirm, p.everyPacket = 1, 40, 8, 0.3, 0.5, 0.05
		}},
		{"node-cap", func(p *simParams) {
			p.max, p.limit, p.nets, p.hosts, p.ports, p.synShare, p.confirm = 2048, 256, 4, 30, 4, 0.35, 0.95
			p.clock = []time.Duration{time.Millisecond, 3 * time.Millisecond, 20 * time.Millisecond}
		}},
	}
	seeds := 10
	if testing.Short() || raceEnabled {
		seeds = 1
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := base
			c.mod(&p)
			checks, hits, adds, fails := 0, 0, 0, 0
			var early, full, expired uint64
			for seed := uint64(1); seed <= uint64(seeds); seed++ {
				s := newDiffSim(t, seed, p)
				s.run(p)
				checks += s.fctx.checks
				hits += s.fctx.hits
				adds += s.adds
				fails += s.fails
				st := s.tb.Stats()
				early, full, expired = early+st.EarlyDrop.Load(), full+st.Drop.Load(), expired+st.Expired.Load()
			}
			t.Logf("%d evaluations (%d refused), %d list checks, %d answered from the ref; conntrack: %d expired, %d early drops, %d table-full drops",
				adds, fails, checks, hits, expired, early, full)
			if hits*4 < checks {
				t.Errorf("only %d of %d checks used the ref", hits, checks)
			}
			if c.name == "node-cap" && fails == 0 {
				t.Error("the node cap was never reached")
			}
			if c.name == "full-table" && early+full == 0 {
				t.Error("the conntrack table was never full")
			}
		})
	}
}

// TestConncountConcurrent: goroutines (each its own owner) open, count,
// close and drop connections of one /24 through one table and one
// bookkeeping while another goroutine runs conntrack's GC and deletes, so
// that list entries' ConnRefs are read while their entries are killed and
// recycled (run with -race). At the end, with every connection closed and
// past the grace, the key holds nothing.
func TestConncountConcurrent(t *testing.T) {
	tb, err := conntrack.NewTable(conntrack.Config{Max: 64, Buckets: 64, HashKey: [2]uint64{1, 2}, TCPBeLiberal: true})
	if err != nil {
		t.Fatal(err)
	}
	cc := NewConncount(0, func() uint64 { return 3 })
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	const workers, rounds = 4, 4000
	var k ConnKey
	copy(k.Addr[:], []byte{100, 64, 0})
	// Packets are built before the goroutines start (packettest allocates
	// freely and is not the subject).
	type pkts struct{ syn, synack, rst []byte }
	var pk [workers][8]pkts
	for w := range pk {
		for i := range pk[w] {
			cli := fmt.Sprintf("100.64.0.%d", 1+w)
			sp := uint16(40000 + i)
			pk[w][i] = pkts{
				syn:    packettest.TCP(packettest.TCPOpts{Src: cli, Dst: "10.0.0.2", SrcPort: sp, DstPort: 80, Flags: packettest.SYN, Seq: 1, Window: 100}),
				synack: packettest.TCP(packettest.TCPOpts{Src: "10.0.0.2", Dst: cli, SrcPort: 80, DstPort: sp, Flags: packettest.SYN | packettest.ACK, Seq: 9, Ack: 2, Window: 100}),
				rst:    packettest.TCP(packettest.TCPOpts{Src: cli, Dst: "10.0.0.2", SrcPort: sp, DstPort: 80, Flags: packettest.RST, Seq: 2, Window: 100}),
			}
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < rounds; i++ {
			tb.GC(start+int64(i)*int64(time.Millisecond), 16)
			if i%7 == 0 {
				tb.Flush()
			}
		}
	}()
	errs := make(chan string, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			var p packet.Packet
			send := func(b []byte, now int64, count bool) {
				p.Decode(b)
				p.TimeNS = now
				r := tb.In(&p, packet.PreRouting)
				if count && r.Conn != nil {
					tu := r.Conn.Tuple(r.Info.Dir)
					if n, ok := cc.Add(&k, &tu, r.Conn.Ref(r.Info.Dir), uintptr(w+1), tb, now); !ok || n < 1 || n > 64+workers {
						errs <- fmt.Sprintf("worker %d: count %d %v", w, n, ok)
					}
				}
				if w == 0 || now%3 != 0 { // worker 0 accepts all, the others reject some
					tb.Confirm(&r)
				}
				tb.Release(&r)
			}
			for i := 0; i < rounds; i++ {
				now := start + int64(i)*int64(time.Millisecond)
				f := pk[w][i%8]
				send(f.syn, now, true)
				send(f.synack, now, false)
				if i%3 == 0 {
					send(f.rst, now, false)
				}
			}
			errs <- ""
		}(w)
	}
	for w := 0; w < workers; w++ {
		if e := <-errs; e != "" {
			t.Fatal(e)
		}
	}
	<-done
	tb.Flush()
	if got := cc.Counts(nil, tb, start+int64(time.Hour)); len(got) != 0 || cc.Len() != 0 {
		t.Fatalf("after flush: %v, %d tuples", got, cc.Len())
	}
}
