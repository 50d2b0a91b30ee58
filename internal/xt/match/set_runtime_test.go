package match

import (
	"io"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

func setFixture(t testing.TB, cmds ...string) (*ipset.Sets, *xt.Env) {
	t.Helper()
	ss := ipset.New(nil)
	for _, c := range cmds {
		if err := ss.Exec(strings.Fields(c), nil, io.Discard, 0); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
	}
	named := &srtNamed{}
	named.Shared(NamedSetsKind, NamedSetsName, func() (any, error) { return ss, nil })
	return ss, &xt.Env{Family: xt.IPv4, Named: named}
}

func buildSet(t testing.TB, ss *ipset.Sets, env *xt.Env, words ...string) (*Set, xt.PacketMatcher) {
	t.Helper()
	m := newSetSpec(ss.Exists).New().(*Set)
	for i := 0; i < len(words); i++ {
		inv := false
		if words[i] == "!" {
			inv = true
			i++
		}
		opt := strings.TrimPrefix(words[i], "--")
		var arg string
		var extra []string
		switch opt {
		case "match-set":
			arg, extra = words[i+1], words[i+2:i+3]
			i += 2
		case "packets-eq", "packets-lt", "packets-gt", "bytes-eq", "bytes-lt", "bytes-gt":
			arg = words[i+1]
			i++
		}
		if err := m.Parse(&xt.ParseContext{Family: xt.IPv4}, opt, inv, arg, extra); err != nil {
			t.Fatalf("%v: %v", words, err)
		}
	}
	if err := m.Final(nil); err != nil {
		t.Fatal(err)
	}
	rt, err := m.Build(env)
	if err != nil {
		t.Fatal(err)
	}
	return m, rt
}

func setCtx(t testing.TB, data []byte) *xt.Ctx {
	c := &xt.Ctx{P: &packet.Packet{}}
	if st := c.P.Decode(data); st != packet.OK {
		t.Fatalf("decode: %v", st)
	}
	return c
}

// TestSetMatchRuntime: the verdicts of -m set for a country-style hash:net
// with an exception, for hash:ip,port dimensions, and for the counter
// options, as the kernel's xt_set decides them.
func TestSetMatchRuntime(t *testing.T) {
	ss, env := setFixture(t,
		"create bl hash:net", "add bl 10.0.0.0/8", "add bl 10.1.0.0/16 nomatch",
		"create svc hash:ip,port counters", "add svc 10.0.0.1,icmp:echo-request", "add svc 10.9.9.9,udp:53")
	cases := []struct {
		rule  []string
		pkt   []byte
		want  bool
		saved string
	}{
		{[]string{"--match-set", "bl", "src"}, packettest.EchoRequest("10.2.0.1", "192.0.2.1", 1, 1, 56), true, " --match-set bl src"},
		{[]string{"--match-set", "bl", "src"}, packettest.EchoRequest("10.1.0.1", "192.0.2.1", 1, 1, 56), false, " --match-set bl src"},
		{[]string{"--match-set", "bl", "src", "--return-nomatch"}, packettest.EchoRequest("10.1.0.1", "192.0.2.1", 1, 1, 56), true, " --match-set bl src --return-nomatch"},
		{[]string{"--match-set", "bl", "src", "--return-nomatch"}, packettest.EchoRequest("10.2.0.1", "192.0.2.1", 1, 1, 56), false, " --match-set bl src --return-nomatch"},
		{[]string{"!", "--match-set", "bl", "dst"}, packettest.EchoRequest("10.2.0.1", "192.0.2.1", 1, 1, 56), true, " ! --match-set bl dst"},
		{[]string{"--match-set", "svc", "src,src"}, packettest.EchoRequest("10.0.0.1", "192.0.2.1", 1, 1, 56), true, " --match-set svc src,src"},
		{[]string{"--match-set", "svc", "dst,dst"}, packettest.UDP(packettest.UDPOpts{Src: "192.0.2.1", Dst: "10.9.9.9", SrcPort: 1000, DstPort: 53}), true, " --match-set svc dst,dst"},
		{[]string{"--match-set", "svc", "dst,src"}, packettest.UDP(packettest.UDPOpts{Src: "192.0.2.1", Dst: "10.9.9.9", SrcPort: 1000, DstPort: 53}), false, " --match-set svc dst,src"},
		{[]string{"--match-set", "svc", "dst"}, packettest.UDP(packettest.UDPOpts{Src: "192.0.2.1", Dst: "10.9.9.9", SrcPort: 1000, DstPort: 53}), true, " --match-set svc dst"},
	}
	for _, c := range cases {
		m, rt := buildSet(t, ss, env, c.rule...)
		var b strings.Builder
		m.Save(&b)
		if b.String() != c.saved {
			t.Errorf("%v: saved %q, want %q", c.rule, b.String(), c.saved)
		}
		if got := rt.Matches(setCtx(t, c.pkt)); got != c.want {
			t.Errorf("%v: matched %v, want %v", c.rule, got, c.want)
		}
	}

	// Counters: each matching packet counts; --packets-gt compares the
	// updated counter; ! --update-counters leaves it alone.
	ss2, env2 := setFixture(t, "create c hash:ip counters", "add c 10.0.0.1")
	_, gt := buildSet(t, ss2, env2, "--match-set", "c", "src", "--packets-gt", "2")
	pkt := packettest.EchoRequest("10.0.0.1", "192.0.2.1", 1, 1, 56)
	var seq []bool
	for range 4 {
		seq = append(seq, gt.Matches(setCtx(t, pkt)))
	}
	if want := []bool{false, false, true, true}; !equalBools(seq, want) {
		t.Errorf("--packets-gt 2 over 4 packets: %v, want %v", seq, want)
	}
	_, noUpd := buildSet(t, ss2, env2, "--match-set", "c", "src", "!", "--update-counters")
	noUpd.Matches(setCtx(t, pkt))
	var out strings.Builder
	ss2.Exec([]string{"save", "c"}, nil, &out, 0)
	if !strings.Contains(out.String(), "add c 10.0.0.1 packets 4 bytes 336\n") {
		t.Errorf("counters after 4 counted packets and 1 uncounted:\n%s", out.String())
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSetMatchMissingSet: iptables' own error for a set that does not exist.
func TestSetMatchMissingSet(t *testing.T) {
	m := newSetSpec(ipset.New(nil).Exists).New()
	err := m.Parse(&xt.ParseContext{}, "match-set", false, "nosuch", []string{"src"})
	if err == nil || err.Error() != "Set nosuch doesn't exist.\n" {
		t.Fatalf("got %v", err)
	}
}

// TestSetMatchAllocs: a lookup in a 60,000-network hash:net allocates
// nothing.
func TestSetMatchAllocs(t *testing.T) {
	ss, env := setFixture(t, "create bl hash:net maxelem 100000")
	s, _ := ss.Get("bl")
	for i := 0; i < 60000; i++ {
		keys, _ := s.ParseElem(countryNet(i))
		if err := s.Add(keys, ipset.AddFlags{Exist: true}, 0); err != nil {
			t.Fatal(err)
		}
	}
	_, rt := buildSet(t, ss, env, "--match-set", "bl", "src")
	c := setCtx(t, packettest.EchoRequest("203.0.113.9", "192.0.2.1", 1, 1, 56))
	if n := testing.AllocsPerRun(1000, func() { rt.Matches(c) }); n != 0 {
		t.Fatalf("%v allocs per lookup", n)
	}
}

// countryNet is the i-th network of a synthetic country list: prefix
// lengths 12 to 24 spread as in real allocations.
func countryNet(i int) string {
	c := 12 + i%13
	a := uint32(i) * 2654435761
	a &= ^uint32(0) << (32 - c)
	var b strings.Builder
	b.WriteString(itoa(int(a>>24)) + "." + itoa(int(a>>16&255)) + "." + itoa(int(a>>8&255)) + "." + itoa(int(a&255)) + "/" + itoa(c))
	return b.String()
}

func itoa(n int) string { return utoa(uint64(n)) }

func BenchmarkSetMatchCountry60k(b *testing.B) {
	ss, env := setFixture(b, "create bl hash:net maxelem 100000")
	s, _ := ss.Get("bl")
	for i := 0; i < 60000; i++ {
		keys, _ := s.ParseElem(countryNet(i))
		_ = s.Add(keys, ipset.AddFlags{Exist: true}, 0)
	}
	_, rt := buildSet(b, ss, env, "--match-set", "bl", "src")
	c := setCtx(b, packettest.EchoRequest("203.0.113.9", "192.0.2.1", 1, 1, 56))
	b.ReportAllocs()
	for b.Loop() {
		rt.Matches(c)
	}
}
