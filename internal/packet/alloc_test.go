package packet_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

func TestZeroAllocs(t *testing.T) {
	syn := packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN,
		Options: slices.Concat(packettest.MSS(1460), packettest.SACKPermitted(), packettest.WScale(7))})
	syn6 := packettest.TCP(packettest.TCPOpts{Src: "2001:db8::1", Dst: "2001:db8::2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN})
	icmpErr := packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.0.0.2", Type: 3, Code: 3, Original: syn})
	a, a6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::9")
	buf := make([]byte, header.ICMPErrorMaxLen)
	var p, in packet.Packet
	p.InIface = "eth0"
	tests := []struct {
		name string
		f    func()
	}{
		{"Decode ipv4", func() { p.Decode(syn) }},
		{"Decode ipv6", func() { p.Decode(syn6) }},
		{"DecodeEmbedded", func() { p.Decode(icmpErr); p.DecodeEmbedded(&in) }},
		{"rewrites ipv4", func() {
			p.Decode(syn)
			p.SetSrc(a)
			p.SetDstPort(22)
			p.SetTTL(5)
			p.SetTOS(0)
			_ = header.ParseTCPOptions(p.TCPOptions())
			p.TCP().SetMSS(1400)
		}},
		{"rewrites ipv6", func() { p.Decode(syn6); p.SetDst(a6); p.SetSrcPort(9) }},
		{"replies", func() {
			p.Decode(syn)
			p.WriteTCPReset(buf, 64)
			p.WriteICMPError(buf, 3, 3, 0, a, 1, 64)
		}},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(200, tt.f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tt.name, n)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	pkts := map[string][]byte{
		"tcp-syn": packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN,
			Options: slices.Concat(packettest.MSS(1460), packettest.SACKPermitted(), packettest.WScale(7))}),
		"udp-512":  packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2, Payload: make([]byte, 512)}),
		"tcp6":     packettest.TCP(packettest.TCPOpts{Src: "2001:db8::1", Dst: "2001:db8::2", SrcPort: 1, DstPort: 2, Flags: packettest.ACK}),
		"icmp-err": packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.0.0.2", Type: 3, Code: 3, Original: packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2"})}),
	}
	for _, name := range []string{"tcp-syn", "udp-512", "tcp6", "icmp-err"} {
		data := pkts[name]
		b.Run(name, func(b *testing.B) {
			var p, in packet.Packet
			b.ReportAllocs()
			for b.Loop() {
				if p.Decode(data) != packet.OK {
					b.Fatal("decode")
				}
				if name == "icmp-err" && !p.DecodeEmbedded(&in) {
					b.Fatal("embedded")
				}
			}
		})
	}
}
