package netfilter

import (
	"net/netip"
	"testing"

	"github.com/uptables/uptables/internal/ruleset"
)

// runRules builds compiled DROP rules with the given source networks.
func runRules(nets ...string) []rule {
	rules := make([]rule, len(nets))
	for i, n := range nets {
		p := netip.MustParsePrefix(n)
		var mask [4]byte
		for b := 0; b < p.Bits(); b++ {
			mask[b/8] |= 0x80 >> (b % 8)
		}
		rules[i] = rule{kind: ruleset.TargetVerdict, verdict: ruleset.Drop, index: i + 1,
			ip: ipPart{src: p.Addr(), srcMask: netip.AddrFrom4(mask), anyDst: true}}
	}
	return rules
}

func TestBuildAddrRun(t *testing.T) {
	nets := []string{
		"10.0.0.0/16",        // 0
		"10.0.1.0/24",        // 1: inside 0, later: 0 wins
		"9.0.0.0/8",          // 2
		"9.1.0.0/16",         // 3
		"9.1.2.3/32",         // 4
		"0.0.0.0/1",          // 5: holds 9/8 and 10/16, which come first
		"200.0.0.0/8",        // 6
		"255.255.255.255/32", // 7
		"200.0.0.0/8",        // 8: duplicate of 6
		"11.0.0.0/8", "12.0.0.0/8", "13.0.0.0/8", "14.0.0.0/8", "15.0.0.0/8", "16.0.0.0/8", "17.0.0.0/8",
	}
	ch := &chain{rules: runRules(nets...)}
	findAddrRuns(ch)
	if len(ch.runs) != 1 || ch.rules[0].run != 1 || ch.runs[0].end != len(nets) {
		t.Fatalf("runs = %+v", ch.runs)
	}
	r := &ch.runs[0]
	for _, tc := range []struct {
		addr string
		want int
	}{
		{"10.0.1.5", 0}, {"10.0.2.5", 0}, {"10.1.0.0", 5}, {"9.1.2.3", 2}, {"9.200.0.0", 2},
		{"1.2.3.4", 5}, {"127.255.255.255", 5}, {"128.0.0.0", len(nets)}, {"200.9.9.9", 6},
		{"255.255.255.255", 7}, {"255.255.255.254", len(nets)}, {"0.0.0.0", 5}, {"17.255.0.1", 5},
	} {
		got := r.nextAddr(netip.MustParseAddr(tc.addr))
		if got != tc.want {
			t.Errorf("%s: first rule %d, want %d (intervals lo=%v hi=%v first=%v)", tc.addr, got, tc.want, r.lo, r.hi, r.first)
		}
	}
}
