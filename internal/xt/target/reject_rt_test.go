package target

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

// The packets below are those of /work/shared/spec/experiments/reject.pcap.txt
// (kernel 6.18, REJECT in filter INPUT of namespace 10.99.0.2), rebuilt
// field by field from tcpdump's decode; offending checksums are the correct
// values tcpdump computed (the capture shows offloaded partial sums).

func synOpts() []byte {
	o := append(packettest.MSS(1460), packettest.SACKPermitted()...)
	o = append(o, packettest.Timestamps(2316176013, 0)...)
	o = append(o, packettest.NOP)
	return append(o, packettest.WScale(10)...)
}

func mustUnhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rstWant builds the kernel's RST from the capture: IP header (checksum
// filled in here) and the TCP header whose checksum tcpdump reported.
func rstWant(t *testing.T, tcpHex string) []byte {
	ip := mustUnhex(t, "450000280000400040060000"+"0a630002"+"0a630001")
	binary.BigEndian.PutUint16(ip[10:], csum(ip))
	return append(ip, mustUnhex(t, tcpHex)...)
}

func inputCtx(p *packet.Packet, out xt.Emitter) *xt.Ctx {
	p.InIface = "veth0"
	return &xt.Ctx{P: p, Hook: xt.LocalIn, Out: out, Table: "filter", Chain: "INPUT"}
}

func TestRejectTCPResetKernelShapes(t *testing.T) {
	env := testEnv("filter", xt.LocalIn)
	rej := rt(t, env, 6, "REJECT", "--reject-with", "tcp-reset")
	cases := []struct {
		name string
		in   []byte
		want []byte
	}{
		{"SYN -> [R.] seq 0 ack X+1",
			packettest.TCP(packettest.TCPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 44006, DstPort: 6001, Flags: packettest.SYN,
				Seq: 2646734131, Window: 64240, Options: synOpts(), IP: packettest.IP{ID: 49758, DF: true}}),
			// 6001 > 44006 [R.] seq 0, ack 2646734132, win 0, cksum 0x44ba
			rstWant(t, "1771abe6"+"00000000"+"9dc1f534"+"5014"+"0000"+"44ba"+"0000")},
		{"ACK -> [R] seq = their ack",
			packettest.TCP(packettest.TCPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 4444, DstPort: 6001, Flags: packettest.ACK,
				Ack: 5555, Window: 512, IP: packettest.IP{ID: 17039}}),
			// 6001 > 4444 [R], seq 5555, win 0, cksum 0x5c98
			rstWant(t, "1771115c"+"000015b3"+"00000000"+"5004"+"0000"+"5c98"+"0000")},
		{"FIN+PSH with 10 bytes -> [R.] ack seq+len+1",
			packettest.TCP(packettest.TCPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 4445, DstPort: 6001, Flags: packettest.FIN | packettest.PSH,
				Seq: 77, Window: 512, Payload: []byte("0123456789"), IP: packettest.IP{ID: 16668}}),
			// 6001 > 4445 [R.], seq 0, ack 88, win 0, cksum 0x71e2
			rstWant(t, "1771115d"+"00000000"+"00000058"+"5014"+"0000"+"71e2"+"0000")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := &recEmitter{}
			if v := rej.Do(inputCtx(decode(t, tc.in), out)); v != xt.VerdictDrop {
				t.Fatalf("verdict %v, want drop", v)
			}
			if len(out.replies) != 1 {
				t.Fatalf("%d replies", len(out.replies))
			}
			if !bytes.Equal(out.replies[0], tc.want) {
				t.Errorf("reply\n got  %x\n want %x", out.replies[0], tc.want)
			}
			checkIPv4(t, out.replies[0])
		})
	}
}

// icmpWant is the kernel's error: TOS 0xc0, no DF, TTL 64, from the
// rejecting host, quoting the offending datagram cut to 576 bytes in all.
func icmpWant(id uint16, code uint8, orig []byte) []byte {
	q := orig
	if len(q) > 576-28 {
		q = q[:576-28]
	}
	b := make([]byte, 28+len(q))
	copy(b, []byte{0x45, 0xc0, 0, 0, byte(id >> 8), byte(id), 0, 0, 64, 1, 0, 0, 10, 99, 0, 2, 10, 99, 0, 1})
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[10:], csum(b[:20]))
	b[20], b[21] = 3, code
	copy(b[28:], q)
	binary.BigEndian.PutUint16(b[22:], csum(b[20:]))
	return b
}

func TestRejectICMPKernelShapes(t *testing.T) {
	cases := []struct {
		name    string
		with    string
		code    uint8
		in      []byte
		wantLen int // the observed length of the error
	}{
		{"SYN, port-unreach", "icmp-port-unreachable", 3,
			packettest.TCP(packettest.TCPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 33846, DstPort: 6003, Flags: packettest.SYN,
				Seq: 2079611264, Window: 64240, Options: synOpts(), IP: packettest.IP{ID: 43809, DF: true}}), 88},
		{"1028-byte UDP, cut to 576", "icmp-port-unreachable", 3,
			packettest.UDP(packettest.UDPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 33015, DstPort: 6002,
				Payload: make([]byte, 1000), IP: packettest.IP{ID: 19540, DF: true}}), 576},
		{"ping, admin-prohibited", "icmp-admin-prohibited", 13,
			packettest.ICMP(packettest.ICMPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", Type: 8, ID: 9035, Seq: 1,
				Payload: make([]byte, 56), IP: packettest.IP{ID: 60392, DF: true}}), 112},
		{"1-byte UDP", "icmp-port-unreachable", 3,
			packettest.UDP(packettest.UDPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 34887, DstPort: 6002,
				Payload: []byte{'x'}, IP: packettest.IP{ID: 19577, DF: true}}), 57},
		{"net-unreach", "icmp-net-unreachable", 0, udpProbe(0), 57},
		{"host-unreach", "icmp-host-unreachable", 1, udpProbe(0), 57},
		{"proto-unreach", "icmp-proto-unreachable", 2, udpProbe(0), 57},
		{"net-prohib", "icmp-net-prohibited", 9, udpProbe(0), 57},
		{"host-prohib", "icmp-host-prohibited", 10, udpProbe(0), 57},
		{"default is port-unreach", "", 3, udpProbe(0), 57},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var words []string
			if tc.with != "" {
				words = []string{"--reject-with", tc.with}
			}
			rej := rt(t, testEnv("filter", xt.LocalIn), 0, "REJECT", words...)
			out := &recEmitter{}
			if v := rej.Do(inputCtx(decode(t, tc.in), out)); v != xt.VerdictDrop {
				t.Fatalf("verdict %v", v)
			}
			if len(out.replies) != 1 {
				t.Fatalf("%d replies", len(out.replies))
			}
			got := out.replies[0]
			if len(got) != tc.wantLen {
				t.Errorf("length %d, kernel sent %d", len(got), tc.wantLen)
			}
			want := icmpWant(binary.BigEndian.Uint16(got[4:]), tc.code, tc.in)
			if !bytes.Equal(got, want) {
				t.Errorf("reply\n got  %x\n want %x", got, want)
			}
			checkIPv4(t, got)
		})
	}
}

// udpProbe is the 29-byte probe of the rate-limit experiment.
func udpProbe(id uint16) []byte {
	return packettest.UDP(packettest.UDPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 34887, DstPort: 6002,
		Payload: []byte{'x'}, IP: packettest.IP{ID: id, DF: true}})
}

// TestRejectICMPRateLimitCapture replays the timing of the capture: three
// errors (SYN, big UDP, ping) and then 30 UDP probes 5 ms apart toward the
// same host; the kernel sent 6 errors in all, the first three probes'.
func TestRejectICMPRateLimitCapture(t *testing.T) {
	env := testEnv("filter", xt.LocalIn)
	port := rt(t, env, 0, "REJECT")
	admin := rt(t, env, 0, "REJECT", "--reject-with", "icmp-admin-prohibited")
	rst := rt(t, env, 6, "REJECT", "--reject-with", "tcp-reset")
	out := &recEmitter{}
	send := func(target xt.PacketTarget, pkt []byte, ns int64) int {
		n := len(out.replies)
		p := decode(t, pkt)
		p.TimeNS = ns
		target.Do(inputCtx(p, out))
		return len(out.replies) - n
	}
	base := int64(29e9)
	// RSTs are not rate limited and do not use up ICMP tokens.
	for i := range 10 {
		syn := packettest.TCP(packettest.TCPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: uint16(40000 + i), DstPort: 6001, Flags: packettest.SYN, Seq: 1})
		if send(rst, syn, base+167356000) != 1 {
			t.Fatal("RST suppressed")
		}
	}
	got := ""
	mark := func(n int) {
		if n == 1 {
			got += "R"
		} else {
			got += "."
		}
	}
	mark(send(port, packettest.TCP(packettest.TCPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 33846, DstPort: 6003, Flags: packettest.SYN, Seq: 7}), base+167579000))
	mark(send(port, packettest.UDP(packettest.UDPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 33015, DstPort: 6002, Payload: make([]byte, 1000)}), base+167837000))
	mark(send(admin, packettest.EchoRequest("10.99.0.1", "10.99.0.2", 9035, 1, 56), base+277586000))
	for i := range 30 {
		mark(send(port, udpProbe(uint16(19577+i)), base+413696000+int64(i)*5_100_000))
	}
	if want := "RRRRRR" + dots(27); got != want {
		t.Errorf("errors sent\n got  %s\n want %s", got, want)
	}
	// Another destination has its own bucket.
	other := packettest.UDP(packettest.UDPOpts{Src: "10.99.0.7", Dst: "10.99.0.2", SrcPort: 1, DstPort: 2})
	if send(port, other, base+6e8) != 1 {
		t.Error("other destination limited")
	}
	// One token per second afterwards, burst 6 after 6 s of silence.
	t0 := base + int64(563e6)
	if send(port, udpProbe(1), t0+int64(1e9)) != 1 {
		t.Error("no token after 1 s")
	}
	if send(port, udpProbe(2), t0+int64(1.5e9)) != 0 {
		t.Error("second error within the same second")
	}
	if send(port, udpProbe(3), t0+int64(2.1e9)) != 1 {
		t.Error("no token after another second")
	}
	got = ""
	for i := range 8 {
		mark(send(port, udpProbe(uint16(i)), t0+int64(20e9)+int64(i)*1e6))
	}
	if got != "RRRRRR.." {
		t.Errorf("after a long pause: %s, want burst of 6", got)
	}
	// The limiter is engine-wide: a new REJECT rule built from the same
	// Env.Named shares it.
	again := rt(t, env, 0, "REJECT", "--reject-with", "icmp-host-prohibited")
	if send(again, udpProbe(9), t0+int64(20e9)+9e6) != 0 {
		t.Error("a second rule has its own bucket; the kernel's is per destination")
	}
}

func dots(n int) string { return string(bytes.Repeat([]byte{'.'}, n)) }

// TestRejectLoopbackAndGlobalLimit: errors routed over lo escape the
// per-destination limit but not the host-wide 50-message burst.
func TestRejectLoopbackAndGlobalLimit(t *testing.T) {
	rej := rt(t, testEnv("filter", xt.LocalIn), 0, "REJECT")
	out := &countEmitter{}
	for i := range 80 {
		p := decode(t, packettest.UDP(packettest.UDPOpts{Src: "127.0.0.1", Dst: "127.0.0.1", SrcPort: uint16(1000 + i), DstPort: 9}))
		p.InIface = "lo"
		rej.Do(&xt.Ctx{P: p, Hook: xt.LocalIn, Out: out})
	}
	if out.replies != 50 {
		t.Errorf("%d errors at one instant over lo, want 50 (icmp_msgs_burst)", out.replies)
	}
	// 100 ms later the global bucket has refilled 100 credits, capped at 50.
	out.replies = 0
	for i := range 80 {
		p := decode(t, packettest.UDP(packettest.UDPOpts{Src: "127.0.0.1", Dst: "127.0.0.1", SrcPort: uint16(1000 + i), DstPort: 9}))
		p.InIface, p.TimeNS = "lo", 1e9+1e8
		rej.Do(&xt.Ctx{P: p, Hook: xt.LocalIn, Out: out})
	}
	if out.replies != 50 {
		t.Errorf("%d errors after 100 ms, want 50 (refilled up to the burst)", out.replies)
	}
}

func TestRejectNoReply(t *testing.T) {
	icmpErr := packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.99.0.1", Dst: "10.99.0.2", Type: 3, Code: 3, Original: udpProbe(1)})
	frags := packettest.Fragments(packettest.UDP(packettest.UDPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 1, DstPort: 2, Payload: make([]byte, 100)}), 48)
	tcpFrags := packettest.Fragments(packettest.TCP(packettest.TCPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 1, DstPort: 2, Flags: packettest.ACK, Payload: make([]byte, 100)}), 48)
	badUDP := udpProbe(5)
	badUDP[len(badUDP)-3] ^= 0x55 // UDP checksum field
	badTCP := packettest.TCP(packettest.TCPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN})
	badTCP[20+16] ^= 0x55
	cases := []struct {
		name string
		with string
		pkt  []byte
		hook xt.Hook
	}{
		{"RST gets no RST", "tcp-reset", packettest.TCP(packettest.TCPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 1, DstPort: 2, Flags: packettest.RST | packettest.ACK}), xt.LocalIn},
		{"non-first TCP fragment, tcp-reset", "tcp-reset", tcpFrags[1], xt.LocalIn},
		{"non-first fragment, ICMP", "icmp-port-unreachable", frags[1], xt.LocalIn},
		{"ICMP error gets no error", "icmp-port-unreachable", icmpErr, xt.LocalIn},
		{"ICMP type above 18 counts as an error", "icmp-port-unreachable", packettest.ICMP(packettest.ICMPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", Type: 40}), xt.LocalIn},
		{"broadcast", "icmp-port-unreachable", packettest.UDP(packettest.UDPOpts{Src: "10.99.0.1", Dst: "255.255.255.255", SrcPort: 68, DstPort: 67}), xt.LocalIn},
		{"multicast", "icmp-port-unreachable", packettest.UDP(packettest.UDPOpts{Src: "10.99.0.1", Dst: "224.0.0.251", SrcPort: 5353, DstPort: 5353}), xt.LocalIn},
		{"from 0.0.0.0", "icmp-port-unreachable", packettest.UDP(packettest.UDPOpts{Src: "0.0.0.0", Dst: "10.99.0.2", SrcPort: 68, DstPort: 67}), xt.LocalIn},
		{"bad UDP checksum", "icmp-port-unreachable", badUDP, xt.LocalIn},
		{"bad TCP checksum, tcp-reset", "tcp-reset", badTCP, xt.LocalIn},
		{"bad TCP checksum, ICMP", "icmp-host-prohibited", badTCP, xt.Forward},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rej := rt(t, testEnv("filter", xt.LocalIn), 6, "REJECT", "--reject-with", tc.with)
			out := &recEmitter{}
			p := decode(t, tc.pkt)
			if v := rej.Do(&xt.Ctx{P: p, Hook: tc.hook, Out: out}); v != xt.VerdictDrop {
				t.Errorf("verdict %v, want drop", v)
			}
			if len(out.replies) != 0 {
				t.Errorf("replied %x", out.replies[0])
			}
		})
	}
	// The first fragment of a TCP segment has its header: RST.
	rej := rt(t, testEnv("filter", xt.LocalIn), 6, "REJECT", "--reject-with", "tcp-reset")
	out := &recEmitter{}
	rej.Do(&xt.Ctx{P: decode(t, tcpFrags[0]), Hook: xt.LocalIn, Out: out, L4CsumOK: true})
	if len(out.replies) != 1 {
		t.Error("no RST for a first fragment")
	}
}

// TestRejectChecksumTrust: a bad checksum is answered when the data plane
// vouches for it (offloaded capture) and in OUTPUT (CHECKSUM_PARTIAL).
func TestRejectChecksumTrust(t *testing.T) {
	bad := udpProbe(5)
	bad[len(bad)-3] ^= 0x55
	for _, tc := range []struct {
		hook  xt.Hook
		trust bool
	}{{xt.LocalIn, true}, {xt.LocalOut, false}} {
		rej := rt(t, testEnv("filter", xt.LocalIn, xt.LocalOut), 0, "REJECT")
		out := &recEmitter{}
		rej.Do(&xt.Ctx{P: decode(t, bad), Hook: tc.hook, Out: out, L4CsumOK: tc.trust})
		if len(out.replies) != 1 {
			t.Errorf("hook %v trust %v: no reply", tc.hook, tc.trust)
		}
	}
}

// TestRejectICMPSource: the error comes from the address the packet was
// sent to (INPUT, OUTPUT over lo), from the incoming interface's address
// for a forwarded packet, and from the local source for other OUTPUT.
func TestRejectICMPSource(t *testing.T) {
	env := testEnv("filter", xt.LocalIn, xt.Forward, xt.LocalOut)
	env.IfaceAddr = func(iface string, _ xt.Family) (netip.Addr, bool) {
		if iface == "eth1" {
			return netip.MustParseAddr("192.0.2.254"), true
		}
		return netip.Addr{}, false
	}
	rej := rt(t, env, 0, "REJECT")
	pkt := packettest.UDP(packettest.UDPOpts{Src: "192.0.2.10", Dst: "198.51.100.7", SrcPort: 1, DstPort: 2})
	for _, tc := range []struct {
		hook      xt.Hook
		in, outIf string
		want      string
	}{
		{xt.LocalIn, "eth1", "", "198.51.100.7"},
		{xt.Forward, "eth1", "eth2", "192.0.2.254"},
		{xt.Forward, "eth9", "eth2", "198.51.100.7"},
		{xt.LocalOut, "", "eth2", "192.0.2.10"},
		{xt.LocalOut, "", "lo", "198.51.100.7"},
	} {
		out := &recEmitter{}
		p := decode(t, pkt)
		p.InIface, p.OutIface = tc.in, tc.outIf
		p.TimeNS += int64(tc.hook) * 1e10 // fresh tokens each time
		rej.Do(&xt.Ctx{P: p, Hook: tc.hook, Out: out})
		if len(out.replies) != 1 {
			t.Fatalf("%v: no reply", tc.hook)
		}
		r := out.replies[0]
		if got := netip.AddrFrom4([4]byte(r[12:16])).String(); got != tc.want {
			t.Errorf("%v in=%s out=%s: source %s, want %s", tc.hook, tc.in, tc.outIf, got, tc.want)
		}
		checkIPv4(t, r)
	}
}

func TestRejectBuildIPv6Refused(t *testing.T) {
	env := testEnv("filter", xt.LocalIn)
	env.Family = xt.IPv6
	if _, err := mkTarget(t, 0, "REJECT").(xt.TargetBuilder).Build(env); err == nil {
		t.Error("IPv6 REJECT built")
	}
}

func TestRejectAllocs(t *testing.T) {
	env := testEnv("filter", xt.LocalIn)
	icmp := rt(t, env, 0, "REJECT")
	rst := rt(t, env, 6, "REJECT", "--reject-with", "tcp-reset")
	up := decode(t, udpProbe(1))
	tp := decode(t, packettest.TCP(packettest.TCPOpts{Src: "10.99.0.1", Dst: "10.99.0.2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN}))
	out := &countEmitter{}
	c := &xt.Ctx{Hook: xt.LocalIn, Out: out}
	allocs := testing.AllocsPerRun(200, func() {
		up.TimeNS += 2e8
		c.P = up
		icmp.Do(c)
		c.P = tp
		rst.Do(c)
	})
	if allocs != 0 {
		t.Errorf("REJECT allocates %.1f per packet", allocs)
	}
	if out.replies < 200 {
		t.Errorf("only %d replies", out.replies)
	}
}

// TestRejectConcurrentWorkers: workers share the rule and the engine-wide
// limiter but each builds its replies in its own Ctx.Scratch (run with
// -race). Every destination gets exactly its burst of 6.
func TestRejectConcurrentWorkers(t *testing.T) {
	rej := rt(t, testEnv("filter", xt.LocalIn), 0, "REJECT")
	const workers, dests = 8, 5
	done := make(chan [dests]int)
	for w := range workers {
		go func() {
			var n [dests]int
			out := &countEmitter{}
			c := &xt.Ctx{Hook: xt.LocalIn, Out: out}
			var p packet.Packet
			for i := range 40 {
				d := (i + w) % dests
				p.Decode(packettest.UDP(packettest.UDPOpts{Src: netip.AddrFrom4([4]byte{10, 1, 0, byte(d + 1)}).String(), Dst: "10.2.0.1", SrcPort: uint16(i), DstPort: 9}))
				p.TimeNS = 1e9
				c.P = &p
				before := out.replies
				rej.Do(c)
				n[d] += out.replies - before
				if out.replies > before && c.Scratch[20] != 3 {
					t.Error("scratch overwritten by another worker")
				}
			}
			done <- n
		}()
	}
	var total [dests]int
	for range workers {
		n := <-done
		for d := range n {
			total[d] += n[d]
		}
	}
	for d, n := range total {
		if n != 6 {
			t.Errorf("destination %d got %d errors, want 6", d, n)
		}
	}
}
