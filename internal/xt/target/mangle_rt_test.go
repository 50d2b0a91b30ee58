package target

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

func TestLogDoEmitsKernelLine(t *testing.T) {
	cases := readLogLines(t)
	for i := range cases[:10] {
		lc := &cases[i]
		lg := runtimeOf(t, lc.rule, testEnv("filter", xt.LocalIn))
		out := &recEmitter{}
		if v := lg.Do(&xt.Ctx{P: &lc.p, Hook: xt.LocalIn, Out: out}); v != xt.Continue {
			t.Fatalf("LOG verdict %v, want continue", v)
		}
		if len(out.logs) != 1 || out.logs[0].line != lc.want || out.logs[0].level != lc.rule.Level {
			t.Errorf("case %d: got %+v, want level %d %q", i, out.logs, lc.rule.Level, lc.want)
		}
	}
	lg := rt(t, testEnv("filter", xt.LocalIn), 0, "LOG", "--log-level", "debug", "--log-prefix", "DROP: ")
	out := &recEmitter{}
	p := decode(t, packettest.EchoRequest("10.99.0.1", "10.99.0.2", 6918, 1, 56))
	p.InIface = "eth0"
	lg.Do(&xt.Ctx{P: p, Out: out})
	if len(out.logs) != 1 || out.logs[0].level != 7 || !strings.HasPrefix(out.logs[0].line, "DROP: IN=eth0 OUT= MAC= SRC=10.99.0.1 DST=10.99.0.2 LEN=84 ") {
		t.Errorf("got %+v", out.logs)
	}
}

func TestLogBuildIPv6Refused(t *testing.T) {
	env := testEnv("filter", xt.LocalIn)
	env.Family = xt.IPv6
	_, err := mkTarget(t, 0, "LOG").(xt.TargetBuilder).Build(env)
	if err == nil || !strings.Contains(err.Error(), "IPv6") {
		t.Errorf("err = %v", err)
	}
}

func TestNFLOG(t *testing.T) {
	nf := rt(t, testEnv("filter", xt.LocalIn), 0, "NFLOG", "--nflog-group", "5", "--nflog-prefix", "pfx", "--nflog-threshold", "3")
	p := decode(t, udpProbe(1))
	out := &nflogEmitter{}
	if v := nf.Do(&xt.Ctx{P: p, Out: out}); v != xt.Continue {
		t.Fatalf("verdict %v", v)
	}
	want := nflogRec{5, "pfx", -1, 3, p.Src}
	if len(out.nflogs) != 1 || out.nflogs[0] != want {
		t.Errorf("got %+v, want %+v", out.nflogs, want)
	}
	sized := rt(t, testEnv("filter", xt.LocalIn), 0, "NFLOG", "--nflog-size", "128")
	sized.Do(&xt.Ctx{P: p, Out: out})
	if out.nflogs[1].size != 128 || out.nflogs[1].group != 0 {
		t.Errorf("got %+v", out.nflogs[1])
	}
	// No listener: nothing happens, the packet goes on.
	plain := &recEmitter{}
	if v := nf.Do(&xt.Ctx{P: p, Out: plain}); v != xt.Continue || len(plain.logs)+len(plain.replies) != 0 {
		t.Errorf("without a listener: %v %+v", v, plain)
	}
}

func TestMark(t *testing.T) {
	p := decode(t, udpProbe(1))
	for _, tc := range []struct {
		words    []string
		old, new uint32
	}{
		{[]string{"--set-mark", "0x2a"}, 0xffff0000, 0x2a},
		{[]string{"--set-mark", "0x2/0xf"}, 0xff, 0xf2},
		{[]string{"--set-xmark", "0x1/0x3"}, 0xf6, 0xf5},
		{[]string{"--and-mark", "0xf0"}, 0xff, 0xf0},
		{[]string{"--or-mark", "0x100"}, 0x1, 0x101},
		{[]string{"--xor-mark", "0x3"}, 0x1, 0x2},
	} {
		m := rt(t, testEnv("mangle", xt.PreRouting), 0, "MARK", tc.words...)
		p.Mark = tc.old
		if v := m.Do(&xt.Ctx{P: p}); v != xt.Continue || p.Mark != tc.new {
			t.Errorf("%v: mark %#x -> %#x (%v), want %#x", tc.words, tc.old, p.Mark, v, tc.new)
		}
	}
}

// trackedCtx runs p through a fresh conntrack table at PREROUTING.
func trackedCtx(t *testing.T, tbl *conntrack.Table, p *packet.Packet, hook xt.Hook) *xt.Ctx {
	t.Helper()
	res := tbl.In(p, hook)
	if res.Conn == nil {
		t.Fatalf("no connection: %v", res.Reason)
	}
	return &xt.Ctx{P: p, Hook: hook, CT: res, Conntrack: tbl}
}

func TestConnmark(t *testing.T) {
	tbl := newCTTable(t)
	env := testEnv("mangle", xt.PreRouting)
	p := decode(t, udpProbe(1))
	c := trackedCtx(t, tbl, p, xt.PreRouting)
	conn := c.CT.Conn

	// save / restore round trip.
	p.Mark = 0x1234
	rt(t, env, 0, "CONNMARK", "--save-mark").Do(c)
	if conn.Mark() != 0x1234 {
		t.Fatalf("ct mark %#x after save", conn.Mark())
	}
	p.Mark = 0
	rt(t, env, 0, "CONNMARK", "--restore-mark").Do(c)
	if p.Mark != 0x1234 {
		t.Fatalf("mark %#x after restore", p.Mark)
	}

	for _, tc := range []struct {
		words           []string
		ctOld, pktOld   uint32
		ctWant, pktWant uint32
	}{
		{[]string{"--set-mark", "0x5"}, 0xff00, 0x1, 0x5, 0x1},
		{[]string{"--set-xmark", "0x5/0xf"}, 0xff00, 0x1, 0xff05, 0x1},
		{[]string{"--or-mark", "0x10"}, 0x1, 0x0, 0x11, 0x0},
		// save: ct = (ct AND NOT ctmask) XOR (mark AND nfmask)
		{[]string{"--save-mark", "--nfmask", "0xff", "--ctmask", "0xffff"}, 0xabcd0000, 0x1234, 0xabcd0034, 0x1234},
		// restore: mark = (mark AND NOT nfmask) XOR (ct AND ctmask)
		{[]string{"--restore-mark", "--mask", "0xf0"}, 0x1234, 0xffff, 0x1234, 0xff3f},
		// shifts apply after masking, without masking again; these four
		// were checked against the 6.18 kernel (conntrack -L, -m mark)
		{[]string{"--save-mark", "--nfmask", "0xff", "--ctmask", "0xff00", "--left-shift-mark", "8"}, 0x0, 0x12ab, 0xab00, 0x12ab},
		{[]string{"--restore-mark", "--nfmask", "0xff", "--ctmask", "0xff00", "--right-shift-mark", "8"}, 0xcd00, 0x1200, 0xcd00, 0x12cd},
		{[]string{"--save-mark", "--nfmask", "0xff00", "--ctmask", "0xff", "--right-shift-mark", "8"}, 0x0, 0x12ab, 0x12, 0x12ab},
		{[]string{"--restore-mark", "--nfmask", "0xff", "--ctmask", "0xffff", "--right-shift-mark", "4"}, 0xcd00, 0x1200, 0xcd00, 0x1ed0},
	} {
		conn.SetMark(tc.ctOld)
		p.Mark = tc.pktOld
		if v := rt(t, env, 0, "CONNMARK", tc.words...).Do(c); v != xt.Continue {
			t.Errorf("verdict %v", v)
		}
		if conn.Mark() != tc.ctWant || p.Mark != tc.pktWant {
			t.Errorf("%v: ct %#x mark %#x, want ct %#x mark %#x", tc.words, conn.Mark(), p.Mark, tc.ctWant, tc.pktWant)
		}
	}

	// No connection: nothing changes.
	p.Mark = 7
	rt(t, env, 0, "CONNMARK", "--restore-mark").Do(&xt.Ctx{P: p})
	if p.Mark != 7 {
		t.Error("restore without a connection changed the mark")
	}
	tbl.Release(&c.CT)
}

func TestTTLDSCPTOSRewrites(t *testing.T) {
	env := testEnv("mangle", xt.PreRouting)
	for _, tc := range []struct {
		target        string
		words         []string
		ttl, tos      uint8
		wantTTL, wTOS uint8
	}{
		{"TTL", []string{"--ttl-set", "1"}, 64, 0, 1, 0},
		{"TTL", []string{"--ttl-dec", "5"}, 3, 0, 0, 0},
		{"TTL", []string{"--ttl-dec", "1"}, 64, 0, 63, 0},
		{"TTL", []string{"--ttl-inc", "10"}, 250, 0, 255, 0},
		{"DSCP", []string{"--set-dscp", "0x2e"}, 64, 0x03, 64, 0xbb},
		{"DSCP", []string{"--set-dscp-class", "AF41"}, 64, 0xfd, 64, 0x89},
		{"TOS", []string{"--set-tos", "0x10/0x3f"}, 64, 0xe3, 64, 0xd0},
		{"TOS", []string{"--set-tos", "Minimize-Cost"}, 64, 0xa0, 64, 0x82},
		{"TOS", []string{"--and-tos", "0x0f"}, 64, 0xff, 64, 0x0f},
		{"TOS", []string{"--or-tos", "0x01"}, 64, 0x10, 64, 0x11},
		{"TOS", []string{"--xor-tos", "0x11"}, 64, 0x10, 64, 0x01},
	} {
		pkt := packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN,
			IP: packettest.IP{TTL: int(tc.ttl), TOS: tc.tos, Options: []byte{1, 1, 1, 0}}})
		if tc.ttl == 0 {
			t.Fatal("bad case")
		}
		p := decode(t, pkt)
		if v := rt(t, env, 6, tc.target, tc.words...).Do(&xt.Ctx{P: p}); v != xt.Continue {
			t.Errorf("verdict %v", v)
		}
		if p.Data[8] != tc.wantTTL || p.Data[1] != tc.wTOS || p.TTL != tc.wantTTL || p.TOS != tc.wTOS {
			t.Errorf("%s %v: ttl %d tos %#x, want %d %#x", tc.target, tc.words, p.Data[8], p.Data[1], tc.wantTTL, tc.wTOS)
		}
		checkIPv4(t, p.Data)
	}
	// DSCP on IPv6 sets the traffic class, keeping ECN.
	p := decode(t, packettest.UDP(packettest.UDPOpts{Src: "2001:db8::1", Dst: "2001:db8::2", SrcPort: 1, DstPort: 2, IP: packettest.IP{TOS: 0x01}}))
	rt(t, env, 17, "DSCP", "--set-dscp", "0x2e").Do(&xt.Ctx{P: p})
	if tc := header.IPv6(p.Data).TrafficClass(); tc != 0xb9 {
		t.Errorf("IPv6 traffic class %#x, want 0xb9", tc)
	}
}

func mssOf(t *testing.T, pkt []byte) (uint16, bool) {
	t.Helper()
	var p packet.Packet
	p.Decode(pkt)
	_, mss, ok := p.TCP().FindMSS()
	return mss, ok
}

func TestTCPMSS(t *testing.T) {
	env := testEnv("mangle", xt.PostRouting)
	env.RouteMTU = func(a netip.Addr) (int, bool) {
		if a == netip.MustParseAddr("10.0.0.2") {
			return 1400, true
		}
		return 0, false
	}
	syn := func(opts []byte, payload []byte) []byte {
		return packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 40000, DstPort: 443,
			Flags: packettest.SYN, Seq: 1000, Window: 64240, Options: opts, Payload: payload})
	}
	nopMSS := append([]byte{packettest.NOP}, packettest.MSS(1460)...) // MSS at an odd offset
	for _, tc := range []struct {
		name    string
		words   []string
		in      []byte
		wantMSS uint16
	}{
		{"set lowers", []string{"--set-mss", "1400"}, syn(packettest.MSS(1460), nil), 1400},
		{"set never raises", []string{"--set-mss", "1500"}, syn(packettest.MSS(1460), nil), 1460},
		{"set, odd offset", []string{"--set-mss", "1300"}, syn(nopMSS, nil), 1300},
		{"clamp: route MTU 1400 - 40", []string{"--clamp-mss-to-pmtu"}, syn(append(packettest.MSS(1460), packettest.WScale(7)...), nil), 1360},
		{"clamp: already below", []string{"--clamp-mss-to-pmtu"}, syn(packettest.MSS(1200), nil), 1200},
		{"with payload", []string{"--set-mss", "1000"}, syn(packettest.MSS(1460), []byte("data")), 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := decode(t, tc.in)
			if v := rt(t, env, 6, "TCPMSS", tc.words...).Do(&xt.Ctx{P: p, Hook: xt.PostRouting}); v != xt.Continue {
				t.Fatalf("verdict %v", v)
			}
			if mss, ok := mssOf(t, p.Data); !ok || mss != tc.wantMSS {
				t.Errorf("mss %d (%v), want %d", mss, ok, tc.wantMSS)
			}
			checkIPv4(t, p.Data)
		})
	}

	t.Run("option-less SYN grows", func(t *testing.T) {
		in := syn(append(packettest.WScale(7), packettest.NOP), nil)
		buf := make([]byte, len(in), len(in)+16)
		copy(buf, in)
		p := decode(t, buf)
		rt(t, env, 6, "TCPMSS", "--set-mss", "1400").Do(&xt.Ctx{P: p})
		if len(p.Data) != len(in)+4 || p.TotalLen != len(in)+4 {
			t.Fatalf("length %d/%d, want %d", len(p.Data), p.TotalLen, len(in)+4)
		}
		checkIPv4(t, p.Data)
		if mss, ok := mssOf(t, p.Data); !ok || mss != 536 {
			t.Errorf("inserted mss %d %v, want 536 (RFC 1122 default cap)", mss, ok)
		}
		var q packet.Packet
		if q.Decode(p.Data) != packet.OK || q.PayloadOff != p.PayloadOff || q.L4Off != p.L4Off {
			t.Errorf("decoded offsets %d/%d, target says %d/%d", q.L4Off, q.PayloadOff, p.L4Off, p.PayloadOff)
		}
		// The old options follow the new one, unchanged.
		if got := p.Data[q.L4Off+24 : q.PayloadOff]; string(got) != string(append(packettest.WScale(7), packettest.NOP)) {
			t.Errorf("options after MSS: %x", got)
		}
	})
	t.Run("option-less SYN, small MSS kept", func(t *testing.T) {
		in := syn(nil, nil)
		buf := append(make([]byte, 0, len(in)+4), in...)
		p := decode(t, buf)
		rt(t, env, 6, "TCPMSS", "--set-mss", "500").Do(&xt.Ctx{P: p})
		if mss, ok := mssOf(t, p.Data); !ok || mss != 500 {
			t.Errorf("mss %d %v", mss, ok)
		}
		checkIPv4(t, p.Data)
	})
	t.Run("unchanged", func(t *testing.T) {
		for name, in := range map[string][]byte{
			"no capacity":  syn(nil, nil),
			"with payload": append(make([]byte, 0, 100), syn(nil, []byte("x"))...),
			"full header":  append(make([]byte, 0, 100), syn(make([]byte, 40), nil)...),
		} {
			p := decode(t, in)
			before := string(p.Data)
			if v := rt(t, env, 6, "TCPMSS", "--set-mss", "1000").Do(&xt.Ctx{P: p}); v != xt.Continue || string(p.Data) != before {
				t.Errorf("%s: changed (%v)", name, v)
			}
		}
		frags := packettest.Fragments(syn(packettest.MSS(1460), make([]byte, 64)), 24)
		p := decode(t, frags[1])
		if v := rt(t, env, 6, "TCPMSS", "--set-mss", "1000").Do(&xt.Ctx{P: p}); v != xt.Continue {
			t.Errorf("fragment: %v", v)
		}
	})
	t.Run("drops", func(t *testing.T) {
		bad := packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN, DataOffset: 12})
		p := decode(t, bad)
		if v := rt(t, env, 6, "TCPMSS", "--set-mss", "1000").Do(&xt.Ctx{P: p}); v != xt.VerdictDrop {
			t.Errorf("malformed header: %v", v)
		}
		tiny := testEnv("mangle", xt.PostRouting)
		tiny.RouteMTU = func(netip.Addr) (int, bool) { return 40, true }
		p = decode(t, syn(packettest.MSS(1460), nil))
		if v := rt(t, tiny, 6, "TCPMSS", "--clamp-mss-to-pmtu").Do(&xt.Ctx{P: p}); v != xt.VerdictDrop {
			t.Errorf("MTU 40: %v", v)
		}
	})
	t.Run("IPv6 clamp", func(t *testing.T) {
		in := packettest.TCP(packettest.TCPOpts{Src: "2001:db8::1", Dst: "2001:db8::2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN, Options: packettest.MSS(1460)})
		p := decode(t, in)
		rt(t, testEnv("mangle", xt.PostRouting), 6, "TCPMSS", "--clamp-mss-to-pmtu").Do(&xt.Ctx{P: p})
		if mss, _ := mssOf(t, p.Data); mss != 1440 {
			t.Errorf("mss %d, want 1500-60", mss)
		}
		l4 := p.Data[40:]
		ph := make([]byte, 40)
		copy(ph, p.Data[8:40])
		binary.BigEndian.PutUint32(ph[32:], uint32(len(l4)))
		ph[39] = 6
		if csum(ph, l4) != 0 {
			t.Error("IPv6 TCP checksum wrong")
		}
	})
}

func TestCTNotrackZoneTrace(t *testing.T) {
	env := testEnv("raw", xt.PreRouting)
	p := decode(t, udpProbe(1))
	c := &xt.Ctx{P: p}
	if rt(t, env, 0, "NOTRACK").Do(c); !c.NoTrack {
		t.Error("NOTRACK")
	}
	c = &xt.Ctx{P: p}
	if rt(t, env, 0, "CT", "--notrack").Do(c); !c.NoTrack {
		t.Error("CT --notrack")
	}
	c = &xt.Ctx{P: p}
	if v := rt(t, env, 0, "CT", "--zone", "7").Do(c); v != xt.Continue || c.Zone != 7 || c.NoTrack {
		t.Errorf("CT --zone 7: %v %+v", v, c.Zone)
	}
	p.Mark = 0x10005
	c = &xt.Ctx{P: p}
	if rt(t, env, 0, "CT", "--zone", "mark").Do(c); c.Zone != 5 {
		t.Errorf("zone from mark %d", c.Zone)
	}
	c = &xt.Ctx{P: p}
	if v := rt(t, env, 0, "TRACE").Do(c); v != xt.Continue || !c.Trace {
		t.Error("TRACE")
	}
	for words, opt := range map[string]string{
		"--helper ftp":    "helper",
		"--timeout t1":    "timeout",
		"--ctevents new":  "ctevents",
		"--expevents new": "expevents",
		"--zone-orig 3":   "zone-orig",
		"--zone-reply 3":  "zone-reply",
	} {
		tg := mkTarget(t, 6, "CT", strings.Fields(words)...)
		_, err := tg.(xt.TargetBuilder).Build(env)
		if err == nil || !strings.Contains(err.Error(), "--"+opt) || !strings.Contains(err.Error(), "not supported by the uptables engine") {
			t.Errorf("CT %s: %v", words, err)
		}
	}
	// A packet that already has a connection keeps it.
	tbl := newCTTable(t)
	c = trackedCtx(t, tbl, decode(t, udpProbe(2)), xt.PreRouting)
	rt(t, env, 0, "NOTRACK").Do(c)
	if c.NoTrack {
		t.Error("NOTRACK on a tracked packet")
	}
	tbl.Release(&c.CT)
}
