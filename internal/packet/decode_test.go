package packet_test

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

var (
	a1  = netip.MustParseAddr("10.0.0.1")
	a2  = netip.MustParseAddr("10.0.0.2")
	a61 = netip.MustParseAddr("2001:db8::1")
	a62 = netip.MustParseAddr("2001:db8::2")
)

type (
	tcpo = packettest.TCPOpts
	udpo = packettest.UDPOpts
	ipo  = packettest.IP
)

func tcp(o tcpo) []byte {
	if o.Src == "" {
		o.Src, o.Dst = "10.0.0.1", "10.0.0.2"
	}
	return packettest.TCP(o)
}

func udp(o udpo) []byte {
	if o.Src == "" {
		o.Src, o.Dst = "10.0.0.1", "10.0.0.2"
	}
	return packettest.UDP(o)
}

func raw(proto uint8, payload []byte, ip ipo) []byte {
	return packettest.Raw(packettest.RawOpts{Src: "10.0.0.1", Dst: "10.0.0.2", Proto: proto, Payload: payload, IP: ip})
}

// mutate returns a copy of b with f applied.
func mutate(b []byte, f func([]byte)) []byte {
	b = slices.Clone(b)
	f(b)
	return b
}

// refix recomputes the IPv4 header checksum after a mutation.
func refix(b []byte) {
	h := header.IPv4(b)
	h.SetChecksum(h.CalculateChecksum())
}

func TestDecode(t *testing.T) {
	synOpts := slices.Concat(packettest.MSS(1460), packettest.SACKPermitted(), packettest.Timestamps(1, 2), []byte{1}, packettest.WScale(7))
	v4 := func(p packet.Packet) packet.Packet {
		p.Version, p.Src, p.Dst = 4, a1, a2
		if p.TTL == 0 {
			p.TTL = 64
		}
		if p.HdrLen == 0 {
			p.HdrLen = 20
		}
		return p
	}
	tests := []struct {
		name string
		in   []byte
		want packet.Packet // Data is checked separately: len(Data) == wantLen
	}{
		{"tcp syn with options and payload",
			tcp(tcpo{SrcPort: 40000, DstPort: 22, Flags: packettest.SYN | packettest.ECE | packettest.CWR, Seq: 0xdeadbeef, Ack: 0, Window: 64240,
				Options: synOpts, Payload: []byte("hello"), IP: ipo{TOS: 0x10, ID: 0x4321, DF: true, TTL: 63}}),
			v4(packet.Packet{TotalLen: 20 + 40 + 5, TOS: 0x10, ID: 0x4321, DontFrag: true, TTL: 63, Proto: 6,
				L4Off: 20, PayloadOff: 60, SrcPort: 40000, DstPort: 22, TCPFlags: 0xc2, Seq: 0xdeadbeef, Window: 64240})},
		{"tcp ack",
			tcp(tcpo{SrcPort: 1, DstPort: 2, Flags: packettest.ACK, Seq: 5, Ack: 6, Window: 7}),
			v4(packet.Packet{TotalLen: 40, Proto: 6, L4Off: 20, PayloadOff: 40, SrcPort: 1, DstPort: 2, TCPFlags: 0x10, Seq: 5, Ack: 6, Window: 7})},
		{"udp",
			udp(udpo{SrcPort: 53, DstPort: 33333, Payload: make([]byte, 100)}),
			v4(packet.Packet{TotalLen: 128, Proto: 17, L4Off: 20, PayloadOff: 28, SrcPort: 53, DstPort: 33333})},
		{"udp length above available",
			udp(udpo{SrcPort: 1, DstPort: 2, Payload: []byte{1, 2}, Length: 11}),
			v4(packet.Packet{TotalLen: 30, Proto: 17, L4Off: 20, PayloadOff: 28, SrcPort: 1, DstPort: 2, L4Malformed: true})},
		{"udp length below 8",
			udp(udpo{SrcPort: 1, DstPort: 2, Payload: []byte{1, 2}, Length: 7}),
			v4(packet.Packet{TotalLen: 30, Proto: 17, L4Off: 20, PayloadOff: 28, SrcPort: 1, DstPort: 2, L4Malformed: true})},
		{"udp length below available is fine",
			udp(udpo{SrcPort: 1, DstPort: 2, Payload: []byte{1, 2}, Length: 9}),
			v4(packet.Packet{TotalLen: 30, Proto: 17, L4Off: 20, PayloadOff: 28, SrcPort: 1, DstPort: 2})},
		{"icmp echo request",
			packettest.EchoRequest("10.0.0.1", "10.0.0.2", 0x1234, 9, 56),
			v4(packet.Packet{TotalLen: 84, Proto: 1, L4Off: 20, PayloadOff: 28, ICMPType: 8, ICMPID: 0x1234, ICMPSeq: 9})},
		{"icmp port unreachable (no id)",
			packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.0.0.1", Dst: "10.0.0.2", Type: 3, Code: 3, Original: udp(udpo{SrcPort: 7, DstPort: 8})}),
			v4(packet.Packet{TotalLen: 56, Proto: 1, L4Off: 20, PayloadOff: 28, ICMPType: 3, ICMPCode: 3})},
		{"ip options",
			tcp(tcpo{SrcPort: 1, DstPort: 2, Flags: packettest.SYN, IP: ipo{Options: []byte{header.IPv4OptRA, 4, 0, 0}}}),
			v4(packet.Packet{HdrLen: 24, TotalLen: 44, Proto: 6, L4Off: 24, PayloadOff: 44, SrcPort: 1, DstPort: 2, TCPFlags: 2})},
		{"trailing link padding trimmed",
			append(tcp(tcpo{SrcPort: 1, DstPort: 2, Flags: packettest.ACK}), 0, 0, 0, 0, 0, 0),
			v4(packet.Packet{TotalLen: 40, Proto: 6, L4Off: 20, PayloadOff: 40, SrcPort: 1, DstPort: 2, TCPFlags: 0x10})},
		{"first fragment",
			tcp(tcpo{SrcPort: 1, DstPort: 2, Flags: packettest.ACK, Payload: make([]byte, 16), IP: ipo{MF: true, ID: 7}}),
			v4(packet.Packet{TotalLen: 56, ID: 7, MoreFrag: true, Proto: 6, L4Off: 20, PayloadOff: 40, SrcPort: 1, DstPort: 2, TCPFlags: 0x10})},
		{"non-first fragment",
			raw(6, make([]byte, 16), ipo{FragOff: 3, ID: 7}),
			v4(packet.Packet{Status: packet.Fragment, TotalLen: 36, ID: 7, FragOff: 3, Proto: 6, L4Off: 20, PayloadOff: 20})},
		{"tcp fragment offset 1",
			raw(6, make([]byte, 8), ipo{FragOff: 1, MF: true}),
			v4(packet.Packet{Status: packet.Fragment, TotalLen: 28, FragOff: 1, MoreFrag: true, Proto: 6, L4Off: 20, PayloadOff: 20})},
		{"tcp truncated header",
			raw(6, []byte{0, 1, 0, 2, 0, 0, 0, 1, 0, 0}, ipo{}),
			v4(packet.Packet{Status: packet.TruncatedL4, TotalLen: 30, Proto: 6, L4Off: 20, PayloadOff: 30})},
		{"udp truncated header",
			raw(17, []byte{0, 1, 0, 2}, ipo{}),
			v4(packet.Packet{Status: packet.TruncatedL4, TotalLen: 24, Proto: 17, L4Off: 20, PayloadOff: 24})},
		{"icmp truncated header",
			raw(1, []byte{8, 0, 0, 0}, ipo{}),
			v4(packet.Packet{Status: packet.TruncatedL4, TotalLen: 24, Proto: 1, L4Off: 20, PayloadOff: 24})},
		{"tcp data offset below 5",
			tcp(tcpo{SrcPort: 1, DstPort: 2, Flags: packettest.SYN, Payload: []byte("abcd"), DataOffset: 16}),
			v4(packet.Packet{TotalLen: 44, Proto: 6, L4Off: 20, PayloadOff: 40, SrcPort: 1, DstPort: 2, TCPFlags: 2, L4Malformed: true})},
		{"tcp data offset past the end",
			tcp(tcpo{SrcPort: 1, DstPort: 2, Flags: packettest.SYN, DataOffset: 60}),
			v4(packet.Packet{TotalLen: 40, Proto: 6, L4Off: 20, PayloadOff: 40, SrcPort: 1, DstPort: 2, TCPFlags: 2, L4Malformed: true})},
		{"gre is opaque",
			raw(47, []byte{0, 0, 8, 0}, ipo{}),
			v4(packet.Packet{TotalLen: 24, Proto: 47, L4Off: 20, PayloadOff: 20})},
		{"sctp ports",
			raw(132, []byte{0x0b, 0xb8, 0x0f, 0xa0, 0, 0, 0, 1, 0, 0, 0, 0}, ipo{}),
			v4(packet.Packet{TotalLen: 32, Proto: 132, L4Off: 20, PayloadOff: 32, SrcPort: 3000, DstPort: 4000})},
		{"ttl 0 and reserved flag",
			mutate(udp(udpo{SrcPort: 1, DstPort: 2, IP: ipo{TTL: -1}}), func(b []byte) { b[6] |= 0x80; refix(b) }),
			func() packet.Packet {
				p := v4(packet.Packet{TotalLen: 28, Proto: 17, L4Off: 20, PayloadOff: 28, SrcPort: 1, DstPort: 2})
				p.TTL = 0
				return p
			}()},

		// BadL3: what ip_rcv drops before PREROUTING.
		{"empty", nil, packet.Packet{Status: packet.BadL3}},
		{"short", tcp(tcpo{})[:19], packet.Packet{Status: packet.BadL3}},
		{"version 5", mutate(tcp(tcpo{}), func(b []byte) { b[0] = 0x55; refix(b) }), packet.Packet{Status: packet.BadL3}},
		{"ihl 4", mutate(tcp(tcpo{}), func(b []byte) { b[0] = 0x44 }), packet.Packet{Status: packet.BadL3}},
		{"ihl beyond buffer", mutate(tcp(tcpo{}), func(b []byte) { b[0] = 0x4f }), packet.Packet{Status: packet.BadL3}},
		{"total length beyond buffer", udp(udpo{IP: ipo{TotalLen: 29}}), packet.Packet{Status: packet.BadL3}},
		{"total length below header", udp(udpo{IP: ipo{TotalLen: 19}}), packet.Packet{Status: packet.BadL3}},
		{"bad header checksum", udp(udpo{IP: ipo{BadChecksum: true}}), packet.Packet{Status: packet.BadL3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p packet.Packet
			st := p.Decode(tt.in)
			if st != p.Status {
				t.Fatalf("returned %v, Status %v", st, p.Status)
			}
			got := p
			got.Data = nil
			if st == packet.BadL3 {
				got = packet.Packet{Status: st} // only the status counts
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded\n got %+v\nwant %+v", got, tt.want)
			}
			if st != packet.BadL3 && len(p.Data) != p.TotalLen {
				t.Errorf("len(Data) = %d, TotalLen %d", len(p.Data), p.TotalLen)
			}
		})
	}
}

func TestDecodeIPv6(t *testing.T) {
	v6 := func(p packet.Packet) packet.Packet {
		p.Version, p.Src, p.Dst, p.TTL = 6, a61, a62, 64
		return p
	}
	tcp6 := packettest.TCP(tcpo{Src: "2001:db8::1", Dst: "2001:db8::2", SrcPort: 5, DstPort: 443, Flags: packettest.SYN, Seq: 9, Window: 100})
	withHBH := func(b []byte) []byte { // insert a hop-by-hop header before the TCP header
		out := slices.Clone(b[:40])
		out[6] = 0
		out[5] += 8
		return append(append(out, 6, 0, 1, 4, 0, 0, 0, 0), b[40:]...)
	}
	tests := []struct {
		name string
		in   []byte
		want packet.Packet
	}{
		{"tcp", tcp6, v6(packet.Packet{TotalLen: 60, HdrLen: 40, Proto: 6, L4Off: 40, PayloadOff: 60, SrcPort: 5, DstPort: 443, TCPFlags: 2, Seq: 9, Window: 100})},
		{"tcp behind hop-by-hop", withHBH(tcp6), v6(packet.Packet{TotalLen: 68, HdrLen: 48, Proto: 6, L4Off: 48, PayloadOff: 68, SrcPort: 5, DstPort: 443, TCPFlags: 2, Seq: 9, Window: 100})},
		{"traffic class and flow label", mutate(tcp6, func(b []byte) { b[0], b[1], b[2], b[3] = 0x6a, 0xb1, 0x23, 0x45 }),
			v6(packet.Packet{TOS: 0xab, FlowLabel: 0x12345, TotalLen: 60, HdrLen: 40, Proto: 6, L4Off: 40, PayloadOff: 60, SrcPort: 5, DstPort: 443, TCPFlags: 2, Seq: 9, Window: 100})},
		{"echo request", packettest.EchoRequest("2001:db8::1", "2001:db8::2", 77, 3, 10),
			v6(packet.Packet{TotalLen: 58, HdrLen: 40, Proto: 58, L4Off: 40, PayloadOff: 48, ICMPType: 128, ICMPID: 77, ICMPSeq: 3})},
		{"udp first fragment", packettest.UDP(udpo{Src: "2001:db8::1", Dst: "2001:db8::2", SrcPort: 1, DstPort: 2, Payload: make([]byte, 8), IP: ipo{MF: true, ID: 0x0203}}),
			v6(packet.Packet{TotalLen: 64, HdrLen: 48, FragHdrOff: 40, MoreFrag: true, ID: 0x0203, Proto: 17, L4Off: 48, PayloadOff: 56, SrcPort: 1, DstPort: 2})},
		{"non-first fragment", packettest.Raw(packettest.RawOpts{Src: "2001:db8::1", Dst: "2001:db8::2", Proto: 17, Payload: make([]byte, 8), IP: ipo{FragOff: 2}}),
			v6(packet.Packet{Status: packet.Fragment, TotalLen: 56, HdrLen: 48, FragHdrOff: 40, FragOff: 2, Proto: 17, L4Off: 48, PayloadOff: 48})},
		{"no next header", packettest.Raw(packettest.RawOpts{Src: "2001:db8::1", Dst: "2001:db8::2", Proto: 59}),
			v6(packet.Packet{TotalLen: 40, HdrLen: 40, Proto: 59, L4Off: 40, PayloadOff: 40})},
		{"extension header cut", mutate(withHBH(tcp6)[:48], func(b []byte) { b[4], b[5], b[41] = 0, 8, 3 }),
			v6(packet.Packet{Status: packet.TruncatedL4, TotalLen: 48, HdrLen: 40, Proto: 0, L4Off: 40, PayloadOff: 40})},
		{"tcp cut", packettest.Raw(packettest.RawOpts{Src: "2001:db8::1", Dst: "2001:db8::2", Proto: 6, Payload: make([]byte, 19)}),
			v6(packet.Packet{Status: packet.TruncatedL4, TotalLen: 59, HdrLen: 40, Proto: 6, L4Off: 40, PayloadOff: 59})},
		{"trailing bytes trimmed", append(slices.Clone(tcp6), 1, 2, 3),
			v6(packet.Packet{TotalLen: 60, HdrLen: 40, Proto: 6, L4Off: 40, PayloadOff: 60, SrcPort: 5, DstPort: 443, TCPFlags: 2, Seq: 9, Window: 100})},
		{"payload length beyond buffer", tcp6[:59], packet.Packet{Status: packet.BadL3}},
		{"short", tcp6[:39], packet.Packet{Status: packet.BadL3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p packet.Packet
			st := p.Decode(tt.in)
			got := p
			got.Data = nil
			if st == packet.BadL3 {
				got = packet.Packet{Status: st}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestDecodeResetsAndKeepsMetadata fills every field with junk and checks
// that Decode clears all L3/L4 fields (so a new field cannot be forgotten
// silently) and keeps the metadata.
func TestDecodeResetsAndKeepsMetadata(t *testing.T) {
	junk := packet.Packet{
		Data: []byte{1}, Link: []byte{2}, Version: 9, Status: packet.Fragment, HdrLen: 1, TotalLen: 1, TOS: 1, ID: 1,
		FragOff: 1, MoreFrag: true, DontFrag: true, TTL: 1, Proto: 1, Src: a1, Dst: a2, L4Off: 1, PayloadOff: 1,
		SrcPort: 1, DstPort: 1, TCPFlags: 1, Seq: 1, Ack: 1, Window: 1, ICMPType: 1, ICMPCode: 1, ICMPID: 1, ICMPSeq: 1,
		L4Malformed: true, L4Partial: true, FlowLabel: 1, FragHdrOff: 1,
		InIface: "eth0", OutIface: "eth1", Mark: 7, TimeNS: 8, UID: 9, GID: 10, HasOwner: true,
	}
	p := junk
	p.Decode([]byte{0x70})
	want := packet.Packet{Data: []byte{0x70}, Status: packet.BadL3, Link: junk.Link,
		InIface: "eth0", OutIface: "eth1", Mark: 7, TimeNS: 8, UID: 9, GID: 10, HasOwner: true}
	if p.Link == nil || len(p.Data) != 1 {
		t.Fatal("Data/Link wrong")
	}
	p.Data, p.Link, want.Data, want.Link = nil, nil, nil, nil
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("after Decode\n got %+v\nwant %+v", p, want)
	}
	p = junk
	p.Reset()
	if p.InIface != "" || p.Mark != 0 || p.Data != nil || p.Version != 0 {
		t.Fatal("Reset left fields set")
	}
}

func TestDecodeEmbedded(t *testing.T) {
	origUDP := udp(udpo{SrcPort: 5000, DstPort: 53, Payload: []byte("query")})
	origTCP := tcp(tcpo{SrcPort: 40000, DstPort: 80, Flags: packettest.SYN, Seq: 0x01020304, Options: packettest.MSS(1460)})
	origEcho := packettest.EchoRequest("10.0.0.1", "10.0.0.2", 42, 1, 32)
	errFor := func(orig []byte, quote int) []byte {
		return packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.0.0.2", Type: 3, Code: 3, Original: orig, QuoteLen: quote})
	}
	inner := func(p packet.Packet) packet.Packet {
		p.Version, p.Src, p.Dst, p.TTL, p.HdrLen, p.L4Off = 4, a1, a2, 64, 20, 20
		return p
	}
	tests := []struct {
		name  string
		outer []byte
		ok    bool
		want  packet.Packet
	}{
		{"udp whole", errFor(origUDP, 0), true,
			inner(packet.Packet{TotalLen: 33, Proto: 17, PayloadOff: 28, SrcPort: 5000, DstPort: 53})},
		{"udp 8 bytes, length not checked", errFor(origUDP, 28), true,
			inner(packet.Packet{TotalLen: 33, Proto: 17, PayloadOff: 28, SrcPort: 5000, DstPort: 53})},
		{"tcp 8 bytes", errFor(origTCP, 28), true,
			inner(packet.Packet{TotalLen: 44, Proto: 6, PayloadOff: 28, SrcPort: 40000, DstPort: 80, Seq: 0x01020304, L4Partial: true})},
		{"tcp cut in options", errFor(origTCP, 42), true,
			inner(packet.Packet{TotalLen: 44, Proto: 6, PayloadOff: 42, SrcPort: 40000, DstPort: 80, Seq: 0x01020304, TCPFlags: 2})},
		{"tcp 4 bytes", errFor(origTCP, 24), false,
			inner(packet.Packet{Status: packet.TruncatedL4, TotalLen: 44, Proto: 6, PayloadOff: 24})},
		{"echo", errFor(origEcho, 28), true,
			inner(packet.Packet{TotalLen: 60, Proto: 1, PayloadOff: 28, ICMPType: 8, ICMPID: 42, ICMPSeq: 1})},
		{"inner non-first fragment", errFor(raw(17, make([]byte, 8), ipo{FragOff: 1}), 0), false,
			inner(packet.Packet{Status: packet.Fragment, TotalLen: 28, FragOff: 1, Proto: 17, PayloadOff: 20})},
		{"inner ip header cut", errFor(origUDP, 19), false, packet.Packet{Status: packet.BadL3}},
		{"not an error", origEcho, false, packet.Packet{Status: packet.BadL3}},
		{"not icmp", origUDP, false, packet.Packet{Status: packet.BadL3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var outer, dst packet.Packet
			dst.Mark = 5
			if st := outer.Decode(tt.outer); st != packet.OK {
				t.Fatalf("outer status %v", st)
			}
			if ok := outer.DecodeEmbedded(&dst); ok != tt.ok {
				t.Fatalf("DecodeEmbedded = %v, want %v", ok, tt.ok)
			}
			if dst.Mark != 5 {
				t.Fatal("metadata of dst changed")
			}
			got := dst
			got.Data, got.Mark = nil, 0
			if got.Status == packet.BadL3 {
				got = packet.Packet{Status: packet.BadL3}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("inner\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeEmbeddedIPv6(t *testing.T) {
	orig := packettest.UDP(udpo{Src: "2001:db8::1", Dst: "2001:db8::2", SrcPort: 7, DstPort: 9, Payload: []byte{1}})
	e := packettest.ICMPError(packettest.ICMPErrorOpts{Src: "2001:db8::2", Type: 1, Code: 4, Original: orig})
	var outer, dst packet.Packet
	if outer.Decode(e) != packet.OK || outer.ICMPType != 1 || outer.ICMPCode != 4 {
		t.Fatalf("outer %+v", outer)
	}
	if !outer.DecodeEmbedded(&dst) || dst.Version != 6 || dst.Src != a61 || dst.Dst != a62 || dst.Proto != 17 || dst.SrcPort != 7 || dst.DstPort != 9 {
		t.Fatalf("inner %+v", dst)
	}
	// An IPv4 datagram quoted in an ICMPv6 error is not a tuple.
	bad := packettest.ICMP(packettest.ICMPOpts{Src: "2001:db8::2", Dst: "2001:db8::1", Type: 1, Payload: origUDPv4()})
	outer.Decode(bad)
	if outer.DecodeEmbedded(&dst) || dst.Status != packet.BadL3 {
		t.Fatal("mixed-family quote accepted")
	}
}

func origUDPv4() []byte { return udp(udpo{SrcPort: 1, DstPort: 2}) }
