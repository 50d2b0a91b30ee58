package match

import (
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

// clHost drives TCP connections from clients to the server 10.99.0.2:22
// through a real conntrack table, with a connlimit rule evaluated on each
// client SYN at INPUT, as
//
//	-A INPUT -p tcp --syn --dport 22 -m connlimit ... -j REJECT
//
// A matched SYN is rejected: its unconfirmed entry is released and never
// enters the table. ctx is reused, like an engine worker's.
type clHost struct {
	t   testing.TB
	tb  *conntrack.Table
	ctx xt.Ctx
	now int64
	// accept: a matching SYN is accepted (an ACCEPT rule, the policy
	// dropping the rest) instead of rejected.
	accept bool
	// clock, when set, is a packet clock shared between workers.
	clock func() int64
}

func newCLHost(t testing.TB) *clHost {
	tb, err := conntrack.NewTable(conntrack.Config{Max: 4096, HashKey: [2]uint64{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	return &clHost{t: t, tb: tb, now: srtEpoch}
}

func clSeg(src, dst string, sp, dp uint16, flags uint8, seq, ack uint32) []byte {
	return packettest.TCP(packettest.TCPOpts{Src: src, Dst: dst, SrcPort: sp, DstPort: dp, Flags: flags, Seq: seq, Ack: ack, Window: 64000})
}

// pass runs one packet through conntrack; rule (may be nil) is evaluated
// at INPUT for client packets. It returns whether the rule matched and
// whether it hot-dropped.
func (h *clHost) pass(data []byte, hook packet.Hook, rule xt.PacketMatcher) (matched, hot bool) {
	h.t.Helper()
	if h.clock != nil {
		h.now = h.clock()
	} else {
		h.now += int64(10 * time.Millisecond)
	}
	p := &packet.Packet{}
	if st := p.Decode(data); st != packet.OK {
		h.t.Fatalf("decode %v", st)
	}
	p.TimeNS = h.now
	r := h.tb.In(p, hook)
	h.ctx = xt.Ctx{P: p, Hook: xt.Hook(packet.LocalIn), CT: r, Conntrack: h.tb, Out: h.ctx.Out}
	if rule != nil {
		matched = rule.Matches(&h.ctx)
		hot = h.ctx.HotDrop
	}
	if !hot && (rule == nil || matched == h.accept) {
		h.tb.Confirm(&r)
	}
	h.tb.Release(&r)
	return matched, hot
}

// syn opens a connection attempt and, unless the rule rejects it, the
// server answers and the client completes the handshake.
func (h *clHost) syn(rule xt.PacketMatcher, src string, sport uint16) bool {
	m, _ := h.pass(clSeg(src, "10.99.0.2", sport, 22, packettest.SYN, 1000, 0), packet.PreRouting, rule)
	if m == h.accept {
		h.pass(clSeg("10.99.0.2", src, 22, sport, packettest.SYN|packettest.ACK, 5000, 1001), packet.LocalOut, nil)
		h.pass(clSeg(src, "10.99.0.2", sport, 22, packettest.ACK, 1001, 5001), packet.PreRouting, nil)
	}
	return m
}

// close ends a connection: the client sends FIN; with full, the server
// closes too and the connection lands in TIME_WAIT, otherwise it stays in
// CLOSE_WAIT (the server never closes).
func (h *clHost) close(src string, sport uint16, full bool) {
	h.pass(clSeg(src, "10.99.0.2", sport, 22, packettest.FIN|packettest.ACK, 1001, 5001), packet.PreRouting, nil)
	h.pass(clSeg("10.99.0.2", src, 22, sport, packettest.ACK, 5001, 1002), packet.LocalOut, nil)
	if full {
		h.pass(clSeg("10.99.0.2", src, 22, sport, packettest.FIN|packettest.ACK, 5001, 1002), packet.LocalOut, nil)
		h.pass(clSeg(src, "10.99.0.2", sport, 22, packettest.ACK, 1002, 5002), packet.PreRouting, nil)
	}
	tu := conntrack.Tuple{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr("10.99.0.2"), SrcID: sport, DstID: 22, Proto: 6}
	e, _, ok := h.tb.Lookup(tu, h.now)
	want := conntrack.TCPCloseWait
	if full {
		want = conntrack.TCPTimeWait
	}
	if !ok || e.TCPState != want {
		h.t.Fatalf("close %s:%d: state %v (found %v), want %v", src, sport, e.TCPState, ok, want)
	}
}

func srtConnlimit(t testing.TB, env *xt.Env, opts string) *ConnlimitRuntime {
	t.Helper()
	return srtBuild(t, srtParse(t, newConnlimitSpec(), xt.IPv4, opts), env).(*ConnlimitRuntime)
}

// TestConnlimitRuntimeScenarios: the seeds' connlimit rules at match
// level (spec §3.2, §12).
func TestConnlimitRuntimeScenarios(t *testing.T) {
	type op struct {
		kind  string // "syn", "tw" (close to TIME_WAIT), "cw" (CLOSE_WAIT)
		src   string
		sport uint16
		want  bool // rule matched (for syn)
	}
	syn := func(src string, sport uint16, want bool) op { return op{"syn", src, sport, want} }
	cases := []struct {
		name   string
		opts   string
		accept bool
		ops    []op
	}{
		{"3 per host, 4th SYN above; TIME_WAIT frees, CLOSE_WAIT does not", "--connlimit-above 3", false, []op{
			syn("10.0.0.1", 1001, false), syn("10.0.0.1", 1002, false), syn("10.0.0.1", 1003, false),
			syn("10.0.0.1", 1004, true), syn("10.0.0.1", 1005, true),
			syn("10.0.0.2", 1001, false), // other hosts have their own count
			{"tw", "10.0.0.1", 1001, false},
			syn("10.0.0.1", 1006, false), syn("10.0.0.1", 1007, true),
			{"cw", "10.0.0.1", 1002, false},
			syn("10.0.0.1", 1008, true),
		}},
		{"above 2 REJECT: conn1, conn2 OK, 3/4 RST, conn5 after TIME_WAIT, conn6 RST", "--connlimit-above 2", false, []op{
			syn("10.0.0.1", 1, false), syn("10.0.0.1", 2, false), syn("10.0.0.1", 3, true), syn("10.0.0.1", 4, true),
			{"tw", "10.0.0.1", 1, false}, syn("10.0.0.1", 5, false), syn("10.0.0.1", 6, true),
		}},
		{"per /24 with --connlimit-mask 24", "--connlimit-above 3 --connlimit-mask 24", false, []op{
			syn("10.0.0.1", 1, false), syn("10.0.0.2", 1, false), syn("10.0.0.3", 1, false),
			syn("10.0.0.4", 1, true), syn("10.0.0.200", 7, true), syn("10.0.1.1", 1, false),
		}},
		// -A INPUT -p tcp --syn --dport 22 -m connlimit ! --connlimit-above 3 -j ACCEPT, policy DROP
		{"! --connlimit-above 3 is upto 3", "! --connlimit-above 3", true, []op{
			syn("10.0.0.1", 1, true), syn("10.0.0.1", 2, true), syn("10.0.0.1", 3, true),
			syn("10.0.0.1", 4, false), syn("10.0.0.1", 5, false),
			{"tw", "10.0.0.1", 2, false}, syn("10.0.0.1", 6, true), syn("10.0.0.1", 7, false),
		}},
		{"above 0 matches every SYN (count includes the current one)", "--connlimit-above 0", false, []op{
			syn("10.0.0.1", 1, true), syn("10.0.0.1", 2, true),
		}},
		{"daddr groups by destination", "--connlimit-above 1 --connlimit-daddr", false, []op{
			syn("10.0.0.1", 1, false), syn("10.0.0.2", 1, true),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newCLHost(t)
			h.accept = tc.accept
			rule := srtConnlimit(t, &xt.Env{}, tc.opts)
			for i, o := range tc.ops {
				switch o.kind {
				case "syn":
					if got := h.syn(rule, o.src, o.sport); got != o.want {
						t.Errorf("op %d: SYN %s:%d matched=%v, want %v", i, o.src, o.sport, got, o.want)
					}
				case "tw":
					h.close(o.src, o.sport, true)
				case "cw":
					h.close(o.src, o.sport, false)
				}
			}
		})
	}
}

// TestConnlimitRuntimeEveryPacket: without --syn the established
// connection's own packets do not inflate the count (spec §3.2 [obs]).
func TestConnlimitRuntimeEveryPacket(t *testing.T) {
	h := newCLHost(t)
	rule := srtConnlimit(t, &xt.Env{}, "--connlimit-above 1")
	if h.syn(rule, "10.0.0.1", 1) {
		t.Fatal("first SYN matched")
	}
	for i := 0; i < 200; i++ {
		m, _ := h.pass(clSeg("10.0.0.1", "10.99.0.2", 1, 22, packettest.ACK|packettest.PSH, 1001, 5001), packet.PreRouting, rule)
		if m {
			t.Fatalf("data segment %d matched above 1", i)
		}
	}
	if !h.syn(rule, "10.0.0.1", 2) {
		t.Error("second connection's SYN not above 1")
	}
}

// TestConnlimitRuntimeNoConn: a packet conntrack did not attach is counted
// by its own tuple (and evicted at the next walk); one whose L4 header is
// missing is hot-dropped.
func TestConnlimitRuntimeNoConn(t *testing.T) {
	rule := srtConnlimit(t, &xt.Env{}, "--connlimit-above 1")
	c := srtCtx(t, clSeg("10.0.0.1", "10.99.0.2", 1, 22, packettest.ACK, 1, 1), 0)
	for i := 0; i < 3; i++ {
		c.P.SrcPort = uint16(100 + i)
		if rule.Matches(c) || c.HotDrop {
			t.Fatalf("packet %d without conntrack: matched or hotdropped", i)
		}
	}
	p := &packet.Packet{Version: 4, Status: packet.TruncatedL4, Proto: 6, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.99.0.2"), TimeNS: srtEpoch}
	c = &xt.Ctx{P: p}
	if rule.Matches(c) || !c.HotDrop {
		t.Error("truncated TCP without conntrack: not hot-dropped")
	}
}

// TestConnlimitRuntimeCarryOverAndCounts: an unchanged rule keeps its
// bookkeeping across a reload (iptables-nft); Counts lists it.
func TestConnlimitRuntimeCarryOverAndCounts(t *testing.T) {
	h := newCLHost(t)
	m := srtParse(t, newConnlimitSpec(), xt.IPv4, "--connlimit-above 1")
	old := srtBuild(t, m, &xt.Env{}).(*ConnlimitRuntime)
	h.syn(old, "10.0.0.1", 1)
	h.syn(old, "10.0.0.2", 1)
	h.syn(old, "10.0.0.2", 2) // rejected, evicted at the next walk
	kept := srtBuild(t, m, &xt.Env{Prev: old}).(*ConnlimitRuntime)
	fresh := srtBuild(t, m, &xt.Env{}).(*ConnlimitRuntime)
	// One second later: the rejected SYN's tuple is past the grace that
	// protects entries possibly still unconfirmed on another worker.
	got := kept.Counts(h.tb, h.now+int64(time.Second))
	sort.Slice(got, func(i, j int) bool { return got[i].Prefix.Addr().Less(got[j].Prefix.Addr()) })
	want := []ConnlimitCount{{netip.MustParsePrefix("10.0.0.1/32"), 0, 1}, {netip.MustParsePrefix("10.0.0.2/32"), 0, 1}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	if !h.syn(kept, "10.0.0.1", 3) {
		t.Error("reloaded rule forgot the open connection (nft keeps it)")
	}
	if h.syn(fresh, "10.0.0.1", 4) {
		t.Error("a new rule must start empty (legacy behaviour)")
	}
}

// TestConnlimitRuntimeAllocs: the walk and the append allocate nothing
// once the slabs exist.
func TestConnlimitRuntimeAllocs(t *testing.T) {
	h := newCLHost(t)
	rule := srtConnlimit(t, &xt.Env{}, "--connlimit-above 10")
	for i := 0; i < 5; i++ {
		h.syn(rule, "10.0.0.1", uint16(i+1))
	}
	// Established connection's data packet: found in the list.
	p := &packet.Packet{}
	p.Decode(clSeg("10.0.0.1", "10.99.0.2", 1, 22, packettest.ACK, 1001, 5001))
	p.TimeNS = h.now
	r := h.tb.In(p, packet.PreRouting)
	c := &xt.Ctx{P: p, CT: r, Conntrack: h.tb}
	if n := testing.AllocsPerRun(1000, func() { rule.Matches(c) }); n != 0 {
		t.Errorf("existing connection: %v allocs per packet", n)
	}
	h.tb.Release(&r)
	// New tuples (no conntrack entry): evict the previous, append the new.
	c2 := srtCtx(t, clSeg("10.0.0.9", "10.99.0.2", 1, 22, packettest.SYN, 1, 0), 0)
	c2.Conntrack = h.tb
	rule.Matches(c2)
	sp := uint16(1)
	if n := testing.AllocsPerRun(1000, func() { sp++; c2.P.SrcPort = sp; rule.Matches(c2) }); n != 0 {
		t.Errorf("new tuples: %v allocs per packet", n)
	}
}

// TestConnlimitRuntimeRace: several workers (each its own Ctx) on a shared
// packet clock open connections counted under one key at once; entries
// still unconfirmed on one worker survive the others' walks (the grace
// rule), so the final count is exact.
func TestConnlimitRuntimeRace(t *testing.T) {
	tb, err := conntrack.NewTable(conntrack.Config{Max: 1 << 14, HashKey: [2]uint64{3, 4}})
	if err != nil {
		t.Fatal(err)
	}
	rule := srtConnlimit(t, &xt.Env{}, "--connlimit-above 1000 --connlimit-mask 16")
	var wg sync.WaitGroup
	var clock atomic.Int64
	clock.Store(srtEpoch)
	tick := func() int64 { return clock.Add(int64(time.Microsecond)) }
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			h := &clHost{t: t, tb: tb, clock: tick}
			for i := 0; i < 100; i++ {
				h.syn(rule, fmt.Sprintf("10.1.%d.%d", g, i%50+1), uint16(1000+i))
			}
		}(g)
	}
	wg.Wait()
	got := rule.Counts(tb, clock.Load()+int64(time.Second))
	if len(got) != 1 || got[0].Count != 800 {
		t.Errorf("counts %v, want one /16 with 800", got)
	}
}
