package netfilter

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// recTracer writes what the engine reports, one token per call.
type recTracer struct{ got []string }

func (r *recTracer) Rule(_ *xt.Ctx, table, chain string, index int, _ *ruleset.Rule) {
	r.got = append(r.got, fmt.Sprintf("rule %s:%s:%d", table, chain, index))
}
func (r *recTracer) IP(_ *xt.Ctx, fail IPTest) { r.got = append(r.got, fmt.Sprintf("ip %d", fail)) }
func (r *recTracer) Match(_ *xt.Ctx, i int, _ xt.PacketMatcher, ok bool) {
	r.got = append(r.got, fmt.Sprintf("match %d %t", i, ok))
}
func (r *recTracer) Decision(_ *xt.Ctx, d Decision) {
	r.got = append(r.got, fmt.Sprintf("decision %s:%d", d.Chain, d.Rule))
}

// TestTracerRuleResults: for every rule visited the tracer learns which
// test of the generic part failed, or which match failed, or that all
// held, and no match runs after the first that failed.
func TestTracerRuleResults(t *testing.T) {
	src := netip.MustParseAddr("192.0.2.0")
	mask := netip.MustParseAddr("255.255.255.0")
	rs := filterWith(ruleset.Drop, &ruleset.Chain{Name: "INPUT", BuiltIn: true, Hook: xt.LocalIn, Policy: ruleset.Drop, Rules: []*ruleset.Rule{
		{Src: src, SrcMask: mask, Kind: ruleset.TargetVerdict, Verdict: ruleset.Accept},     // -s mismatch
		{Proto: 17, Kind: ruleset.TargetVerdict, Verdict: ruleset.Accept},                   // -p mismatch
		{InIface: "lo", InvIn: true, Kind: ruleset.TargetNone, Matches: nil},                // ! -i lo: holds
		verdictRule(ruleset.Accept, port(22), port(80), port(443)),                          // second match fails
		{Proto: 6, Kind: ruleset.TargetVerdict, Verdict: ruleset.Accept, Matches: nil},      // all hold
		{Proto: 6, Kind: ruleset.TargetVerdict, Verdict: ruleset.Drop, Matches: nil},        // not reached
		{Src: src, SrcMask: mask, Kind: ruleset.TargetVerdict, Verdict: ruleset.Drop},       // not reached
		{InIface: "eth+", Kind: ruleset.TargetVerdict, Verdict: ruleset.Drop, Matches: nil}, // not reached
	}})
	e := New(Config{})
	if err := e.Load(rs); err != nil {
		t.Fatal(err)
	}
	w := e.NewWorker(nil)
	tr := &recTracer{}
	w.SetTracer(tr)
	w.Process(PathInput, tcpPacket(22))
	want := []string{
		"rule filter:INPUT:1", "ip 1",
		"rule filter:INPUT:2", "ip 5",
		"rule filter:INPUT:3", "ip 0",
		"rule filter:INPUT:4", "ip 0", "match 0 true", "match 1 false",
		"rule filter:INPUT:5", "ip 0",
		"decision INPUT:5",
	}
	if got := strings.Join(tr.got, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
}

// TestIPMismatchAgrees: mismatch names a failing test exactly when match
// says false, and the first one in match's order.
func TestIPMismatchAgrees(t *testing.T) {
	a := netip.MustParseAddr
	parts := []struct {
		ip   ipPart
		want IPTest
	}{
		{ipPart{anySrc: true, anyDst: true}, IPMatch},
		{ipPart{anySrc: true, invSrc: true, anyDst: true}, IPSrc},
		{ipPart{src: a("10.0.0.0"), srcMask: a("255.0.0.0"), anyDst: true}, IPMatch},
		{ipPart{src: a("10.0.0.0"), srcMask: a("255.0.0.0"), invSrc: true, anyDst: true}, IPSrc},
		{ipPart{anySrc: true, dst: a("10.0.0.3"), dstMask: a("255.255.255.255")}, IPDst},
		{ipPart{src: a("192.0.2.1"), srcMask: a("255.255.255.255"), dst: a("10.0.0.3"), dstMask: a("255.255.255.255")}, IPSrc},
		{ipPart{anySrc: true, anyDst: true, in: newIfaceMatch("eth+")}, IPMatch},
		{ipPart{anySrc: true, anyDst: true, in: newIfaceMatch("eth1")}, IPIn},
		{ipPart{anySrc: true, anyDst: true, out: newIfaceMatch("eth1")}, IPOut},
		{ipPart{anySrc: true, anyDst: true, out: newIfaceMatch("eth1"), invOut: true}, IPMatch},
		{ipPart{anySrc: true, anyDst: true, proto: 17}, IPProto},
		{ipPart{anySrc: true, anyDst: true, proto: 17, invProto: true}, IPMatch},
		{ipPart{anySrc: true, anyDst: true, frag: true}, IPFrag},
		{ipPart{anySrc: true, anyDst: true, frag: true, invFrag: true}, IPMatch},
	}
	p := tcpPacket(22)
	for i, c := range parts {
		got := c.ip.mismatch(p)
		if got != c.want {
			t.Errorf("%d: mismatch %d, want %d", i, got, c.want)
		}
		if c.ip.match(p) != (got == IPMatch) {
			t.Errorf("%d: match %t but mismatch %d", i, c.ip.match(p), got)
		}
	}
}

// TestTracerOffNoAllocs: the trace hooks cost nothing without a tracer.
func TestTracerOffNoAllocs(t *testing.T) {
	rs := filterWith(ruleset.Drop, &ruleset.Chain{Name: "INPUT", BuiltIn: true, Hook: xt.LocalIn, Policy: ruleset.Drop, Rules: []*ruleset.Rule{
		{Proto: 17, Kind: ruleset.TargetVerdict, Verdict: ruleset.Accept},
		verdictRule(ruleset.Accept, port(22), port(80)),
		verdictRule(ruleset.Accept, port(22)),
	}})
	e := New(Config{})
	if err := e.Load(rs); err != nil {
		t.Fatal(err)
	}
	w := e.NewWorker(nil)
	p := tcpPacket(22)
	if n := testing.AllocsPerRun(1000, func() { w.Process(PathInput, p) }); n != 0 {
		t.Fatalf("%v allocs per packet", n)
	}
}
