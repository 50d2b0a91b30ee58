package packet

import (
	"net/netip"
	"strconv"

	"github.com/uptables/uptables/internal/header"
)

// Reset zeroes every field, metadata included.
func (p *Packet) Reset() { *p = Packet{} }

// resetL3L4 zeroes everything Decode sets, leaving the metadata (Link,
// interfaces, mark, timestamp, owner) alone.
func (p *Packet) resetL3L4() {
	p.Data = nil
	p.Version = 0
	p.Status = BadL3
	p.HdrLen, p.TotalLen = 0, 0
	p.TOS, p.ID, p.FragOff, p.MoreFrag, p.DontFrag, p.TTL, p.Proto = 0, 0, 0, false, false, 0, 0
	p.Src, p.Dst = netip.Addr{}, netip.Addr{}
	p.L4Off, p.PayloadOff = 0, 0
	p.SrcPort, p.DstPort, p.TCPFlags = 0, 0, 0
	p.Seq, p.Ack, p.Window = 0, 0, 0
	p.ICMPType, p.ICMPCode, p.ICMPID, p.ICMPSeq = 0, 0, 0, 0
	p.L4Malformed, p.L4Partial = false, false
	p.FlowLabel, p.FragHdrOff = 0, 0
}

// Decode parses data, an IPv4 or IPv6 packet from its IP header on, into p,
// borrowing data (see Packet). It sets every L3/L4 field and leaves the
// metadata alone. It never panics and allocates nothing.
//
// The IP checks are those the kernel makes before netfilter sees a packet
// (ip_rcv_core, ipv6_rcv): version, IHL >= 5, header checksum, total length
// within the buffer and not below the header; a failure gives BadL3. Bytes
// beyond the total length (link-layer padding) are trimmed from Data, as the
// kernel trims the skb. IPv4 options are not validated (ip_rcv_options runs
// after PREROUTING).
//
// Invariant for every Status but BadL3:
// 0 < HdrLen <= L4Off <= PayloadOff <= len(Data) == TotalLen (IPv6
// jumbograms aside).
func (p *Packet) Decode(data []byte) Status {
	p.resetL3L4()
	p.Data = data
	p.Status = p.decode(data, false)
	return p.Status
}

// DecodeEmbedded decodes the datagram quoted in the ICMP or ICMPv6 error p
// into dst, for conntrack to find the connection the error is RELATED to. It
// reports whether dst has a usable tuple (dst.Status == OK). dst's metadata
// is left alone; dst.Data is a sub-slice of p.Data.
//
// The quote is usually cut short, so the rules are the kernel's
// (nf_ct_get_tuplepr on the inner header) rather than ip_rcv's: the inner IP
// header must be complete, its total length and checksum are not checked
// (TotalLen is the inner total-length field, not len(dst.Data)), a non-first
// fragment gives Fragment, and 8 bytes of L4 header are enough for OK (ports,
// ICMP id); a TCP header shorter than 20 bytes sets L4Partial. The UDP length
// field is not checked against the cut quote.
func (p *Packet) DecodeEmbedded(dst *Packet) bool {
	dst.resetL3L4()
	if p.Status != OK || p.L4Off+header.ICMPv4MinLen > len(p.Data) {
		return false
	}
	switch {
	case p.Version == 4 && p.Proto == header.ProtoICMP && header.ICMPv4IsError(p.ICMPType):
	case p.Version == 6 && p.Proto == header.ProtoICMPv6 && header.ICMPv6IsError(p.ICMPType):
	default:
		return false
	}
	inner := p.Data[p.L4Off+header.ICMPv4MinLen:]
	dst.Data = inner
	if len(inner) == 0 || inner[0]>>4 != p.Version {
		dst.Status = BadL3
		return false
	}
	dst.Status = dst.decode(inner, true)
	return dst.Status == OK
}

// decode dispatches on the version nibble. embedded relaxes the checks for a
// datagram quoted in an ICMP error.
func (p *Packet) decode(data []byte, embedded bool) Status {
	if len(data) == 0 {
		return BadL3
	}
	switch data[0] >> 4 {
	case 4:
		return p.decodeIPv4(data, embedded)
	case 6:
		return p.decodeIPv6(data, embedded)
	}
	return BadL3
}

func (p *Packet) decodeIPv4(data []byte, embedded bool) Status {
	if len(data) < header.IPv4MinLen {
		return BadL3
	}
	h := header.IPv4(data)
	hl := h.HeaderLen()
	if hl < header.IPv4MinLen || hl > len(data) {
		return BadL3
	}
	tot := int(h.TotalLen())
	if !embedded {
		if !h.ChecksumValid() || tot > len(data) || tot < hl {
			return BadL3
		}
		data = data[:tot]
		p.Data = data
	}
	p.Version = 4
	p.HdrLen = hl
	p.TotalLen = tot
	p.TOS = h.TOS()
	p.ID = h.ID()
	p.FragOff = h.FragOff()
	p.MoreFrag = h.MoreFragments()
	p.DontFrag = h.DontFragment()
	p.TTL = h.TTL()
	p.Proto = h.Protocol()
	p.Src = h.SrcAddr()
	p.Dst = h.DstAddr()
	if p.FragOff != 0 {
		p.L4Off, p.PayloadOff = hl, hl
		return Fragment
	}
	return p.decodeL4(hl, embedded)
}

func (p *Packet) decodeIPv6(data []byte, embedded bool) Status {
	if len(data) < header.IPv6Len {
		return BadL3
	}
	h := header.IPv6(data)
	plen := int(h.PayloadLen())
	tot := header.IPv6Len + plen
	if !embedded {
		if plen == 0 && h.NextHeader() == header.ProtoHopByHop {
			// Jumbogram (RFC 2675): the length is in a hop-by-hop option;
			// take the buffer as the packet.
			tot = len(data)
		}
		if tot > len(data) {
			return BadL3
		}
		data = data[:tot]
		p.Data = data
	}
	p.Version = 6
	p.TotalLen = tot
	p.TOS = h.TrafficClass()
	p.FlowLabel = h.FlowLabel()
	p.TTL = h.HopLimit()
	p.Src = h.SrcAddr()
	p.Dst = h.DstAddr()
	ext := header.WalkIPv6(data)
	p.Proto = ext.Proto
	p.HdrLen = ext.Off
	p.FragHdrOff = ext.FragHdrOff
	p.FragOff = ext.FragOff
	p.MoreFrag = ext.MoreFrag
	p.ID = uint16(ext.FragID)
	p.L4Off, p.PayloadOff = ext.Off, ext.Off
	switch {
	case ext.Truncated:
		return TruncatedL4
	case ext.FragOff != 0:
		return Fragment
	case ext.Proto == header.ProtoNoNext:
		return OK
	}
	return p.decodeL4(ext.Off, embedded)
}

// decodeL4 reads the L4 header at off. Minimum sizes are what the kernel's
// matches and conntrack read (tcp 20, udp 8, icmp 8, sctp/dccp 12), except
// that a quoted datagram needs only 8 bytes (RFC 792 guarantees no more).
func (p *Packet) decodeL4(off int, embedded bool) Status {
	d := p.Data
	p.L4Off = off
	p.PayloadOff = len(d)
	avail := len(d) - off
	need := 0
	switch p.Proto {
	case header.ProtoTCP:
		need = header.TCPMinLen
	case header.ProtoUDP, header.ProtoUDPLite:
		need = header.UDPLen
	case header.ProtoICMP, header.ProtoICMPv6:
		if (p.Proto == header.ProtoICMP) != (p.Version == 4) {
			p.PayloadOff = off // ICMP in IPv6 or ICMPv6 in IPv4: opaque
			return OK
		}
		need = header.ICMPv4MinLen
	case header.ProtoSCTP, header.ProtoDCCP:
		need = 12
	default:
		p.PayloadOff = off
		return OK
	}
	if embedded {
		need = min(need, 8)
	}
	if avail < need {
		return TruncatedL4
	}
	l4 := d[off:]
	switch p.Proto {
	case header.ProtoTCP:
		t := header.TCP(l4)
		p.SrcPort, p.DstPort, p.Seq = t.SrcPort(), t.DstPort(), t.Seq()
		if avail < header.TCPMinLen {
			p.L4Partial = true
			return OK
		}
		p.Ack, p.TCPFlags, p.Window = t.Ack(), t.Flags(), t.Window()
		switch doff := t.DataOffset(); {
		case doff < header.TCPMinLen:
			p.L4Malformed = true
			p.PayloadOff = off + header.TCPMinLen
		case doff > avail:
			// A quote cut inside the options is normal, not malformed.
			p.L4Malformed = !embedded
		default:
			p.PayloadOff = off + doff
		}
	case header.ProtoUDP, header.ProtoUDPLite:
		u := header.UDP(l4)
		p.SrcPort, p.DstPort = u.SrcPort(), u.DstPort()
		p.PayloadOff = off + header.UDPLen
		if !embedded {
			n := int(u.Length())
			if p.Proto == header.ProtoUDPLite {
				// The field is the checksum coverage; 0 means all.
				p.L4Malformed = n != 0 && (n < header.UDPLen || n > avail)
			} else {
				p.L4Malformed = n < header.UDPLen || n > avail
			}
		}
	case header.ProtoICMP, header.ProtoICMPv6:
		c := header.ICMPv4(l4)
		p.ICMPType, p.ICMPCode = c.Type(), c.Code()
		p.PayloadOff = off + header.ICMPv4MinLen
		if p.Proto == header.ProtoICMP && header.ICMPv4HasID(p.ICMPType) ||
			p.Proto == header.ProtoICMPv6 && (p.ICMPType == header.ICMPv6EchoRequest || p.ICMPType == header.ICMPv6EchoReply) {
			p.ICMPID, p.ICMPSeq = c.ID(), c.Seq()
		}
	case header.ProtoSCTP:
		p.SrcPort, p.DstPort = be16(l4), be16(l4[2:])
		p.PayloadOff = min(off+12, len(d))
	case header.ProtoDCCP:
		p.SrcPort, p.DstPort = be16(l4), be16(l4[2:])
		if embedded {
			p.PayloadOff = min(off+12, len(d))
			break
		}
		// dccp_error: data offset (32-bit words) within the packet and
		// covering at least the 12-byte generic header.
		doff := int(l4[4]) * 4
		if doff < 12 || doff > avail {
			p.L4Malformed = true
			p.PayloadOff = off + 12
		} else {
			p.PayloadOff = off + doff
		}
	}
	return OK
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

// String names the status for test and trace output.
func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case BadL3:
		return "BadL3"
	case TruncatedL4:
		return "TruncatedL4"
	case Fragment:
		return "Fragment"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}
