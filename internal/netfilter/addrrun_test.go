package netfilter_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// blocklist writes a restore file in the blocklist shape: runs of -s (and
// -d) networks, nested, duplicated and disjoint, with mixed verdicts, in
// a built-in chain and a user chain (RETURN), broken up by other rules.
func blocklist(rnd *rand.Rand, nets int) (string, []string) {
	var b strings.Builder
	var pool []string
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:bl - [0:0]\n")
	randNet := func() string {
		var a [4]byte
		if len(pool) > 0 && rnd.IntN(3) == 0 {
			// nested in (or equal to) an earlier network
			var p0, p1, p2, p3, l int
			fmt.Sscanf(pool[rnd.IntN(len(pool))], "%d.%d.%d.%d/%d", &p0, &p1, &p2, &p3, &l)
			a = [4]byte{byte(p0), byte(p1), byte(p2), byte(p3)}
			n := min(32, l+rnd.IntN(9))
			for i := l; i < n; i++ {
				if rnd.IntN(2) == 1 {
					a[i/8] |= 0x80 >> (i % 8)
				}
			}
			s := fmt.Sprintf("%d.%d.%d.%d/%d", a[0], a[1], a[2], a[3], n)
			pool = append(pool, s)
			return s
		}
		a = [4]byte{byte(1 + rnd.IntN(4)), byte(rnd.IntN(4)), byte(rnd.IntN(256)), byte(rnd.IntN(256))}
		l := 8 + rnd.IntN(25)
		s := (&net4{a, l}).String()
		pool = append(pool, s)
		return s
	}
	verdicts := []string{"DROP", "DROP", "DROP", "ACCEPT"}
	for _, ch := range []string{"INPUT", "bl"} {
		for i := 0; i < nets; i++ {
			v := verdicts[rnd.IntN(len(verdicts))]
			if ch == "bl" && rnd.IntN(2) == 0 {
				v = "RETURN"
			}
			switch rnd.IntN(40) {
			case 0: // breaks the run
				fmt.Fprintf(&b, "-A %s -p udp -s %s -j %s\n", ch, randNet(), v)
			case 1: // a destination run member, or a break
				fmt.Fprintf(&b, "-A %s -d %s -j %s\n", ch, randNet(), v)
			case 2:
				fmt.Fprintf(&b, "-A %s -s %s -i eth1 -j %s\n", ch, randNet(), v)
			default:
				fmt.Fprintf(&b, "-A %s -s %s -j %s\n", ch, randNet(), v)
			}
		}
		if ch == "INPUT" {
			b.WriteString("-A INPUT -j bl\n")
			for i := 0; i < 40; i++ { // a pure destination run
				fmt.Fprintf(&b, "-A INPUT -d %s -j %s\n", randNet(), verdicts[rnd.IntN(len(verdicts))])
			}
		}
	}
	b.WriteString("COMMIT\n")
	return b.String(), pool
}

type net4 struct {
	a [4]byte
	l int
}

func (n *net4) String() string {
	var m uint32
	if n.l > 0 {
		m = ^uint32(0) << (32 - n.l)
	}
	v := (uint32(n.a[0])<<24 | uint32(n.a[1])<<16 | uint32(n.a[2])<<8 | uint32(n.a[3])) & m
	return fmt.Sprintf("%d.%d.%d.%d/%d", v>>24, v>>16&255, v>>8&255, v&255, n.l)
}

func loadRestore(t testing.TB, text string, noRuns bool) *netfilter.Engine {
	t.Helper()
	rs, err := iptables.Restore(ruleset.New(xt.IPv4), builtin.Registry(), strings.NewReader(text), iptables.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := netfilter.New(netfilter.Config{Seed: 1, NoAddrRuns: noRuns})
	if err := e.Load(rs); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestAddrRunsAgreeWithLinearWalk runs the same random packets through a
// blocklist-shaped ruleset with the address-run lookup and with the plain
// rule-by-rule walk: every verdict, deciding rule and counter must agree.
func TestAddrRunsAgreeWithLinearWalk(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		rnd := rand.New(rand.NewPCG(seed, 7))
		text, pool := blocklist(rnd, 300)
		fast, slow := loadRestore(t, text, false), loadRestore(t, text, true)
		if runs, covered := netfilter.AddrRunStats(fast); runs < 3 || covered < 300 {
			t.Fatalf("seed %d: only %d address runs covering %d rules", seed, runs, covered)
		}
		if runs, _ := netfilter.AddrRunStats(slow); runs != 0 {
			t.Fatalf("NoAddrRuns still built %d runs", runs)
		}
		wf, ws := fast.NewWorker(nil), slow.NewWorker(nil)
		var pf, ps packet.Packet
		for i := 0; i < 20000; i++ {
			var src, dst string
			pick := func() string {
				if rnd.IntN(4) == 0 {
					return fmt.Sprintf("%d.%d.%d.%d", rnd.IntN(6), rnd.IntN(5), rnd.IntN(256), rnd.IntN(256))
				}
				var a, b, c, d, l int
				fmt.Sscanf(pool[rnd.IntN(len(pool))], "%d.%d.%d.%d/%d", &a, &b, &c, &d, &l)
				v := uint32(a)<<24 | uint32(b)<<16 | uint32(c)<<8 | uint32(d)
				if l < 32 {
					v |= rnd.Uint32() >> l // somewhere inside the network
				}
				if rnd.IntN(8) == 0 {
					v += uint32(rnd.IntN(3)) - 1 // at or just past an edge
				}
				return fmt.Sprintf("%d.%d.%d.%d", v>>24, v>>16&255, v>>8&255, v&255)
			}
			src, dst = pick(), pick()
			opts := packettest.TCPOpts{Src: src, Dst: dst, SrcPort: 1000, DstPort: 80, Flags: packettest.SYN, Seq: 1}
			var b []byte
			if rnd.IntN(5) == 0 {
				b = packettest.UDP(packettest.UDPOpts{Src: src, Dst: dst, SrcPort: 53, DstPort: 53})
			} else {
				b = packettest.TCP(opts)
			}
			iface := "eth0"
			if rnd.IntN(6) == 0 {
				iface = "eth1"
			}
			for _, x := range []*packet.Packet{&pf, &ps} {
				x.Decode(b)
				x.InIface, x.OutIface, x.TimeNS = iface, "", int64(i)*1e6
			}
			rf, rs := wf.Process(netfilter.PathInput, &pf), ws.Process(netfilter.PathInput, &ps)
			if rf.Verdict != rs.Verdict || rf.Decision != rs.Decision {
				t.Fatalf("seed %d packet %d %s -> %s on %s: with runs %v %+v, linear %v %+v",
					seed, i, src, dst, iface, rf.Verdict, rf.Decision, rs.Verdict, rs.Decision)
			}
		}
		if a, b := saveCounters(t, fast), saveCounters(t, slow); a != b {
			t.Fatalf("seed %d: counters differ\nwith runs:\n%s\nlinear:\n%s", seed, a, b)
		}
	}
}

func saveCounters(t *testing.T, e *netfilter.Engine) string {
	var b bytes.Buffer
	if err := iptables.WriteSave(&b, e.Ruleset(), iptables.SaveOptions{Counters: true, Now: time.Unix(0, 0).UTC()}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// BenchmarkBlocklist is the seeds' country blocklist: N consecutive
// `-A INPUT -s NET -j DROP` rules, then ACCEPT, with a packet from an
// address in none of them (the common case: it walks the whole list).
func BenchmarkBlocklist(b *testing.B) {
	for _, n := range []int{1000, 60000} {
		rnd := rand.New(rand.NewPCG(uint64(n), 1))
		var sb strings.Builder
		sb.WriteString("*filter\n:INPUT ACCEPT [0:0]\n")
		for i := 0; i < n; i++ {
			nt := net4{[4]byte{byte(11 + rnd.IntN(200)), byte(rnd.IntN(256)), byte(rnd.IntN(256)), 0}, 16 + rnd.IntN(9)}
			fmt.Fprintf(&sb, "-A INPUT -s %s -j DROP\n", nt.String())
		}
		sb.WriteString("-A INPUT -j ACCEPT\nCOMMIT\n")
		for _, mode := range []string{"linear", "runs"} {
			b.Run(fmt.Sprintf("%d/%s", n, mode), func(b *testing.B) {
				e := loadRestore(b, sb.String(), mode == "linear")
				w := e.NewWorker(nil)
				pkt := packettest.TCP(packettest.TCPOpts{Src: "10.1.2.3", Dst: server, SrcPort: 1000, DstPort: 80, Flags: packettest.ACK, Seq: 1})
				var p packet.Packet
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					p.Decode(pkt)
					p.InIface = "eth0"
					if r := w.Process(netfilter.PathInput, &p); r.Verdict != xt.VerdictAccept {
						b.Fatalf("verdict %v", r.Verdict)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
			})
		}
	}
}

// TestDecisionIgnoresNatPolicy: a new connection accepted by a filter rule
// then crosses nat INPUT, whose policy is always ACCEPT; the deciding rule
// reported (replay's jsonl "rule", the tracer's verdict line) stays the
// filter rule.
func TestDecisionIgnoresNatPolicy(t *testing.T) {
	h := load(t, `
-t nat -A PREROUTING -p udp --dport 9 -j DNAT --to-destination 10.0.0.100:53
-A INPUT -p tcp --dport 22 -j ACCEPT
-A INPUT -p udp -j ACCEPT
-P INPUT DROP`)
	res := h.in(packettest.TCP(packettest.TCPOpts{Src: "192.0.2.1", Dst: server, SrcPort: 1000, DstPort: 22, Flags: packettest.SYN, Seq: 1}))
	if want := (netfilter.Decision{Table: "filter", Chain: "INPUT", Rule: 1, Verdict: xt.VerdictAccept}); res.Decision != want {
		t.Fatalf("decision %+v, want %+v", res.Decision, want)
	}
	res = h.in(packettest.TCP(packettest.TCPOpts{Src: "192.0.2.1", Dst: server, SrcPort: 1001, DstPort: 80, Flags: packettest.SYN, Seq: 1}))
	if want := (netfilter.Decision{Table: "filter", Chain: "INPUT", Rule: 0, Verdict: xt.VerdictDrop}); res.Decision != want {
		t.Fatalf("decision %+v, want %+v", res.Decision, want)
	}
}
