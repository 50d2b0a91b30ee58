package netfilter

import (
	"strconv"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// The TRACE target (with iptables-nft: `meta nftrace set 1`) makes the kernel
// report, for every base chain the packet then crosses, the packet and each
// rule that matched with its verdict, and the policy. Users read them with
// `xtables-monitor --trace`; uptables hands the same lines to the data
// plane's emitter when it implements xt.TraceEmitter. Measured with
// iptables 1.8.9 on Linux 6.18:
//
//	PACKET: 2 61d071cd IN=trva MACSRC=2:d2:3f:85:82:3a MACDST=62:59:24:a:79:ac MACPROTO=0800 SRC=10.233.0.2 DST=10.233.0.1 LEN=60 TOS=0x0 TTL=64 ID=57668 DF SPORT=34952 DPORT=9 SYN
//	 TRACE: 2 61d071cd raw:PREROUTING:rule:0x2:CONTINUE  -4 -t raw -A PREROUTING -j TRACE
//	 TRACE: 2 61d071cd raw:PREROUTING:policy:ACCEPT
//	 TRACE: 2 d7ba5a4d filter:INPUT:rule:0x4:JUMP:X  -4 -t filter -A INPUT -p icmp -j X
//	 TRACE: 2 d7ba5a4d filter:X:rule:0x5:0xfffffffb  -4 -t filter -A X -j RETURN
//
// (every PACKET and policy line ends with a space). Where uptables differs:
// the kernel prints nft's rule handle (an object counter of the table);
// uptables prints the rule's position in its chain, since a ruleset file
// carries no handles. Tracing allocates; untraced packets pay one test.

// nftVerdictName is how the trace names a standard verdict.
func nftVerdictName(v ruleset.Verdict) string {
	switch v {
	case ruleset.Accept:
		return "ACCEPT"
	case ruleset.Drop:
		return "DROP"
	case ruleset.Return:
		return "0xfffffffb" // NFT_RETURN printed as an unsigned number
	}
	return "CONTINUE"
}

// nftTargetVerdict names an extension target's verdict (REJECT is DROP).
func nftTargetVerdict(v xt.Verdict) string {
	switch v {
	case xt.VerdictAccept:
		return "ACCEPT"
	case xt.VerdictDrop, xt.VerdictStolen:
		return "DROP"
	case xt.VerdictQueue:
		return "QUEUE"
	}
	return "CONTINUE"
}

func (w *Worker) traceEmitter() xt.TraceEmitter {
	te, _ := w.out.(xt.TraceEmitter)
	return te
}

// nftraceHead starts a line with "<kind>: 2 <id> " (2 = NFPROTO_IPV4).
func (w *Worker) nftraceHead(kind string) []byte {
	if w.traceID == 0 {
		w.traceID = w.e.rnd() | 1
	}
	b := append(w.traceBuf[:0], kind...)
	b = append(b, ": "...)
	if w.ctx.P.Version == 6 {
		b = append(b, "10 "...)
	} else {
		b = append(b, "2 "...)
	}
	b = strconv.AppendUint(b, uint64(w.traceID), 16)
	return append(b, ' ')
}

// nftracePacket prints the PACKET line once per base chain.
func (w *Worker) nftracePacket(te xt.TraceEmitter) {
	if w.tracedChain {
		return
	}
	w.tracedChain = true
	p := w.ctx.P
	b := w.nftraceHead("PACKET")
	if p.InIface != "" {
		b = append(b, "IN="...)
		b = append(b, p.InIface...)
		b = append(b, ' ')
	}
	if p.OutIface != "" {
		b = append(b, "OUT="...)
		b = append(b, p.OutIface...)
		b = append(b, ' ')
	}
	if p.InIface != "" && len(p.Link) >= 14 {
		b = appendMACNoPad(append(b, "MACSRC="...), p.Link[6:12])
		b = appendMACNoPad(append(b, " MACDST="...), p.Link[0:6])
		b = append(b, " MACPROTO="...)
		const hex = "0123456789abcdef"
		for _, x := range p.Link[12:14] {
			b = append(b, hex[x>>4], hex[x&15])
		}
		b = append(b, ' ')
	}
	b = p.Src.AppendTo(append(b, "SRC="...))
	b = p.Dst.AppendTo(append(b, " DST="...))
	b = strconv.AppendInt(append(b, " LEN="...), int64(p.TotalLen), 10)
	b = strconv.AppendUint(append(b, " TOS=0x"...), uint64(p.TOS), 16)
	b = strconv.AppendUint(append(b, " TTL="...), uint64(p.TTL), 10)
	b = strconv.AppendUint(append(b, " ID="...), uint64(p.ID), 10)
	b = append(b, ' ')
	if p.DontFrag {
		b = append(b, "DF "...)
	}
	if p.Status == packet.OK && (p.Proto == 6 || p.Proto == 17) {
		b = strconv.AppendUint(append(b, "SPORT="...), uint64(p.SrcPort), 10)
		b = strconv.AppendUint(append(b, " DPORT="...), uint64(p.DstPort), 10)
		b = append(b, ' ')
		if p.Proto == 6 {
			for _, f := range [...]struct {
				bit  uint8
				name string
			}{{0x02, "SYN "}, {0x10, "ACK "}, {0x01, "FIN "}, {0x04, "RST "}, {0x08, "PSH "}, {0x20, "URG "}} {
				if p.TCPFlags&f.bit != 0 {
					b = append(b, f.name...)
				}
			}
		}
	}
	if p.Mark != 0 {
		b = strconv.AppendUint(append(b, "MARK=0x"...), uint64(p.Mark), 16)
		b = append(b, ' ')
	}
	w.traceBuf = b
	te.Trace(&w.ctx, b)
}

// appendMACNoPad prints a MAC address as xtables-monitor does: %x per byte,
// without zero padding ("2:d2:3f:85:82:3a").
func appendMACNoPad(b, mac []byte) []byte {
	for i, x := range mac {
		if i > 0 {
			b = append(b, ':')
		}
		b = strconv.AppendUint(b, uint64(x), 16)
	}
	return b
}

// nftraceRule reports a rule that matched, with its verdict.
func (w *Worker) nftraceRule(t *table, ch *chain, r *rule, verdict string) {
	te := w.traceEmitter()
	if te == nil {
		return
	}
	w.nftracePacket(te)
	b := w.nftraceHead(" TRACE")
	b = append(b, t.name...)
	b = append(b, ':')
	b = append(b, ch.name...)
	b = append(b, ":rule:0x"...)
	b = strconv.AppendUint(b, uint64(r.index), 16)
	b = append(b, ':')
	b = append(b, verdict...)
	b = append(b, "  -4 -t "...)
	b = append(b, t.name...)
	b = append(b, " -A "...)
	b = append(b, ch.name...)
	if f := w.e.cfg.RuleText; f != nil {
		if s := f(r.src); s != "" {
			b = append(b, ' ')
			b = append(b, s...)
		}
	}
	w.traceBuf = b
	te.Trace(&w.ctx, b)
}

// nftracePolicy reports the policy of a base chain.
func (w *Worker) nftracePolicy(t *table, ch *chain, v xt.Verdict) {
	te := w.traceEmitter()
	if te == nil {
		return
	}
	w.nftracePacket(te)
	b := w.nftraceHead(" TRACE")
	b = append(b, t.name...)
	b = append(b, ':')
	b = append(b, ch.name...)
	b = append(b, ":policy:"...)
	if v == xt.VerdictDrop {
		b = append(b, "DROP "...)
	} else {
		b = append(b, "ACCEPT "...)
	}
	w.traceBuf = b
	te.Trace(&w.ctx, b)
}
