package conntrack

import (
	"strconv"
	"time"
)

// AppendConntrackL appends the entry as one line of `conntrack -L`
// (conntrack-tools 1.4.7 default output, no trailing newline), e.g.
//
//	tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED] mark=0 use=1
//
// The timeout is the remaining lifetime at now in whole seconds.
func (e *Entry) AppendConntrackL(b []byte, now int64) []byte {
	name := protoName(e.Orig.Proto)
	b = append(b, name...)
	for i := len(name); i < 8; i++ {
		b = append(b, ' ')
	}
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(e.Orig.Proto), 10)
	b = append(b, ' ')
	left := max(e.Expires-now, 0)
	b = strconv.AppendInt(b, left/int64(time.Second), 10)
	switch e.Orig.Proto {
	case ProtoTCP:
		b = append(b, ' ')
		b = append(b, e.TCPState.String()...)
	case ProtoSCTP:
		b = append(b, ' ')
		b = append(b, e.SCTPState.String()...)
	}
	b = appendTuple(b, &e.Orig)
	if e.Status&StatusSeenReply == 0 {
		b = append(b, " [UNREPLIED]"...)
	}
	b = appendTuple(b, &e.Reply)
	if e.Status&StatusAssured != 0 {
		b = append(b, " [ASSURED]"...)
	}
	b = append(b, " mark="...)
	b = strconv.AppendUint(b, uint64(e.Mark), 10)
	if e.Orig.Zone != 0 {
		b = append(b, " zone="...)
		b = strconv.AppendUint(b, uint64(e.Orig.Zone), 10)
	}
	b = append(b, " use="...)
	b = strconv.AppendInt(b, int64(e.Use), 10)
	return b
}

// String formats the entry as `conntrack -L` would at its last refresh's
// clock; prefer AppendConntrackL with the current packet time.
func (e *Entry) String() string { return string(e.AppendConntrackL(nil, e.Created)) }

func appendTuple(b []byte, t *Tuple) []byte {
	b = append(b, " src="...)
	b = t.Src.AppendTo(b)
	b = append(b, " dst="...)
	b = t.Dst.AppendTo(b)
	switch {
	case printsPorts(t.Proto):
		b = append(b, " sport="...)
		b = strconv.AppendUint(b, uint64(t.SrcID), 10)
		b = append(b, " dport="...)
		b = strconv.AppendUint(b, uint64(t.DstID), 10)
	case t.Proto == ProtoGRE:
		b = append(b, " srckey=0x"...)
		b = strconv.AppendUint(b, uint64(t.SrcID), 16)
		b = append(b, " dstkey=0x"...)
		b = strconv.AppendUint(b, uint64(t.DstID), 16)
	case isICMP(t.Proto):
		b = append(b, " type="...)
		b = strconv.AppendUint(b, uint64(t.ICMPType()), 10)
		b = append(b, " code="...)
		b = strconv.AppendUint(b, uint64(t.ICMPCode()), 10)
		b = append(b, " id="...)
		b = strconv.AppendUint(b, uint64(t.SrcID), 10)
	}
	return b
}
