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

// seeds returns a spread of valid packets to start fuzzing from.
func seeds() [][]byte {
	syn := packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN,
		Options: slices.Concat(packettest.MSS(1460), packettest.SACKPermitted(), packettest.WScale(7)), IP: packettest.IP{Options: []byte{1, 1, 1, 1}}})
	u := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2, Payload: []byte("x")})
	s := [][]byte{
		syn, u,
		packettest.EchoRequest("10.0.0.1", "10.0.0.2", 1, 1, 8),
		packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.0.0.2", Type: 3, Code: 3, Original: u}),
		packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.0.0.2", Type: 11, Original: syn, QuoteLen: 28}),
		packettest.Raw(packettest.RawOpts{Src: "10.0.0.1", Dst: "10.0.0.2", Proto: 6, Payload: make([]byte, 8), IP: packettest.IP{FragOff: 1}}),
		packettest.TCP(packettest.TCPOpts{Src: "2001:db8::1", Dst: "2001:db8::2", SrcPort: 1, DstPort: 2, Flags: packettest.ACK}),
		packettest.UDP(packettest.UDPOpts{Src: "2001:db8::1", Dst: "2001:db8::2", SrcPort: 1, DstPort: 2, IP: packettest.IP{MF: true}}),
		packettest.ICMPError(packettest.ICMPErrorOpts{Src: "2001:db8::2", Type: 1, Original: packettest.EchoRequest("2001:db8::1", "2001:db8::2", 1, 1, 4)}),
		{0x45}, {0x60}, nil,
	}
	return s
}

// checkInvariants fails when the decoded fields point outside the buffer or
// contradict each other; it also exercises every accessor and rewrite.
func checkInvariants(t *testing.T, p *packet.Packet, in []byte, embedded bool) {
	t.Helper()
	if len(p.Data) > len(in) || (len(p.Data) > 0 && &p.Data[0] != &in[0]) {
		t.Fatalf("Data is not a prefix of the input")
	}
	if p.Status == packet.BadL3 {
		return
	}
	minHdr := header.IPv4MinLen
	if p.Version == 6 {
		minHdr = header.IPv6Len
	} else if p.Version != 4 {
		t.Fatalf("version %d with status %v", p.Version, p.Status)
	}
	if !(minHdr <= p.HdrLen && p.HdrLen <= p.L4Off && p.L4Off <= p.PayloadOff && p.PayloadOff <= len(p.Data)) {
		t.Fatalf("offsets out of order: hdr %d l4 %d payload %d len %d", p.HdrLen, p.L4Off, p.PayloadOff, len(p.Data))
	}
	if !embedded && p.TotalLen != len(p.Data) {
		t.Fatalf("TotalLen %d, len(Data) %d", p.TotalLen, len(p.Data))
	}
	if p.Src.Is4() != (p.Version == 4) || p.Dst.Is4() != (p.Version == 4) {
		t.Fatal("address family differs from version")
	}
	if p.Status == packet.OK {
		switch p.Proto {
		case header.ProtoTCP, header.ProtoUDP:
			if p.L4Off+8 > len(p.Data) {
				t.Fatal("ports decoded without 8 bytes of L4")
			}
		}
	}
	if tcp := p.TCP(); tcp != nil {
		if o := p.TCPOptions(); o != nil {
			_ = header.ParseTCPOptions(o)
			tcp.FindMSS()
			tcp.SetMSS(536)
			tcp.HasOption(8)
		}
	}
	_, _, _, _ = p.UDP(), p.ICMP(), p.IPOptions(), p.Payload()
	buf := make([]byte, header.ICMPErrorMaxLen)
	p.WriteTCPReset(buf, 64)
	p.WriteICMPError(buf, 3, 3, 0, netip.MustParseAddr("10.0.0.9"), 1, 64)
	p.SetTTL(1)
	p.SetTOS(4)
	p.SetSrcPort(1)
	p.SetDstPort(2)
	p.SetICMPID(3)
	if p.Version == 4 {
		p.SetSrc(netip.MustParseAddr("10.0.0.9"))
		if !header.IPv4(p.Data).ChecksumValid() && !embedded {
			t.Fatal("rewrites broke the IPv4 header checksum")
		}
	} else {
		p.SetDst(netip.MustParseAddr("::9"))
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		in = slices.Clone(in) // the rewrites in checkInvariants edit bytes
		var p, q packet.Packet
		st := p.Decode(in)
		if st != p.Status {
			t.Fatal("returned status differs from field")
		}
		q.Decode(in)
		if !samePacket(&p, &q) {
			t.Fatal("decode not deterministic")
		}
		var e packet.Packet
		if p.DecodeEmbedded(&e) {
			checkInvariants(t, &e, e.Data, true)
		}
		p.Decode(in)
		checkInvariants(t, &p, in, false)
	})
}

func FuzzDecodeEmbedded(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, quote []byte, v6 bool) {
		// Wrap the fuzzed bytes as the quote of a valid ICMP error, so the
		// fuzzer spends its time on the inner decoder.
		src, dst := "10.0.0.2", "10.0.0.1"
		if v6 {
			src, dst = "2001:db8::2", "2001:db8::1"
		}
		e := packettest.ICMPError(packettest.ICMPErrorOpts{Src: src, Dst: dst, Type: 3, Original: quote, QuoteLen: min(len(quote), 1000)})
		var outer, in packet.Packet
		if outer.Decode(e) != packet.OK {
			t.Fatalf("outer error not OK: %v", outer.Status)
		}
		ok := outer.DecodeEmbedded(&in)
		if ok != (in.Status == packet.OK) {
			t.Fatal("return value differs from Status")
		}
		inner := outer.Data[outer.L4Off+8:]
		if len(in.Data) != len(inner) || (len(inner) > 0 && &in.Data[0] != &inner[0]) {
			t.Fatal("embedded Data is not the quote")
		}
		if ok && (in.Proto == header.ProtoTCP || in.Proto == header.ProtoUDP || in.Version == 4 && in.Proto == header.ProtoICMP || in.Version == 6 && in.Proto == header.ProtoICMPv6) &&
			in.L4Off+8 > len(in.Data) {
			t.Fatal("OK without 8 bytes of L4")
		}
		checkInvariants(t, &in, inner, true)
	})
}

func samePacket(a, b *packet.Packet) bool {
	x, y := *a, *b
	x.Data, y.Data = nil, nil
	return reflect.DeepEqual(x, y)
}
