package proxy

import (
	"encoding/binary"
	"net/netip"

	"github.com/uptables/uptables/internal/header"
)

var be = binary.BigEndian

// Headroom is the space a buffer must leave in front of the payload so that
// an IP and TCP (or UDP) header can be written there without copying the
// payload: a 40-byte IPv6 header plus a 20-byte TCP header. IPv4 uses 40 of
// the 60 bytes and starts 20 bytes later.
const Headroom = header.IPv6Len + header.TCPMinLen

// maxPayload keeps a synthetic segment within the 16-bit IPv4 total-length
// field (and IPv6's payload length), the largest packet a kernel could see.
const maxPayload = 65535 - Headroom

// synSynAckOptions are the TCP options of the synthetic SYN and SYN/ACK:
// MSS of the loopback MTU (65535 - 40), window scale 7, end of list. With
// the scale the advertised window (65535 << 7, 8 MiB) gives conntrack's
// window tracking room between the pure ACKs the proxy synthesises
// (ackEvery), as a real receive window would.
var synSynAckOptions = [8]byte{header.TCPOptMSS, 4, 0xff, 0xd7, header.TCPOptNOP, header.TCPOptWindowScale, 3, synWScale}

const (
	synWScale = 7
	synWindow = 65535
	// ackEvery is how many bytes one side may receive before the proxy
	// synthesises a pure ACK from it when no data flows back. A quarter of
	// the scaled window keeps every segment inside conntrack's window.
	ackEvery = (synWindow << synWScale) / 4
)

// writeTCP writes an IP header and a TCP header ending exactly at buf[end],
// where payloadLen payload bytes are expected to lie already, and returns the
// offset where the packet starts. opts must be a multiple of 4 bytes and is
// only used with payloadLen 0 (SYN, SYN/ACK). The checksums are correct, so
// conntrack's checksum verification (nf_conntrack_checksum) passes.
//
// Precondition: end >= IP header + TCP header + len(opts) and
// len(buf) >= end+payloadLen; src and dst are of the same family.
func writeTCP(buf []byte, end int, src, dst netip.AddrPort, seq, ack uint32, flags uint8, win uint16, opts []byte, payloadLen int) int {
	thl := header.TCPMinLen + len(opts)
	tcpStart := end - thl
	t := buf[tcpStart:end]
	be.PutUint16(t[header.TCPSrcPortOff:], src.Port())
	be.PutUint16(t[header.TCPDstPortOff:], dst.Port())
	be.PutUint32(t[header.TCPSeqOff:], seq)
	be.PutUint32(t[header.TCPAckOff:], ack)
	t[header.TCPDataOffOff] = byte(thl/4) << 4
	t[header.TCPFlagsOff] = flags
	be.PutUint16(t[header.TCPWindowOff:], win)
	be.PutUint16(t[header.TCPChecksumOff:], 0)
	be.PutUint16(t[header.TCPUrgentOff:], 0)
	copy(t[header.TCPMinLen:], opts)
	start := writeIP(buf, tcpStart, src.Addr(), dst.Addr(), header.ProtoTCP, thl+payloadLen)
	seg := header.TCP(buf[tcpStart : end+payloadLen])
	// The checksum field is zero: the sum over the segment is the checksum.
	seg.SetChecksum(^header.Sum(seg, pseudo(buf[start:], src.Addr(), header.ProtoTCP, len(seg))))
	return start
}

// writeUDP is writeTCP for a UDP datagram.
func writeUDP(buf []byte, end int, src, dst netip.AddrPort, payloadLen int) int {
	udpStart := end - header.UDPLen
	u := buf[udpStart:end]
	be.PutUint16(u[0:], src.Port())
	be.PutUint16(u[2:], dst.Port())
	be.PutUint16(u[4:], uint16(header.UDPLen+payloadLen))
	be.PutUint16(u[6:], 0)
	start := writeIP(buf, udpStart, src.Addr(), dst.Addr(), header.ProtoUDP, header.UDPLen+payloadLen)
	d := header.UDP(buf[udpStart : end+payloadLen])
	c := ^header.Sum(d, pseudo(buf[start:], src.Addr(), header.ProtoUDP, len(d)))
	if c == 0 {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	d.SetChecksum(c)
	return start
}

// writeIP writes the IPv4 (TTL 64, DF, ID 0 as Linux sets for DF
// packets) or IPv6 (hop limit 64) header that ends at buf[end] and returns
// where it starts.
func writeIP(buf []byte, end int, src, dst netip.Addr, proto uint8, l4len int) int {
	if src.Is4() {
		start := end - header.IPv4MinLen
		h := header.IPv4(buf[start:end])
		h[0] = 0x45
		h[header.IPv4TOSOff] = 0
		be.PutUint16(h[header.IPv4TotalLenOff:], uint16(header.IPv4MinLen+l4len))
		be.PutUint16(h[header.IPv4IDOff:], 0)
		be.PutUint16(h[header.IPv4FragOff:], header.IPv4FlagDF)
		h[header.IPv4TTLOff] = 64
		h[header.IPv4ProtoOff] = proto
		be.PutUint16(h[header.IPv4ChecksumOff:], 0)
		s, d := src.As4(), dst.As4()
		copy(h[header.IPv4SrcOff:], s[:])
		copy(h[header.IPv4DstOff:], d[:])
		h.SetChecksum(h.CalculateChecksum())
		return start
	}
	start := end - header.IPv6Len
	h := buf[start:end]
	h[0], h[1], h[2], h[3] = 0x60, 0, 0, 0
	be.PutUint16(h[header.IPv6PayloadLenOff:], uint16(l4len))
	h[header.IPv6NextHdrOff] = proto
	h[header.IPv6HopLimitOff] = 64
	s, d := src.As16(), dst.As16()
	copy(h[header.IPv6SrcOff:], s[:])
	copy(h[header.IPv6DstOff:], d[:])
	return start
}

// pseudo returns the pseudo-header sum of the IP header at the start of ip.
func pseudo(ip []byte, src netip.Addr, proto uint8, l4len int) uint16 {
	if src.Is4() {
		return header.PseudoHeaderSum(ip[header.IPv4SrcOff:header.IPv4SrcOff+4], ip[header.IPv4DstOff:header.IPv4DstOff+4], proto, l4len)
	}
	return header.PseudoHeaderSum(ip[header.IPv6SrcOff:header.IPv6SrcOff+16], ip[header.IPv6DstOff:header.IPv6DstOff+16], proto, l4len)
}

// ipHeaderLen is the IP header length used for addresses of a's family.
func ipHeaderLen(a netip.Addr) int {
	if a.Is4() {
		return header.IPv4MinLen
	}
	return header.IPv6Len
}

// canon unmaps IPv4-mapped IPv6 addresses (a dual-stack socket reports
// ::ffff:1.2.3.4): the kernel sees such a client as IPv4 on the wire.
func canon(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
