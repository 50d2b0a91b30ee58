package replay

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// Trace asks the replay to explain packets the way iptables' TRACE target
// does (`TRACE: table:chain:rule:N`), but for every rule visited, matched or
// not, without having to add TRACE rules, and with the reason: after each
// rule line a "why" line says what the rule's tests saw, from the engine's
// own evaluation (netfilter.Tracer) and the matches' xt.Explainer, never
// from a second evaluation (which would disturb recent lists, buckets and
// counts):
//
//	TRACE: #3 2024-01-01T00:00:01.000000000Z PREROUTING,INPUT IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TTL=64 PROTO=TCP SPT=40000 DPT=22 SYN
//	TRACE: filter:INPUT:rule:1 nomatch -A INPUT -p tcp -m tcp --dport 80 -j ACCEPT
//	TRACE: filter:INPUT:rule:1 why: tcp: spt 40000 dpt 22 (want 80) flags SYN → no match
//	TRACE: filter:INPUT:rule:2 match -j SSH -A INPUT -p tcp -m tcp --dport 22 -j SSH
//	TRACE: filter:INPUT:rule:2 why: -p tcp: PROTO=TCP; tcp: spt 40000 dpt 22 flags SYN → match
//	TRACE: filter:SSH:rule:1 match DROP -A SSH -m recent --update --seconds 60 --hitcount 4 --name SSH --mask 255.255.255.255 --rsource -j DROP
//	TRACE: filter:SSH:rule:1 why: recent: SSH 10.0.0.1: 4 hits within 60s (need 4), ttl 64, this packet recorded → match
//	TRACE: #3 verdict DROP by filter:SSH:rule:1
//
// A rule is followed by its "why" line: for a rule that did not match, the
// test that failed (an address, interface or protocol of the rule's
// generic part, or the first match that said no); for a rule that matched,
// every test it has. Matches without an explanation show their name only.
// A rule whose match dropped the packet itself (a truncated header, a full
// table: the kernel's hotdrop) is shown as "hotdrop" and its why line ends
// with "→ hot-drop"; the verdict names that rule.
//
// As in the kernel, the number after "return" and "policy" counts the
// chain's rules plus one (the kernel numbers the chain's implicit end).
type Trace struct {
	// W receives the lines.
	W io.Writer
	// Filter selects the packets to explain; nil = all.
	Filter *Filter
	bw     *bufio.Writer
}

func (t *Trace) flush() error {
	if t.bw == nil {
		return nil
	}
	return t.bw.Flush()
}

type tevKind uint8

const (
	tevVisit tevKind = iota
	tevDecision
	tevLog
)

type tev struct {
	kind  tevKind
	reply bool // part of REJECT's reply crossing OUTPUT/POSTROUTING
	hook  xt.Hook
	table string
	chain string
	index int
	rule  *ruleset.Rule
	dec   netfilter.Decision
	log   string
	// For a visit: the engine's verdict on the rule's tests.
	ipFail  netfilter.IPTest
	failed  bool // a match said no (or the generic part did)
	hotDrop bool
	why     []string // one part per test reported, in order
}

// matched reports whether the rule's tests all held (its counter was
// bumped and its target ran).
func (e *tev) matched() bool { return !e.failed && !e.hotDrop }

type chainKey struct{ table, chain string }

// tracer implements netfilter.Tracer for the replay.
type tracer struct {
	eng    *netfilter.Engine
	t      *Trace
	on     bool
	pkt    *packet.Packet
	index  uint64
	events []tev
	reply  string // summary of the reply whose traversal was seen
	buf    []byte // Explain's scratch
}

func newTracer(eng *netfilter.Engine, t *Trace) *tracer {
	if t != nil && t.bw == nil {
		t.bw = bufio.NewWriter(t.W)
	}
	return &tracer{eng: eng, t: t}
}

var _ netfilter.Tracer = (*tracer)(nil)

func (tr *tracer) begin(index uint64, path netfilter.Path, p *packet.Packet) {
	tr.on = tr.t != nil && tr.t.Filter.Match(p)
	if !tr.on {
		return
	}
	tr.index = index
	tr.pkt = p
	tr.reply = ""
	tr.events = tr.events[:0]
	b := tr.t.bw
	b.WriteString("TRACE: #")
	b.WriteString(strconv.FormatUint(index, 10))
	b.WriteByte(' ')
	b.WriteString(time.Unix(0, p.TimeNS).UTC().Format("2006-01-02T15:04:05.000000000Z"))
	b.WriteByte(' ')
	b.WriteString(pathHooks(path))
	b.WriteByte(' ')
	b.WriteString(Summary(p))
	b.WriteByte('\n')
}

// isReply tells the engine's traversal of a REJECT reply (its own packet)
// from the traced packet's, and notes the reply's description.
func (tr *tracer) isReply(c *xt.Ctx) bool {
	if c.P == tr.pkt {
		return false
	}
	if tr.reply == "" {
		tr.reply = Summary(c.P)
	}
	return true
}

// Rule implements netfilter.Tracer.
func (tr *tracer) Rule(c *xt.Ctx, table, chain string, index int, r *ruleset.Rule) {
	if tr.on {
		tr.events = append(tr.events, tev{kind: tevVisit, reply: tr.isReply(c), hook: c.Hook, table: table, chain: chain, index: index, rule: r})
	}
}

// lastVisit is the rule being tested: IP and Match follow its Rule call
// before anything else of the traversal (a REJECT reply's traversal only
// starts when the target runs).
func (tr *tracer) lastVisit() *tev {
	for i := len(tr.events) - 1; i >= 0; i-- {
		if tr.events[i].kind == tevVisit {
			return &tr.events[i]
		}
	}
	return nil
}

// IP implements netfilter.Tracer: the generic part's result, explained
// by the packet field that was compared.
func (tr *tracer) IP(c *xt.Ctx, fail netfilter.IPTest) {
	if !tr.on {
		return
	}
	e := tr.lastVisit()
	if e == nil {
		return
	}
	e.ipFail = fail
	if fail != netfilter.IPMatch {
		e.failed = true
		e.why = append(e.why, ipWhy(e.rule, c.P, fail))
		return
	}
	for t := netfilter.IPSrc; t <= netfilter.IPFrag; t++ {
		if ipTested(e.rule, t) {
			e.why = append(e.why, ipWhy(e.rule, c.P, t))
		}
	}
}

// Match implements netfilter.Tracer: the match's own explanation, taken
// now, while its state is as it left it.
func (tr *tracer) Match(c *xt.Ctx, i int, m xt.PacketMatcher, matched bool) {
	if !tr.on {
		return
	}
	e := tr.lastVisit()
	if e == nil {
		return
	}
	name := "match"
	if i < len(e.rule.Matches) && e.rule.Matches[i].Spec != nil {
		name = e.rule.Matches[i].Spec.Name
	}
	part := name
	if x, ok := m.(xt.Explainer); ok {
		tr.buf = x.Explain(c, matched, append(tr.buf[:0], name+": "...))
		part = string(tr.buf)
	}
	if !matched {
		// A failing match speaks alone: the ones before it held.
		e.failed = true
		e.why = append(e.why[:0], part)
	} else {
		e.why = append(e.why, part)
	}
	if c.HotDrop {
		e.hotDrop = true
	}
}

// Decision implements netfilter.Tracer.
func (tr *tracer) Decision(c *xt.Ctx, d netfilter.Decision) {
	if tr.on {
		tr.events = append(tr.events, tev{kind: tevDecision, reply: tr.isReply(c), hook: c.Hook, table: d.Table, chain: d.Chain, index: d.Rule, dec: d})
	}
}

func (tr *tracer) log(line []byte) {
	if tr.on {
		tr.events = append(tr.events, tev{kind: tevLog, log: string(line)})
	}
}

// end renders the explanation of the packet: its own traversal, then that
// of the replies it caused (REJECT), each with its verdict.
func (tr *tracer) end(res netfilter.Result) {
	if !tr.on {
		return
	}
	all := tr.events
	var main, reply []tev
	for _, e := range all {
		if e.reply {
			reply = append(reply, e)
		} else {
			main = append(main, e)
		}
	}
	rs := tr.eng.Ruleset()
	tr.events = main
	tr.render(rs)
	b := tr.t.bw
	b.WriteString("TRACE: #")
	b.WriteString(strconv.FormatUint(tr.index, 10))
	b.WriteString(" verdict ")
	b.WriteString(verdictName(res.Verdict))
	if d := res.Decision; d.Table != "" {
		if d.Rule == 0 {
			fmt.Fprintf(b, " by %s:%s:policy", d.Table, d.Chain)
		} else {
			fmt.Fprintf(b, " by %s:%s:rule:%d", d.Table, d.Chain, d.Rule)
		}
	} else {
		b.WriteString(" (no rule or policy on the path)")
	}
	b.WriteByte('\n')
	if len(reply) > 0 {
		b.WriteString("TRACE: #")
		b.WriteString(strconv.FormatUint(tr.index, 10))
		b.WriteString(" reply OUTPUT,POSTROUTING ")
		b.WriteString(tr.reply)
		b.WriteByte('\n')
		tr.events = reply
		tr.render(rs)
	}
	tr.events = all[:0]
}

// render writes the lines of tr.events.
func (tr *tracer) render(rs *ruleset.Ruleset) {
	chains := map[chainKey]*ruleset.Chain{}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			chains[chainKey{t.Name, c.Name}] = c
		}
	}
	nrules := func(table, chain string) int {
		if c := chains[chainKey{table, chain}]; c != nil {
			return len(c.Rules)
		}
		return 0
	}
	builtin := func(table, chain string) bool {
		c := chains[chainKey{table, chain}]
		return c == nil || c.BuiltIn
	}
	b := tr.t.bw
	line := func(table, chain, what string, n int, rest string) {
		b.WriteString("TRACE: ")
		b.WriteString(table)
		b.WriteByte(':')
		b.WriteString(chain)
		b.WriteByte(':')
		b.WriteString(what)
		if n >= 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(n))
		}
		if rest != "" {
			b.WriteByte(' ')
			b.WriteString(rest)
		}
		b.WriteByte('\n')
	}
	// cur is the chain the traversal is in after the last event, with
	// the number of the rule where it leaves it when it returns.
	var cur chainKey
	curNext := 0
	jumpedTo := ""
	for i, e := range tr.events {
		switch e.kind {
		case tevLog:
			line(cur.table, cur.chain, "log", -1, e.log)
			continue
		case tevVisit, tevDecision:
		}
		k := chainKey{e.table, e.chain}
		if cur.table == e.table && cur.chain != "" && cur != k && !builtin(cur.table, cur.chain) && jumpedTo != e.chain {
			line(cur.table, cur.chain, "return", curNext, "")
		}
		if cur.table == e.table && jumpedTo != "" && jumpedTo != e.chain && nrules(e.table, jumpedTo) == 0 {
			line(e.table, jumpedTo, "return", 1, "")
		}
		jumpedTo = ""
		cur = k
		if e.kind == tevDecision {
			if e.dec.Rule == 0 {
				line(e.table, e.chain, "policy", nrules(e.table, e.chain)+1, verdictName(e.dec.Verdict))
			}
			curNext = nrules(e.table, e.chain) + 1
			cur = chainKey{}
			continue
		}
		curNext = e.index + 1
		text := RuleText(e.chain, e.rule)
		why := "why: " + whyText(&e)
		if e.hotDrop {
			// A match dropped the packet itself (the kernel's hotdrop): the
			// rule did not match, its target did not run.
			line(e.table, e.chain, "rule", e.index, "hotdrop "+text)
			line(e.table, e.chain, "rule", e.index, why)
			continue
		}
		if !e.matched() {
			line(e.table, e.chain, "rule", e.index, "nomatch "+text)
			line(e.table, e.chain, "rule", e.index, why)
			continue
		}
		var what string
		switch e.rule.Kind {
		case ruleset.TargetNone:
			what = "match (count only)"
		case ruleset.TargetVerdict:
			what = "match " + e.rule.Verdict.String()
			if e.rule.Verdict == ruleset.Return {
				curNext = e.index
			}
		case ruleset.TargetJump:
			what = "match -j " + e.rule.Chain
			jumpedTo = e.rule.Chain
		case ruleset.TargetGoto:
			what = "match -g " + e.rule.Chain
			jumpedTo = e.rule.Chain
		case ruleset.TargetExt:
			what = "match " + targetName(e.rule)
			if i+1 < len(tr.events) {
				nx := tr.events[i+1]
				if nx.kind == tevDecision && nx.table == e.table && nx.chain == e.chain && nx.index == e.index {
					what += " (" + verdictName(nx.dec.Verdict) + ")"
				} else {
					what += " (continue)"
				}
			} else {
				what += " (continue)"
			}
		}
		line(e.table, e.chain, "rule", e.index, what+" "+text)
		line(e.table, e.chain, "rule", e.index, why)
	}
}

// whyText joins a visit's explanation parts and its outcome.
func whyText(e *tev) string {
	var b strings.Builder
	if len(e.why) == 0 {
		b.WriteString("no tests")
	}
	for i, p := range e.why {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p)
	}
	switch {
	case e.hotDrop:
		b.WriteString(" → hot-drop")
	case e.failed:
		b.WriteString(" → no match")
	default:
		b.WriteString(" → match")
	}
	return b.String()
}

// ipTested reports whether rule r has test t in its generic part.
func ipTested(r *ruleset.Rule, t netfilter.IPTest) bool {
	switch t {
	case netfilter.IPSrc:
		return r.Src.IsValid() && xt.MaskLen(r.SrcMask) != 0 || r.InvSrc
	case netfilter.IPDst:
		return r.Dst.IsValid() && xt.MaskLen(r.DstMask) != 0 || r.InvDst
	case netfilter.IPIn:
		return r.InIface != "" || r.InvIn
	case netfilter.IPOut:
		return r.OutIface != "" || r.InvOut
	case netfilter.IPProto:
		return r.Proto != 0
	case netfilter.IPFrag:
		return r.Frag
	}
	return false
}

// ipWhy describes one test of the generic part: the rule's option as
// iptables -S writes it and the packet's field as a LOG line names it
// ("-s 10.0.0.0/8: SRC=203.0.113.7").
func ipWhy(r *ruleset.Rule, p *packet.Packet, t netfilter.IPTest) string {
	not := func(inv bool) string {
		if inv {
			return "! "
		}
		return ""
	}
	pfx := func(a, m netip.Addr) string {
		if !a.IsValid() {
			return "0.0.0.0/0"
		}
		if n := xt.MaskLen(m); n >= 0 {
			return netip.PrefixFrom(a, n).String()
		}
		return a.String() + "/" + m.String()
	}
	switch t {
	case netfilter.IPSrc:
		return not(r.InvSrc) + "-s " + pfx(r.Src, r.SrcMask) + ": SRC=" + p.Src.String()
	case netfilter.IPDst:
		return not(r.InvDst) + "-d " + pfx(r.Dst, r.DstMask) + ": DST=" + p.Dst.String()
	case netfilter.IPIn:
		return not(r.InvIn) + "-i " + r.InIface + ": IN=" + p.InIface
	case netfilter.IPOut:
		return not(r.InvOut) + "-o " + r.OutIface + ": OUT=" + p.OutIface
	case netfilter.IPProto:
		return not(r.InvProto) + "-p " + protoLower(r.Proto) + ": PROTO=" + protoUpper(p.Proto)
	case netfilter.IPFrag:
		return not(r.InvFrag) + "-f: FRAG=" + strconv.Itoa(int(p.FragOff))
	}
	return "?"
}

func protoLower(n uint8) string { return strings.ToLower(protoUpper(n)) }

func verdictName(v xt.Verdict) string {
	switch v {
	case xt.VerdictAccept:
		return "ACCEPT"
	case xt.VerdictDrop:
		return "DROP"
	case xt.VerdictQueue:
		return "QUEUE"
	case xt.VerdictStolen:
		return "STOLEN"
	case xt.Continue:
		return "CONTINUE"
	}
	return "?"
}

var hookLists = [...]string{
	netfilter.PathInput:   "PREROUTING,INPUT",
	netfilter.PathOutput:  "OUTPUT,POSTROUTING",
	netfilter.PathForward: "PREROUTING,FORWARD,POSTROUTING",
}

func pathHooks(p netfilter.Path) string {
	if int(p) < len(hookLists) {
		return hookLists[p]
	}
	return "?"
}

func targetName(r *ruleset.Rule) string {
	if r.TSpec != nil {
		return r.TSpec.Name
	}
	return "?"
}

// RuleText prints r as `iptables -S` does (`-A CHAIN ...`), for the trace.
func RuleText(chain string, r *ruleset.Rule) string { return iptables.FormatRule(chain, r, false) }

var tcpFlagNames = [...]struct {
	bit  uint8
	name string
}{{0x80, "CWR"}, {0x40, "ECE"}, {0x20, "URG"}, {header.TCPFlagACK, "ACK"}, {0x08, "PSH"}, {header.TCPFlagRST, "RST"}, {0x02, "SYN"}, {0x01, "FIN"}}

// Summary describes p in the style of a LOG line (without MAC and
// prefix): interfaces, addresses, length, TTL, protocol, ports or ICMP
// type, TCP flags.
func Summary(p *packet.Packet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "IN=%s OUT=%s SRC=%s DST=%s LEN=%d TTL=%d", p.InIface, p.OutIface, p.Src, p.Dst, p.TotalLen, p.TTL)
	switch {
	case p.Status == packet.Fragment:
		fmt.Fprintf(&b, " FRAG:%d PROTO=%s", p.FragOff, protoUpper(p.Proto))
	case p.Status != packet.OK:
		fmt.Fprintf(&b, " PROTO=%s INCOMPLETE", protoUpper(p.Proto))
	case p.Proto == header.ProtoTCP:
		fmt.Fprintf(&b, " PROTO=TCP SPT=%d DPT=%d", p.SrcPort, p.DstPort)
		for _, f := range tcpFlagNames {
			if p.TCPFlags&f.bit != 0 {
				b.WriteByte(' ')
				b.WriteString(f.name)
			}
		}
	case p.Proto == header.ProtoUDP:
		fmt.Fprintf(&b, " PROTO=UDP SPT=%d DPT=%d", p.SrcPort, p.DstPort)
	case p.Proto == header.ProtoICMP:
		fmt.Fprintf(&b, " PROTO=ICMP TYPE=%d CODE=%d", p.ICMPType, p.ICMPCode)
		if header.ICMPv4HasID(p.ICMPType) {
			fmt.Fprintf(&b, " ID=%d SEQ=%d", p.ICMPID, p.ICMPSeq)
		}
	default:
		fmt.Fprintf(&b, " PROTO=%s", protoUpper(p.Proto))
	}
	if p.Mark != 0 {
		fmt.Fprintf(&b, " MARK=0x%x", p.Mark)
	}
	return b.String()
}

func protoUpper(n uint8) string {
	switch n {
	case header.ProtoTCP:
		return "TCP"
	case header.ProtoUDP:
		return "UDP"
	case header.ProtoICMP:
		return "ICMP"
	}
	return strconv.Itoa(int(n))
}
