package header

// Sizes of the replies REJECT sends.
const (
	// IPv4TCPResetLen is the length of the RST WriteIPv4TCPReset builds:
	// 20-byte IP header without options, 20-byte TCP header without options.
	IPv4TCPResetLen = IPv4MinLen + TCPMinLen
	// ICMPErrorMaxLen caps a whole ICMP error datagram, as the kernel's
	// icmp_send does (576, the minimum datagram every host must accept).
	ICMPErrorMaxLen = 576
	// ICMPv4ErrorHeaderLen is the IP header plus ICMP header of an error.
	ICMPv4ErrorHeaderLen = IPv4MinLen + ICMPv4MinLen
)

// WriteIPv4TCPReset writes into buf the TCP RST that REJECT --reject-with
// tcp-reset sends in answer to the segment (ip, tcp) carrying payloadLen data
// bytes, and returns its length (IPv4TCPResetLen), or 0 when buf is shorter
// than that or ip/tcp are shorter than their minimum headers.
//
// Contents follow the kernel (spec §8.3): addresses and ports swapped, TOS 0,
// ID 0, DF set, TTL ttl (the route's hop limit, 64 by default), no options,
// window 0. If the offending segment had ACK: flags RST, seq = its ack, ack 0;
// otherwise flags RST+ACK, seq 0, ack = its seq + SYN + FIN + payloadLen.
//
// Whether to send at all (not for an RST, a non-first fragment, a bad
// checksum, broadcast) is the caller's decision.
func WriteIPv4TCPReset(buf []byte, ip IPv4, tcp TCP, payloadLen int, ttl uint8) int {
	if len(buf) < IPv4TCPResetLen || len(ip) < IPv4MinLen || len(tcp) < TCPMinLen {
		return 0
	}
	buf = buf[:IPv4TCPResetLen]
	clear(buf)
	h := IPv4(buf)
	h[0] = 0x45
	be.PutUint16(h[IPv4TotalLenOff:], IPv4TCPResetLen)
	be.PutUint16(h[IPv4FragOff:], IPv4FlagDF)
	h[IPv4TTLOff] = ttl
	h[IPv4ProtoOff] = ProtoTCP
	copy(h[IPv4SrcOff:IPv4SrcOff+4], ip[IPv4DstOff:IPv4DstOff+4])
	copy(h[IPv4DstOff:IPv4DstOff+4], ip[IPv4SrcOff:IPv4SrcOff+4])
	h.SetChecksum(h.CalculateChecksum())

	t := TCP(buf[IPv4MinLen:])
	be.PutUint16(t[TCPSrcPortOff:], tcp.DstPort())
	be.PutUint16(t[TCPDstPortOff:], tcp.SrcPort())
	t[TCPDataOffOff] = 5 << 4
	if tcp.Flags()&TCPFlagACK != 0 {
		be.PutUint32(t[TCPSeqOff:], tcp.Ack())
		t[TCPFlagsOff] = TCPFlagRST
	} else {
		ack := tcp.Seq() + uint32(payloadLen)
		if tcp.Flags()&TCPFlagSYN != 0 {
			ack++
		}
		if tcp.Flags()&TCPFlagFIN != 0 {
			ack++
		}
		be.PutUint32(t[TCPAckOff:], ack)
		t[TCPFlagsOff] = TCPFlagRST | TCPFlagACK
	}
	t.SetChecksum(t.CalculateChecksum(PseudoHeaderSum(h[IPv4SrcOff:IPv4SrcOff+4], h[IPv4DstOff:IPv4DstOff+4], ProtoTCP, TCPMinLen)))
	return IPv4TCPResetLen
}

// ICMPv4ErrorLen returns the length of the ICMP error WriteIPv4ICMPError
// builds for an offending datagram of origLen bytes: IP and ICMP headers plus
// the datagram, cut so the whole is at most ICMPErrorMaxLen.
func ICMPv4ErrorLen(origLen int) int {
	return ICMPv4ErrorHeaderLen + min(origLen, ICMPErrorMaxLen-ICMPv4ErrorHeaderLen)
}

// WriteIPv4ICMPError writes into buf an ICMP error of type typ and code code
// (bytes 4-7 = rest: the MTU of "fragmentation needed", the pointer of a
// parameter problem, else 0) about the IPv4 datagram orig (from its IP header,
// trimmed to its total length), and returns its length, or 0 when
// len(buf) < ICMPv4ErrorLen(len(orig)) or orig is shorter than an IPv4 header.
//
// Contents follow the kernel's icmp_send as REJECT uses it (spec §8.4): from
// src to orig's source, TOS (orig TOS & 0x1E) | 0xC0, no DF, TTL ttl, ID id,
// no options; the quoted datagram is cut to keep the whole <= 576 bytes.
// Rate limiting and "never answer an ICMP error / non-first fragment /
// broadcast" are the caller's.
func WriteIPv4ICMPError(buf []byte, orig []byte, typ, code uint8, rest uint32, src [4]byte, id uint16, ttl uint8) int {
	if len(orig) < IPv4MinLen {
		return 0
	}
	n := ICMPv4ErrorLen(len(orig))
	if len(buf) < n {
		return 0
	}
	buf = buf[:n]
	o := IPv4(orig)
	h := IPv4(buf)
	clear(h[:ICMPv4ErrorHeaderLen])
	h[0] = 0x45
	h[IPv4TOSOff] = o.TOS()&0x1e | 0xc0
	be.PutUint16(h[IPv4TotalLenOff:], uint16(n))
	be.PutUint16(h[IPv4IDOff:], id)
	h[IPv4TTLOff] = ttl
	h[IPv4ProtoOff] = ProtoICMP
	copy(h[IPv4SrcOff:IPv4SrcOff+4], src[:])
	copy(h[IPv4DstOff:IPv4DstOff+4], o[IPv4SrcOff:IPv4SrcOff+4])
	h.SetChecksum(h.CalculateChecksum())

	c := ICMPv4(buf[IPv4MinLen:])
	c[0], c[1] = typ, code
	be.PutUint32(c[4:], rest)
	copy(c[ICMPv4MinLen:], orig)
	c.SetChecksum(c.CalculateChecksum(0))
	return n
}
