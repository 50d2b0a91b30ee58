package replay

import (
	"bufio"
	"fmt"
	"io"
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
// not, and without having to add TRACE rules:
//
//	TRACE: #3 2024-01-01T00:00:01.000000000Z PREROUTING,INPUT IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TTL=64 PROTO=TCP SPT=40000 DPT=22 SYN
//	TRACE: filter:INPUT:rule:1 nomatch -A INPUT -p tcp -m tcp --dport 80 -j ACCEPT
//	TRACE: filter:INPUT:rule:2 match -j SSH -A INPUT -p tcp -m tcp --dport 22 -j SSH
//	TRACE: filter:SSH:rule:1 match LOG (continue) -A SSH -j LOG
//	TRACE: filter:SSH:log SSH: IN=eth0 OUT= ...
//	TRACE: filter:SSH:return:2
//	TRACE: filter:INPUT:policy:3 DROP
//	TRACE: #3 verdict DROP by filter:INPUT:policy
//
// As in the kernel, the number after "return" and "policy" counts the
// chain's rules plus one (the kernel numbers the chain's implicit end).
// Whether a rule matched is read from its packet counter around the
// packet, so the explanation is what the engine did, not a re-evaluation
// (which would disturb stateful matches such as recent).
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
}

type chainKey struct{ table, chain string }

// tracer implements netfilter.Tracer for the replay.
type tracer struct {
	eng    *netfilter.Engine
	t      *Trace
	on     bool
	pkt    *packet.Packet
	index  uint64
	events []tev
	before map[chainKey][]uint64
	reply  string // summary of the reply whose traversal was seen
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
	tr.before = snapshot(tr.eng.Ruleset())
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
	after := snapshot(rs)
	tr.events = main
	tr.render(rs, after)
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
		tr.render(rs, after)
	}
	tr.events = all[:0]
}

// render writes the lines of tr.events.
func (tr *tracer) render(rs *ruleset.Ruleset, after map[chainKey][]uint64) {
	chains := map[chainKey]*ruleset.Chain{}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			chains[chainKey{t.Name, c.Name}] = c
		}
	}
	type rk struct {
		chainKey
		i int
	}
	visits := map[rk]int{}
	for _, e := range tr.events {
		if e.kind == tevVisit {
			visits[rk{chainKey{e.table, e.chain}, e.index}]++
		}
	}
	matched := func(i int) bool {
		e := tr.events[i]
		k := chainKey{e.table, e.chain}
		var delta uint64
		if a, b := after[k], tr.before[k]; e.index-1 < len(a) && e.index-1 < len(b) {
			delta = a[e.index-1] - b[e.index-1]
		}
		n := visits[rk{k, e.index}]
		switch {
		case delta == 0:
			return false
		case delta >= uint64(n):
			return true
		}
		// The rule was visited more often than it matched (a chain jumped
		// to twice): judge by what followed.
		if i+1 < len(tr.events) {
			nx := tr.events[i+1]
			if nx.kind == tevDecision && nx.table == e.table && nx.chain == e.chain && nx.index == e.index {
				return true
			}
			if nx.kind == tevVisit && (e.rule.Kind == ruleset.TargetJump || e.rule.Kind == ruleset.TargetGoto) && nx.chain == e.rule.Chain {
				return true
			}
		}
		return false
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
		if !matched(i) {
			line(e.table, e.chain, "rule", e.index, "nomatch "+text)
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
	}
}

// snapshot copies the rule packet counters of every chain.
func snapshot(rs *ruleset.Ruleset) map[chainKey][]uint64 {
	m := map[chainKey][]uint64{}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			v := make([]uint64, len(c.Rules))
			for i, r := range c.Rules {
				v[i] = r.Counters.Packets
			}
			m[chainKey{t.Name, c.Name}] = v
		}
	}
	return m
}

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
