package header_test

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// l4Valid recomputes the TCP/UDP checksum of an IPv4 packet without options
// from scratch: the sum over pseudo-header and segment must be 0xffff.
func l4Valid(t *testing.T, pkt []byte) bool {
	t.Helper()
	ip := header.IPv4(pkt)
	hl := ip.HeaderLen()
	seg := pkt[hl:ip.TotalLen()]
	ps := header.PseudoHeaderSum(pkt[12:16], pkt[16:20], ip.Protocol(), len(seg))
	return header.Sum(seg, ps) == 0xffff
}

func TestIPv4View(t *testing.T) {
	pkt := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 53, DstPort: 1053,
		Payload: []byte("hi"), IP: packettest.IP{TTL: 7, TOS: 0x10, ID: 0x1234, DF: true,
			Options: []byte{header.IPv4OptNOP, header.IPv4OptRA, 4, 0, 0}}})
	h := header.IPv4(pkt)
	if h.Version() != 4 || h.HeaderLen() != 28 || h.TOS() != 0x10 || h.TotalLen() != 38 || h.ID() != 0x1234 ||
		!h.DontFragment() || h.MoreFragments() || h.FragOff() != 0 || h.TTL() != 7 || h.Protocol() != header.ProtoUDP {
		t.Fatalf("fields wrong: % x", pkt[:28])
	}
	if h.SrcAddr() != netip.MustParseAddr("10.0.0.1") || h.DstAddr() != netip.MustParseAddr("10.0.0.2") {
		t.Fatal("addresses wrong")
	}
	if !bytes.Equal(h.Options(), []byte{1, 148, 4, 0, 0, 0, 0, 0}) {
		t.Fatalf("options % x", h.Options())
	}
	if !h.ChecksumValid() || !l4Valid(t, pkt) {
		t.Fatal("built packet has bad checksums")
	}
	it := header.NewOptionIter(h.Options())
	kind, data, ok := it.Next()
	if !ok || kind != header.IPv4OptRA || !bytes.Equal(data, []byte{0, 0}) || it.Offset() != 1 {
		t.Fatalf("option iter: kind %d data %v ok %v off %d", kind, data, ok, it.Offset())
	}
	if _, _, ok := it.Next(); ok || it.Malformed() {
		t.Fatal("expected clean end at EOL")
	}
}

func TestIPv4Rewrites(t *testing.T) {
	pkt := packettest.TCP(packettest.TCPOpts{Src: "192.168.1.10", Dst: "8.8.8.8", SrcPort: 40000, DstPort: 443,
		Flags: packettest.ACK | packettest.PSH, Seq: 1, Ack: 2, Window: 500, Payload: []byte("hello, world!"),
		IP: packettest.IP{TTL: 64, Options: []byte{1, 1, 1, 1}}})
	h := header.IPv4(pkt)
	tcp := header.TCP(pkt[h.HeaderLen():])
	h.SetTTL(63)
	h.SetTOS(0xb8)
	old := header.UpdateIPv4Addr(h, header.IPv4SrcOff, [4]byte{203, 0, 113, 5})
	if old != [4]byte{192, 168, 1, 10} {
		t.Fatalf("old address %v", old)
	}
	if !header.UpdateL4ChecksumForAddr(header.ProtoTCP, tcp, old[:], []byte{203, 0, 113, 5}) {
		t.Fatal("TCP checksum not updated")
	}
	tcp.SetSrcPort(61000)
	tcp.SetDstPort(8443)
	want := packettest.TCP(packettest.TCPOpts{Src: "203.0.113.5", Dst: "8.8.8.8", SrcPort: 61000, DstPort: 8443,
		Flags: packettest.ACK | packettest.PSH, Seq: 1, Ack: 2, Window: 500, Payload: []byte("hello, world!"),
		IP: packettest.IP{TTL: 63, TOS: 0xb8, Options: []byte{1, 1, 1, 1}}})
	if !bytes.Equal(pkt, want) {
		t.Fatalf("rewritten packet differs from a freshly built one:\n got % x\nwant % x", pkt, want)
	}
	if h.TTL() != 63 || h.TOS() != 0xb8 {
		t.Fatal("fields not set")
	}
}

func TestUDPRewritesKeepZeroChecksum(t *testing.T) {
	for _, noCsum := range []bool{false, true} {
		pkt := packettest.UDP(packettest.UDPOpts{Src: "10.1.1.1", Dst: "10.2.2.2", SrcPort: 5000, DstPort: 53, Payload: []byte{1, 2, 3}, NoChecksum: noCsum})
		u := header.UDP(pkt[20:])
		old := header.UpdateIPv4Addr(header.IPv4(pkt), header.IPv4DstOff, [4]byte{10, 3, 3, 3})
		header.UpdateL4ChecksumForAddr(header.ProtoUDP, u, old[:], []byte{10, 3, 3, 3})
		u.SetDstPort(5353)
		u.SetSrcPort(1)
		if noCsum {
			if u.Checksum() != 0 {
				t.Fatal("absent UDP checksum was filled in")
			}
			continue
		}
		want := packettest.UDP(packettest.UDPOpts{Src: "10.1.1.1", Dst: "10.3.3.3", SrcPort: 1, DstPort: 5353, Payload: []byte{1, 2, 3}})
		if !bytes.Equal(pkt, want) {
			t.Fatalf("got % x\nwant % x", pkt, want)
		}
		if u.Length() != 11 {
			t.Fatalf("length %d", u.Length())
		}
	}
}

func TestUpdateL4ChecksumForAddrRefuses(t *testing.T) {
	icmp := packettest.EchoRequest("10.0.0.1", "10.0.0.2", 1, 1, 8)
	before := slices.Clone(icmp)
	if header.UpdateL4ChecksumForAddr(header.ProtoICMP, icmp[20:], []byte{10, 0, 0, 1}, []byte{10, 0, 0, 9}) {
		t.Fatal("ICMPv4 has no pseudo-header; must report false")
	}
	if header.UpdateL4ChecksumForAddr(header.ProtoTCP, make([]byte, 8), []byte{1, 2, 3, 4}, []byte{5, 6, 7, 8}) {
		t.Fatal("an 8-byte TCP quote has no checksum field; must report false")
	}
	if !bytes.Equal(icmp, before) {
		t.Fatal("refused update changed bytes")
	}
}

func TestTCPOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []byte
		want header.TCPOptions
	}{
		{"linux syn", slices.Concat(packettest.MSS(1460), packettest.SACKPermitted(), packettest.Timestamps(11, 0), []byte{packettest.NOP}, packettest.WScale(7)),
			header.TCPOptions{MSS: 1460, HasMSS: true, SACKPermitted: true, HasTimestamps: true, TSVal: 11, WindowScale: 7, HasWScale: true}},
		{"none", nil, header.TCPOptions{}},
		{"eol stops", []byte{0, 2, 4, 5, 0xb4}, header.TCPOptions{}},
		{"zero length", []byte{2, 0, 5, 0xb4}, header.TCPOptions{Malformed: true}},
		{"past end", []byte{1, 1, 8, 10, 0, 0}, header.TCPOptions{Malformed: true}},
		{"mss wrong size ignored", []byte{2, 3, 5, 3, 3, 7}, header.TCPOptions{WindowScale: 7, HasWScale: true}},
		{"unknown kind skipped", []byte{30, 4, 1, 2, 4, 2}, header.TCPOptions{SACKPermitted: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := header.ParseTCPOptions(tt.opts); got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestTCPHasOption(t *testing.T) {
	opts := slices.Concat([]byte{1}, packettest.MSS(1460), []byte{1, 1}, packettest.WScale(2))
	pkt := packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", Flags: packettest.SYN, Options: opts})
	tcp := header.TCP(pkt[20:])
	for kind, want := range map[uint8]bool{0: true /* zero padding */, 1: true, 2: true, 3: true, 4: false, 8: false, 5: false} {
		if got := tcp.HasOption(kind); got != want {
			t.Errorf("HasOption(%d) = %v, want %v", kind, got, want)
		}
	}
}

func TestSetMSS(t *testing.T) {
	for _, lead := range [][]byte{nil, {1}, {1, 1}, {1, 1, 1}} {
		for _, payload := range [][]byte{nil, []byte("x"), []byte("data")} {
			opts := slices.Concat(lead, packettest.MSS(1460))
			pkt := packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN, Options: opts, Payload: payload})
			tcp := header.TCP(pkt[20:])
			off, mss, ok := tcp.FindMSS()
			if !ok || mss != 1460 || off != 20+len(lead) {
				t.Fatalf("lead %d: FindMSS = %d %d %v", len(lead), off, mss, ok)
			}
			if !tcp.SetMSS(1360) {
				t.Fatal("SetMSS failed")
			}
			if _, mss, _ := tcp.FindMSS(); mss != 1360 {
				t.Fatalf("mss now %d", mss)
			}
			if !l4Valid(t, pkt) {
				t.Fatalf("lead %d payload %q: checksum wrong after SetMSS", len(lead), payload)
			}
		}
	}
	noMSS := packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", Flags: packettest.SYN, Options: packettest.WScale(3)})
	if header.TCP(noMSS[20:]).SetMSS(1000) {
		t.Fatal("SetMSS without an MSS option must report false")
	}
}

func TestICMPView(t *testing.T) {
	pkt := packettest.EchoRequest("10.0.0.1", "10.0.0.2", 0x4242, 7, 56)
	c := header.ICMPv4(pkt[20:])
	if c.Type() != header.ICMPv4Echo || c.Code() != 0 || c.ID() != 0x4242 || c.Seq() != 7 || len(c.Payload()) != 56 {
		t.Fatal("echo fields wrong")
	}
	if c.CalculateChecksum(0) != c.Checksum() {
		t.Fatal("echo checksum wrong")
	}
	c.SetID(999)
	if c.CalculateChecksum(0) != c.Checksum() || c.ID() != 999 {
		t.Fatal("SetID broke the checksum")
	}
	for ty, want := range map[uint8]bool{0: false, 3: true, 4: true, 5: true, 8: false, 11: true, 12: true, 13: false, 30: false} {
		if header.ICMPv4IsError(ty) != want {
			t.Errorf("ICMPv4IsError(%d) != %v", ty, want)
		}
	}
}

func TestWalkIPv6(t *testing.T) {
	base := packettest.TCP(packettest.TCPOpts{Src: "2001:db8::1", Dst: "2001:db8::2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN})
	tcp := base[40:]
	hbh := []byte{0, 0, 1, 4, 0, 0, 0, 0}            // next: routing; pad option
	rt := []byte{0, 0, 0, 0, 0, 0, 0, 0}             // next: filled below
	ah := []byte{0, 1, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0} // AH, (1+2)*4 = 12 bytes
	mk := func(first uint8, chain ...[]byte) []byte {
		p := slices.Clone(base[:40])
		p[6] = first
		for _, c := range chain {
			p = append(p, c...)
		}
		return append(p, tcp...)
	}
	hbh[0] = header.ProtoRouting
	rt[0] = header.ProtoAH
	ah[0] = header.ProtoTCP
	got := header.WalkIPv6(mk(header.ProtoHopByHop, hbh, rt, ah))
	if got.Proto != header.ProtoTCP || got.Off != 40+8+8+12 || got.Truncated || got.FragHdrOff != 0 {
		t.Fatalf("chain: %+v", got)
	}
	frag := []byte{header.ProtoTCP, 0, 0, 0, 0, 0, 0, 9}
	got = header.WalkIPv6(mk(header.ProtoFragment, frag))
	if got.Proto != header.ProtoTCP || got.Off != 48 || got.FragHdrOff != 40 || got.FragOff != 0 || got.FragID != 9 {
		t.Fatalf("first fragment: %+v", got)
	}
	frag[2], frag[3] = 0, 0x19 // offset 3 (24 bytes), MF
	got = header.WalkIPv6(mk(header.ProtoFragment, frag))
	if got.Proto != header.ProtoTCP || got.FragOff != 3 || !got.MoreFrag {
		t.Fatalf("later fragment: %+v", got)
	}
	cut := mk(header.ProtoHopByHop, hbh, rt, ah)[:40+8+4]
	got = header.WalkIPv6(cut)
	if !got.Truncated || got.Proto != header.ProtoRouting || got.Off != 48 {
		t.Fatalf("truncated: %+v", got)
	}
	esp := slices.Clone(base)
	esp[6] = header.ProtoESP
	if got := header.WalkIPv6(esp); got.Proto != header.ProtoESP || got.Off != 40 {
		t.Fatalf("esp: %+v", got)
	}
}

func TestIPv6View(t *testing.T) {
	pkt := packettest.UDP(packettest.UDPOpts{Src: "2001:db8::1", Dst: "ff02::1", SrcPort: 546, DstPort: 547,
		Payload: []byte("abc"), IP: packettest.IP{TTL: 1, TOS: 0xab}})
	h := header.IPv6(pkt)
	if h.Version() != 6 || h.TrafficClass() != 0xab || h.PayloadLen() != 11 || h.NextHeader() != header.ProtoUDP || h.HopLimit() != 1 ||
		h.SrcAddr() != netip.MustParseAddr("2001:db8::1") || h.DstAddr() != netip.MustParseAddr("ff02::1") {
		t.Fatalf("fields wrong: % x", pkt[:40])
	}
	h.SetTrafficClass(0x12)
	h.SetHopLimit(9)
	if h.TrafficClass() != 0x12 || h.HopLimit() != 9 || h.Version() != 6 {
		t.Fatal("setters wrong")
	}
	u := header.UDP(pkt[40:])
	if u.Checksum() != u.CalculateChecksum(header.PseudoHeaderSum(pkt[8:24], pkt[24:40], header.ProtoUDP, len(u))) {
		t.Fatal("IPv6 UDP checksum wrong")
	}
}

func TestWriteIPv4TCPReset(t *testing.T) {
	// The three cases measured on the real kernel (spec §8.3).
	tests := []struct {
		name      string
		in        packettest.TCPOpts
		flags     uint8
		seq, ack  uint32
		inPayload int
	}{
		{"syn", packettest.TCPOpts{Flags: packettest.SYN, Seq: 1000}, header.TCPFlagRST | header.TCPFlagACK, 0, 1001, 0},
		{"ack", packettest.TCPOpts{Flags: packettest.ACK, Seq: 1, Ack: 5555}, header.TCPFlagRST, 5555, 0, 0},
		{"fin+psh with data", packettest.TCPOpts{Flags: packettest.FIN | packettest.PSH, Seq: 77, Payload: make([]byte, 10)}, header.TCPFlagRST | header.TCPFlagACK, 0, 88, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.in
			o.Src, o.Dst, o.SrcPort, o.DstPort, o.Window = "10.99.0.1", "10.99.0.2", 40000, 22, 1000
			o.Options = packettest.MSS(1460)
			o.IP = packettest.IP{TOS: 0x10, TTL: 50, ID: 77, Options: []byte{1, 1, 1, 1}}
			in := packettest.TCP(o)
			ip := header.IPv4(in)
			buf := make([]byte, 64)
			n := header.WriteIPv4TCPReset(buf, ip, header.TCP(in[ip.HeaderLen():]), tt.inPayload, 64)
			if n != 40 {
				t.Fatalf("n = %d", n)
			}
			want := packettest.TCP(packettest.TCPOpts{Src: "10.99.0.2", Dst: "10.99.0.1", SrcPort: 22, DstPort: 40000,
				Flags: tt.flags, Seq: tt.seq, Ack: tt.ack, IP: packettest.IP{DF: true}})
			if !bytes.Equal(buf[:n], want) {
				t.Fatalf("got  % x\nwant % x", buf[:n], want)
			}
		})
	}
	if header.WriteIPv4TCPReset(make([]byte, 39), make([]byte, 20), make([]byte, 20), 0, 64) != 0 {
		t.Fatal("short buffer must give 0")
	}
}

func TestWriteIPv4ICMPError(t *testing.T) {
	tests := []struct {
		name    string
		orig    []byte
		wantLen int
	}{
		// [obs] 60-byte SYN -> 88-byte error; 1028-byte UDP -> 576-byte error.
		{"syn", packettest.TCP(packettest.TCPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN,
			Options: slices.Concat(packettest.MSS(1460), packettest.SACKPermitted(), packettest.Timestamps(1, 0), []byte{1}, packettest.WScale(7)),
			IP:      packettest.IP{TOS: 0xff}}), 88},
		{"big udp", packettest.UDP(packettest.UDPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 1, DstPort: 2, Payload: make([]byte, 1000)}), 576},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := make([]byte, 600)
			if header.WriteIPv4ICMPError(buf[:header.ICMPv4ErrorLen(len(tt.orig))-1], tt.orig, 3, 3, 0, [4]byte{10, 99, 0, 2}, 5, 64) != 0 {
				t.Fatal("short buffer must give 0")
			}
			n := header.WriteIPv4ICMPError(buf, tt.orig, 3, 3, 0, [4]byte{10, 99, 0, 2}, 5, 64)
			if n != tt.wantLen || n != header.ICMPv4ErrorLen(len(tt.orig)) {
				t.Fatalf("n = %d, want %d", n, tt.wantLen)
			}
			tos := header.IPv4(tt.orig).TOS()&0x1e | 0xc0
			want := packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.99.0.2", Type: 3, Code: 3, Original: tt.orig,
				IP: packettest.IP{TOS: tos, ID: 5}})
			if !bytes.Equal(buf[:n], want) {
				t.Fatalf("got  % x\nwant % x", buf[:n], want)
			}
		})
	}
}
