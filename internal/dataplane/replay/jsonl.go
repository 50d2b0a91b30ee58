package replay

import (
	"bufio"
	"io"
	"strconv"
	"time"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/xt"
)

// JSONL is an Observer that writes one JSON object per line for every
// frame and every emitted reply (--format jsonl). Fields, in this order:
//
//	index     frame number (1-based, across captures)
//	time      capture time, RFC 3339 with nanoseconds, UTC
//	skipped   why the engine did not see the frame (arp, ipv6, vlan, other,
//	          truncated, bad-ip, reject-echo); only for skipped frames
//	echo_of   for reject-echo: the index of the packet whose reply it is
//	src, dst, proto, len, sport, dport, flags, icmp_type, icmp_code
//	path      "input", "output" or "forward"
//	hooks     the hooks the packet went through (up to the one that dropped it)
//	verdict   "ACCEPT", "DROP" or "QUEUE"
//	rule      "table:chain:N" or "table:chain:policy" that decided, or null
//	ct        conntrack state/direction ("NEW/original"), when conntrack is on
//	tuple     the connection's original tuple, when the packet has one
//	replies   the replies the engine sent: [{"src","dst","proto",...}]
//
// Writing allocates nothing unless conntrack is on (ct, tuple).
type JSONL struct {
	w   *bufio.Writer
	buf []byte
	rp  packet.Packet // scratch for decoding replies
}

// NewJSONL returns a JSONL observer writing to w. Call Flush at the end.
func NewJSONL(w io.Writer) *JSONL {
	return &JSONL{w: bufio.NewWriterSize(w, 64<<10), buf: make([]byte, 0, 1024)}
}

// Flush writes out buffered lines.
func (j *JSONL) Flush() error { return j.w.Flush() }

var pathNames = [...]string{netfilter.PathInput: "input", netfilter.PathOutput: "output", netfilter.PathForward: "forward"}

var pathHookList = [...][]xt.Hook{
	netfilter.PathInput:   {xt.PreRouting, xt.LocalIn},
	netfilter.PathOutput:  {xt.LocalOut, xt.PostRouting},
	netfilter.PathForward: {xt.PreRouting, xt.Forward, xt.PostRouting},
}

// Event implements Observer.
func (j *JSONL) Event(ev *Event) error {
	b := j.buf[:0]
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, ev.Index, 10)
	b = append(b, `,"time":"`...)
	b = time.Unix(0, ev.TimeNS).UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000Z")
	b = append(b, '"')
	if ev.Skip != SkipNone {
		b = append(b, `,"skipped":"`...)
		b = append(b, ev.Skip.String()...)
		b = append(b, '"')
		if ev.Skip == SkipEcho {
			b = append(b, `,"echo_of":`...)
			b = strconv.AppendUint(b, ev.EchoOf, 10)
			b = appendPacket(b, ev.Packet)
		}
		b = append(b, "}\n"...)
		j.buf = b
		_, err := j.w.Write(b)
		return err
	}
	b = appendPacket(b, ev.Packet)
	b = append(b, `,"path":"`...)
	b = append(b, pathNames[ev.Path]...)
	b = append(b, `","hooks":[`...)
	for i, h := range pathHookList[ev.Path] {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, h.String()...)
		b = append(b, '"')
		if ev.Result.Verdict != xt.VerdictAccept && h == ev.Result.Hook {
			break
		}
	}
	b = append(b, `],"verdict":"`...)
	b = append(b, verdictName(ev.Result.Verdict)...)
	b = append(b, `","rule":`...)
	if ev.Decided {
		d := ev.Result.Decision
		b = append(b, '"')
		b = append(b, d.Table...)
		b = append(b, ':')
		b = append(b, d.Chain...)
		b = append(b, ':')
		if d.Rule == 0 {
			b = append(b, "policy"...)
		} else {
			b = strconv.AppendInt(b, int64(d.Rule), 10)
		}
		b = append(b, '"')
	} else {
		b = append(b, "null"...)
	}
	if ev.Result.Tracked {
		b = append(b, `,"ct":"`...)
		b = append(b, ev.Result.CT.String()...)
		b = append(b, '"')
		if ev.Result.Orig.Src.IsValid() {
			b = append(b, `,"tuple":"`...)
			b = append(b, ev.Result.Orig.String()...)
			b = append(b, '"')
		}
	}
	b = append(b, `,"replies":[`...)
	for i, r := range ev.Replies {
		if i > 0 {
			b = append(b, ',')
		}
		b = j.appendReply(b, r)
	}
	b = append(b, "]}\n"...)
	j.buf = b
	_, err := j.w.Write(b)
	return err
}

// appendPacket appends the packet's fields (with a leading comma).
func appendPacket(b []byte, p *packet.Packet) []byte {
	b = append(b, `,"src":"`...)
	b = p.Src.AppendTo(b)
	b = append(b, `","dst":"`...)
	b = p.Dst.AppendTo(b)
	b = append(b, `","proto":`...)
	b = strconv.AppendUint(b, uint64(p.Proto), 10)
	b = append(b, `,"len":`...)
	b = strconv.AppendInt(b, int64(p.TotalLen), 10)
	if p.Status != packet.OK {
		return b
	}
	switch p.Proto {
	case header.ProtoTCP, header.ProtoUDP:
		b = append(b, `,"sport":`...)
		b = strconv.AppendUint(b, uint64(p.SrcPort), 10)
		b = append(b, `,"dport":`...)
		b = strconv.AppendUint(b, uint64(p.DstPort), 10)
		if p.Proto == header.ProtoTCP {
			b = append(b, `,"flags":"`...)
			first := true
			for _, f := range tcpFlagNames {
				if p.TCPFlags&f.bit != 0 {
					if !first {
						b = append(b, ',')
					}
					first = false
					b = append(b, f.name...)
				}
			}
			b = append(b, '"')
		}
	case header.ProtoICMP:
		b = append(b, `,"icmp_type":`...)
		b = strconv.AppendUint(b, uint64(p.ICMPType), 10)
		b = append(b, `,"icmp_code":`...)
		b = strconv.AppendUint(b, uint64(p.ICMPCode), 10)
	}
	return b
}

// appendReply describes an emitted reply as a JSON object.
func (j *JSONL) appendReply(b []byte, r []byte) []byte {
	p := &j.rp
	if p.Decode(r) == packet.BadL3 {
		return append(b, `{"bad":true}`...)
	}
	start := len(b)
	b = appendPacket(b, p)
	b[start] = '{' // appendPacket starts with a comma
	return append(b, '}')
}
