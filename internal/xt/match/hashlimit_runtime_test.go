package match

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/xt"
)

func srtHashlimit(t testing.TB, env *xt.Env, fam xt.Family, opts string) *HashlimitRuntime {
	t.Helper()
	env.Family = fam
	return srtBuild(t, srtParse(t, newHashlimitSpec(), fam, opts), env).(*HashlimitRuntime)
}

func srtUDP(src, dst string, dport uint16, payload int) []byte {
	return packettest.UDP(packettest.UDPOpts{Src: src, Dst: dst, SrcPort: 5555, DstPort: dport, Payload: make([]byte, payload)})
}

// srtProc renders a table as /proc/net/ipt_hashlimit/NAME, lines sorted.
func srtProc(tb statestore.HashlimitTable, now int64) string {
	var lines []string
	tb.Entries(now, func(e *statestore.HashlimitEntry) bool {
		lines = append(lines, string(statestore.AppendHashlimitProc(nil, e, tb.Config().IPv6)))
		return true
	})
	sort.Strings(lines)
	return strings.Join(lines, "")
}

// TestHashlimitRuntimeKernelLines reproduces two /proc lines read from the
// 6.18 kernel (rules in OUTPUT of a namespace, UDP to 127.0.0.1, the file
// read 7 jiffies after the packets):
//
//	--hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-mode srcip, 1 packet
//	--hashlimit-upto 1kb/s --hashlimit-mode srcip,dstport, 12 packets of 100 bytes: 9 accepted
func TestHashlimitRuntimeKernelLines(t *testing.T) {
	env := &xt.Env{Named: &srtNamed{}}
	hlt := srtHashlimit(t, env, xt.IPv4, "--hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name hlt")
	hlb := srtHashlimit(t, env, xt.IPv4, "--hashlimit-upto 1kb/s --hashlimit-mode srcip,dstport --hashlimit-name hlb")
	c := srtCtx(t, srtUDP("127.0.0.1", "127.0.0.1", 9, 1), 0)
	if !hlt.Matches(c) {
		t.Fatal("first packet over the limit")
	}
	c = srtCtx(t, srtUDP("127.0.0.1", "127.0.0.1", 10, 72), 0)
	if c.P.TotalLen != 100 {
		t.Fatalf("len %d", c.P.TotalLen)
	}
	n := 0
	for i := 0; i < 12; i++ {
		if hlb.Matches(c) {
			n++
		}
	}
	if n != 9 {
		t.Errorf("byte mode: %d of 12 accepted, kernel 9", n)
	}
	read := srtEpoch + 7*statestore.JiffyNS
	if got, want := srtProc(hlt.Table(), read), "0 127.0.0.1:0->0.0.0.0:0 113799453097216 137438953000000 27487790600000\n"; got != want {
		t.Errorf("hlt:\n got %q\nwant %q", got, want)
	}
	if got, want := srtProc(hlb.Table(), read), "14 127.0.0.1:0->0.0.0.0:10 246496136 0 64527752\n"; got != want {
		t.Errorf("hlb:\n got %q\nwant %q", got, want)
	}
}

// TestHashlimitRuntimeRates: per-key buckets, above/upto, refill, bytes
// mode with a byte burst, masks and modes.
func TestHashlimitRuntimeRates(t *testing.T) {
	type pk struct {
		at     time.Duration
		src    string
		dport  uint16
		size   int // UDP payload
		repeat int
		want   int // how many of the repeats match
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	cases := []struct {
		name string
		opts string
		pks  []pk
	}{
		{"upto 5/sec burst 5 per source", "--hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name a", []pk{
			{0, "10.0.0.1", 80, 1, 10, 5},
			{0, "10.0.0.2", 80, 1, 10, 5}, // its own bucket
			{ms(200), "10.0.0.1", 80, 1, 3, 1},
			{ms(2000), "10.0.0.1", 80, 1, 10, 5}, // capped at the burst
		}},
		{"above 1/sec burst 2 matches the excess", "--hashlimit-above 1/sec --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-name b --hashlimit-htable-expire 10000", []pk{
			{0, "10.0.0.1", 80, 1, 4, 2},
			{ms(1000), "10.0.0.1", 80, 1, 2, 1},
		}},
		{"above still consumes tokens", "--hashlimit-above 1/sec --hashlimit-burst 1 --hashlimit-mode srcip --hashlimit-name c", []pk{
			{0, "10.0.0.1", 80, 1, 1, 0},
			{ms(500), "10.0.0.1", 80, 1, 1, 1},
			{ms(1000), "10.0.0.1", 80, 1, 1, 0}, // the token of 0..1s was taken
			{ms(1500), "10.0.0.1", 80, 1, 1, 1},
			{ms(2000), "10.0.0.1", 80, 1, 1, 0},
		}},
		{"no mode: one bucket for everyone", "--hashlimit-upto 1/min --hashlimit-burst 3 --hashlimit-name d", []pk{
			{0, "10.0.0.1", 80, 1, 2, 2},
			{0, "10.0.0.2", 443, 1, 2, 1},
		}},
		{"srcip,dstport with srcmask 24", "--hashlimit-upto 1/min --hashlimit-burst 2 --hashlimit-mode srcip,dstport --hashlimit-srcmask 24 --hashlimit-name e", []pk{
			{0, "10.0.0.1", 80, 1, 1, 1},
			{0, "10.0.0.2", 80, 1, 2, 1}, // same /24 and port
			{0, "10.0.0.2", 443, 1, 2, 2},
			{0, "10.0.1.2", 80, 1, 2, 2},
		}},
		// 1kb/s = 64 chunks/s; a 100-byte packet costs 7 chunks: 9 fit in
		// the one-second bucket; burst 2kb = 2 extra refills of 9.
		{"bytes 1kb/s burst 2kb", "--hashlimit-upto 1kb/s --hashlimit-burst 2kb --hashlimit-mode srcip --hashlimit-name f", []pk{
			{0, "10.0.0.1", 80, 72, 40, 27},
		}},
		{"bytes: big packets cost at most one second", "--hashlimit-upto 1kb/s --hashlimit-mode srcip --hashlimit-name g", []pk{
			{0, "10.0.0.1", 80, 1400, 3, 1},
			{ms(1000), "10.0.0.1", 80, 1400, 1, 1},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rt := srtHashlimit(t, &xt.Env{Named: &srtNamed{}}, xt.IPv4, tc.opts)
			for i, p := range tc.pks {
				c := srtCtx(t, srtUDP(p.src, "10.99.0.2", p.dport, p.size), p.at)
				got := 0
				for k := 0; k < p.repeat; k++ {
					if rt.Matches(c) {
						got++
					}
					if c.HotDrop {
						t.Fatalf("step %d: hot drop", i)
					}
				}
				if got != p.want {
					t.Errorf("step %d (%s at %v): %d of %d matched, want %d", i, p.src, p.at, got, p.repeat, p.want)
				}
			}
		})
	}
}

// TestHashlimitRuntimeExpiry: idle buckets go at the first garbage
// collection after their expiry; before that an expired bucket is reused
// with its credit refilled for the idle time, not reset (as the kernel).
func TestHashlimitRuntimeExpiry(t *testing.T) {
	env := &xt.Env{Named: &srtNamed{}}
	rt := srtHashlimit(t, env, xt.IPv4, "--hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name x --hashlimit-htable-expire 2000 --hashlimit-htable-gcinterval 1000")
	send := func(at time.Duration, src string) bool {
		return rt.Matches(srtCtx(t, srtUDP(src, "10.99.0.2", 80, 1), at))
	}
	send(0, "10.0.0.1")
	send(1500*time.Millisecond, "10.0.0.2")
	if n := rt.Table().Len(); n != 2 {
		t.Fatalf("%d entries at 1.5s, want 2", n)
	}
	send(3100*time.Millisecond, "10.0.0.3") // the 3 s collection removes .1 (expired at 2 s)
	got := srtProc(rt.Table(), srtEpoch+int64(3100*time.Millisecond))
	if strings.Contains(got, "10.0.0.1:") || !strings.Contains(got, "10.0.0.2:") || rt.Table().Len() != 2 {
		t.Errorf("after gc:\n%s", got)
	}

	slow := srtHashlimit(t, env, xt.IPv4, "--hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name y --hashlimit-htable-expire 100 --hashlimit-htable-gcinterval 60000")
	c := srtCtx(t, srtUDP("10.0.0.1", "10.99.0.2", 80, 1), 0)
	for i := 0; i < 5; i++ {
		slow.Matches(c)
	}
	c.P.TimeNS += int64(1200 * time.Millisecond) // expired, not collected: 1 token
	n := 0
	for i := 0; i < 5; i++ {
		if slow.Matches(c) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("uncollected expired bucket: %d passed, want 1 (refilled, not reset)", n)
	}
}

// TestHashlimitRuntimeFullTable: a new key in a full table is hot-dropped;
// known keys still work; collection makes room.
func TestHashlimitRuntimeFullTable(t *testing.T) {
	rt := srtHashlimit(t, &xt.Env{Named: &srtNamed{}}, xt.IPv4, "--hashlimit-upto 10/sec --hashlimit-mode srcip --hashlimit-name full --hashlimit-htable-size 16 --hashlimit-htable-max 16")
	for i := 1; i <= 16; i++ {
		c := srtCtx(t, srtUDP(fmt.Sprintf("10.0.0.%d", i), "10.99.0.2", 80, 1), 0)
		if !rt.Matches(c) || c.HotDrop {
			t.Fatalf("key %d refused", i)
		}
	}
	c := srtCtx(t, srtUDP("10.0.0.17", "10.99.0.2", 80, 1), 0)
	if rt.Matches(c) || !c.HotDrop {
		t.Errorf("17th key: not hot-dropped")
	}
	c = srtCtx(t, srtUDP("10.0.0.3", "10.99.0.2", 80, 1), 0)
	if !rt.Matches(c) || c.HotDrop {
		t.Errorf("known key refused in a full table")
	}
	c = srtCtx(t, srtUDP("10.0.0.17", "10.99.0.2", 80, 1), 3*time.Second)
	if !rt.Matches(c) || c.HotDrop {
		t.Errorf("after expiry and collection: new key still refused")
	}
}

// TestHashlimitRuntimeShared: tables are shared by name (per family) with
// the first rule's configuration; only above/upto is each rule's own.
func TestHashlimitRuntimeShared(t *testing.T) {
	env := &xt.Env{Named: &srtNamed{}}
	a := srtHashlimit(t, env, xt.IPv4, "--hashlimit-upto 1/sec --hashlimit-burst 1 --hashlimit-mode srcip --hashlimit-name s")
	b := srtHashlimit(t, env, xt.IPv4, "--hashlimit-above 100/sec --hashlimit-burst 100 --hashlimit-mode dstip --hashlimit-name s")
	v6 := srtHashlimit(t, env, xt.IPv6, "--hashlimit-upto 100/sec --hashlimit-name s")
	if a.Table() != b.Table() || a.Table() == v6.Table() {
		t.Fatal("tables not shared by name and family")
	}
	c := srtCtx(t, srtUDP("10.0.0.1", "10.99.0.2", 80, 1), 0)
	if !a.Matches(c) {
		t.Fatal("first packet over")
	}
	if !b.Matches(c) {
		t.Error("second rule did not see the shared bucket empty (1/sec burst 1, srcip)")
	}
	if tb, ok := HashlimitTableByName(env.Named, xt.IPv4, "s"); !ok || tb != a.Table() {
		t.Error("HashlimitTableByName")
	}
	if _, ok := HashlimitTableByName(env.Named, xt.IPv4, "none"); ok {
		t.Error("HashlimitTableByName invented a table")
	}
	c6 := srtCtx(t, packettest.UDP(packettest.UDPOpts{Src: "2001:db8::1", Dst: "2001:db8::2", SrcPort: 1, DstPort: 2}), 0)
	v6.Matches(c6)
	if got, want := srtProc(v6.Table(), srtEpoch), "1 0000:0000:0000:0000:0000:0000:0000:0000:0->0000:0000:0000:0000:0000:0000:0000:0000:0 5497558120000 6871947650000 1374389530000\n"; got != want {
		t.Errorf("ip6t proc:\n got %q\nwant %q", got, want)
	}
	// Rate-match is refused with its name, not ignored.
	m := srtParse(t, newHashlimitSpec(), xt.IPv4, "--hashlimit-upto 5/sec --hashlimit-name r --hashlimit-rate-match")
	if _, err := m.(xt.MatchBuilder).Build(&xt.Env{Family: xt.IPv4}); err == nil || !strings.Contains(err.Error(), "rate-match") {
		t.Errorf("rate-match: %v", err)
	}
}

func TestHashlimitRuntimeAllocsAndRace(t *testing.T) {
	rt := srtHashlimit(t, &xt.Env{Named: &srtNamed{}}, xt.IPv4, "--hashlimit-upto 100/sec --hashlimit-mode srcip,srcport,dstip,dstport --hashlimit-name z")
	c := srtCtx(t, srtUDP("10.0.0.1", "10.99.0.2", 80, 10), 0)
	if n := testing.AllocsPerRun(1000, func() { c.P.TimeNS += 1e6; rt.Matches(c) }); n != 0 {
		t.Errorf("existing key: %v allocs per packet", n)
	}
	// New keys: the slab grows by chunks of 256 entries; inside a chunk
	// nothing is allocated.
	for i := 0; i < 300; i++ {
		c.P.Src = netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)})
		rt.Matches(c)
	}
	i := 300
	if n := testing.AllocsPerRun(200, func() {
		i++
		c.P.Src = netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)})
		rt.Matches(c)
	}); n != 0 {
		t.Errorf("new keys: %v allocs per packet", n)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			cc := srtCtx(t, srtUDP("10.0.0.1", "10.99.0.2", 80, 10), 0)
			for k := 0; k < 2000; k++ {
				cc.P.Src = netip.AddrFrom4([4]byte{10, 3, byte(g), byte(k % 64)})
				cc.P.TimeNS += int64(time.Millisecond)
				rt.Matches(cc)
				if k%500 == 0 {
					srtProc(rt.Table(), cc.P.TimeNS)
				}
			}
		}(g)
	}
	wg.Wait()
}

// TestHashlimitByteBurstTooLowRate: iptables 1.8.9 crashes (SIGFPE) on
// `--hashlimit 1b/s --hashlimit-burst 10`; uptables refuses it instead.
func TestHashlimitByteBurstTooLowRate(t *testing.T) {
	m := &Hashlimit{}
	ctx := &xt.ParseContext{Family: xt.IPv4, Table: "filter", Chain: "INPUT"}
	for _, o := range [][2]string{{"hashlimit", "1b/s"}, {"hashlimit-burst", "10"}, {"hashlimit-name", "a"}} {
		if err := m.Parse(ctx, o[0], false, o[1], nil); err != nil {
			t.Fatalf("--%s %s: %v", o[0], o[1], err)
		}
	}
	err := m.Final(ctx)
	var pe *xt.ParamError
	if !errors.As(err, &pe) || !strings.Contains(pe.Hint, "crashes") {
		t.Fatalf("got %v, want a parameter problem explaining the iptables crash", err)
	}
}
