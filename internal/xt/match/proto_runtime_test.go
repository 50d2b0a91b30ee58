package match

import (
	"testing"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

// rtMatcher parses args for the named match (psRun) and returns its runtime:
// the match itself, or what Build makes of it with env.
func rtMatcher(t *testing.T, name string, fam xt.Family, proto uint8, args string, env *xt.Env) xt.PacketMatcher {
	t.Helper()
	m, err := psRun(t, name, fam, proto, args)
	if err != nil {
		t.Fatalf("-m %s %s: %v", name, args, err)
	}
	switch x := m.(type) {
	case xt.MatchBuilder:
		if env == nil {
			env = &xt.Env{Family: fam, Proto: proto, Rand: rtSeq(1)}
		}
		pm, err := x.Build(env)
		if err != nil {
			t.Fatalf("-m %s %s: Build: %v", name, args, err)
		}
		return pm
	case xt.PacketMatcher:
		return x
	}
	t.Fatalf("-m %s has no runtime", name)
	return nil
}

// rtSeq is a deterministic Env.Rand (a 32-bit xorshift from seed).
func rtSeq(seed uint32) func() uint32 {
	x := seed | 1
	return func() uint32 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		return x
	}
}

// rtPkt decodes data whatever its status (truncated and fragmented packets
// are what several tests are about).
func rtPkt(data []byte) *packet.Packet {
	p := &packet.Packet{}
	p.Decode(data)
	return p
}

// rtCase is one packet against one match.
type rtCase struct {
	name    string
	match   string
	proto   uint8
	args    string
	pkt     []byte
	hook    xt.Hook
	want    bool
	hotDrop bool
}

// rtRun checks every case's result and hot-drop flag, and that Matches
// does not allocate.
func rtRun(t *testing.T, fam xt.Family, cases []rtCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := rtMatcher(t, c.match, fam, c.proto, c.args, nil)
			ctx := &xt.Ctx{P: rtPkt(c.pkt), Hook: c.hook}
			if got := m.Matches(ctx); got != c.want || ctx.HotDrop != c.hotDrop {
				t.Errorf("-m %s %s: Matches = %v hotdrop %v, want %v hotdrop %v", c.match, c.args, got, ctx.HotDrop, c.want, c.hotDrop)
			}
			if n := testing.AllocsPerRun(200, func() { ctx.HotDrop = false; m.Matches(ctx) }); n != 0 {
				t.Errorf("Matches allocates %v times per packet", n)
			}
		})
	}
}

func rtTCP(flags uint8, sport, dport uint16, opts ...byte) []byte {
	return packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: sport, DstPort: dport, Flags: flags, Seq: 1, Window: 1000, Options: opts})
}

// rtRaw is an IPv4 packet of protocol proto whose L4 part is payload.
func rtRaw(proto uint8, payload []byte, fragOff uint16) []byte {
	return packettest.Raw(packettest.RawOpts{Src: "10.0.0.1", Dst: "10.0.0.2", Proto: proto, Payload: payload, IP: packettest.IP{FragOff: fragOff}})
}

func TestTCPRuntime(t *testing.T) {
	const (
		F, S, R, P, A, U = packettest.FIN, packettest.SYN, packettest.RST, packettest.PSH, packettest.ACK, packettest.URG
	)
	syn := rtTCP(S, 1000, 80)
	// 4 bytes of "TCP header" (ports 1000 -> 80), 14 bytes (flags SYN).
	trunc4 := rtRaw(6, []byte{0x03, 0xe8, 0, 80}, 0)
	trunc14 := rtRaw(6, []byte{0x03, 0xe8, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, S}, 0)
	frag1 := rtRaw(6, append([]byte{0x03, 0xe8, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, S}, make([]byte, 10)...), 1)
	frag3 := rtRaw(6, append([]byte{0x03, 0xe8, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, S}, make([]byte, 10)...), 3)
	badDoff := packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1000, DstPort: 80, Flags: S, DataOffset: 16})
	rtRun(t, xt.IPv4, []rtCase{
		{name: "dport", match: "tcp", proto: 6, args: "--dport 80", pkt: syn, want: true},
		{name: "dport other", match: "tcp", proto: 6, args: "--dport 81", pkt: syn},
		{name: "! dport", match: "tcp", proto: 6, args: "! --dport 81", pkt: syn, want: true},
		{name: "sport range", match: "tcp", proto: 6, args: "--sport 999:1001 --dport 80", pkt: syn, want: true},
		{name: "! sport range", match: "tcp", proto: 6, args: "! --sport 999:1001", pkt: syn},
		// The seed's scans.
		{name: "xmas scan", match: "tcp", proto: 6, args: "--tcp-flags ALL FIN,URG,PSH", pkt: rtTCP(F|U|P, 1, 2), want: true},
		{name: "xmas not syn", match: "tcp", proto: 6, args: "--tcp-flags ALL FIN,URG,PSH", pkt: syn},
		{name: "xmas ignores ECE", match: "tcp", proto: 6, args: "--tcp-flags ALL FIN,URG,PSH", pkt: rtTCP(F|U|P|packettest.ECE, 1, 2), want: true},
		{name: "null scan", match: "tcp", proto: 6, args: "--tcp-flags ALL NONE", pkt: rtTCP(0, 1, 2), want: true},
		{name: "null not ack", match: "tcp", proto: 6, args: "--tcp-flags ALL NONE", pkt: rtTCP(A, 1, 2)},
		{name: "synack", match: "tcp", proto: 6, args: "--tcp-flags SYN,ACK SYN,ACK", pkt: rtTCP(S|A, 1, 2), want: true},
		{name: "synack not syn", match: "tcp", proto: 6, args: "--tcp-flags SYN,ACK SYN,ACK", pkt: syn},
		{name: "syn", match: "tcp", proto: 6, args: "--syn", pkt: syn, want: true},
		{name: "syn not synack", match: "tcp", proto: 6, args: "--syn", pkt: rtTCP(S|A, 1, 2)},
		{name: "! syn rst", match: "tcp", proto: 6, args: "! --syn", pkt: rtTCP(R, 1, 2), want: true},
		{name: "omitted matches all", match: "tcp", proto: 6, args: "! --sport 0:65535", pkt: syn, want: true},
		// Native form on broken headers: byte-wise, never a hot-drop (observed).
		{name: "native trunc4 dport", match: "tcp", proto: 6, args: "--dport 80", pkt: trunc4, want: true},
		{name: "native trunc4 ! dport", match: "tcp", proto: 6, args: "! --dport 80", pkt: trunc4},
		{name: "native trunc4 flags missing", match: "tcp", proto: 6, args: "--syn", pkt: trunc4},
		{name: "native trunc4 ! flags missing", match: "tcp", proto: 6, args: "! --syn", pkt: trunc4},
		{name: "native trunc14 flags", match: "tcp", proto: 6, args: "--tcp-flags SYN SYN", pkt: trunc14, want: true},
		{name: "native fragment bytes", match: "tcp", proto: 6, args: "--dport 80 --sport 1000", pkt: frag1, want: true},
		{name: "native fragment 3", match: "tcp", proto: 6, args: "--tcp-flags SYN SYN", pkt: frag3, want: true},
		// xt form (a --tcp-option makes iptables-nft use xt_tcp).
		{name: "option mss", match: "tcp", proto: 6, args: "--tcp-option 2", pkt: rtTCP(S, 1, 2, packettest.MSS(1460)...), want: true},
		{name: "option after nop", match: "tcp", proto: 6, args: "--tcp-option 3", pkt: rtTCP(S, 1, 2, append([]byte{packettest.NOP}, packettest.WScale(7)...)...), want: true},
		{name: "option absent", match: "tcp", proto: 6, args: "--tcp-option 2", pkt: syn},
		{name: "! option absent", match: "tcp", proto: 6, args: "! --tcp-option 2", pkt: syn, want: true},
		{name: "option in data not seen", match: "tcp", proto: 6, args: "--tcp-option 8", pkt: rtTCP(S, 1, 2, packettest.MSS(0x0808)...)},
		{name: "xt ports and option", match: "tcp", proto: 6, args: "--dport 81 --tcp-option 2", pkt: rtTCP(S, 1, 80, packettest.MSS(1460)...)},
		{name: "xt trunc hotdrop", match: "tcp", proto: 6, args: "--tcp-option 2", pkt: trunc14, hotDrop: true},
		{name: "xt frag1 hotdrop", match: "tcp", proto: 6, args: "--tcp-option 2", pkt: frag1, hotDrop: true},
		{name: "xt frag3 no match", match: "tcp", proto: 6, args: "--tcp-option 2", pkt: frag3},
		{name: "xt doff<5 hotdrop", match: "tcp", proto: 6, args: "--tcp-option 2", pkt: badDoff, hotDrop: true},
		{name: "xt default", match: "tcp", proto: 6, args: "", pkt: syn, want: true},
		{name: "xt default trunc", match: "tcp", proto: 6, args: "", pkt: trunc4, hotDrop: true},
	})
}

func TestUDPRuntime(t *testing.T) {
	dns := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 5353, DstPort: 53, Payload: []byte("q")})
	trunc := rtRaw(17, []byte{0x14, 0xe9, 0, 53}, 0)
	rtRun(t, xt.IPv4, []rtCase{
		{name: "dport", match: "udp", proto: 17, args: "--dport 53", pkt: dns, want: true},
		{name: "sport", match: "udp", proto: 17, args: "--sport 53", pkt: dns},
		{name: "! sport", match: "udp", proto: 17, args: "! --sport 53", pkt: dns, want: true},
		{name: "reversed range never", match: "udp", proto: 17, args: "--dport 60:50", pkt: dns},
		{name: "native trunc", match: "udp", proto: 17, args: "--dport 53", pkt: trunc, want: true},
		{name: "xt default", match: "udp", proto: 17, args: "", pkt: dns, want: true},
		{name: "xt default trunc hotdrop", match: "udp", proto: 17, args: "", pkt: trunc, hotDrop: true},
		{name: "xt default fragment", match: "udp", proto: 17, args: "", pkt: rtRaw(17, make([]byte, 16), 1)},
	})
}

func TestICMPRuntime(t *testing.T) {
	ping := packettest.EchoRequest("10.0.0.1", "10.0.0.2", 7, 1, 56)
	pong := packettest.EchoReply("10.0.0.2", "10.0.0.1", 7, 1, 56)
	unreach := packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.0.0.2", Type: 3, Code: 3,
		Original: packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 5000, DstPort: 9})})
	rtRun(t, xt.IPv4, []rtCase{
		{name: "echo-request", match: "icmp", proto: 1, args: "--icmp-type echo-request", pkt: ping, want: true},
		{name: "echo-request on reply", match: "icmp", proto: 1, args: "--icmp-type echo-request", pkt: pong},
		{name: "! 8 on request", match: "icmp", proto: 1, args: "! --icmp-type 8", pkt: ping},
		{name: "any", match: "icmp", proto: 1, args: "--icmp-type any", pkt: pong, want: true},
		{name: "! any", match: "icmp", proto: 1, args: "! --icmp-type any", pkt: pong},
		{name: "port-unreachable", match: "icmp", proto: 1, args: "--icmp-type port-unreachable", pkt: unreach, want: true},
		{name: "host-unreachable", match: "icmp", proto: 1, args: "--icmp-type 3/1", pkt: unreach},
		{name: "type all codes", match: "icmp", proto: 1, args: "--icmp-type destination-unreachable", pkt: unreach, want: true},
		{name: "truncated hotdrop", match: "icmp", proto: 1, args: "--icmp-type any", pkt: rtRaw(1, []byte{8, 0, 0, 0}, 0), hotDrop: true},
		{name: "fragment", match: "icmp", proto: 1, args: "--icmp-type any", pkt: rtRaw(1, make([]byte, 16), 2)},
	})
}

func TestMultiportRuntime(t *testing.T) {
	p := func(sport, dport uint16) []byte { return rtTCP(packettest.SYN, sport, dport) }
	rtRun(t, xt.IPv4, []rtCase{
		{name: "dports single", match: "multiport", proto: 6, args: "--dports 22,80:90,443", pkt: p(1000, 443), want: true},
		{name: "dports range low", match: "multiport", proto: 6, args: "--dports 22,80:90,443", pkt: p(1000, 80), want: true},
		{name: "dports range high", match: "multiport", proto: 6, args: "--dports 22,80:90,443", pkt: p(1000, 90), want: true},
		{name: "dports outside", match: "multiport", proto: 6, args: "--dports 22,80:90,443", pkt: p(1000, 91)},
		{name: "dports not sport", match: "multiport", proto: 6, args: "--dports 1000", pkt: p(1000, 91)},
		{name: "sports", match: "multiport", proto: 6, args: "--sports 1000", pkt: p(1000, 91), want: true},
		{name: "ports either", match: "multiport", proto: 6, args: "--ports 91", pkt: p(1000, 91), want: true},
		{name: "! dports", match: "multiport", proto: 6, args: "! --dports 80,443", pkt: p(1000, 80)},
		{name: "! dports other", match: "multiport", proto: 6, args: "! --dports 80,443", pkt: p(1000, 81), want: true},
		{name: "4 bytes are enough", match: "multiport", proto: 6, args: "--dports 80", pkt: rtRaw(6, []byte{0x03, 0xe8, 0, 80}, 0), want: true},
		{name: "short hotdrop", match: "multiport", proto: 6, args: "--dports 80", pkt: rtRaw(6, []byte{0x03, 0xe8}, 0), hotDrop: true},
		{name: "fragment", match: "multiport", proto: 6, args: "--dports 80", pkt: rtRaw(6, []byte{0x03, 0xe8, 0, 80, 0, 0, 0, 0}, 1)},
		{name: "udp", match: "multiport", proto: 17, args: "--dports 53", pkt: packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 53}), want: true},
	})
}

func TestLengthTTLRuntime(t *testing.T) {
	ping := packettest.EchoRequest("10.0.0.1", "10.0.0.2", 7, 1, 56) // 84 bytes
	ping6 := packettest.EchoRequest("2001:db8::1", "2001:db8::2", 7, 1, 56)
	ttl := func(n int) []byte {
		return packettest.ICMP(packettest.ICMPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", Type: 8, IP: packettest.IP{TTL: n}})
	}
	rtRun(t, xt.IPv4, []rtCase{
		{name: "length exact", match: "length", args: "--length 84", pkt: ping, want: true},
		{name: "length below", match: "length", args: "--length 0:83", pkt: ping},
		{name: "length from", match: "length", args: "--length 84:", pkt: ping, want: true},
		{name: "length to", match: "length", args: "--length :84", pkt: ping, want: true},
		{name: "length above", match: "length", args: "--length 85:65535", pkt: ping},
		{name: "! length", match: "length", args: "! --length 84", pkt: ping},
		{name: "length reversed", match: "length", args: "--length 200:10", pkt: ping},
		{name: "ttl eq", match: "ttl", args: "--ttl-eq 64", pkt: ttl(64), want: true},
		{name: "ttl alias", match: "ttl", args: "--ttl 63", pkt: ttl(64)},
		{name: "ttl ne", match: "ttl", args: "! --ttl-eq 64", pkt: ttl(63), want: true},
		{name: "ttl ne equal", match: "ttl", args: "! --ttl-eq 64", pkt: ttl(64)},
		{name: "ttl lt strict", match: "ttl", args: "--ttl-lt 64", pkt: ttl(64)},
		{name: "ttl lt", match: "ttl", args: "--ttl-lt 64", pkt: ttl(1), want: true},
		{name: "ttl gt strict", match: "ttl", args: "--ttl-gt 64", pkt: ttl(64)},
		{name: "ttl gt", match: "ttl", args: "--ttl-gt 0", pkt: ttl(1), want: true},
		{name: "ttl zero", match: "ttl", args: "--ttl-eq 0", pkt: ttl(-1), want: true},
	})
	rtRun(t, xt.IPv6, []rtCase{
		// IPv6: payload length + 40.
		{name: "length ipv6", match: "length", args: "--length 104", pkt: ping6, want: true},
	})
}
