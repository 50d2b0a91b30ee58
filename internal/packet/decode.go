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
	p.HdrLen, p.TotalLen, p.Cut = 0, 0, false
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
// An IPv4 total length of 0 stands for the buffer's length when that
// does not fit in 16 bits and the packet is TCP: the kernel's rule
// (iph_totlen) for a GSO aggregate beyond 64 KiB (BIG TCP, loopback at
// the OUTPUT hook), whose tot_len it sets to 0.
//
// Invariant for every Status but BadL3:
// 0 < HdrLen <= L4Off <= PayloadOff <= len(Data) == TotalLen (IPv6
// jumbograms aside).
func (p *Packet) Decode(data []byte) Status {
	p.resetL3L4()
	p.Data = data
	p.Status = p.decode(data, len(data), false)
	return p.Status
}

// MaxCutLen bounds the real length DecodeCut accepts. The kernel's skb
// length is 32 bits and GSO aggregates stay far below this (512 KiB at
// most with BIG TCP); a larger claim is BadL3. The bound also keeps
// TotalLen and the byte counters fed from it within an int on 32-bit
// platforms.
const MaxCutLen = 1<<31 - 1

// DecodeCut is Decode for a packet of which only the first len(data)
// bytes are present while its real L3 length is wireLen: what NFQUEUE
// hands over for a packet longer than its 65531-byte copy limit
// (NFQA_CAP_LEN gives the real length). With wireLen <= len(data) it is
// Decode(data). Otherwise the IP header's length must be wireLen (or 0
// for a TCP GSO aggregate beyond 64 KiB, see Decode; an IPv6 payload
// length of 0 likewise), the IP and L4 headers must be present, and the
// packet decodes with Cut set, TotalLen = wireLen and Data = data: see
// Packet.Cut for who reads which length. The UDP length field is checked
// against the real length. A header cut by the copy gives TruncatedL4.
//
// Invariant for every Status but BadL3:
// 0 < HdrLen <= L4Off <= PayloadOff <= len(Data) <= TotalLen, with
// len(Data) < TotalLen exactly when Cut.
func (p *Packet) DecodeCut(data []byte, wireLen int) Status {
	if wireLen <= len(data) {
		return p.Decode(data)
	}
	p.resetL3L4()
	p.Data = data
	if wireLen > MaxCutLen {
		return p.Status // BadL3
	}
	p.Status = p.decode(data, wireLen, false)
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
	dst.Status = dst.decode(inner, len(inner), true)
	return dst.Status == OK
}

// decode dispatches on the version nibble. wire is the packet's real
// length (len(data) unless cut). embedded relaxes the checks for a
// datagram quoted in an ICMP error.
func (p *Packet) decode(data []byte, wire int, embedded bool) Status {
	if len(data) == 0 {
		return BadL3
	}
	switch data[0] >> 4 {
	case 4:
		return p.decodeIPv4(data, wire, embedded)
	case 6:
		return p.decodeIPv6(data, wire, embedded)
	}
	return BadL3
}

// setEnd sets Data and TotalLen for a packet whose L3 length is tot
// (already checked against the real length): link-layer padding past
// tot is trimmed, and a packet longer than the bytes present is Cut.
func (p *Packet) setEnd(data []byte, tot int) []byte {
	if tot <= len(data) {
		data = data[:tot]
	} else {
		p.Cut = true
	}
	p.Data = data
	return data
}

func (p *Packet) decodeIPv4(data []byte, wire int, embedded bool) Status {
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
		if tot == 0 && wire > 0xffff && h.Protocol() == header.ProtoTCP {
			tot = wire // iph_totlen: a TCP GSO aggregate beyond 64 KiB
		}
		if !h.ChecksumValid() || tot > wire || tot < hl {
			return BadL3
		}
		data = p.setEnd(data, tot)
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

func (p *Packet) decodeIPv6(data []byte, wire int, embedded bool) Status {
	if len(data) < header.IPv6Len {
		return BadL3
	}
	h := header.IPv6(data)
	plen := int(h.PayloadLen())
	tot := header.IPv6Len + plen
	if !embedded {
		if plen == 0 && (h.NextHeader() == header.ProtoHopByHop ||
			wire > header.IPv6Len+0xffff && h.NextHeader() == header.ProtoTCP) {
			// Jumbogram (RFC 2675): the length is in a hop-by-hop option;
			// or a TCP GSO aggregate beyond 64 KiB (BIG TCP). Take the
			// packet's real length.
			tot = wire
		}
		if tot > wire {
			return BadL3
		}
		data = p.setEnd(data, tot)
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
	avail := len(d) - off // L4 bytes present
	wire := avail         // L4 bytes on the wire
	if p.Cut {
		wire = p.TotalLen - off
	}
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
		case doff > avail && p.Cut:
			return TruncatedL4 // options beyond the copy
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
				p.L4Malformed = n != 0 && (n < header.UDPLen || n > wire)
			} else {
				p.L4Malformed = n < header.UDPLen || n > wire
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
		if doff > avail && doff <= wire {
			return TruncatedL4 // header beyond the copy
		}
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
