package control

import (
	"bytes"
	"fmt"
	"net/netip"
	"sort"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/match"
)

// ConnlimitKey is one address or network of a connlimit rule and the
// connections it holds.
type ConnlimitKey struct {
	Prefix netip.Prefix
	Zone   uint16
	Count  int
}

// ConnlimitRule is one connlimit rule and its keys, most connections first.
type ConnlimitRule struct {
	Table, Chain string
	Num          int    // 1-based rule number
	Spec         string // the rule as -S prints it
	Target       string
	Limit        uint32
	Above        bool
	Keys         []ConnlimitKey
}

// ConnlimitCounts returns, for every connlimit rule of the engine's active
// rule set, how many connections each address (or --connlimit-mask
// network) holds: the rule's own nf_conncount bookkeeping, read through the
// engine (dead and closed connections are left out, as the match itself
// would drop them before counting).
func ConnlimitCounts(eng *netfilter.Engine, nowNS int64) []ConnlimitRule {
	var out []ConnlimitRule
	ct := eng.ConntrackTable()
	eng.Runtimes(func(table, chain string, num int, r *ruleset.Rule, ms []xt.PacketMatcher) {
		for i, m := range r.Matches {
			cl, ok := m.Match.(*match.Connlimit)
			if !ok || i >= len(ms) {
				continue
			}
			rt, ok := ms[i].(*match.ConnlimitRuntime)
			if !ok {
				continue
			}
			var keys []ConnlimitKey
			for _, k := range rt.Counts(ct, nowNS) {
				if k.Count > 0 {
					keys = append(keys, ConnlimitKey{Prefix: k.Prefix, Zone: k.Zone, Count: k.Count})
				}
			}
			sort.Slice(keys, func(i, j int) bool {
				if keys[i].Count != keys[j].Count {
					return keys[i].Count > keys[j].Count
				}
				if c := keys[i].Prefix.Addr().Compare(keys[j].Prefix.Addr()); c != 0 {
					return c < 0
				}
				return keys[i].Zone < keys[j].Zone
			})
			out = append(out, ConnlimitRule{Table: table, Chain: chain, Num: num,
				Spec: iptables.FormatRule(chain, r, false), Target: iptables.TargetListName(r),
				Limit: cl.Limit, Above: cl.Above, Keys: keys})
		}
	})
	return out
}

func (s *Server) connlimit(args []string, out, errw *bytes.Buffer) int {
	if len(args) > 0 {
		fmt.Fprintf(errw, "uptables connlimit: unexpected argument %q\n", args[0])
		return 2
	}
	eng := s.cfg.Rules.Engine()
	rules := ConnlimitCounts(eng, s.nowNS())
	if len(rules) == 0 {
		fmt.Fprintln(errw, "uptables connlimit: no rule uses -m connlimit")
		return 0
	}
	for i, r := range rules {
		if i > 0 {
			out.WriteByte('\n')
		}
		fmt.Fprintf(out, "%s %s #%d: %s\n", r.Table, r.Chain, r.Num, r.Spec)
		if len(r.Keys) == 0 {
			fmt.Fprintln(out, "  no connections")
			continue
		}
		fmt.Fprintf(out, "  %-20s %6s  %s\n", "ADDRESS", "CONNS", "NEXT NEW CONNECTION")
		for _, k := range r.Keys {
			addr := k.Prefix.String()
			if k.Zone != 0 {
				addr += fmt.Sprintf(" zone %d", k.Zone)
			}
			fmt.Fprintf(out, "  %-20s %6d  %s\n", addr, k.Count, nextConn(r, k.Count))
		}
	}
	return 0
}

// nextConn says what the rule does with the key's next new connection:
// nf_conncount adds it first, so it sees count+1.
func nextConn(r ConnlimitRule, count int) string {
	n := count + 1
	if r.Above {
		if n > int(r.Limit) {
			return fmt.Sprintf("%d > %d: rule matches (-j %s)", n, r.Limit, r.Target)
		}
		return fmt.Sprintf("%d <= %d: rule does not match", n, r.Limit)
	}
	if n <= int(r.Limit) {
		return fmt.Sprintf("%d <= %d: rule matches (-j %s)", n, r.Limit, r.Target)
	}
	return fmt.Sprintf("%d > %d: rule does not match", n, r.Limit)
}
