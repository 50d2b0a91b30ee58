package netfilter

import (
	"net/netip"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// maxJumpDepth is iptables-nft's limit: a base chain plus 15 nested user
// chains. Deeper rulesets are refused at load time, so the stack never
// overflows at run time.
const maxJumpDepth = 16

// maskedEqual reports whether a & mask == want, without allocating.
func maskedEqual(a, mask, want netip.Addr) bool {
	if a.Is4() {
		if !want.Is4() {
			return false
		}
		x, m, w := a.As4(), mask.As4(), want.As4()
		return x[0]&m[0] == w[0] && x[1]&m[1] == w[1] && x[2]&m[2] == w[2] && x[3]&m[3] == w[3]
	}
	if !want.Is6() {
		return false
	}
	x, m, w := a.As16(), mask.As16(), want.As16()
	for i := range x {
		if x[i]&m[i] != w[i] {
			return false
		}
	}
	return true
}

// match tests the generic part of a rule, as ip_packet_match: each test is
// XOR-ed with its "!" flag.
func (ip *ipPart) match(p *packet.Packet) bool {
	if !ip.anySrc && maskedEqual(p.Src, ip.srcMask, ip.src) == ip.invSrc {
		return false
	}
	if ip.anySrc && ip.invSrc {
		return false
	}
	if !ip.anyDst && maskedEqual(p.Dst, ip.dstMask, ip.dst) == ip.invDst {
		return false
	}
	if ip.anyDst && ip.invDst {
		return false
	}
	if ip.in.match(p.InIface) == ip.invIn {
		return false
	}
	if ip.out.match(p.OutIface) == ip.invOut {
		return false
	}
	if ip.proto != 0 && (p.Proto == ip.proto) == ip.invProto {
		return false
	}
	if ip.frag && (p.FragOff != 0) == ip.invFrag {
		return false
	}
	return true
}

// IPTest names one test of a rule's generic part, for the tracer.
type IPTest uint8

const (
	// IPMatch: every test of the generic part held.
	IPMatch IPTest = iota
	IPSrc          // -s
	IPDst          // -d
	IPIn           // -i
	IPOut          // -o
	IPProto        // -p
	IPFrag         // -f
)

// mismatch tells which test of the generic part fails for p first, in
// match's order, or IPMatch. It runs only under a tracer, after match said
// false, so the packet path keeps its single boolean test.
func (ip *ipPart) mismatch(p *packet.Packet) IPTest {
	switch {
	case !ip.anySrc && maskedEqual(p.Src, ip.srcMask, ip.src) == ip.invSrc, ip.anySrc && ip.invSrc:
		return IPSrc
	case !ip.anyDst && maskedEqual(p.Dst, ip.dstMask, ip.dst) == ip.invDst, ip.anyDst && ip.invDst:
		return IPDst
	case ip.in.match(p.InIface) == ip.invIn:
		return IPIn
	case ip.out.match(p.OutIface) == ip.invOut:
		return IPOut
	case ip.proto != 0 && (p.Proto == ip.proto) == ip.invProto:
		return IPProto
	case ip.frag && (p.FragOff != 0) == ip.invFrag:
		return IPFrag
	}
	return IPMatch
}

// frame is one return address on the jump stack.
type frame struct {
	chain int
	next  int
}

// Decision says which rule (or policy) decided a packet in one table.
type Decision struct {
	Table   string
	Chain   string
	Rule    int // 1-based; 0 = the chain's policy
	Verdict xt.Verdict
}

// runTable traverses one table at one hook. It returns the verdict
// (VerdictAccept when the table lets the packet go on).
func (w *Worker) runTable(t *table, hook xt.Hook) xt.Verdict {
	ci := t.entry[hook]
	if ci < 0 {
		return xt.VerdictAccept
	}
	c := &w.ctx
	p := c.P
	var stack [maxJumpDepth]frame
	sp := 0
	base := ci
	idx := 0
	c.Table = t.name
	w.tracedChain = false
	for {
		ch := &t.chains[ci]
		if idx >= len(ch.rules) {
			// Fell off the end: implicit RETURN for user chains, policy
			// for the built-in one (also when reached by goto).
			if sp > 0 {
				sp--
				ci, idx = stack[sp].chain, stack[sp].next
				continue
			}
			if !ch.builtin {
				ch = &t.chains[base]
			}
			return w.policy(t, ch)
		}
		r := &ch.rules[idx]
		tr := w.tracer
		if r.run > 0 && tr == nil {
			// A blocklist-shaped run: go straight to its first matching
			// rule (or past the run), which then runs as usual.
			if next := ch.runs[r.run-1].next(p); next != idx {
				idx = next
				continue
			}
		}
		if tr != nil {
			tr.Rule(c, t.name, ch.name, r.index, r.src)
		}
		if !r.ip.match(p) {
			if tr != nil {
				tr.IP(c, r.ip.mismatch(p))
			}
			idx++
			continue
		}
		if tr != nil {
			tr.IP(c, IPMatch)
		}
		c.Chain = ch.name
		ok := true
		for i, m := range r.matches {
			if !m.Matches(c) {
				ok = false
			}
			if tr != nil {
				tr.Match(c, i, m, ok)
			}
			if !ok {
				break
			}
		}
		if c.HotDrop {
			w.decide(t.name, ch.name, r.index, xt.VerdictDrop)
			return xt.VerdictDrop
		}
		if !ok {
			idx++
			continue
		}
		r.ctr.add(p.TotalLen)
		switch r.kind {
		case ruleset.TargetNone:
			if c.Trace {
				w.nftraceRule(t, ch, r, "CONTINUE")
			}
			idx++
		case ruleset.TargetVerdict:
			if c.Trace {
				w.nftraceRule(t, ch, r, nftVerdictName(r.verdict))
			}
			switch r.verdict {
			case ruleset.Accept:
				w.decide(t.name, ch.name, r.index, xt.VerdictAccept)
				return xt.VerdictAccept
			case ruleset.Drop:
				w.decide(t.name, ch.name, r.index, xt.VerdictDrop)
				return xt.VerdictDrop
			case ruleset.Return:
				if sp > 0 {
					sp--
					ci, idx = stack[sp].chain, stack[sp].next
					continue
				}
				return w.policy(t, &t.chains[base])
			}
			idx++
		case ruleset.TargetJump:
			if sp == len(stack) {
				// Unreachable: load-time validation bounds the depth.
				return xt.VerdictDrop
			}
			if c.Trace {
				w.nftraceRule(t, ch, r, "JUMP:"+t.chains[r.jump].name)
			}
			stack[sp] = frame{chain: ci, next: idx + 1}
			sp++
			ci, idx = r.jump, 0
		case ruleset.TargetGoto:
			if c.Trace {
				w.nftraceRule(t, ch, r, "GOTO:"+t.chains[r.jump].name)
			}
			ci, idx = r.jump, 0
		case ruleset.TargetExt:
			v := r.target.Do(c)
			if c.Trace {
				w.nftraceRule(t, ch, r, nftTargetVerdict(v))
			}
			if v == xt.Continue {
				idx++
				continue
			}
			w.decide(t.name, ch.name, r.index, v)
			return v
		}
	}
}

func (w *Worker) policy(t *table, ch *chain) xt.Verdict {
	ch.pol.add(w.ctx.P.TotalLen)
	v := xt.VerdictAccept
	if ch.policy == ruleset.Drop {
		v = xt.VerdictDrop
	}
	if w.ctx.Trace {
		w.nftracePolicy(t, ch, v)
	}
	w.decide(t.name, ch.name, 0, v)
	return v
}

func (w *Worker) decide(tbl, ch string, rule int, v xt.Verdict) {
	d := Decision{Table: tbl, Chain: ch, Rule: rule, Verdict: v}
	if w.tracer != nil {
		w.tracer.Decision(&w.ctx, d)
	}
	// The nat table never filters (its policies are always ACCEPT), so its
	// policy after INPUT or POSTROUTING does not replace the decision of
	// the table that accepted the packet (Result.Decision, jsonl "rule").
	if tbl == "nat" && rule == 0 && w.last.Table != "" {
		return
	}
	w.last = d
}
