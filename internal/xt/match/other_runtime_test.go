package match

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

// build parses "opt arg" words (a "!" inverts the next option) into a match
// of spec, the way the grammar drives an extension.
func build(t *testing.T, spec *xt.MatchSpec, words ...string) xt.Match {
	t.Helper()
	m := spec.New()
	ctx := &xt.ParseContext{Family: xt.IPv4, Table: "filter", Chain: "INPUT"}
	inv := false
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "!" {
			inv = true
			continue
		}
		name := strings.TrimPrefix(w, "--")
		var o *xt.Option
		for j := range spec.Options {
			if spec.Options[j].Name == name {
				o = &spec.Options[j]
			}
		}
		if o == nil {
			t.Fatalf("no option %s", w)
		}
		arg := ""
		if o.Arg == xt.RequiredArg {
			i++
			arg = words[i]
		}
		if err := m.Parse(ctx, name, inv, arg, nil); err != nil {
			t.Fatalf("%v: %v", words, err)
		}
		inv = false
	}
	if err := m.Final(ctx); err != nil {
		t.Fatalf("%v: %v", words, err)
	}
	return m
}

func decode(t *testing.T, data []byte) *packet.Packet {
	t.Helper()
	p := &packet.Packet{}
	if st := p.Decode(data); st != packet.OK {
		t.Fatalf("decode: %v", st)
	}
	return p
}

func udp(src, dst string, tos uint8, payload string) []byte {
	return packettest.UDP(packettest.UDPOpts{Src: src, Dst: dst, SrcPort: 1000, DstPort: 53, Payload: []byte(payload), IP: packettest.IP{TOS: tos}})
}

func TestOtherPacketMatchers(t *testing.T) {
	ethFrom := func(mac [6]byte) []byte {
		l := make([]byte, 14)
		copy(l[6:], mac[:])
		l[12], l[13] = 0x08, 0x00
		return l
	}
	ts := func(s string) int64 {
		tm, err := time.Parse("2006-01-02T15:04:05", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixNano()
	}
	type pk struct {
		data     []byte
		mark     uint32
		link     []byte
		ns       int64
		uid, gid uint32
		owner    bool
	}
	base := udp("10.0.0.5", "192.168.1.1", 0x10, "hello GET /index.html world")
	cases := []struct {
		name  string
		spec  *xt.MatchSpec
		words []string
		p     pk
		want  bool
	}{
		{"iprange src in", newIPRangeSpec(), []string{"--src-range", "10.0.0.1-10.0.0.10"}, pk{data: base}, true},
		{"iprange src out", newIPRangeSpec(), []string{"--src-range", "10.0.0.6-10.0.0.10"}, pk{data: base}, false},
		{"iprange ! dst", newIPRangeSpec(), []string{"!", "--dst-range", "192.168.1.1-192.168.1.1"}, pk{data: base}, false},
		{"iprange reversed never", newIPRangeSpec(), []string{"--src-range", "10.0.0.9-10.0.0.1"}, pk{data: base}, false},
		{"iprange src and dst", newIPRangeSpec(), []string{"--src-range", "10.0.0.5", "--dst-range", "192.168.0.0-192.168.255.255"}, pk{data: base}, true},
		{"mark exact", newMarkSpec(), []string{"--mark", "0x1"}, pk{data: base, mark: 1}, true},
		{"mark mask", newMarkSpec(), []string{"--mark", "0x10/0xf0"}, pk{data: base, mark: 0x1f}, true},
		{"mark !", newMarkSpec(), []string{"!", "--mark", "0x10/0xf0"}, pk{data: base, mark: 0x1f}, false},
		{"comment", newCommentSpec(), []string{"--comment", "x"}, pk{data: base}, true},
		{"tos symbolic", newTOSSpec(), []string{"--tos", "Minimize-Delay"}, pk{data: base}, true},
		{"tos full mask", newTOSSpec(), []string{"--tos", "0x12"}, pk{data: base}, false},
		{"tos !", newTOSSpec(), []string{"!", "--tos", "0x10/0x10"}, pk{data: base}, false},
		{"dscp", newDSCPSpec(), []string{"--dscp", "4"}, pk{data: base}, true},
		{"dscp class EF", newDSCPSpec(), []string{"--dscp-class", "EF"}, pk{data: udp("10.0.0.5", "192.168.1.1", 0xb8, "")}, true},
		{"dscp !", newDSCPSpec(), []string{"!", "--dscp", "4"}, pk{data: base}, false},
		{"mac equal", newMACSpec(), []string{"--mac-source", "42:01:02:03:04:05"}, pk{data: base, link: ethFrom([6]byte{0x42, 1, 2, 3, 4, 5})}, true},
		{"mac other", newMACSpec(), []string{"--mac-source", "42:01:02:03:04:05"}, pk{data: base, link: ethFrom([6]byte{0x42, 1, 2, 3, 4, 6})}, false},
		{"mac ! no link", newMACSpec(), []string{"!", "--mac-source", "42:01:02:03:04:05"}, pk{data: base}, false},
		{"string bm", newStringSpec(), []string{"--algo", "bm", "--string", "GET /"}, pk{data: base}, true},
		{"string kmp icase", newStringSpec(), []string{"--algo", "kmp", "--string", "get /INDEX", "--icase"}, pk{data: base}, true},
		{"string case differs", newStringSpec(), []string{"--algo", "bm", "--string", "get /"}, pk{data: base}, false},
		// IP 20 + UDP 8: "hello " is at 28..34, "GET /" at 34..39.
		{"string to cuts", newStringSpec(), []string{"--algo", "bm", "--string", "GET /", "--to", "38"}, pk{data: base}, false},
		{"string to fits", newStringSpec(), []string{"--algo", "bm", "--string", "GET /", "--to", "39"}, pk{data: base}, true},
		{"string from after", newStringSpec(), []string{"--algo", "bm", "--string", "GET /", "--from", "35"}, pk{data: base}, false},
		{"string hex !", newStringSpec(), []string{"--algo", "bm", "!", "--hex-string", "|68656c6c6f|"}, pk{data: base}, false},
		{"u32 version", newU32Spec(), []string{"--u32", "0>>28=4"}, pk{data: base}, true},
		{"u32 udp dport via @", newU32Spec(), []string{"--u32", "0>>22&0x3C@0&0xFFFF=53"}, pk{data: base}, true},
		{"u32 beyond end", newU32Spec(), []string{"--u32", "1000=0:0xffffffff"}, pk{data: base}, false},
		{"u32 ! beyond end", newU32Spec(), []string{"!", "--u32", "1000=0:0xffffffff"}, pk{data: base}, true},
		{"u32 two tests", newU32Spec(), []string{"--u32", "0>>28=4&&9&0xFF=6"}, pk{data: base}, false},
		{"time window", newTimeSpec(), []string{"--timestart", "08:00", "--timestop", "17:00"}, pk{data: base, ns: ts("2024-03-04T12:00:00")}, true},
		{"time outside", newTimeSpec(), []string{"--timestart", "08:00", "--timestop", "17:00"}, pk{data: base, ns: ts("2024-03-04T18:00:00")}, false},
		{"time weekday Mon", newTimeSpec(), []string{"--weekdays", "Mon"}, pk{data: base, ns: ts("2024-03-04T12:00:00")}, true},
		{"time weekday Tue", newTimeSpec(), []string{"--weekdays", "Tue"}, pk{data: base, ns: ts("2024-03-04T12:00:00")}, false},
		{"time monthday", newTimeSpec(), []string{"--monthdays", "4"}, pk{data: base, ns: ts("2024-03-04T12:00:00")}, true},
		{"time date after stop", newTimeSpec(), []string{"--datestop", "2024-03-01"}, pk{data: base, ns: ts("2024-03-04T12:00:00")}, false},
		{"time wrap after midnight", newTimeSpec(), []string{"--timestart", "22:00", "--timestop", "02:00", "--weekdays", "Tue"}, pk{data: base, ns: ts("2024-03-05T01:00:00")}, true},
		{"time contiguous uses start day", newTimeSpec(), []string{"--timestart", "22:00", "--timestop", "02:00", "--weekdays", "Mon", "--contiguous"}, pk{data: base, ns: ts("2024-03-05T01:00:00")}, true},
		{"time contiguous other day", newTimeSpec(), []string{"--timestart", "22:00", "--timestop", "02:00", "--weekdays", "Tue", "--contiguous"}, pk{data: base, ns: ts("2024-03-05T01:00:00")}, false},
		{"owner uid", newOwnerSpec(IDFiles{}), []string{"--uid-owner", "1000-1999"}, pk{data: base, uid: 1500, owner: true}, true},
		{"owner ! uid", newOwnerSpec(IDFiles{}), []string{"!", "--uid-owner", "0"}, pk{data: base, uid: 0, owner: true}, false},
		{"owner no socket", newOwnerSpec(IDFiles{}), []string{"--uid-owner", "0"}, pk{data: base}, false},
		{"owner no socket all inverted", newOwnerSpec(IDFiles{}), []string{"!", "--uid-owner", "0"}, pk{data: base}, true},
		{"owner gid", newOwnerSpec(IDFiles{}), []string{"--gid-owner", "5"}, pk{data: base, gid: 5, owner: true}, true},
		{"owner socket-exists", newOwnerSpec(IDFiles{}), []string{"--socket-exists"}, pk{data: base, owner: true}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := build(t, c.spec, c.words...).(xt.PacketMatcher)
			p := decode(t, c.p.data)
			p.Mark, p.Link, p.TimeNS = c.p.mark, c.p.link, c.p.ns
			p.UID, p.GID, p.HasOwner = c.p.uid, c.p.gid, c.p.owner
			ctx := &xt.Ctx{P: p, Hook: xt.LocalIn}
			if got := m.Matches(ctx); got != c.want {
				t.Errorf("Matches = %v, want %v", got, c.want)
			}
			if n := testing.AllocsPerRun(100, func() { m.Matches(ctx) }); n != 0 {
				t.Errorf("Matches allocates %v times per packet", n)
			}
		})
	}
}

func TestIPRangeIPv6(t *testing.T) {
	spec := newIPRangeSpec()
	m := spec.New()
	ctx := &xt.ParseContext{Family: xt.IPv6}
	if err := m.Parse(ctx, "src-range", false, "2001:db8::1-2001:db8::ff", nil); err != nil {
		t.Fatal(err)
	}
	p := decode(t, udp("2001:db8::10", "2001:db8::1", 0, "x"))
	if !m.(xt.PacketMatcher).Matches(&xt.Ctx{P: p}) {
		t.Error("2001:db8::10 not in range")
	}
	p4 := decode(t, udp("10.0.0.1", "10.0.0.2", 0, "x"))
	if m.(xt.PacketMatcher).Matches(&xt.Ctx{P: p4}) {
		t.Error("IPv4 packet matched an IPv6 range")
	}
}

func TestStatisticRandomThreshold(t *testing.T) {
	m := build(t, newStatisticSpec(), "--mode", "random", "--probability", "0.25").(*Statistic)
	if m.ProbabilityRaw != 0x20000000 {
		t.Fatalf("raw = %#x", m.ProbabilityRaw)
	}
	if !m.MatchRandom(0x1fffffff) || m.MatchRandom(0x20000000) || !m.MatchRandom(0x80000000) {
		t.Error("threshold on the low 31 bits wrong")
	}
}

func TestOwnerNamesFromFiles(t *testing.T) {
	dir := t.TempDir()
	pw, gr := dir+"/passwd", dir+"/group"
	writeFile(t, pw, "root:x:0:0::/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\n")
	writeFile(t, gr, "root:x:0:\nstaff:x:50:alice\n")
	spec := newOwnerSpec(IDFiles{Passwd: pw, Group: gr})
	m := build(t, spec, "--uid-owner", "alice", "--gid-owner", "staff")
	var s, l, ln strings.Builder
	m.Save(&s)
	m.List(&l, false)
	m.List(&ln, true)
	if s.String() != " --uid-owner 1001 --gid-owner 50" {
		t.Errorf("save %q", s.String())
	}
	if l.String() != " owner UID match alice owner GID match staff" {
		t.Errorf("list %q", l.String())
	}
	if ln.String() != " owner UID match 1001 owner GID match 50" {
		t.Errorf("list -n %q", ln.String())
	}
	m2 := spec.New()
	err := m2.Parse(&xt.ParseContext{}, "uid-owner", false, "bob", nil)
	if err == nil || err.Error() != `owner: Bad value for "--uid-owner" option: "bob"` {
		t.Errorf("unknown user: %v", err)
	}
}

func TestKernelChecks(t *testing.T) {
	cases := []struct {
		spec  *xt.MatchSpec
		words []string
		hooks xt.HookMask
		ok    bool
	}{
		{newOwnerSpec(IDFiles{}), []string{"--uid-owner", "1"}, xt.MaskOf(xt.LocalOut), true},
		{newOwnerSpec(IDFiles{}), []string{"--uid-owner", "1"}, xt.MaskOf(xt.LocalIn), false},
		{newOwnerSpec(IDFiles{}), []string{"--uid-owner", "5-1"}, xt.MaskOf(xt.LocalOut), false},
		{newMACSpec(), []string{"--mac-source", "00:00:00:00:00:01"}, xt.MaskOf(xt.PostRouting), false},
		{newMACSpec(), []string{"--mac-source", "00:00:00:00:00:01"}, 0, true},
		{newSocketSpec(), nil, xt.MaskOf(xt.LocalIn, xt.PreRouting), true},
		{newSocketSpec(), nil, xt.MaskOf(xt.Forward), false},
		{newStringSpec(), []string{"--algo", "bm", "--string", "x", "--from", "3", "--to", "2"}, 0, false},
		{newStringSpec(), []string{"--algo", "fsm", "--string", "x"}, 0, false},
		{newU32Spec(), []string{"--u32", "0>>32=1"}, 0, false},
		{newU32Spec(), []string{"--u32", "0>>31=1"}, 0, true},
		{newPhysdevSpec(), []string{"--physdev-is-out"}, xt.MaskOf(xt.LocalOut), false},
		{newPhysdevSpec(), []string{"--physdev-is-out", "--physdev-is-bridged"}, xt.MaskOf(xt.LocalOut), true},
		{newDevGroupSpec(), []string{"--dst-group", "1"}, xt.MaskOf(xt.LocalIn), false},
		{newAddrTypeSpec(), []string{"--dst-type", "LOCAL", "--limit-iface-in"}, xt.MaskOf(xt.LocalOut), false},
	}
	for _, c := range cases {
		m := build(t, c.spec, c.words...)
		err := m.(xt.Checker).Check(&xt.CheckContext{Family: xt.IPv4, Table: "filter", Hooks: c.hooks})
		if (err == nil) != c.ok {
			t.Errorf("%s %v in %b: err %v, want ok=%v", c.spec.Name, c.words, c.hooks, err, c.ok)
		}
		if err != nil {
			if _, isK := err.(*xt.KernelError); !isK {
				t.Errorf("%s: %T is not a kernel error", c.spec.Name, err)
			}
		}
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
