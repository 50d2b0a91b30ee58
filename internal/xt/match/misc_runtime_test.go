package match

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

func rtPing(dst string) []byte { return packettest.EchoRequest("10.0.0.1", dst, 1, 1, 56) } // 84 bytes

// rtSequence feeds n identical packets to m and returns the results.
func rtSequence(m xt.PacketMatcher, c *xt.Ctx, n int) string {
	var b strings.Builder
	for range n {
		if m.Matches(c) {
			b.WriteByte('1')
		} else {
			b.WriteByte('0')
		}
	}
	return b.String()
}

// TestStatisticNth: observed on 6.18 with --every 3: --packet 0 matches
// the 1st and 4th ping, --packet 1 the 2nd, --packet 2 the 3rd.
func TestStatisticNth(t *testing.T) {
	c := &xt.Ctx{P: rtPkt(rtPing("10.0.0.2"))}
	for _, tc := range []struct{ args, want string }{
		{"--mode nth --every 3 --packet 0", "100100100"},
		{"--mode nth --every 3 --packet 1", "010010010"},
		{"--mode nth --every 3 --packet 2", "001001001"},
		{"--mode nth --every 1 --packet 0", "111"},
		{"--mode nth ! --every 2 --packet 0", "010101"},
	} {
		m := rtMatcher(t, "statistic", xt.IPv4, 0, tc.args, nil)
		if got := rtSequence(m, c, len(tc.want)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.args, got, tc.want)
		}
		if n := testing.AllocsPerRun(100, func() { m.Matches(c) }); n != 0 {
			t.Errorf("%s allocates %v", tc.args, n)
		}
	}
	// Carried over when the rule survives a reload, fresh otherwise.
	spec, _ := psRun(t, "statistic", xt.IPv4, 0, "--mode nth --every 3 --packet 0")
	old, _ := spec.(xt.MatchBuilder).Build(&xt.Env{})
	got := rtSequence(old, c, 2)
	kept, _ := spec.(xt.MatchBuilder).Build(&xt.Env{Prev: old})
	got += rtSequence(kept, c, 4)
	if got != "100100" {
		t.Errorf("across reload: %s, want 100100", got)
	}
	fresh, _ := spec.(xt.MatchBuilder).Build(&xt.Env{})
	if got := rtSequence(fresh, c, 2); got != "10" {
		t.Errorf("new rule: %s, want 10", got)
	}
	other, _ := psRun(t, "statistic", xt.IPv4, 0, "--mode nth --every 4 --packet 0")
	changed, _ := other.(xt.MatchBuilder).Build(&xt.Env{Prev: kept})
	if got := rtSequence(changed, c, 4); got != "1000" {
		t.Errorf("changed parameters must not inherit: %s", got)
	}
}

func TestStatisticRandom(t *testing.T) {
	c := &xt.Ctx{P: rtPkt(rtPing("10.0.0.2"))}
	const n = 200000
	for _, tc := range []struct {
		args     string
		min, max int
	}{
		{"--mode random --probability 0.25", n * 24 / 100, n * 26 / 100},
		{"--mode random ! --probability 0.25", n * 74 / 100, n * 76 / 100},
		{"--mode random --probability 0", 0, 0},
		{"--mode random --probability 1", n, n},
	} {
		m := rtMatcher(t, "statistic", xt.IPv4, 0, tc.args, &xt.Env{Rand: rtSeq(42)})
		hits := strings.Count(rtSequence(m, c, n), "1")
		if hits < tc.min || hits > tc.max {
			t.Errorf("%s: %d of %d", tc.args, hits, n)
		}
		if a := testing.AllocsPerRun(100, func() { m.Matches(c) }); a != 0 {
			t.Errorf("%s allocates %v", tc.args, a)
		}
	}
	// Same seed, same draws: tests and replays are reproducible.
	a := rtMatcher(t, "statistic", xt.IPv4, 0, "--mode random --probability 0.5", &xt.Env{Rand: rtSeq(7)})
	b := rtMatcher(t, "statistic", xt.IPv4, 0, "--mode random --probability 0.5", &xt.Env{Rand: rtSeq(7)})
	if rtSequence(a, c, 64) != rtSequence(b, c, 64) {
		t.Error("same seed gave different draws")
	}
	spec, _ := psRun(t, "statistic", xt.IPv4, 0, "--mode random --probability 0.5")
	if _, err := spec.(xt.MatchBuilder).Build(&xt.Env{}); err == nil {
		t.Error("random mode built without a random source")
	}
}

func TestQuotaRuntime(t *testing.T) {
	big := &xt.Ctx{P: rtPkt(rtPing("10.0.0.2"))} // 84 bytes
	small := &xt.Ctx{P: rtPkt(packettest.EchoRequest("10.0.0.1", "10.0.0.2", 1, 1, 0))}
	if big.P.TotalLen != 84 || small.P.TotalLen != 28 {
		t.Fatal("packet sizes")
	}
	m := rtMatcher(t, "quota", xt.IPv4, 0, "--quota 200", nil)
	// 200-84-84 = 32 left: the third ping does not fit and empties the
	// budget, so a later 28-byte packet does not pass either.
	if got := rtSequence(m, big, 3) + rtSequence(m, small, 1); got != "1100" {
		t.Errorf("quota 200: %s, want 1100", got)
	}
	inv := rtMatcher(t, "quota", xt.IPv4, 0, "! --quota 200", nil)
	if got := rtSequence(inv, big, 3); got != "001" {
		t.Errorf("! quota 200: %s, want 001", got)
	}
	exact := rtMatcher(t, "quota", xt.IPv4, 0, "--quota 168", nil)
	if got := rtSequence(exact, big, 3); got != "110" {
		t.Errorf("quota 168: %s", got)
	}
	// Carry-over across a reload.
	spec, _ := psRun(t, "quota", xt.IPv4, 0, "--quota 200")
	old, _ := spec.(xt.MatchBuilder).Build(&xt.Env{})
	old.Matches(big)
	kept, _ := spec.(xt.MatchBuilder).Build(&xt.Env{Prev: old})
	if l := kept.(*quotaRuntime).Left(); l != 116 {
		t.Errorf("carried over: %d left, want 116", l)
	}
	other, _ := psRun(t, "quota", xt.IPv4, 0, "--quota 300")
	changed, _ := other.(xt.MatchBuilder).Build(&xt.Env{Prev: kept})
	if l := changed.(*quotaRuntime).Left(); l != 300 {
		t.Errorf("different quota: %d left, want 300", l)
	}
	if a := testing.AllocsPerRun(100, func() { m.Matches(big) }); a != 0 {
		t.Errorf("quota allocates %v", a)
	}
}

func rtEth(dst [6]byte) []byte {
	l := make([]byte, 14)
	copy(l, dst[:])
	l[6], l[12], l[13] = 0x02, 0x08, 0x00
	return l
}

func TestPktTypeRuntime(t *testing.T) {
	env := &xt.Env{LocalAddrs: func() []xt.HostAddr {
		return []xt.HostAddr{{Iface: "lo", Prefix: netip.MustParsePrefix("127.0.0.1/8")}, {Iface: "eth0", Prefix: netip.MustParsePrefix("10.9.0.1/24")}}
	}}
	bcastMAC := rtEth([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	mcastMAC := rtEth([6]byte{0x01, 0x00, 0x5e, 0, 0, 1})
	ucastMAC := rtEth([6]byte{0x02, 0, 0, 0, 0, 9})
	cases := []struct {
		name, dst, in string
		link          []byte
		hook          xt.Hook
		want          string
	}{
		{"output to broadcast is host", "255.255.255.255", "", nil, xt.LocalOut, "unicast"},
		{"postrouting to multicast is host", "224.0.0.1", "", nil, xt.PostRouting, "unicast"},
		{"forward is host", "10.9.0.255", "eth0", bcastMAC, xt.Forward, "unicast"},
		{"mac broadcast", "10.9.0.1", "eth0", bcastMAC, xt.PreRouting, "broadcast"},
		{"mac multicast", "224.0.0.1", "eth0", mcastMAC, xt.LocalIn, "multicast"},
		{"mac unicast to broadcast ip", "10.9.0.255", "eth0", ucastMAC, xt.LocalIn, "unicast"},
		{"no link limited broadcast", "255.255.255.255", "eth0", nil, xt.PreRouting, "broadcast"},
		{"no link directed broadcast", "10.9.0.255", "eth0", nil, xt.LocalIn, "broadcast"},
		{"no link network address", "10.9.0.0", "eth0", nil, xt.LocalIn, "unicast"},
		{"no link multicast", "239.1.2.3", "eth0", nil, xt.LocalIn, "multicast"},
		{"loopback copy of broadcast", "10.9.0.255", "lo", rtEth([6]byte{}), xt.LocalIn, "broadcast"},
		{"loopback unicast", "127.0.0.1", "lo", rtEth([6]byte{}), xt.LocalIn, "unicast"},
	}
	for _, c := range cases {
		p := rtPkt(rtPing(c.dst))
		p.InIface, p.Link = c.in, c.link
		ctx := &xt.Ctx{P: p, Hook: c.hook}
		for _, typ := range []string{"unicast", "broadcast", "multicast", "otherhost"} {
			for _, inv := range []bool{false, true} {
				args := "--pkt-type " + typ
				if inv {
					args = "! " + args
				}
				m := rtMatcher(t, "pkttype", xt.IPv4, 0, args, env)
				if got, want := m.Matches(ctx), (typ == c.want) != inv; got != want {
					t.Errorf("%s: %s = %v, want %v", c.name, args, got, want)
				}
				if a := testing.AllocsPerRun(50, func() { m.Matches(ctx) }); a != 0 {
					t.Errorf("pkttype allocates %v", a)
				}
			}
		}
	}
	p6 := rtPkt(packettest.EchoRequest("2001:db8::1", "ff02::1", 1, 1, 0))
	p6.InIface = "eth0"
	m := rtMatcher(t, "pkttype", xt.IPv6, 0, "--pkt-type multicast", env)
	if !m.Matches(&xt.Ctx{P: p6, Hook: xt.LocalIn}) {
		t.Error("ff02::1 without link is not multicast")
	}
}

// TestAddrTypeRuntime: the types observed in a namespace with lo and a veth
// 10.9.0.1/24, from OUTPUT.
func TestAddrTypeRuntime(t *testing.T) {
	env := &xt.Env{Family: xt.IPv4, Hooks: xt.MaskOf(xt.LocalOut), LocalAddrs: func() []xt.HostAddr {
		return []xt.HostAddr{{Iface: "lo", Prefix: netip.MustParsePrefix("127.0.0.1/8")}, {Iface: "veth0", Prefix: netip.MustParsePrefix("10.9.0.1/24")}}
	}}
	types := []string{"UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "MULTICAST"}
	cases := []struct{ dst, out, want string }{
		{"127.0.0.1", "lo", "LOCAL"},
		{"127.0.0.5", "lo", "LOCAL"},
		{"10.9.0.1", "lo", "LOCAL"},
		{"10.9.0.255", "veth0", "BROADCAST"},
		{"255.255.255.255", "veth0", "BROADCAST"},
		{"0.1.2.3", "veth0", "BROADCAST"},
		{"224.0.0.1", "veth0", "MULTICAST"},
		{"10.9.0.2", "veth0", "UNICAST"},
		{"10.9.0.0", "veth0", "UNICAST"},
		{"8.8.8.8", "veth0", "UNICAST"},
	}
	for _, c := range cases {
		p := rtPkt(packettest.UDP(packettest.UDPOpts{Src: "10.9.0.1", Dst: c.dst, SrcPort: 1, DstPort: 9999}))
		p.OutIface = c.out
		ctx := &xt.Ctx{P: p, Hook: xt.LocalOut}
		for _, typ := range types {
			m := rtMatcher(t, "addrtype", xt.IPv4, 0, "--dst-type "+typ, env)
			if got := m.Matches(ctx); got != (typ == c.want) {
				t.Errorf("dst %s: --dst-type %s = %v", c.dst, typ, got)
			}
			if a := testing.AllocsPerRun(50, func() { m.Matches(ctx) }); a != 0 {
				t.Errorf("addrtype allocates %v", a)
			}
		}
		if m := rtMatcher(t, "addrtype", xt.IPv4, 0, "! --dst-type "+c.want, env); m.Matches(ctx) {
			t.Errorf("dst %s: ! --dst-type %s matched", c.dst, c.want)
		}
		if m := rtMatcher(t, "addrtype", xt.IPv4, 0, "--src-type LOCAL --dst-type "+c.want, env); !m.Matches(ctx) {
			t.Errorf("dst %s: --src-type LOCAL --dst-type %s did not match", c.dst, c.want)
		}
	}
	// --limit-iface-out: 10.9.0.1's local route is on veth0, so a packet
	// leaving through lo does not see it as LOCAL (observed), 127.0.0.1 does.
	lim := rtMatcher(t, "addrtype", xt.IPv4, 0, "--dst-type LOCAL --limit-iface-out", env)
	for _, c := range []struct {
		dst, out string
		want     bool
	}{{"10.9.0.1", "lo", false}, {"10.9.0.1", "veth0", true}, {"127.0.0.1", "lo", true}} {
		p := rtPkt(packettest.UDP(packettest.UDPOpts{Src: "10.9.0.1", Dst: c.dst, SrcPort: 1, DstPort: 9999}))
		p.OutIface = c.out
		if got := lim.Matches(&xt.Ctx{P: p, Hook: xt.LocalOut}); got != c.want {
			t.Errorf("limit-iface-out %s via %s: %v", c.dst, c.out, got)
		}
	}
	// Default host: only the loopback.
	def := rtMatcher(t, "addrtype", xt.IPv4, 0, "--dst-type LOCAL", &xt.Env{Family: xt.IPv4})
	if !def.Matches(&xt.Ctx{P: rtPkt(rtPing("127.1.2.3"))}) || def.Matches(&xt.Ctx{P: rtPkt(rtPing("10.9.0.1"))}) {
		t.Error("default local table is not loopback-only")
	}
	// Refused: types only hand-made routes give, and IPv6.
	for _, c := range []struct {
		fam  xt.Family
		args string
		msg  string
	}{
		{xt.IPv4, "--dst-type BLACKHOLE", "--dst-type BLACKHOLE"},
		{xt.IPv4, "--src-type LOCAL,UNREACHABLE", "--src-type UNREACHABLE"},
		{xt.IPv4, "! --dst-type PROHIBIT", "--dst-type PROHIBIT"},
		{xt.IPv6, "--dst-type LOCAL", "IPv6"},
	} {
		m, err := psRun(t, "addrtype", c.fam, 0, c.args)
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.(xt.MatchBuilder).Build(&xt.Env{Family: c.fam})
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: Build error %v, want one naming %q", c.args, err, c.msg)
		}
	}
}

func TestHelperCPURuntime(t *testing.T) {
	c := &xt.Ctx{P: rtPkt(rtPing("10.0.0.2")), CPU: 1}
	rtCheck(t, c, "helper", "--helper ftp", false)
	rtCheck(t, c, "helper", "! --helper ftp", true)
	rtCheck(t, c, "cpu", "--cpu 1", true)
	rtCheck(t, c, "cpu", "--cpu 0", false)
	rtCheck(t, c, "cpu", "! --cpu 0", true)
	c.CPU = 0
	rtCheck(t, c, "cpu", "--cpu 0", true)
}

// TestRefusedAtBuild: matches that need what uptables does not have fail
// to build with an error naming the match and the reason.
func TestRefusedAtBuild(t *testing.T) {
	for _, c := range []struct {
		name string
		m    xt.Match
		want string
	}{
		{"devgroup", &DevGroup{}, "device groups"},
		{"physdev", &Physdev{}, "bridge port"},
		{"socket", &Socket{}, "socket tables"},
		{"set", &Set{}, "ipset"},
	} {
		b, ok := c.m.(xt.MatchBuilder)
		if !ok {
			t.Errorf("%s: no Build", c.name)
			continue
		}
		_, err := b.Build(&xt.Env{Family: xt.IPv4})
		if err == nil || !strings.HasPrefix(err.Error(), c.name+": ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Build error %v", c.name, err)
		}
	}
}
