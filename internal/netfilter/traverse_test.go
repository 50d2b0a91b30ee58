package netfilter

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// protoMatch is a minimal stateless match for traversal tests: it matches
// packets with the given destination port.
type portMatch struct{ port uint16 }

func (m *portMatch) Parse(*xt.ParseContext, string, bool, string, []string) error { return nil }
func (m *portMatch) Final(*xt.ParseContext) error                                 { return nil }
func (m *portMatch) Save(b *strings.Builder)                                      { b.WriteString(" --dport x") }
func (m *portMatch) List(b *strings.Builder, _ bool)                              {}
func (m *portMatch) Matches(c *xt.Ctx) bool                                       { return c.P.DstPort == m.port }

var portSpec = &xt.MatchSpec{Name: "port"}

func filterWith(policy ruleset.Verdict, chains ...*ruleset.Chain) *ruleset.Ruleset {
	t := &ruleset.Table{Name: "filter", Chains: []*ruleset.Chain{
		{Name: "INPUT", BuiltIn: true, Hook: xt.LocalIn, Policy: policy},
		{Name: "FORWARD", BuiltIn: true, Hook: xt.Forward, Policy: ruleset.Accept},
		{Name: "OUTPUT", BuiltIn: true, Hook: xt.LocalOut, Policy: ruleset.Accept},
	}}
	for _, c := range chains {
		if c.BuiltIn {
			for i, b := range t.Chains {
				if b.Name == c.Name {
					t.Chains[i] = c
				}
			}
			continue
		}
		t.Chains = append(t.Chains, c)
	}
	return &ruleset.Ruleset{Family: xt.IPv4, Tables: []*ruleset.Table{t}}
}

func port(p uint16) ruleset.MatchEntry {
	return ruleset.MatchEntry{Spec: portSpec, Match: &portMatch{port: p}}
}

func verdictRule(v ruleset.Verdict, m ...ruleset.MatchEntry) *ruleset.Rule {
	return &ruleset.Rule{Kind: ruleset.TargetVerdict, Verdict: v, Matches: m}
}

func jumpRule(kind ruleset.TargetKind, to string, m ...ruleset.MatchEntry) *ruleset.Rule {
	return &ruleset.Rule{Kind: kind, Chain: to, Matches: m}
}

func tcpPacket(dport uint16) *packet.Packet {
	return &packet.Packet{Version: 4, TotalLen: 60, Proto: 6, DstPort: dport,
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), InIface: "eth0"}
}

func counters(t *testing.T, e *Engine, chain string) []uint64 {
	t.Helper()
	var out []uint64
	for _, tb := range e.Ruleset().Tables {
		for _, ch := range tb.Chains {
			if ch.Name != chain {
				continue
			}
			for _, r := range ch.Rules {
				out = append(out, r.Counters.Packets)
			}
			if ch.BuiltIn {
				out = append(out, ch.Counters.Packets)
			}
		}
	}
	return out
}

// TestGotoReturn checks spec §1.5: INPUT -j J1; J1 -g G1; G1 RETURN continues
// after the jump in INPUT and skips the rest of J1.
func TestGotoReturn(t *testing.T) {
	in := &ruleset.Chain{Name: "INPUT", BuiltIn: true, Hook: xt.LocalIn, Policy: ruleset.Drop, Rules: []*ruleset.Rule{
		jumpRule(ruleset.TargetJump, "J1"),
		verdictRule(ruleset.Accept, port(22)),
	}}
	j1 := &ruleset.Chain{Name: "J1", Rules: []*ruleset.Rule{
		jumpRule(ruleset.TargetGoto, "G1"),
		verdictRule(ruleset.Drop), // skipped: G1's RETURN goes back to INPUT
	}}
	g1 := &ruleset.Chain{Name: "G1", Rules: []*ruleset.Rule{verdictRule(ruleset.Return)}}
	e := New(Config{Seed: 1})
	if err := e.Load(filterWith(ruleset.Drop, in, j1, g1)); err != nil {
		t.Fatal(err)
	}
	w := e.NewWorker(nil)
	if r := w.Process(PathInput, tcpPacket(22)); r.Verdict != xt.VerdictAccept || r.Decision.Rule != 2 {
		t.Fatalf("port 22: %+v", r)
	}
	if r := w.Process(PathInput, tcpPacket(80)); r.Verdict != xt.VerdictDrop || r.Decision.Rule != 0 {
		t.Fatalf("port 80 should hit the DROP policy: %+v", r)
	}
	if got := counters(t, e, "INPUT"); got[0] != 2 || got[1] != 1 || got[2] != 1 {
		t.Fatalf("INPUT counters %v, want [2 1 1]", got)
	}
	if got := counters(t, e, "J1"); got[0] != 2 || got[1] != 0 {
		t.Fatalf("J1 counters %v, want [2 0]", got)
	}
}

// TestGotoFromBuiltinFallsToPolicy: a chain entered by goto straight from the
// built-in chain returns to nobody, so its end applies the policy.
func TestGotoFromBuiltinFallsToPolicy(t *testing.T) {
	in := &ruleset.Chain{Name: "INPUT", BuiltIn: true, Hook: xt.LocalIn, Policy: ruleset.Drop, Rules: []*ruleset.Rule{
		jumpRule(ruleset.TargetGoto, "G"),
		verdictRule(ruleset.Accept),
	}}
	g := &ruleset.Chain{Name: "G"}
	e := New(Config{Seed: 1})
	if err := e.Load(filterWith(ruleset.Drop, in, g)); err != nil {
		t.Fatal(err)
	}
	r := e.NewWorker(nil).Process(PathInput, tcpPacket(1))
	if r.Verdict != xt.VerdictDrop || r.Decision.Chain != "INPUT" || r.Decision.Rule != 0 {
		t.Fatalf("got %+v, want INPUT policy DROP", r)
	}
}

// TestCountersCarryOver: reloading a ruleset keeps counters of unchanged
// rules (iptables-nft only instantiates new rules) and starts new ones at 0.
func TestCountersCarryOver(t *testing.T) {
	mk := func(extra bool) *ruleset.Ruleset {
		in := &ruleset.Chain{Name: "INPUT", BuiltIn: true, Hook: xt.LocalIn, Policy: ruleset.Accept}
		if extra {
			in.Rules = append(in.Rules, verdictRule(ruleset.Drop, port(9)))
		}
		in.Rules = append(in.Rules, verdictRule(ruleset.Accept, port(22)))
		return filterWith(ruleset.Accept, in)
	}
	e := New(Config{Seed: 1})
	if err := e.Load(mk(false)); err != nil {
		t.Fatal(err)
	}
	w := e.NewWorker(nil)
	w.Process(PathInput, tcpPacket(22))
	w.Process(PathInput, tcpPacket(22))
	if err := e.Load(mk(true)); err != nil {
		t.Fatal(err)
	}
	if got := counters(t, e, "INPUT"); got[0] != 0 || got[1] != 2 {
		t.Fatalf("counters after insert %v, want [0 2 0]", got)
	}
}

// TestByteCounters counts the L3 length.
func TestByteCounters(t *testing.T) {
	in := &ruleset.Chain{Name: "INPUT", BuiltIn: true, Hook: xt.LocalIn, Policy: ruleset.Accept,
		Rules: []*ruleset.Rule{{Kind: ruleset.TargetNone}}}
	e := New(Config{Seed: 1})
	if err := e.Load(filterWith(ruleset.Accept, in)); err != nil {
		t.Fatal(err)
	}
	e.NewWorker(nil).Process(PathInput, tcpPacket(1))
	rs := e.Ruleset()
	r := rs.Tables[0].Chains[0].Rules[0]
	if r.Counters.Packets != 1 || r.Counters.Bytes != 60 {
		t.Fatalf("got %+v", r.Counters)
	}
	if c := rs.Tables[0].Chains[0].Counters; c.Packets != 1 || c.Bytes != 60 {
		t.Fatalf("policy counters %+v", c)
	}
}

func TestIPPart(t *testing.T) {
	mustR := func(s string) (netip.Addr, netip.Addr) {
		a, m, err := xt.ParseAddrMask(xt.IPv4, s)
		if err != nil {
			t.Fatal(err)
		}
		return a, m
	}
	cases := []struct {
		name string
		rule ruleset.Rule
		want bool
	}{
		{"src net", func() ruleset.Rule { a, m := mustR("10.0.0.0/8"); return ruleset.Rule{Src: a, SrcMask: m} }(), true},
		{"! src net", func() ruleset.Rule {
			a, m := mustR("10.0.0.0/8")
			return ruleset.Rule{Src: a, SrcMask: m, InvSrc: true}
		}(), false},
		{"dst host other", func() ruleset.Rule { a, m := mustR("10.0.0.3"); return ruleset.Rule{Dst: a, DstMask: m} }(), false},
		{"iface prefix", ruleset.Rule{InIface: "eth+"}, true},
		{"iface any", ruleset.Rule{InIface: "+"}, true},
		{"iface exact other", ruleset.Rule{InIface: "eth1"}, false},
		{"! iface", ruleset.Rule{InIface: "eth1", InvIn: true}, true},
		{"proto udp", ruleset.Rule{Proto: 17}, false},
		{"! proto udp", ruleset.Rule{Proto: 17, InvProto: true}, true},
		{"frag", ruleset.Rule{Frag: true}, false},
		{"! frag", ruleset.Rule{Frag: true, InvFrag: true}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cr rule
			if err := compileRule(&cr, &tc.rule, xt.IPv4, "filter", "INPUT", 0, nil, nil, nil, nil, &Config{}); err != nil {
				t.Fatal(err)
			}
			if got := cr.ip.match(tcpPacket(1)); got != tc.want {
				t.Fatalf("got %v want %v", got, tc.want)
			}
		})
	}
}

func TestProcessAllocs(t *testing.T) {
	in := &ruleset.Chain{Name: "INPUT", BuiltIn: true, Hook: xt.LocalIn, Policy: ruleset.Drop, Rules: []*ruleset.Rule{
		jumpRule(ruleset.TargetJump, "J1"),
		verdictRule(ruleset.Accept, port(22)),
	}}
	j1 := &ruleset.Chain{Name: "J1", Rules: []*ruleset.Rule{verdictRule(ruleset.Return, port(80))}}
	e := New(Config{Seed: 1})
	if err := e.Load(filterWith(ruleset.Drop, in, j1)); err != nil {
		t.Fatal(err)
	}
	w := e.NewWorker(nil)
	p := tcpPacket(22)
	if n := testing.AllocsPerRun(1000, func() { w.Process(PathInput, p) }); n != 0 {
		t.Fatalf("%v allocs per packet", n)
	}
}

// TestLoadWithCounters: -Z and -c load a ruleset whose counters replace the
// running ones, while an ordinary load carries them over.
func TestLoadWithCounters(t *testing.T) {
	in := &ruleset.Chain{Name: "INPUT", BuiltIn: true, Hook: xt.LocalIn, Policy: ruleset.Accept,
		Rules: []*ruleset.Rule{verdictRule(ruleset.Accept, port(22))}}
	e := New(Config{Seed: 1})
	if err := e.Load(filterWith(ruleset.Accept, in)); err != nil {
		t.Fatal(err)
	}
	w := e.NewWorker(nil)
	w.Process(PathInput, tcpPacket(22))
	w.Process(PathInput, tcpPacket(80))
	live := e.Ruleset()
	if err := e.Load(live); err != nil {
		t.Fatal(err)
	}
	if got := counters(t, e, "INPUT"); got[0] != 1 || got[1] != 1 {
		t.Fatalf("after a plain reload %v, want [1 1]", got)
	}
	zeroed := e.Ruleset()
	zeroed.Tables[0].Chains[0].Rules[0].Counters = ruleset.Counters{Packets: 7, Bytes: 70}
	zeroed.Tables[0].Chains[0].Counters = ruleset.Counters{}
	if err := e.LoadWith(zeroed, LoadOptions{Counters: true}); err != nil {
		t.Fatal(err)
	}
	w.Process(PathInput, tcpPacket(22))
	if got := counters(t, e, "INPUT"); got[0] != 8 || got[1] != 0 {
		t.Fatalf("after -c 7 70 / -Z of the policy and one packet %v, want [8 0]", got)
	}
	n := 0
	e.Runtimes(func(table, chain string, num int, r *ruleset.Rule, ms []xt.PacketMatcher) {
		if table == "filter" && chain == "INPUT" && num == 1 && len(ms) == 1 {
			if _, ok := ms[0].(*portMatch); ok {
				n++
			}
		}
	})
	if n != 1 {
		t.Fatalf("Runtimes visited the rule's match %d times", n)
	}
}

// TestPinSurvivesReload: a pinned object (a replacement state store) stays
// in the registry across loads that do not name it; an unpinned one goes.
func TestPinSurvivesReload(t *testing.T) {
	e := New(Config{Seed: 1})
	store := &struct{ x int }{1}
	if err := e.Pin("statestore", "factory", store); err != nil {
		t.Fatal(err)
	}
	if err := e.Pin("statestore", "factory", &struct{ x int }{2}); err == nil {
		t.Fatal("pinning a second object under the same name must fail")
	}
	if _, err := e.Named().Shared("recent", "X", func() (any, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}
	if err := e.Load(filterWith(ruleset.Accept)); err != nil {
		t.Fatal(err)
	}
	if v, ok := e.Shared("statestore", "factory"); !ok || v != any(store) {
		t.Fatalf("pinned store gone after a load: %v %v", v, ok)
	}
	if _, ok := e.Shared("recent", "X"); ok {
		t.Fatal("an unpinned object no rule names must be dropped")
	}
}
