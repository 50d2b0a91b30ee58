package netfilter

import (
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// Table indexes, in the order the kernel runs them at a shared hook.
const (
	tRaw = iota
	tMangle
	tNat
	tFilter
	tSecurity
	numTables
)

var tableNames = [numTables]string{"raw", "mangle", "nat", "filter", "security"}

func tableIndex(name string) int {
	for i, n := range tableNames {
		if n == name {
			return i
		}
	}
	return -1
}

// counter is one rule's or policy's packet and byte count. It is updated
// atomically by every goroutine that runs packets.
type counter struct {
	packets atomic.Uint64
	bytes   atomic.Uint64
}

func (c *counter) add(n int) {
	c.packets.Add(1)
	c.bytes.Add(uint64(n))
}

// ipPart is the generic part of a rule, pre-digested for matching.
type ipPart struct {
	src, srcMask, dst, dstMask netip.Addr
	anySrc, anyDst             bool
	invSrc, invDst             bool
	in, out                    ifaceMatch
	invIn, invOut              bool
	proto                      uint8
	invProto                   bool
	frag, invFrag              bool
}

// ifaceMatch is an interface name test: exact, or prefix when the rule's
// name ends in '+'. An empty name matches everything.
type ifaceMatch struct {
	name   string
	prefix bool
}

func newIfaceMatch(s string) ifaceMatch {
	if strings.HasSuffix(s, "+") {
		return ifaceMatch{name: s[:len(s)-1], prefix: true}
	}
	return ifaceMatch{name: s}
}

func (m *ifaceMatch) match(dev string) bool {
	if m.prefix {
		return strings.HasPrefix(dev, m.name)
	}
	if m.name == "" {
		return true
	}
	return dev == m.name
}

// rule is a compiled rule.
type rule struct {
	ip       ipPart
	matches  []xt.PacketMatcher
	kind     ruleset.TargetKind
	verdict  ruleset.Verdict
	jump     int // chain index for jump/goto
	target   xt.PacketTarget
	ctr      *counter
	key      string // identity for carrying state across reloads
	src      *ruleset.Rule
	chainIdx int
	index    int // 1-based position in its chain, as --line-numbers
	run      int // 1 + index in chain.runs of the address run starting here; 0 = none
}

// chain is a compiled chain.
type chain struct {
	name    string
	builtin bool
	policy  ruleset.Verdict
	pol     *counter
	rules   []rule
	runs    []addrRun // blocklist-shaped runs of rules, see addrrun.go
}

// table is a compiled table: its chains and which chain each hook enters.
type table struct {
	name   string
	chains []chain
	entry  [xt.NumHooks]int // chain index per hook, -1 when the table has no such built-in
}

// compiled is one loaded ruleset, immutable apart from its counters and the
// extensions' own state.
type compiled struct {
	rs        *ruleset.Ruleset
	tables    [numTables]*table
	conntrack bool // some rule needs connection tracking
	// runtimes by rule key, for the next reload to carry state over.
	byKey map[string]*rule
}

// Extensions whose presence switches connection tracking on in the
// namespace, as the kernel's nf_ct_netns_get calls do.
var (
	ctMatches = map[string]bool{"state": true, "conntrack": true, "connlimit": true, "connmark": true, "helper": true, "socket": false}
	ctTargets = map[string]bool{"CONNMARK": true, "CT": true, "NOTRACK": true, "DNAT": true, "SNAT": true, "MASQUERADE": true, "REDIRECT": true}
)

// ruleKey is the identity of a rule for state carry-over: its table, chain,
// full canonical text and its occurrence number among identical rules.
func ruleKey(tbl, ch string, r *ruleset.Rule) string {
	var b strings.Builder
	b.WriteString(tbl)
	b.WriteByte('/')
	b.WriteString(ch)
	b.WriteByte('/')
	fmt.Fprintf(&b, "%v|%v|%v|%v|%t%t|%s|%s|%t%t|%d%t|%t%t", r.Src, r.SrcMask, r.Dst, r.DstMask, r.InvSrc, r.InvDst,
		r.InIface, r.OutIface, r.InvIn, r.InvOut, r.Proto, r.InvProto, r.Frag, r.InvFrag)
	for _, m := range r.Matches {
		b.WriteString(" -m ")
		b.WriteString(m.Spec.Name)
		m.Match.Save(&b)
	}
	switch r.Kind {
	case ruleset.TargetVerdict:
		b.WriteString(" -j " + r.Verdict.String())
	case ruleset.TargetJump:
		b.WriteString(" -j " + r.Chain)
	case ruleset.TargetGoto:
		b.WriteString(" -g " + r.Chain)
	case ruleset.TargetExt:
		b.WriteString(" -j " + r.TSpec.Name)
		r.Target.Save(&b)
	}
	return b.String()
}

// compile builds the runtime of rs. prev is the ruleset being replaced (may
// be nil): unchanged rules take over its counters and extension state.
func compile(rs *ruleset.Ruleset, prev *compiled, named xt.NamedState, rnd func() uint32, cfg *Config) (*compiled, error) {
	c := &compiled{rs: rs, byKey: map[string]*rule{}}
	for _, t := range rs.Tables {
		ti := tableIndex(t.Name)
		if ti < 0 {
			return nil, fmt.Errorf("unknown table %q", t.Name)
		}
		ct := &table{name: t.Name}
		for h := range ct.entry {
			ct.entry[h] = -1
		}
		idx := map[string]int{}
		for i, ch := range t.Chains {
			idx[ch.Name] = i
		}
		hooks := reachableHooks(t)
		seen := map[string]int{}
		ct.chains = make([]chain, len(t.Chains))
		for i, ch := range t.Chains {
			cc := &ct.chains[i]
			cc.name = ch.Name
			cc.builtin = ch.BuiltIn
			cc.policy = ch.Policy
			if ch.BuiltIn {
				ct.entry[ch.Hook] = i
				cc.pol = &counter{}
				key := t.Name + "/" + ch.Name + "/policy"
				if prev != nil && prev.byKey[key] != nil {
					cc.pol = prev.byKey[key].ctr
				} else {
					cc.pol.packets.Store(ch.Counters.Packets)
					cc.pol.bytes.Store(ch.Counters.Bytes)
				}
				c.byKey[key] = &rule{ctr: cc.pol}
			}
			cc.rules = make([]rule, len(ch.Rules))
			for j, r := range ch.Rules {
				k := ruleKey(t.Name, ch.Name, r)
				seen[k]++
				k = fmt.Sprintf("%s#%d", k, seen[k])
				var old *rule
				if prev != nil {
					old = prev.byKey[k]
				}
				cr := &cc.rules[j]
				if err := compileRule(cr, r, rs.Family, t.Name, ch.Name, hooks[ch.Name], idx, old, named, rnd, cfg); err != nil {
					return nil, fmt.Errorf("%s %s rule %d: %w", t.Name, ch.Name, j+1, err)
				}
				cr.key = k
				cr.chainIdx = i
				cr.index = j + 1
				c.byKey[k] = cr
				for _, m := range r.Matches {
					if ctMatches[m.Spec.Name] {
						c.conntrack = true
					}
				}
				if r.Kind == ruleset.TargetExt && ctTargets[r.TSpec.Name] {
					c.conntrack = true
				}
			}
			if !cfg.NoAddrRuns {
				findAddrRuns(cc)
			}
		}
		c.tables[ti] = ct
	}
	return c, nil
}

func compileRule(cr *rule, r *ruleset.Rule, fam xt.Family, tbl, ch string, hooks xt.HookMask, idx map[string]int, old *rule, named xt.NamedState, rnd func() uint32, cfg *Config) error {
	cr.src = r
	cr.ip = ipPart{
		src: r.Src, srcMask: r.SrcMask, dst: r.Dst, dstMask: r.DstMask,
		anySrc: !r.Src.IsValid() || xt.MaskLen(r.SrcMask) == 0,
		anyDst: !r.Dst.IsValid() || xt.MaskLen(r.DstMask) == 0,
		invSrc: r.InvSrc, invDst: r.InvDst,
		in: newIfaceMatch(r.InIface), out: newIfaceMatch(r.OutIface),
		invIn: r.InvIn, invOut: r.InvOut,
		proto: r.Proto, invProto: r.InvProto,
		frag: r.Frag, invFrag: r.InvFrag,
	}
	env := &xt.Env{Family: fam, Table: tbl, Chain: ch, Hooks: hooks, Proto: r.Proto, Named: named, Rand: rnd, IfaceAddr: cfg.IfaceAddr, RouteMTU: cfg.RouteMTU, LocalAddrs: cfg.LocalAddrs}
	var oldMatches []xt.PacketMatcher
	if old != nil {
		oldMatches = old.matches
		cr.ctr = old.ctr
	} else {
		cr.ctr = &counter{}
		cr.ctr.packets.Store(r.Counters.Packets)
		cr.ctr.bytes.Store(r.Counters.Bytes)
	}
	for i, m := range r.Matches {
		var pm xt.PacketMatcher
		switch x := m.Match.(type) {
		case xt.MatchBuilder:
			env.Prev = nil
			if i < len(oldMatches) {
				env.Prev = oldMatches[i]
			}
			var err error
			if pm, err = x.Build(env); err != nil {
				return fmt.Errorf("match %s: %w", m.Spec.Name, err)
			}
		case xt.PacketMatcher:
			pm = x
		default:
			return fmt.Errorf("match %q is not supported by the uptables engine yet", m.Spec.Name)
		}
		cr.matches = append(cr.matches, pm)
	}
	cr.kind = r.Kind
	cr.verdict = r.Verdict
	switch r.Kind {
	case ruleset.TargetJump, ruleset.TargetGoto:
		j, ok := idx[r.Chain]
		if !ok {
			return fmt.Errorf("chain %q does not exist", r.Chain)
		}
		cr.jump = j
	case ruleset.TargetExt:
		switch x := r.Target.(type) {
		case xt.TargetBuilder:
			env.Prev = nil
			if old != nil {
				env.Prev = old.target
			}
			t, err := x.Build(env)
			if err != nil {
				return fmt.Errorf("target %s: %w", r.TSpec.Name, err)
			}
			cr.target = t
		case xt.PacketTarget:
			cr.target = x
		default:
			return fmt.Errorf("target %q is not supported by the uptables engine yet", r.TSpec.Name)
		}
	case ruleset.TargetVerdict:
		if r.Verdict == ruleset.Queue {
			return fmt.Errorf("target QUEUE is not supported (iptables-nft refuses it too)")
		}
	}
	return nil
}

// reachableHooks computes, for every chain of t, the hooks from which it can
// be reached through jumps and gotos.
func reachableHooks(t *ruleset.Table) map[string]xt.HookMask {
	byName := map[string]*ruleset.Chain{}
	for _, ch := range t.Chains {
		byName[ch.Name] = ch
	}
	out := map[string]xt.HookMask{}
	var visit func(name string, m xt.HookMask)
	visit = func(name string, m xt.HookMask) {
		if out[name]&m == m {
			return
		}
		out[name] |= m
		ch := byName[name]
		if ch == nil {
			return
		}
		for _, r := range ch.Rules {
			if r.Kind == ruleset.TargetJump || r.Kind == ruleset.TargetGoto {
				visit(r.Chain, out[name])
			}
		}
	}
	for _, ch := range t.Chains {
		if ch.BuiltIn {
			visit(ch.Name, xt.MaskOf(ch.Hook))
		}
	}
	return out
}
