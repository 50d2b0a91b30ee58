// Package packettest builds valid IPv4/IPv6 packets for tests: TCP with any
// flags, sequence numbers, options and payload; UDP; ICMP echo and errors
// quoting another packet; IP options, fragments, TTL and TOS; correct
// checksums unless a field asks for a broken one. The builders allocate and
// panic on bad input (an unparsable address): they are for tests only.
//
// An address that parses as IPv6 gives an IPv6 packet (ICMP becomes ICMPv6,
// fragments get a fragment header); IPv4 options are then refused.
package packettest

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/uptables/uptables/internal/header"
)

var be = binary.BigEndian

// TCP flags, as in the kernel and package packet.
const (
	FIN uint8 = 0x01
	SYN uint8 = 0x02
	RST uint8 = 0x04
	PSH uint8 = 0x08
	ACK uint8 = 0x10
	URG uint8 = 0x20
	ECE uint8 = 0x40
	CWR uint8 = 0x80
)

// IP holds the IP header fields every builder shares. The zero value gives
// TTL 64, TOS 0, ID 0, no flags, no options, correct lengths and checksum.
type IP struct {
	TTL     int // 0 means 64; -1 means a TTL (hop limit) of 0
	TOS     uint8
	ID      uint16 // IPv6: the fragment header's identification
	DF, MF  bool
	FragOff uint16 // fragment offset in 8-byte units
	Options []byte // IPv4 options, zero-padded to a multiple of 4 bytes

	// For malformed-packet tests.
	TotalLen    int  // overrides the total length field (IPv6: payload length) when > 0
	BadChecksum bool // stores a wrong IPv4 header checksum
}

// TCPOpts describes a TCP segment.
type TCPOpts struct {
	Src, Dst         string
	SrcPort, DstPort uint16
	Flags            uint8
	Seq, Ack         uint32
	Window           uint16
	Urgent           uint16
	Options          []byte // raw TCP options (MSS, WScale, ...), zero-padded to a multiple of 4
	Payload          []byte
	DataOffset       int // overrides the data-offset field, in bytes (a multiple of 4), when > 0
	IP               IP
}

// TCP builds an IP packet carrying the TCP segment o.
func TCP(o TCPOpts) []byte {
	opts := pad4(o.Options)
	hl := header.TCPMinLen + len(opts)
	seg := make([]byte, hl+len(o.Payload))
	be.PutUint16(seg[0:], o.SrcPort)
	be.PutUint16(seg[2:], o.DstPort)
	be.PutUint32(seg[4:], o.Seq)
	be.PutUint32(seg[8:], o.Ack)
	doff := hl
	if o.DataOffset > 0 {
		doff = o.DataOffset
	}
	seg[12] = byte(doff/4) << 4
	seg[13] = o.Flags
	be.PutUint16(seg[14:], o.Window)
	be.PutUint16(seg[18:], o.Urgent)
	copy(seg[20:], opts)
	copy(seg[hl:], o.Payload)
	return build(o.Src, o.Dst, header.ProtoTCP, seg, header.TCPChecksumOff, o.IP)
}

// MSS returns a TCP MSS option.
func MSS(mss uint16) []byte { return []byte{header.TCPOptMSS, 4, byte(mss >> 8), byte(mss)} }

// WScale returns a TCP window-scale option.
func WScale(shift uint8) []byte { return []byte{header.TCPOptWindowScale, 3, shift} }

// SACKPermitted returns a TCP SACK-permitted option.
func SACKPermitted() []byte { return []byte{header.TCPOptSACKPermitted, 2} }

// Timestamps returns a TCP timestamps option.
func Timestamps(val, ecr uint32) []byte {
	b := []byte{header.TCPOptTimestamps, 10, 0, 0, 0, 0, 0, 0, 0, 0}
	be.PutUint32(b[2:], val)
	be.PutUint32(b[6:], ecr)
	return b
}

// NOP is the one-byte TCP/IP no-operation option.
const NOP = 1

// UDPOpts describes a UDP datagram.
type UDPOpts struct {
	Src, Dst         string
	SrcPort, DstPort uint16
	Payload          []byte
	Length           int  // overrides the length field when > 0
	NoChecksum       bool // leaves the checksum 0 ("none", IPv4)
	IP               IP
}

// UDP builds an IP packet carrying the UDP datagram o.
func UDP(o UDPOpts) []byte {
	d := make([]byte, header.UDPLen+len(o.Payload))
	be.PutUint16(d[0:], o.SrcPort)
	be.PutUint16(d[2:], o.DstPort)
	n := len(d)
	if o.Length > 0 {
		n = o.Length
	}
	be.PutUint16(d[4:], uint16(n))
	copy(d[8:], o.Payload)
	off := header.UDPChecksumOff
	if o.NoChecksum {
		off = -1
	}
	return build(o.Src, o.Dst, header.ProtoUDP, d, off, o.IP)
}

// ICMPOpts describes an ICMP (IPv6: ICMPv6) message. Bytes 4-7 hold ID and
// Seq, or Rest when it is non-zero.
type ICMPOpts struct {
	Src, Dst   string
	Type, Code uint8
	ID, Seq    uint16
	Rest       uint32
	Payload    []byte
	IP         IP
}

// ICMP builds an IP packet carrying the ICMP message o.
func ICMP(o ICMPOpts) []byte {
	m := make([]byte, header.ICMPv4MinLen+len(o.Payload))
	m[0], m[1] = o.Type, o.Code
	be.PutUint16(m[4:], o.ID)
	be.PutUint16(m[6:], o.Seq)
	if o.Rest != 0 {
		be.PutUint32(m[4:], o.Rest)
	}
	copy(m[8:], o.Payload)
	proto := header.ProtoICMP
	if is6(o.Src) {
		proto = header.ProtoICMPv6
	}
	return build(o.Src, o.Dst, proto, m, header.ICMPv4ChecksumOff, o.IP)
}

// EchoRequest builds a ping (ICMP type 8, ICMPv6 type 128) with size payload
// bytes (0, 1, 2, ... as ping fills them).
func EchoRequest(src, dst string, id, seq uint16, size int) []byte {
	t := uint8(header.ICMPv4Echo)
	if is6(src) {
		t = header.ICMPv6EchoRequest
	}
	return ICMP(ICMPOpts{Src: src, Dst: dst, Type: t, ID: id, Seq: seq, Payload: fill(size)})
}

// EchoReply builds a ping reply (ICMP type 0, ICMPv6 type 129).
func EchoReply(src, dst string, id, seq uint16, size int) []byte {
	t := uint8(header.ICMPv4EchoReply)
	if is6(src) {
		t = header.ICMPv6EchoReply
	}
	return ICMP(ICMPOpts{Src: src, Dst: dst, Type: t, ID: id, Seq: seq, Payload: fill(size)})
}

// ICMPErrorOpts describes an ICMP error about the packet Original.
type ICMPErrorOpts struct {
	Src        string // the router or host reporting the error
	Dst        string // default: Original's source
	Type, Code uint8
	Rest       uint32 // bytes 4-7 (MTU, pointer)
	Original   []byte // the offending packet, from its IP header
	QuoteLen   int    // bytes of Original to quote; 0 = as the kernel: all, keeping the error <= 576 bytes (IPv6: 1280)
	IP         IP
}

// ICMPError builds an ICMP (IPv6: ICMPv6) error quoting o.Original.
func ICMPError(o ICMPErrorOpts) []byte {
	v6 := is6(o.Src)
	dst := o.Dst
	if dst == "" {
		if v6 {
			dst = netip.AddrFrom16([16]byte(o.Original[8:24])).String()
		} else {
			dst = netip.AddrFrom4([4]byte(o.Original[12:16])).String()
		}
	}
	q := o.QuoteLen
	if q == 0 {
		max := header.ICMPErrorMaxLen - header.ICMPv4ErrorHeaderLen
		if v6 {
			max = 1280 - header.IPv6Len - header.ICMPv4MinLen
		}
		q = min(len(o.Original), max)
	}
	return ICMP(ICMPOpts{Src: o.Src, Dst: dst, Type: o.Type, Code: o.Code, Rest: o.Rest, Payload: o.Original[:q], IP: o.IP})
}

// RawOpts describes an IP packet with an arbitrary payload (a protocol the
// builders do not know, or a non-first fragment's data).
type RawOpts struct {
	Src, Dst string
	Proto    uint8
	Payload  []byte
	IP       IP
}

// Raw builds an IP packet around o.Payload without touching it.
func Raw(o RawOpts) []byte { return build(o.Src, o.Dst, o.Proto, o.Payload, -1, o.IP) }

// Fragments splits the IPv4 packet pkt (built without options) into
// fragments carrying at most size data bytes each (rounded down to a
// multiple of 8), with correct header checksums.
func Fragments(pkt []byte, size int) [][]byte {
	h := header.IPv4(pkt)
	hl := h.HeaderLen()
	data := pkt[hl:h.TotalLen()]
	size &^= 7
	if size <= 0 {
		panic("packettest: fragment size below 8")
	}
	var out [][]byte
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		f := make([]byte, hl+end-off)
		copy(f, pkt[:hl])
		copy(f[hl:], data[off:end])
		fh := header.IPv4(f)
		be.PutUint16(f[header.IPv4TotalLenOff:], uint16(len(f)))
		ff := h.FlagsFrag()&header.IPv4FlagDF | uint16(off/8)
		if end < len(data) || h.MoreFragments() {
			ff |= header.IPv4FlagMF
		}
		be.PutUint16(f[header.IPv4FragOff:], ff+h.FragOff())
		fh.SetChecksum(fh.CalculateChecksum())
		out = append(out, f)
	}
	return out
}

// build wraps the L4 bytes l4 in an IP header, first storing the L4 checksum
// at csumOff (-1: none; ICMPv4 has no pseudo-header).
func build(src, dst string, proto uint8, l4 []byte, csumOff int, o IP) []byte {
	s, d := addr(src), addr(dst)
	if s.Is4() != d.Is4() {
		panic(fmt.Sprintf("packettest: mixed address families %s, %s", src, dst))
	}
	if csumOff >= 0 {
		l4[csumOff], l4[csumOff+1] = 0, 0
		var init uint16
		if proto != header.ProtoICMP {
			init = header.PseudoHeaderSum(s.AsSlice(), d.AsSlice(), proto, len(l4))
		}
		c := header.Checksum(l4, init)
		if c == 0 && proto == header.ProtoUDP {
			c = 0xffff
		}
		be.PutUint16(l4[csumOff:], c)
	}
	ttl := uint8(64)
	if o.TTL > 0 {
		ttl = uint8(o.TTL)
	} else if o.TTL < 0 {
		ttl = 0
	}
	if s.Is6() {
		return build6(s, d, proto, l4, ttl, o)
	}
	opts := pad4(o.Options)
	hl := header.IPv4MinLen + len(opts)
	if hl > header.IPv4MaxLen {
		panic("packettest: IPv4 options longer than 40 bytes")
	}
	p := make([]byte, hl+len(l4))
	p[0] = 0x40 | byte(hl/4)
	p[1] = o.TOS
	tot := len(p)
	if o.TotalLen > 0 {
		tot = o.TotalLen
	}
	be.PutUint16(p[2:], uint16(tot))
	be.PutUint16(p[4:], o.ID)
	ff := o.FragOff & header.IPv4FragOffMask
	if o.DF {
		ff |= header.IPv4FlagDF
	}
	if o.MF {
		ff |= header.IPv4FlagMF
	}
	be.PutUint16(p[6:], ff)
	p[8] = ttl
	p[9] = proto
	s4, d4 := s.As4(), d.As4()
	copy(p[12:], s4[:])
	copy(p[16:], d4[:])
	copy(p[20:], opts)
	copy(p[hl:], l4)
	h := header.IPv4(p)
	c := h.CalculateChecksum()
	if o.BadChecksum {
		c ^= 0x5a5a
	}
	h.SetChecksum(c)
	return p
}

func build6(s, d netip.Addr, proto uint8, l4 []byte, hop uint8, o IP) []byte {
	if len(o.Options) > 0 {
		panic("packettest: IPv4 options on an IPv6 packet")
	}
	frag := o.MF || o.FragOff != 0
	hl := header.IPv6Len
	if frag {
		hl += header.IPv6FragHdrLen
	}
	p := make([]byte, hl+len(l4))
	p[0] = 0x60 | o.TOS>>4
	p[1] = o.TOS << 4
	plen := len(p) - header.IPv6Len
	if o.TotalLen > 0 {
		plen = o.TotalLen
	}
	be.PutUint16(p[4:], uint16(plen))
	p[6] = proto
	p[7] = hop
	s16, d16 := s.As16(), d.As16()
	copy(p[8:], s16[:])
	copy(p[24:], d16[:])
	if frag {
		p[6] = header.ProtoFragment
		f := p[header.IPv6Len:]
		f[0] = proto
		fo := o.FragOff << 3
		if o.MF {
			fo |= 1
		}
		be.PutUint16(f[2:], fo)
		be.PutUint32(f[4:], uint32(o.ID))
	}
	copy(p[hl:], l4)
	return p
}

func addr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		panic(fmt.Sprintf("packettest: bad address %q: %v", s, err))
	}
	return a.Unmap()
}

func is6(s string) bool { return addr(s).Is6() }

func pad4(b []byte) []byte {
	if len(b)%4 == 0 {
		return b
	}
	return append(append([]byte(nil), b...), make([]byte, 4-len(b)%4)...)
}

func fill(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}
