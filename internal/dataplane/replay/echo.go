package replay

import (
	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
)

// echoSetSize bounds the replies remembered for echo recognition. A
// capture's copy of a reply follows the packet that caused it within
// microseconds, so a few hundred outstanding replies are plenty even under a
// flood; the oldest is forgotten first.
const echoSetSize = 256

// echoKey holds the fields of a REJECT reply that identify it on the wire.
// Fields the sending stack may choose differently from uptables (IP ID, TTL,
// TOS, and the source address of an ICMP error, which the kernel takes from
// the route) are left out.
type echoKey struct {
	proto        uint8
	typ, code    uint8 // ICMP error
	flags        uint8 // TCP
	src, dst     [4]byte
	sport, dport uint16
	seq, ack     uint32
	// ICMP errors: the quoted datagram's addresses, protocol, ID and its
	// first 8 L4 bytes (all RFC 792 promises to quote).
	inner [19]byte
}

type echoEntry struct {
	key    echoKey
	timeNS int64
	parent uint64
	live   bool
}

// echoSet is a ring of recently emitted replies.
type echoSet struct {
	e    [echoSetSize]echoEntry
	next int
	live int
	win  int64
}

// keyOf builds the key of p, which must be reply-shaped.
func keyOf(p *packet.Packet) (k echoKey, ok bool) {
	if !isReplyShaped(p) {
		return k, false
	}
	ip := p.IPv4()
	k.proto = p.Proto
	k.dst = ip.Dst()
	if p.Proto == header.ProtoTCP {
		k.src = ip.Src()
		k.sport, k.dport, k.seq, k.ack, k.flags = p.SrcPort, p.DstPort, p.Seq, p.Ack, p.TCPFlags
		return k, true
	}
	k.typ, k.code = p.ICMPType, p.ICMPCode
	q := p.Data[p.L4Off+header.ICMPv4MinLen:]
	if len(q) < header.IPv4MinLen {
		return k, false
	}
	ihl := int(q[0]&0x0f) * 4
	if ihl < header.IPv4MinLen || len(q) < ihl+8 {
		return k, false
	}
	copy(k.inner[0:8], q[header.IPv4SrcOff:header.IPv4SrcOff+8])
	k.inner[8] = q[header.IPv4ProtoOff]
	copy(k.inner[9:11], q[header.IPv4IDOff:header.IPv4IDOff+2])
	copy(k.inner[11:19], q[ihl:ihl+8])
	return k, true
}

// add remembers the emitted reply p, caused by packet number parent.
func (s *echoSet) add(p *packet.Packet, parent uint64) {
	k, ok := keyOf(p)
	if !ok {
		return
	}
	e := &s.e[s.next]
	if !e.live {
		s.live++
	}
	*e = echoEntry{key: k, timeNS: p.TimeNS, parent: parent, live: true}
	s.next = (s.next + 1) % echoSetSize
}

// match reports whether the captured packet p is the copy of a remembered
// reply emitted at most win earlier, and forgets that reply (one emitted
// reply explains one captured packet).
func (s *echoSet) match(p *packet.Packet) (parent uint64, ok bool) {
	if s.live == 0 {
		return 0, false
	}
	k, ok := keyOf(p)
	if !ok {
		return 0, false
	}
	win := s.win
	if win == 0 {
		win = DefaultEchoWindowNS
	}
	for i := range s.e {
		e := &s.e[i]
		if !e.live {
			continue
		}
		if p.TimeNS-e.timeNS > win {
			e.live = false // too old to be echoed any more
			s.live--
			continue
		}
		if e.key == k && p.TimeNS >= e.timeNS {
			e.live = false
			s.live--
			return e.parent, true
		}
	}
	return 0, false
}
