package packet

import (
	"net/netip"

	"github.com/uptables/uptables/internal/header"
)

// IPv4 returns the IPv4 header view (options included), or nil if p is not a
// decoded IPv4 packet.
func (p *Packet) IPv4() header.IPv4 {
	if p.Version != 4 || p.Status == BadL3 {
		return nil
	}
	return header.IPv4(p.Data[:p.HdrLen])
}

// IPv6 returns the fixed IPv6 header view, or nil if p is not a decoded IPv6
// packet.
func (p *Packet) IPv6() header.IPv6 {
	if p.Version != 6 || p.Status == BadL3 {
		return nil
	}
	return header.IPv6(p.Data[:header.IPv6Len])
}

// IPOptions returns the IPv4 option bytes (nil without options or for IPv6),
// what LOG --log-ip-options prints.
func (p *Packet) IPOptions() []byte {
	if p.Version != 4 || p.Status == BadL3 || p.HdrLen <= header.IPv4MinLen {
		return nil
	}
	return p.Data[header.IPv4MinLen:p.HdrLen]
}

// hasL4 reports whether the L4 header of protocol proto is fully present.
func (p *Packet) hasL4(proto uint8) bool {
	return p.Status == OK && p.Proto == proto && !p.L4Partial
}

// TCP returns the TCP segment (header and payload to the end of Data), or nil
// unless p is TCP with a complete 20-byte header.
func (p *Packet) TCP() header.TCP {
	if !p.hasL4(header.ProtoTCP) {
		return nil
	}
	return header.TCP(p.Data[p.L4Off:])
}

// TCPOptions returns the TCP option bytes, or nil when there are none or
// the data offset is malformed (the tcp match hot-drops then).
func (p *Packet) TCPOptions() []byte {
	if !p.hasL4(header.ProtoTCP) || p.L4Malformed {
		return nil
	}
	return p.Data[p.L4Off+header.TCPMinLen : p.PayloadOff]
}

// UDP returns the UDP datagram (header and payload to the end of Data), or
// nil unless p is UDP with its 8-byte header.
func (p *Packet) UDP() header.UDP {
	if !p.hasL4(header.ProtoUDP) {
		return nil
	}
	return header.UDP(p.Data[p.L4Off:])
}

// ICMP returns the ICMP or ICMPv6 message, or nil unless p carries one with
// its 8-byte header.
func (p *Packet) ICMP() header.ICMPv4 {
	if p.Status != OK || !(p.Version == 4 && p.Proto == header.ProtoICMP || p.Version == 6 && p.Proto == header.ProtoICMPv6) {
		return nil
	}
	return header.ICMPv4(p.Data[p.L4Off:])
}

// Payload returns the L4 payload (nil unless Status is OK); of a Cut
// packet only the part present.
func (p *Packet) Payload() []byte {
	if p.Status != OK {
		return nil
	}
	return p.Data[p.PayloadOff:]
}

// SetTTL rewrites the TTL (IPv6: hop limit), patching the IPv4 header
// checksum, as the TTL/HL targets do.
func (p *Packet) SetTTL(ttl uint8) {
	switch h := p.ipHeader(); p.Version {
	case 4:
		header.IPv4(h).SetTTL(ttl)
	case 6:
		header.IPv6(h).SetHopLimit(ttl)
	default:
		return
	}
	p.TTL = ttl
}

// SetTOS rewrites the TOS byte (IPv6: traffic class), patching the IPv4
// header checksum, as the DSCP/TOS targets do.
func (p *Packet) SetTOS(tos uint8) {
	switch h := p.ipHeader(); p.Version {
	case 4:
		header.IPv4(h).SetTOS(tos)
	case 6:
		header.IPv6(h).SetTrafficClass(tos)
	default:
		return
	}
	p.TOS = tos
}

// ipHeader returns the fixed IP header bytes, nil for BadL3.
func (p *Packet) ipHeader() []byte {
	if p.Status == BadL3 {
		return nil
	}
	return p.Data
}

// SetSrc rewrites the source address, patching the IPv4 header checksum and
// the L4 checksum (TCP, UDP, UDP-Lite, DCCP, ICMPv6 when its checksum field is
// present; not for a non-first fragment, which has no L4 header). It reports
// false, changing nothing, when a's family is not the packet's.
func (p *Packet) SetSrc(a netip.Addr) bool { return p.setAddr(a, true) }

// SetDst is SetSrc for the destination address.
func (p *Packet) SetDst(a netip.Addr) bool { return p.setAddr(a, false) }

func (p *Packet) setAddr(a netip.Addr, src bool) bool {
	if p.Status == BadL3 {
		return false
	}
	var old, new []byte
	switch {
	case p.Version == 4 && a.Is4():
		off := header.IPv4DstOff
		if src {
			off = header.IPv4SrcOff
		}
		n := a.As4()
		o := header.UpdateIPv4Addr(header.IPv4(p.Data), off, n)
		old, new = o[:], n[:]
	case p.Version == 6 && a.Is6() && !a.Is4In6():
		off := header.IPv6DstOff
		if src {
			off = header.IPv6SrcOff
		}
		var o [16]byte
		copy(o[:], p.Data[off:off+16])
		n := a.As16()
		copy(p.Data[off:off+16], n[:])
		old, new = o[:], n[:]
	default:
		return false
	}
	// A cut TCP header in an ICMP quote keeps its checksum, as in the
	// kernel's NAT (the outer ICMP checksum is recomputed by the caller).
	if p.Status != Fragment && !p.L4Partial && p.L4Off > 0 && p.L4Off <= len(p.Data) {
		header.UpdateL4ChecksumForAddr(p.Proto, p.Data[p.L4Off:], old, new)
	}
	if src {
		p.Src = a
	} else {
		p.Dst = a
	}
	return true
}

// SetSrcPort rewrites the TCP/UDP source port and patches the checksum (a
// TCP header quoted in an ICMP error without its checksum field is rewritten
// without one, as the kernel's NAT does). It reports false for other
// protocols or without an L4 header.
func (p *Packet) SetSrcPort(port uint16) bool { return p.setPort(port, true) }

// SetDstPort is SetSrcPort for the destination port.
func (p *Packet) SetDstPort(port uint16) bool { return p.setPort(port, false) }

func (p *Packet) setPort(port uint16, src bool) bool {
	if p.Status != OK {
		return false
	}
	l4 := p.Data[p.L4Off:]
	off := 2
	if src {
		off = 0
	}
	switch p.Proto {
	case header.ProtoTCP:
		if p.L4Partial {
			l4[off], l4[off+1] = byte(port>>8), byte(port)
		} else if src {
			header.TCP(l4).SetSrcPort(port)
		} else {
			header.TCP(l4).SetDstPort(port)
		}
	case header.ProtoUDP:
		if src {
			header.UDP(l4).SetSrcPort(port)
		} else {
			header.UDP(l4).SetDstPort(port)
		}
	default:
		return false
	}
	if src {
		p.SrcPort = port
	} else {
		p.DstPort = port
	}
	return true
}

// SetICMPID rewrites the identifier of an ICMP/ICMPv6 query (echo ...) and
// patches the checksum, as NAT does for echo "ports". It reports false for
// messages without an identifier.
func (p *Packet) SetICMPID(id uint16) bool {
	c := p.ICMP()
	if c == nil {
		return false
	}
	if p.Version == 4 && !header.ICMPv4HasID(p.ICMPType) ||
		p.Version == 6 && p.ICMPType != header.ICMPv6EchoRequest && p.ICMPType != header.ICMPv6EchoReply {
		return false
	}
	c.SetID(id)
	p.ICMPID = id
	return true
}

// WriteTCPReset writes into buf the RST that REJECT --reject-with tcp-reset
// answers p with (see header.WriteIPv4TCPReset) and returns its length, or 0
// when p is not a complete IPv4 TCP segment or buf is too small. IPv6 is not
// supported yet (returns 0). The payload length that acknowledges is the
// real one for a Cut packet (nf_send_reset reads the skb's length).
func (p *Packet) WriteTCPReset(buf []byte, ttl uint8) int {
	t := p.TCP()
	if p.Version != 4 || t == nil {
		return 0
	}
	end := len(p.Data)
	if p.Cut {
		end = p.TotalLen
	}
	return header.WriteIPv4TCPReset(buf, p.IPv4(), t, end-p.PayloadOff, ttl)
}

// WriteICMPError writes into buf an ICMP error of the given type and code
// about p, sent from src (see header.WriteIPv4ICMPError), and returns its
// length, or 0 when p is not a decoded IPv4 packet, src is not IPv4 or buf is
// shorter than header.ICMPv4ErrorLen(len(p.Data)). IPv6 is not supported yet.
func (p *Packet) WriteICMPError(buf []byte, typ, code uint8, rest uint32, src netip.Addr, id uint16, ttl uint8) int {
	if p.Version != 4 || p.Status == BadL3 || !src.Is4() {
		return 0
	}
	return header.WriteIPv4ICMPError(buf, p.Data, typ, code, rest, src.As4(), id, ttl)
}
