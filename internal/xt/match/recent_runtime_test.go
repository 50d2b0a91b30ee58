package match

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/xt"
)

func srtRecent(t testing.TB, env *xt.Env, fam xt.Family, opts string) *RecentRuntime {
	t.Helper()
	env.Family = fam
	return srtBuild(t, srtParse(t, newRecentSpec(), fam, opts), env).(*RecentRuntime)
}

func srtSecs(s ...float64) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, x := range s {
		out[i] = time.Duration(x * float64(time.Second))
	}
	return out
}

// TestRecentRuntimeSpecSequences replays spec §4.7 (and §12): a DROP rule
// with --rcheck or --update --seconds 10 --hitcount 3, then a --set
// ACCEPT rule, one ping at each time; and the TCP loop with --set first.
func TestRecentRuntimeSpecSequences(t *testing.T) {
	pings := srtSecs(0, 0.5, 1.0, 2.0, 3.1, 4.1, 5.1, 6.1, 7.1, 8.1, 9.1, 9.9, 10.7, 11.2, 11.8, 12.8)
	loop := srtSecs(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
	cases := []struct {
		name            string
		check           string
		setFirst        bool
		times           []time.Duration
		want            string
		dropCtr, setCtr int
	}{
		{"icmp rcheck", "--name T --rcheck --seconds 10 --hitcount 3", false, pings, "AAADDDDDDDDDAAAD", 10, 6},
		{"icmp update", "--name T --update --seconds 10 --hitcount 3", false, pings, "AAADDDDDDDDDDDDD", 13, 3},
		{"tcp loop rcheck", "--name T --rcheck --seconds 10 --hitcount 3", true, loop, "AADDDDDDDDDDDD", 12, 14},
		{"tcp loop update", "--name T --update --seconds 10 --hitcount 3", true, loop, "AADDDDDDDDDDDD", 12, 14},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := &xt.Env{Named: &srtNamed{}}
			check := srtRecent(t, env, xt.IPv4, tc.check)
			set := srtRecent(t, env, xt.IPv4, "--name T --set")
			c := srtCtx(t, srtPing("10.99.0.1"), 0)
			base := c.P.TimeNS
			var got strings.Builder
			drops, sets := 0, 0
			for _, at := range tc.times {
				c.P.TimeNS = base + int64(at)
				v := byte('A')
				if tc.setFirst {
					set.Matches(c)
					sets++
				}
				if check.Matches(c) {
					drops++
					v = 'D'
				} else if !tc.setFirst {
					if !set.Matches(c) {
						t.Fatal("--set did not match")
					}
					sets++
				}
				got.WriteByte(v)
			}
			if got.String() != tc.want || drops != tc.dropCtr || sets != tc.setCtr {
				t.Errorf("got %s (drop rule %d, set rule %d), want %s (%d, %d)", got.String(), drops, sets, tc.want, tc.dropCtr, tc.setCtr)
			}
		})
	}
}

// TestRecentRuntimeCommands checks spec §4.2's consequences for each
// command and the "!" quirks, on a fresh list each.
func TestRecentRuntimeCommands(t *testing.T) {
	type step struct {
		rule string // options of the rule this packet hits
		at   float64
		src  string
		want bool
	}
	cases := []struct {
		name    string
		steps   []step
		entries int // left in list T
		stamps  int // stamps of 10.0.0.1 (-1: absent)
	}{
		{"rcheck miss creates nothing", []step{{"--rcheck", 0, "10.0.0.1", false}, {"! --rcheck", 1, "10.0.0.1", true}}, 0, -1},
		{"update miss creates nothing", []step{{"--update", 0, "10.0.0.1", false}}, 0, -1},
		{"set always true, ! set false but records", []step{{"--set", 0, "10.0.0.1", true}, {"! --set", 1, "10.0.0.1", false}}, 1, 2},
		{"! set on a new address records too", []step{{"! --set", 0, "10.0.0.1", false}}, 1, 1},
		{"plain rcheck hit, no window", []step{{"--set", 0, "10.0.0.1", true}, {"--rcheck", 1000, "10.0.0.1", true}}, 1, 1},
		{"update records only on a final true", []step{
			{"--set", 0, "10.0.0.1", true},
			{"--update --hitcount 2", 1, "10.0.0.1", false}, // 1 stamp: false, nothing recorded
			{"--update --hitcount 1", 2, "10.0.0.1", true},  // records
			{"--update --hitcount 2", 3, "10.0.0.1", true},  // 2 stamps: records
		}, 1, 3},
		{"! update records when the condition is false", []step{
			{"--set", 0, "10.0.0.1", true},
			{"! --update --hitcount 2", 1, "10.0.0.1", true},  // condition false -> true, recorded
			{"! --update --hitcount 2", 2, "10.0.0.1", false}, // now 2 stamps -> false, not recorded
		}, 1, 2},
		{"remove", []step{
			{"--remove", 0, "10.0.0.1", false},
			{"--set", 1, "10.0.0.1", true},
			{"--remove", 2, "10.0.0.1", true},
			{"--rcheck", 3, "10.0.0.1", false},
		}, 0, -1},
		{"! remove deletes and returns false", []step{{"--set", 0, "10.0.0.1", true}, {"! --remove", 1, "10.0.0.1", false}}, 0, -1},
		{"seconds window skips old stamps", []step{
			{"--set", 0, "10.0.0.1", true},
			{"--rcheck --seconds 5", 5, "10.0.0.1", true},      // exactly 5 s old: still inside
			{"--rcheck --seconds 5", 5.004, "10.0.0.1", false}, // one jiffy more
			{"--update --seconds 5", 6, "10.0.0.1", false},
		}, 1, 1},
		{"rdest keys on the destination", []step{{"--set --rdest", 0, "10.0.0.9", true}, {"--rcheck", 1, "10.99.0.2", true}, {"--rcheck", 1, "10.0.0.9", false}}, 1, -1},
		{"reap deletes the LRU-oldest stale entry", []step{
			{"--set", 0, "10.0.0.1", true},
			{"--set", 5, "10.0.0.2", true},
			{"--rcheck --seconds 10 --reap", 12, "10.0.0.2", true},
		}, 1, -1},
		{"reap spares the working entry being updated", []step{
			{"--set", 0, "10.0.0.1", true},
			{"! --update --seconds 10 --reap --hitcount 5", 12, "10.0.0.1", true},
		}, 1, 2},
		{"reap deletes the working entry when not updating", []step{
			{"--set", 0, "10.0.0.1", true},
			{"--rcheck --seconds 10 --reap", 12, "10.0.0.1", false},
		}, 0, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := &xt.Env{Named: &srtNamed{}}
			var last *RecentRuntime
			for i, s := range tc.steps {
				r := srtRecent(t, env, xt.IPv4, "--name T "+s.rule)
				last = r
				c := srtCtx(t, packettest.EchoRequest(s.src, "10.99.0.2", 1, 1, 8), time.Duration(s.at*float64(time.Second)))
				if got := r.Matches(c); got != s.want {
					t.Errorf("step %d (%s at %vs): %v, want %v", i, s.rule, s.at, got, s.want)
				}
			}
			es := last.List().Entries(nil)
			if len(es) != tc.entries {
				t.Errorf("%d entries, want %d: %+v", len(es), tc.entries, es)
			}
			if tc.stamps >= 0 {
				found := false
				for _, e := range es {
					if e.Addr == netip.MustParseAddr("10.0.0.1") {
						found = true
						if len(e.StampsNS) != tc.stamps {
							t.Errorf("10.0.0.1 has %d stamps, want %d", len(e.StampsNS), tc.stamps)
						}
					}
				}
				if !found {
					t.Errorf("10.0.0.1 not listed")
				}
			}
		})
	}
}

// TestRecentRuntimeRTTL: the SSHPOOL seed (--rcheck --seconds 3600
// --hitcount 5 --rttl -j DROP, --set otherwise): only packets with the TTL
// last recorded count; a --set from another TTL re-tags the entry.
func TestRecentRuntimeRTTL(t *testing.T) {
	env := &xt.Env{Named: &srtNamed{}}
	check := srtRecent(t, env, xt.IPv4, "--name SSHPOOL --rcheck --seconds 3600 --hitcount 5 --rttl")
	set := srtRecent(t, env, xt.IPv4, "--name SSHPOOL --set")
	send := func(at time.Duration, ttl int) byte {
		c := srtCtx(t, packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.99.0.2", SrcPort: 4000, DstPort: 22, Flags: packettest.SYN, IP: packettest.IP{TTL: ttl}}), at)
		if check.Matches(c) {
			return 'D'
		}
		set.Matches(c)
		return 'A'
	}
	var got []byte
	for i := 0; i < 6; i++ {
		got = append(got, send(time.Duration(i)*time.Minute, 64))
	}
	got = append(got, send(7*time.Minute, 50)) // other TTL: no entry for it
	got = append(got, send(8*time.Minute, 64)) // entry now carries TTL 50
	got = append(got, send(61*time.Minute, 50))
	got = append(got, send(122*time.Minute, 64)) // an hour later: window empty
	if string(got) != "AAAAADAAAA" {
		t.Errorf("got %s, want AAAAADAAAA", got)
	}
	// Forwarded packets are judged with the TTL they had before routing.
	c := srtCtx(t, packettest.TCP(packettest.TCPOpts{Src: "10.0.0.5", Dst: "10.99.0.2", SrcPort: 1, DstPort: 22, Flags: packettest.SYN, IP: packettest.IP{TTL: 63}}), 0)
	c.P.OutIface = "eth1"
	set.Matches(c)
	for _, e := range set.List().Entries(nil) {
		if e.Addr == netip.MustParseAddr("10.0.0.5") && e.TTL != 64 {
			t.Errorf("forwarded packet recorded TTL %d, want 64", e.TTL)
		}
	}
}

// TestRecentRuntimeListShape: ring sizes, the flush on growth, LRU
// eviction at 100 entries, the first rule's mask, and IPv4/IPv6 sharing.
func TestRecentRuntimeListShape(t *testing.T) {
	at := func(s int) time.Duration { return time.Duration(s) * time.Second }
	stampsOf := func(l statestore.RecentList, a string) (int, int) {
		for _, e := range l.Entries(nil) {
			if e.Addr == netip.MustParseAddr(a) {
				return len(e.StampsNS), e.Index
			}
		}
		return -1, -1
	}
	t.Run("ring 32 by default, wraps", func(t *testing.T) {
		env := &xt.Env{Named: &srtNamed{}}
		set := srtRecent(t, env, xt.IPv4, "--name R --set")
		for i := 0; i < 40; i++ {
			set.Matches(srtCtx(t, srtPing("10.0.0.1"), at(i)))
		}
		if n, idx := stampsOf(set.List(), "10.0.0.1"); n != 32 || idx != 8 {
			t.Errorf("stamps %d index %d, want 32 and 8", n, idx)
		}
	})
	t.Run("hitcount 100 makes 128 and flushes", func(t *testing.T) {
		env := &xt.Env{Named: &srtNamed{}}
		set := srtRecent(t, env, xt.IPv4, "--name BAD_HTTP_ACCESS --set")
		set.Matches(srtCtx(t, srtPing("10.0.0.1"), 0))
		upd := srtRecent(t, env, xt.IPv4, "--name BAD_HTTP_ACCESS --update --seconds 60 --hitcount 100")
		if set.List().Len() != 0 {
			t.Fatalf("list not flushed by the larger ring")
		}
		blocked := -1
		for i := 0; i < 200; i++ {
			c := srtCtx(t, srtPing("10.0.0.1"), at(0)+time.Duration(i)*100*time.Millisecond)
			if upd.Matches(c) {
				if blocked < 0 {
					blocked = i
				}
				continue
			}
			set.Matches(c)
		}
		// 100 stamps from --set, then every packet is an update hit.
		if blocked != 100 {
			t.Errorf("first REJECT at packet %d, want 100", blocked)
		}
		if n, _ := stampsOf(set.List(), "10.0.0.1"); n != 128 {
			t.Errorf("%d stamps kept, want 128", n)
		}
		// A smaller requirement does not flush.
		srtRecent(t, env, xt.IPv4, "--name BAD_HTTP_ACCESS --rcheck --hitcount 20")
		if set.List().Len() != 1 {
			t.Errorf("smaller ring flushed the list")
		}
	})
	t.Run("LRU eviction at 100", func(t *testing.T) {
		env := &xt.Env{Named: &srtNamed{}}
		set := srtRecent(t, env, xt.IPv4, "--name L --set")
		for i := 1; i <= 101; i++ {
			set.Matches(srtCtx(t, srtPing(fmt.Sprintf("10.0.0.%d", i)), at(i)))
		}
		l := set.List()
		if l.Len() != 100 {
			t.Fatalf("%d entries, want 100", l.Len())
		}
		if n, _ := stampsOf(l, "10.0.0.1"); n != -1 {
			t.Errorf("first address not evicted")
		}
		set.Matches(srtCtx(t, srtPing("10.0.0.2"), at(200)))
		set.Matches(srtCtx(t, srtPing("10.0.0.102"), at(201)))
		if n, _ := stampsOf(l, "10.0.0.3"); n != -1 {
			t.Errorf(".3 not evicted after refreshing .2")
		}
		if n, _ := stampsOf(l, "10.0.0.2"); n != 2 {
			t.Errorf(".2 lost")
		}
	})
	t.Run("mask fixed by the first rule", func(t *testing.T) {
		env := &xt.Env{Named: &srtNamed{}}
		set := srtRecent(t, env, xt.IPv4, "--name M --set --mask 255.255.255.0")
		chk := srtRecent(t, env, xt.IPv4, "--name M --rcheck --mask 255.255.255.255")
		set.Matches(srtCtx(t, srtPing("10.0.0.1"), 0))
		if !chk.Matches(srtCtx(t, srtPing("10.0.0.77"), at(1))) {
			t.Errorf("10.0.0.77 not found under the list's /24 mask")
		}
		if chk.Matches(srtCtx(t, srtPing("10.0.1.1"), at(1))) {
			t.Errorf("10.0.1.1 matched")
		}
		es := set.List().Entries(nil)
		if len(es) != 1 || es[0].Addr != netip.MustParseAddr("10.0.0.0") {
			t.Errorf("entries %+v, want one 10.0.0.0", es)
		}
	})
	t.Run("IPv4 and IPv6 rules share a list by name", func(t *testing.T) {
		env := &xt.Env{Named: &srtNamed{}}
		s4 := srtRecent(t, env, xt.IPv4, "--name B --set")
		s6 := srtRecent(t, env, xt.IPv6, "--name B --set")
		s4.Matches(srtCtx(t, srtPing("10.0.0.1"), 0))
		s6.Matches(srtCtx(t, packettest.EchoRequest("fe80::1", "fe80::2", 1, 1, 8), at(1)))
		if s4.List() != s6.List() || s4.List().Len() != 2 {
			t.Errorf("lists not shared")
		}
		l, ok := RecentListByName(env.Named, "B")
		if !ok || l != s4.List() {
			t.Errorf("RecentListByName: %v %v", l, ok)
		}
		if _, ok := RecentListByName(env.Named, "nope"); ok {
			t.Errorf("RecentListByName invented a list")
		}
	})
}

// TestRecentRuntimeProc: the /proc/net/xt_recent/NAME text and its write
// commands.
func TestRecentRuntimeProc(t *testing.T) {
	env := &xt.Env{Named: &srtNamed{}}
	set := srtRecent(t, env, xt.IPv4, "--name P --set")
	for i := 0; i < 3; i++ {
		set.Matches(srtCtx(t, srtPing("10.99.0.1"), time.Duration(i)*time.Second))
	}
	l := set.List()
	now := srtEpoch + int64(5*time.Second)
	for _, cmd := range []string{"+fe80::1\n", "+10.0.0.9", "-10.0.0.9", "+10.0.0.8", "+10.0.0.8"} {
		if err := l.Command(cmd, now); err != nil {
			t.Errorf("%q: %v", cmd, err)
		}
	}
	for _, bad := range []string{"", "10.0.0.1", "+10.0.0", "+nonsense", "*", "+10.0.0.1 x"} {
		if err := l.Command(bad, now); err != statestore.ErrInvalid {
			t.Errorf("%q: %v, want EINVAL", bad, err)
		}
	}
	j := statestore.ProcJiffies{BootNS: srtEpoch}
	var b []byte
	for _, e := range l.Entries(nil) {
		b = statestore.AppendRecentProc(b, &e, j)
	}
	want := "src=10.99.0.1 ttl: 64 last_seen: 4294892796 oldest_pkt: 3 4294892296, 4294892546, 4294892796\n" +
		"src=fe80:0000:0000:0000:0000:0000:0000:0001 ttl: 0 last_seen: 4294893546 oldest_pkt: 1 4294893546\n" +
		"src=10.0.0.8 ttl: 0 last_seen: 4294893546 oldest_pkt: 2 4294893546, 4294893546\n"
	if string(b) != want {
		t.Errorf("proc:\n%s\nwant:\n%s", b, want)
	}
	// A proc-added entry (TTL 0) matches any --rttl.
	chk := srtRecent(t, env, xt.IPv4, "--name P --rcheck --rttl")
	if !chk.Matches(srtCtx(t, srtPing("10.0.0.8"), 6*time.Second)) {
		t.Errorf("TTL-0 entry did not match --rttl")
	}
	if err := l.Command("/", now); err != nil || l.Len() != 0 {
		t.Errorf("flush: %v, %d left", err, l.Len())
	}
}

// TestRecentRuntimeAllocs: hits on existing entries and LRU churn of new
// addresses allocate nothing.
func TestRecentRuntimeAllocs(t *testing.T) {
	env := &xt.Env{Named: &srtNamed{}}
	set := srtRecent(t, env, xt.IPv4, "--name Z --set")
	upd := srtRecent(t, env, xt.IPv4, "--name Z --update --seconds 60 --hitcount 10 --rttl")
	c := srtCtx(t, srtPing("10.0.0.1"), 0)
	set.Matches(c)
	if n := testing.AllocsPerRun(1000, func() { c.P.TimeNS += 1e6; upd.Matches(c); set.Matches(c) }); n != 0 {
		t.Errorf("existing entry: %v allocs per packet", n)
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		i++
		c.P.Src = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		set.Matches(c)
	}); n != 0 {
		t.Errorf("new entries: %v allocs per packet", n)
	}
}

func TestRecentRuntimeRace(t *testing.T) {
	env := &xt.Env{Named: &srtNamed{}}
	set := srtRecent(t, env, xt.IPv4, "--name C --set")
	upd := srtRecent(t, env, xt.IPv4, "--name C --update --seconds 1 --hitcount 3 --reap")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			c := srtCtx(t, srtPing("10.0.0.1"), 0)
			for i := 0; i < 2000; i++ {
				c.P.Src = netip.AddrFrom4([4]byte{10, 0, byte(g), byte(i % 150)})
				c.P.TimeNS += 1e6
				if !upd.Matches(c) {
					set.Matches(c)
				}
				if i%500 == 0 {
					set.List().Entries(nil)
				}
			}
		}(g)
	}
	wg.Wait()
	if n := set.List().Len(); n != 100 {
		t.Errorf("%d entries after churn, want 100", n)
	}
}
