package packet_test

// Cross-checks against gopacket (test dependency only): gopacket serializes
// the same packets packettest builds, which checks our checksums against an
// independent implementation, and decodes packets whose fields we compare
// with Decode's.

import (
	"bytes"
	"net"
	"slices"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gpIPv4(proto layers.IPProtocol, ttl uint8, tos uint8, id uint16, df bool) *layers.IPv4 {
	ip := &layers.IPv4{Version: 4, IHL: 5, TOS: tos, Id: id, TTL: ttl, Protocol: proto,
		SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	if df {
		ip.Flags = layers.IPv4DontFragment
	}
	return ip
}

func TestChecksumsAgainstGopacket(t *testing.T) {
	payload := []byte("The quick brown fox jumps") // odd length on purpose
	t.Run("tcp", func(t *testing.T) {
		ip := gpIPv4(layers.IPProtocolTCP, 61, 0x28, 0xbeef, true)
		tcpL := &layers.TCP{SrcPort: 33000, DstPort: 443, Seq: 0x11223344, Ack: 0x55667788, PSH: true, ACK: true, Window: 501, Urgent: 0,
			Options: []layers.TCPOption{
				{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}},
				{OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
			}}
		if err := tcpL.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		want := serialize(t, ip, tcpL, gopacket.Payload(payload))
		got := packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 33000, DstPort: 443, Seq: 0x11223344, Ack: 0x55667788,
			Flags: packettest.PSH | packettest.ACK, Window: 501, Options: slices.Concat(packettest.MSS(1460), []byte{packettest.NOP}, packettest.WScale(7)),
			Payload: payload, IP: packettest.IP{TTL: 61, TOS: 0x28, ID: 0xbeef, DF: true}})
		if !bytes.Equal(got, want) {
			t.Fatalf("packettest\n% x\ngopacket\n% x", got, want)
		}
	})
	t.Run("udp", func(t *testing.T) {
		ip := gpIPv4(layers.IPProtocolUDP, 64, 0, 1, false)
		u := &layers.UDP{SrcPort: 5353, DstPort: 53}
		if err := u.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		want := serialize(t, ip, u, gopacket.Payload(payload))
		got := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 5353, DstPort: 53, Payload: payload, IP: packettest.IP{ID: 1}})
		if !bytes.Equal(got, want) {
			t.Fatalf("packettest\n% x\ngopacket\n% x", got, want)
		}
	})
	t.Run("icmp echo", func(t *testing.T) {
		ip := gpIPv4(layers.IPProtocolICMPv4, 64, 0, 0, false)
		ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 0x1234, Seq: 3}
		want := serialize(t, ip, ic, gopacket.Payload(payload))
		got := packettest.ICMP(packettest.ICMPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", Type: 8, ID: 0x1234, Seq: 3, Payload: payload})
		if !bytes.Equal(got, want) {
			t.Fatalf("packettest\n% x\ngopacket\n% x", got, want)
		}
	})
	t.Run("ipv6 tcp", func(t *testing.T) {
		ip := &layers.IPv6{Version: 6, TrafficClass: 0x12, HopLimit: 9, NextHeader: layers.IPProtocolTCP,
			SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2")}
		tcpL := &layers.TCP{SrcPort: 1, DstPort: 2, Seq: 3, SYN: true, Window: 4}
		if err := tcpL.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		want := serialize(t, ip, tcpL, gopacket.Payload(payload))
		got := packettest.TCP(packettest.TCPOpts{Src: "2001:db8::1", Dst: "2001:db8::2", SrcPort: 1, DstPort: 2, Seq: 3, Flags: packettest.SYN, Window: 4,
			Payload: payload, IP: packettest.IP{TTL: 9, TOS: 0x12}})
		if !bytes.Equal(got, want) {
			t.Fatalf("packettest\n% x\ngopacket\n% x", got, want)
		}
	})
}

// TestDecodeAgainstGopacket decodes the same bytes with both decoders.
// (IPv6 fragments are left out: gopacket does not decode the L4 header of a
// first fragment, ip6tables and Decode do; TestDecodeIPv6 covers them.)
func TestDecodeAgainstGopacket(t *testing.T) {
	u := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2, Payload: []byte("abc")})
	pkts := map[string][]byte{
		"tcp syn options": packettest.TCP(packettest.TCPOpts{Src: "192.0.2.1", Dst: "198.51.100.2", SrcPort: 40000, DstPort: 22,
			Flags: packettest.SYN | packettest.ECE | packettest.CWR, Seq: 7, Window: 64240,
			Options: slices.Concat(packettest.MSS(1460), packettest.SACKPermitted(), packettest.Timestamps(1, 0), []byte{1}, packettest.WScale(7)),
			IP:      packettest.IP{TTL: 3, TOS: 0xb8, ID: 99, DF: true, Options: []byte{1, 1, 1, 0}}}),
		"tcp fin ack data": packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 80, DstPort: 5555,
			Flags: packettest.FIN | packettest.ACK | packettest.URG, Seq: 0xffffffff, Ack: 1, Window: 1, Urgent: 1, Payload: []byte("bye")}),
		"udp":          u,
		"echo reply":   packettest.EchoReply("10.0.0.2", "10.0.0.1", 7, 8, 16),
		"port unreach": packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.0.0.2", Type: 3, Code: 3, Original: u}),
		"ipv6 udp":     packettest.UDP(packettest.UDPOpts{Src: "fe80::1", Dst: "ff02::fb", SrcPort: 5353, DstPort: 5353, IP: packettest.IP{TOS: 0x20, TTL: 255}}),
		"ipv6 echo":    packettest.EchoRequest("2001:db8::1", "2001:db8::2", 5, 6, 10),
	}
	for name, b := range pkts {
		t.Run(name, func(t *testing.T) {
			var p packet.Packet
			if p.Decode(b) != packet.OK {
				t.Fatalf("status %v", p.Status)
			}
			first := layers.LayerTypeIPv4
			if p.Version == 6 {
				first = layers.LayerTypeIPv6
			}
			g := gopacket.NewPacket(b, first, gopacket.Default)
			if el := g.ErrorLayer(); el != nil {
				t.Fatalf("gopacket: %v", el.Error())
			}
			type fields struct {
				Src, Dst           string
				TTL, TOS, Proto    uint8
				SrcPort, DstPort   uint16
				Flags              uint8
				Seq, Ack           uint32
				Window             uint16
				IType, ICode       uint8
				IID, ISeq          uint16
				Payload            string
				FragOff            uint16
				MoreFrag, DontFrag bool
				ID                 uint16
				HdrLen             int
			}
			ours := fields{Src: p.Src.String(), Dst: p.Dst.String(), TTL: p.TTL, TOS: p.TOS, Proto: p.Proto, SrcPort: p.SrcPort, DstPort: p.DstPort,
				Flags: p.TCPFlags, Seq: p.Seq, Ack: p.Ack, Window: p.Window, IType: p.ICMPType, ICode: p.ICMPCode, IID: p.ICMPID, ISeq: p.ICMPSeq,
				Payload: string(p.Payload()), FragOff: p.FragOff, MoreFrag: p.MoreFrag, DontFrag: p.DontFrag, ID: p.ID, HdrLen: p.HdrLen}
			var theirs fields
			if ip, ok := g.NetworkLayer().(*layers.IPv4); ok {
				theirs.Src, theirs.Dst, theirs.TTL, theirs.TOS, theirs.Proto = ip.SrcIP.String(), ip.DstIP.String(), ip.TTL, ip.TOS, uint8(ip.Protocol)
				theirs.FragOff, theirs.MoreFrag, theirs.DontFrag, theirs.ID = ip.FragOffset, ip.Flags&layers.IPv4MoreFragments != 0, ip.Flags&layers.IPv4DontFragment != 0, ip.Id
				theirs.HdrLen = int(ip.IHL) * 4
			}
			if ip, ok := g.NetworkLayer().(*layers.IPv6); ok {
				theirs.Src, theirs.Dst, theirs.TTL, theirs.TOS = ip.SrcIP.String(), ip.DstIP.String(), ip.HopLimit, ip.TrafficClass
				theirs.Proto, theirs.HdrLen = uint8(ip.NextHeader), 40
			}
			switch l := g.TransportLayer().(type) {
			case *layers.TCP:
				theirs.SrcPort, theirs.DstPort, theirs.Seq, theirs.Ack, theirs.Window = uint16(l.SrcPort), uint16(l.DstPort), l.Seq, l.Ack, l.Window
				for i, f := range []bool{l.FIN, l.SYN, l.RST, l.PSH, l.ACK, l.URG, l.ECE, l.CWR} {
					if f {
						theirs.Flags |= 1 << i
					}
				}
				theirs.Payload = string(l.Payload)
			case *layers.UDP:
				theirs.SrcPort, theirs.DstPort, theirs.Payload = uint16(l.SrcPort), uint16(l.DstPort), string(l.Payload)
			}
			if l, ok := g.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
				theirs.IType, theirs.ICode, theirs.Payload = l.TypeCode.Type(), l.TypeCode.Code(), string(l.Payload)
				if l.TypeCode.Type() == 0 || l.TypeCode.Type() == 8 {
					theirs.IID, theirs.ISeq = l.Id, l.Seq
				}
			}
			if l, ok := g.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
				theirs.IType, theirs.ICode = l.TypeCode.Type(), l.TypeCode.Code()
				if e, ok := g.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo); ok {
					theirs.IID, theirs.ISeq, theirs.Payload = e.Identifier, e.SeqNumber, string(e.Payload)
				}
			}
			if ours != theirs {
				t.Errorf("fields differ\n ours   %+v\n gopkt  %+v", ours, theirs)
			}
		})
	}
}
