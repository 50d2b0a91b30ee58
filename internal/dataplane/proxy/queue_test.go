package proxy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

func restoreGate(t *testing.T, rules string) *Gate {
	t.Helper()
	rs, err := iptables.Restore(ruleset.New(xt.IPv4), builtin.Registry(), strings.NewReader(rules), iptables.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return newGate(t, rs, GateConfig{})
}

// TestQueueWithoutListener: the proxy has no NFQUEUE consumer, so an
// NFQUEUE rule does what the kernel does with nothing bound to the queue
// (measured on 6.18, spec §10.2): --queue-bypass accepts for that table
// only and the later tables still decide; without bypass the connection is
// dropped.
func TestQueueWithoutListener(t *testing.T) {
	client := netip.MustParseAddrPort("192.0.2.7:40000")
	cases := []struct {
		name, rules string
		want        Outcome
		filterHits  uint64 // filter INPUT rule 1
	}{
		{"bypass in mangle, filter rejects", `*mangle
-A INPUT -p tcp -j NFQUEUE --queue-num 7 --queue-bypass
-A INPUT -p tcp -j DROP
COMMIT
*filter
-A INPUT -p tcp --syn -j REJECT --reject-with tcp-reset
COMMIT
`, Reset, 1},
		{"bypass in filter skips the rest of the chain", `*filter
-A INPUT -p tcp -j NFQUEUE --queue-num 7 --queue-bypass
-A INPUT -p tcp -j DROP
COMMIT
`, Accepted, 2}, // SYN and ACK
		{"no bypass drops", `*mangle
-A INPUT -p tcp -j NFQUEUE --queue-num 7
COMMIT
*filter
-A INPUT -p tcp -j ACCEPT
COMMIT
`, Dropped, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := restoreGate(t, c.rules)
			f, o := g.Admit(client, netip.MustParseAddrPort("198.51.100.1:22"))
			if o != c.want {
				t.Fatalf("outcome %v, want %v", o, c.want)
			}
			if o == Accepted {
				f.End()
			}
			var hits uint64
			for _, tb := range g.Engine().Ruleset().Tables {
				if tb.Name != "filter" {
					continue
				}
				for _, ch := range tb.Chains {
					if ch.Name == "INPUT" && len(ch.Rules) > 0 {
						hits = ch.Rules[0].Counters.Packets
					}
				}
			}
			if hits != c.filterHits {
				t.Fatalf("filter INPUT rule 1 counted %d packets, want %d", hits, c.filterHits)
			}
		})
	}
}
