package statestore_test

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
	"github.com/uptables/uptables/internal/xt/match"
)

// floodRules use every stateful match with its table bound: conntrack
// (state), recent (ip_list_tot 100), connlimit, hashlimit (htable-max; the
// kernel raises a max below htable-size to the size, hence the size).
const floodRules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -m state --state NEW -m recent --set --name SSH --rsource
-A INPUT -p tcp -m tcp --dport 22 -m state --state NEW -m recent --update --seconds 60 --hitcount 4 --name SSH --rsource -j DROP
-A INPUT -p tcp -m tcp --dport 80 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr -j DROP
-A INPUT -p udp -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name HL --hashlimit-htable-size 1024 --hashlimit-htable-max 4096 -j ACCEPT
-A INPUT -p udp -j DROP
COMMIT
`

const (
	floodCTMax    = 8192
	floodRecent   = 100 // ip_list_tot
	floodHashMax  = 4096
	floodFragHigh = 4 << 20 // ipfrag_high_thresh
)

type nullOut struct{}

func (nullOut) Reply(*xt.Ctx, []byte)      {}
func (nullOut) Log(*xt.Ctx, uint8, []byte) {}

// flooder sends packets from random sources: SYNs to 22 and 80, UDP, and
// first fragments that are never completed, 1 µs of packet time apart.
type flooder struct {
	rnd *rand.Rand
	w   *netfilter.Worker
	p   packet.Packet
	now int64
}

func (f *flooder) send(n int) {
	for i := 0; i < n; i++ {
		src := netip.AddrFrom4([4]byte{byte(1 + f.rnd.IntN(223)), byte(f.rnd.Uint32()), byte(f.rnd.Uint32()), byte(f.rnd.Uint32())}).String()
		sport := uint16(1024 + f.rnd.IntN(60000))
		var b []byte
		switch i % 4 {
		case 0:
			b = packettest.TCP(packettest.TCPOpts{Src: src, Dst: "10.0.0.2", SrcPort: sport, DstPort: 22, Flags: packettest.SYN, Seq: f.rnd.Uint32(), Window: 64240})
		case 1:
			b = packettest.TCP(packettest.TCPOpts{Src: src, Dst: "10.0.0.2", SrcPort: sport, DstPort: 80, Flags: packettest.SYN, Seq: f.rnd.Uint32(), Window: 64240})
		case 2:
			b = packettest.UDP(packettest.UDPOpts{Src: src, Dst: "10.0.0.2", SrcPort: sport, DstPort: 53, Payload: []byte("q")})
		case 3:
			whole := packettest.UDP(packettest.UDPOpts{Src: src, Dst: "10.0.0.2", SrcPort: sport, DstPort: 53, Payload: make([]byte, 1200),
				IP: packettest.IP{ID: uint16(f.rnd.Uint32())}})
			b = packettest.Fragments(whole, 600)[0]
		}
		f.now += 1000
		f.p.Decode(b)
		f.p.InIface, f.p.TimeNS = "eth0", f.now
		f.w.Process(netfilter.PathInput, &f.p)
	}
}

func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestFloodMemoryBounded: a random-source flood through the whole engine
// (conntrack, defrag, recent, connlimit, hashlimit) fills every table to
// its limit and no further: the heap after the flood is within a few MiB
// of the heap once the tables were full, and every table is at or under
// its configured size. Hash keys are per instance (checked elsewhere), so
// the flood cannot be aimed at one bucket.
func TestFloodMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("flood of a million packets")
	}
	rs, err := iptables.Restore(ruleset.New(xt.IPv4), builtin.Registry(), strings.NewReader(floodRules), iptables.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eng := netfilter.New(netfilter.Config{Seed: 1, Conntrack: conntrack.Config{Max: floodCTMax}})
	if err := eng.Load(rs); err != nil {
		t.Fatal(err)
	}
	f := &flooder{rnd: rand.New(rand.NewPCG(1, 2)), w: eng.NewWorker(nullOut{}), now: 1e12}
	base := heapNow()
	warm := floodPackets / 4
	f.send(warm)
	full := heapNow()
	f.send(floodPackets - warm)
	after := heapNow()
	t.Logf("%d packets: heap %.1f MiB before, %.1f MiB after %d (tables full), %.1f MiB after all",
		floodPackets, float64(base)/(1<<20), float64(full)/(1<<20), warm, float64(after)/(1<<20))

	ct := eng.ConntrackTable()
	if ct == nil {
		t.Fatal("conntrack not active")
	}
	if n := ct.Count(); n > floodCTMax || n < floodCTMax/2 {
		t.Errorf("conntrack holds %d entries, limit %d (the flood should fill it)", n, floodCTMax)
	}
	l, ok := match.RecentListByName(eng.Named(), "SSH")
	if !ok {
		t.Fatal("no recent list SSH")
	}
	if n := l.Len(); n != floodRecent {
		t.Errorf("recent list holds %d entries, want the limit %d", n, floodRecent)
	}
	h, ok := match.HashlimitTableByName(eng.Named(), xt.IPv4, "HL")
	if !ok {
		t.Fatal("no hashlimit table HL")
	}
	if n := h.Len(); n > floodHashMax || n < floodHashMax/2 {
		t.Errorf("hashlimit table holds %d entries, limit %d", n, floodHashMax)
	}
	var cl int
	eng.Runtimes(func(_, _ string, _ int, _ *ruleset.Rule, ms []xt.PacketMatcher) {
		for _, m := range ms {
			if rt, ok := m.(*match.ConnlimitRuntime); ok {
				for _, k := range rt.Counts(ct, f.now) {
					cl += int(k.Count)
				}
			}
		}
	})
	if cl > floodCTMax {
		t.Errorf("connlimit counts %d connections, more than conntrack can hold (%d)", cl, floodCTMax)
	}
	// The kernel checks the threshold before charging a fragment, so it
	// may end one fragment's charge above it; so may the engine.
	if st := eng.Defrag().Stats(); st.Mem > floodFragHigh+64<<10 {
		t.Errorf("defrag holds %d bytes, over ipfrag_high_thresh %d plus one fragment", st.Mem, floodFragHigh)
	} else {
		t.Logf("conntrack %d, recent %d, hashlimit %d, connlimit %d, defrag %d queues / %d bytes", ct.Count(), l.Len(), h.Len(), cl, st.Queues, st.Mem)
	}
	if grew := int64(after) - int64(full); grew > 8<<20 {
		t.Errorf("heap grew %.1f MiB after the tables were full", float64(grew)/(1<<20))
	}
	if grew := int64(after) - int64(base); grew > 64<<20 {
		t.Errorf("heap grew %.1f MiB over the flood", float64(grew)/(1<<20))
	}
}
