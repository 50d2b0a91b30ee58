package control

import (
	"bytes"
	"fmt"
	"net/netip"
	"sort"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/iptables"
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

// ConnlimitCounts computes, for every connlimit rule of the engine's rule
// set, how many connections each address (or --connlimit-mask network)
// holds.
//
// The engine does not expose its rules' compiled connlimit bookkeeping
// (match.ConnlimitRuntime.Counts), so the counts are derived from the
// connection table, as the kernel's nf_conncount would see them: every
// live entry whose original tuple passes the rule's address, protocol and
// tcp/udp/multiport port tests counts for its masked source (destination
// with --connlimit-daddr) and zone, unless it is a TCP connection in
// TIME_WAIT or CLOSE (nf_conncount drops those). Other matches of the rule
// (interfaces, state, marks, recent...) are not evaluated, so a rule that
// depends on them may show more connections than its bookkeeping holds.
func ConnlimitCounts(rs *ruleset.Ruleset, ct *conntrack.Table, nowNS int64) []ConnlimitRule {
	var out []ConnlimitRule
	for _, t := range rs.Tables {
		for _, ch := range t.Chains {
			for i, r := range ch.Rules {
				for _, m := range r.Matches {
					cl, ok := m.Match.(*match.Connlimit)
					if !ok {
						continue
					}
					out = append(out, ConnlimitRule{Table: t.Name, Chain: ch.Name, Num: i + 1,
						Spec: iptables.FormatRule(ch.Name, r, false), Target: iptables.TargetListName(r),
						Limit: cl.Limit, Above: cl.Above, Keys: connlimitKeys(r, cl, ct, nowNS)})
				}
			}
		}
	}
	return out
}

func connlimitKeys(r *ruleset.Rule, cl *match.Connlimit, ct *conntrack.Table, now int64) []ConnlimitKey {
	if ct == nil {
		return nil
	}
	bits := 32
	plen := cl.PrefixLen
	type key struct {
		p    netip.Prefix
		zone uint16
	}
	counts := map[key]int{}
	ct.Range(now, func(e *conntrack.Entry) bool {
		o := &e.Orig
		if !o.Src.Is4() {
			return true
		}
		if o.Proto == conntrack.ProtoTCP && (e.TCPState == conntrack.TCPTimeWait || e.TCPState == conntrack.TCPClose) {
			return true
		}
		if !ruleTupleMatch(r, o) {
			return true
		}
		a := o.Src
		if cl.Daddr {
			a = o.Dst
		}
		l := plen
		if l < 0 || l > bits {
			l = bits
		}
		p, err := a.Prefix(l)
		if err != nil {
			return true
		}
		counts[key{p, o.Zone}]++
		return true
	})
	keys := make([]ConnlimitKey, 0, len(counts))
	for k, n := range counts {
		keys = append(keys, ConnlimitKey{Prefix: k.p, Zone: k.zone, Count: n})
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
	return keys
}

// ruleTupleMatch applies the rule's tests that a connection's original
// tuple can answer: -s, -d, -p and the tcp, udp and multiport ports.
func ruleTupleMatch(r *ruleset.Rule, o *conntrack.Tuple) bool {
	if !addrTest(r.Src, r.SrcMask, r.InvSrc, o.Src) || !addrTest(r.Dst, r.DstMask, r.InvDst, o.Dst) {
		return false
	}
	if r.Proto != 0 && (o.Proto == r.Proto) == r.InvProto {
		return false
	}
	in := func(pr match.PortRange, p uint16) bool { return p >= pr.Min && p <= pr.Max }
	for _, m := range r.Matches {
		switch x := m.Match.(type) {
		case *match.TCP:
			if o.Proto != conntrack.ProtoTCP || in(x.SrcPorts, o.SrcID) == x.InvSrc || in(x.DstPorts, o.DstID) == x.InvDst {
				return false
			}
		case *match.UDP:
			if o.Proto != conntrack.ProtoUDP || in(x.SrcPorts, o.SrcID) == x.InvSrc || in(x.DstPorts, o.DstID) == x.InvDst {
				return false
			}
		case *match.Multiport:
			if !o.HasPorts() {
				return false
			}
			hit := false
			for _, pr := range x.Ports {
				switch x.Dir {
				case match.MultiportSource:
					hit = hit || in(pr, o.SrcID)
				case match.MultiportDestination:
					hit = hit || in(pr, o.DstID)
				default:
					hit = hit || in(pr, o.SrcID) || in(pr, o.DstID)
				}
			}
			if hit == x.Invert {
				return false
			}
		}
	}
	return true
}

func addrTest(want, mask netip.Addr, inv bool, a netip.Addr) bool {
	if !want.IsValid() || xt.MaskLen(mask) == 0 {
		return true
	}
	if !a.Is4() || !mask.Is4() {
		return inv
	}
	x, m := a.As4(), mask.As4()
	for i := range x {
		x[i] &= m[i]
	}
	return (netip.AddrFrom4(x) == want) != inv
}

func (s *Server) connlimit(args []string, out, errw *bytes.Buffer) int {
	if len(args) > 0 {
		fmt.Fprintf(errw, "uptables connlimit: unexpected argument %q\n", args[0])
		return 2
	}
	eng := s.cfg.Rules.Engine()
	rules := ConnlimitCounts(eng.Ruleset(), eng.ConntrackTable(), s.nowNS())
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
