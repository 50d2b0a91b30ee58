package packet_test

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// TestRewriteEqualsRebuild rewrites addresses, ports, TTL, TOS and ICMP ids
// in place and checks the bytes (checksums included) equal a packet built
// from scratch with the new values.
func TestRewriteEqualsRebuild(t *testing.T) {
	payload := []byte("some payload bytes")
	for _, fam := range []struct{ s, d, ns, nd string }{
		{"10.0.0.1", "10.0.0.2", "192.0.2.7", "198.51.100.9"},
		{"2001:db8::1", "2001:db8::2", "2001:db8:1::7", "fd00::9"},
	} {
		builds := map[string]func(s, d string, sp, dp uint16, ttl int, tos uint8) []byte{
			"tcp": func(s, d string, sp, dp uint16, ttl int, tos uint8) []byte {
				return packettest.TCP(packettest.TCPOpts{Src: s, Dst: d, SrcPort: sp, DstPort: dp, Flags: packettest.ACK, Seq: 1, Ack: 2, Window: 3,
					Options: packettest.Timestamps(5, 6), Payload: payload, IP: packettest.IP{TTL: ttl, TOS: tos}})
			},
			"udp": func(s, d string, sp, dp uint16, ttl int, tos uint8) []byte {
				return packettest.UDP(packettest.UDPOpts{Src: s, Dst: d, SrcPort: sp, DstPort: dp, Payload: payload, IP: packettest.IP{TTL: ttl, TOS: tos}})
			},
			"echo": func(s, d string, sp, _ uint16, ttl int, tos uint8) []byte {
				ty := uint8(8)
				if netip.MustParseAddr(s).Is6() {
					ty = 128
				}
				return packettest.ICMP(packettest.ICMPOpts{Src: s, Dst: d, Type: ty, ID: sp, Seq: 1, Payload: payload, IP: packettest.IP{TTL: ttl, TOS: tos}})
			},
		}
		for name, build := range builds {
			t.Run(name+"/"+fam.s, func(t *testing.T) {
				pkt := build(fam.s, fam.d, 1000, 2000, 64, 0)
				var p packet.Packet
				if p.Decode(pkt) != packet.OK {
					t.Fatal("decode")
				}
				if !p.SetSrc(netip.MustParseAddr(fam.ns)) || !p.SetDst(netip.MustParseAddr(fam.nd)) {
					t.Fatal("SetSrc/SetDst refused")
				}
				if name == "echo" {
					if !p.SetICMPID(3000) || p.SetSrcPort(1) {
						t.Fatal("SetICMPID refused or SetSrcPort accepted on ICMP")
					}
				} else if !p.SetSrcPort(3000) || !p.SetDstPort(4000) {
					t.Fatal("SetSrcPort/SetDstPort refused")
				}
				p.SetTTL(17)
				p.SetTOS(0x28)
				want := build(fam.ns, fam.nd, 3000, 4000, 17, 0x28)
				if !bytes.Equal(p.Data, want) {
					t.Fatalf("rewritten\n got % x\nwant % x", p.Data, want)
				}
				var q packet.Packet
				q.Decode(want)
				if p.Src != q.Src || p.Dst != q.Dst || p.SrcPort != q.SrcPort || p.DstPort != q.DstPort || p.TTL != q.TTL || p.TOS != q.TOS || p.ICMPID != q.ICMPID {
					t.Fatalf("struct fields not updated:\n got %+v\nwant %+v", p, q)
				}
			})
		}
	}
}

func TestRewriteRefusals(t *testing.T) {
	var p packet.Packet
	p.Decode(packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2}))
	before := slices.Clone(p.Data)
	if p.SetSrc(netip.MustParseAddr("2001:db8::1")) || p.SetDst(netip.Addr{}) {
		t.Fatal("wrong-family address accepted")
	}
	if p.SetICMPID(1) {
		t.Fatal("SetICMPID on UDP accepted")
	}
	if !bytes.Equal(before, p.Data) {
		t.Fatal("refused rewrite changed bytes")
	}
	p.Decode(packettest.ICMP(packettest.ICMPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", Type: 3, Code: 1, Payload: make([]byte, 28)}))
	if p.SetICMPID(1) {
		t.Fatal("SetICMPID on an error accepted")
	}
	// A non-first fragment has no L4 header: only the IP header changes.
	frag := packettest.Raw(packettest.RawOpts{Src: "10.0.0.1", Dst: "10.0.0.2", Proto: 6, Payload: make([]byte, 24), IP: packettest.IP{FragOff: 10}})
	p.Decode(frag)
	if !p.SetDst(netip.MustParseAddr("10.9.9.9")) || p.SetDstPort(5) {
		t.Fatal("fragment rewrite: SetDst refused or SetDstPort accepted")
	}
	if !bytes.Equal(p.Data[20:], make([]byte, 24)) || !header.IPv4(p.Data).ChecksumValid() {
		t.Fatal("fragment data touched or IP checksum wrong")
	}
}

// TestRewriteEmbedded is NAT's reverse translation of an ICMP error: the
// quoted UDP datagram's source is rewritten through the embedded view; the
// quote must equal one of a datagram built with that source.
func TestRewriteEmbedded(t *testing.T) {
	mk := func(src string) []byte {
		return packettest.UDP(packettest.UDPOpts{Src: src, Dst: "10.0.0.2", SrcPort: 1234, DstPort: 53, Payload: []byte("q")})
	}
	e := packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.0.0.2", Type: 3, Code: 3, Original: mk("192.0.2.1")})
	var outer, in packet.Packet
	outer.Decode(e)
	if !outer.DecodeEmbedded(&in) {
		t.Fatal("DecodeEmbedded")
	}
	if !in.SetSrc(netip.MustParseAddr("10.0.0.1")) || !in.SetSrcPort(4321) {
		t.Fatal("rewrite refused")
	}
	want := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 4321, DstPort: 53, Payload: []byte("q")})
	if !bytes.Equal(in.Data, want) {
		t.Fatalf("quote\n got % x\nwant % x", in.Data, want)
	}
	// TCP quote with only 8 bytes: ports change, no checksum field to fix.
	syn := packettest.TCP(packettest.TCPOpts{Src: "192.0.2.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN})
	e = packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.0.0.2", Type: 3, Code: 1, Original: syn, QuoteLen: 28})
	outer.Decode(e)
	if !outer.DecodeEmbedded(&in) || !in.L4Partial {
		t.Fatal("partial TCP quote")
	}
	if !in.SetDstPort(8080) || in.Data[22] != 0x1f || in.Data[23] != 0x90 || !in.SetSrc(netip.MustParseAddr("10.0.0.1")) {
		t.Fatal("partial rewrite")
	}
	if !header.IPv4(in.Data).ChecksumValid() {
		t.Fatal("inner IP checksum not patched")
	}
}

func TestWriteReplies(t *testing.T) {
	var p packet.Packet
	p.Decode(packettest.TCP(packettest.TCPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 5, DstPort: 22, Flags: packettest.FIN | packettest.PSH, Seq: 77, Payload: make([]byte, 10)}))
	buf := make([]byte, header.ICMPErrorMaxLen)
	n := p.WriteTCPReset(buf, 64)
	want := packettest.TCP(packettest.TCPOpts{Src: "10.99.0.2", Dst: "10.99.0.1", SrcPort: 22, DstPort: 5, Flags: packettest.RST | packettest.ACK, Ack: 88, IP: packettest.IP{DF: true}})
	if !bytes.Equal(buf[:n], want) {
		t.Fatalf("RST\n got % x\nwant % x", buf[:n], want)
	}
	n = p.WriteICMPError(buf, 3, 3, 0, netip.MustParseAddr("10.99.0.2"), 9, 64)
	want = packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.99.0.2", Type: 3, Code: 3, Original: p.Data, IP: packettest.IP{TOS: 0xc0, ID: 9}})
	if !bytes.Equal(buf[:n], want) {
		t.Fatalf("ICMP error\n got % x\nwant % x", buf[:n], want)
	}
	p.Decode(packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2"}))
	if p.WriteTCPReset(buf, 64) != 0 {
		t.Fatal("RST for UDP")
	}
	if p.WriteICMPError(buf, 3, 3, 0, netip.MustParseAddr("::1"), 0, 64) != 0 {
		t.Fatal("IPv6 source accepted for an IPv4 error")
	}
}

func TestAccessors(t *testing.T) {
	var p packet.Packet
	opts := packettest.MSS(1400)
	p.Decode(packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", Flags: packettest.SYN, Options: opts, Payload: []byte("xy"),
		IP: packettest.IP{Options: []byte{1, 1, 1, 0}}}))
	if !bytes.Equal(p.IPOptions(), []byte{1, 1, 1, 0}) || !bytes.Equal(p.TCPOptions(), opts) || string(p.Payload()) != "xy" {
		t.Fatalf("options/payload: % x / % x / %q", p.IPOptions(), p.TCPOptions(), p.Payload())
	}
	if p.TCP() == nil || p.UDP() != nil || p.ICMP() != nil || p.IPv4() == nil || p.IPv6() != nil {
		t.Fatal("view presence wrong")
	}
	if _, mss, ok := p.TCP().FindMSS(); !ok || mss != 1400 {
		t.Fatal("FindMSS via packet")
	}
	p.Decode(nil)
	if p.TCP() != nil || p.IPv4() != nil || p.Payload() != nil || p.IPOptions() != nil {
		t.Fatal("views on BadL3")
	}
}
