package statestore

import (
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
)

func seq64(start uint64) func() uint64 {
	n := start
	return func() uint64 { n++; return n * 0x9e3779b97f4a7c15 }
}

func recentProc(l RecentList) string {
	var b []byte
	j := ProcJiffies{BootNS: 0}
	for _, e := range l.Entries(nil) {
		b = AppendRecentProc(b, &e, j)
	}
	return string(b)
}

func newTestList(t *testing.T, seed uint64, ring int) *recentList {
	t.Helper()
	l, err := NewMemory(seq64(seed)).NewRecentList(RecentConfig{Name: "L", Mask: netip.MustParseAddr("255.255.255.255")})
	if err != nil {
		t.Fatal(err)
	}
	l.Require(ring)
	return l.(*recentList)
}

// fillRecent records a wrapped ring, a partial ring, --rttl duplicates of
// one address (found in insertion order) and an IPv6 entry.
func fillRecent(l RecentList) {
	now := int64(1_000_000_000_000)
	set := func(a string, ttl uint8, rttl bool) {
		now += 7_000_000
		l.Apply(RecentQuery{Addr: netip.MustParseAddr(a), TTL: ttl, RTTL: rttl, Cmd: RecentSet, NowNS: now})
	}
	for i := 0; i < 11; i++ { // ring 8: wraps, index 3
		set("10.0.0.1", 64, false)
	}
	set("10.0.0.2", 64, false)
	set("10.0.0.2", 64, false)
	set("10.0.0.3", 64, true)
	set("10.0.0.3", 50, true) // a second entry for the same address
	set("10.0.0.3", 64, true)
	set("2001:db8::1", 60, false)
	set("10.0.0.1", 64, false)
}

func TestRecentSnapshotRoundTrip(t *testing.T) {
	a := newTestList(t, 1, 8)
	fillRecent(a)
	s := a.Snapshot()
	if s.Ring != 8 || s.Capacity != RecentListTot || len(s.Entries) != 5 {
		t.Fatalf("snapshot layout: ring %d cap %d entries %d", s.Ring, s.Capacity, len(s.Entries))
	}
	b := newTestList(t, 99, 8) // another hash key: other buckets
	if err := b.Restore(&s); err != nil {
		t.Fatal(err)
	}
	if pa, pb := recentProc(a), recentProc(b); pa != pb {
		t.Fatalf("proc differs after restore:\n%s\nvs\n%s", pa, pb)
	}
	// Same answers and same state from here on, including which of the
	// duplicate entries an --rttl-less lookup finds and updates.
	now := int64(1_000_000_000_000 + 200_000_000)
	for i, q := range []RecentQuery{
		{Addr: netip.MustParseAddr("10.0.0.3"), TTL: 40, Cmd: RecentUpdate, Seconds: 10, Hits: 2},
		{Addr: netip.MustParseAddr("10.0.0.3"), TTL: 50, RTTL: true, Cmd: RecentCheck, Seconds: 10, Hits: 2},
		{Addr: netip.MustParseAddr("10.0.0.1"), TTL: 64, Cmd: RecentCheck, Seconds: 1, Hits: 8},
		{Addr: netip.MustParseAddr("10.0.0.9"), TTL: 64, Cmd: RecentSet},
		{Addr: netip.MustParseAddr("10.0.0.2"), TTL: 64, Cmd: RecentRemove},
	} {
		q.NowNS = now + int64(i)*1_000_000
		ma, _ := a.Apply(q)
		mb, _ := b.Apply(q)
		if ma != mb {
			t.Fatalf("query %d: original %v, restored %v", i, ma, mb)
		}
	}
	if pa, pb := recentProc(a), recentProc(b); pa != pb {
		t.Fatalf("proc differs after more packets:\n%s\nvs\n%s", pa, pb)
	}
}

func TestRecentRestoreRefusesAndKeeps(t *testing.T) {
	src := newTestList(t, 1, 8)
	fillRecent(src)
	good := src.Snapshot()
	dst := newTestList(t, 2, 32)
	fillRecent(dst)
	before := recentProc(dst)
	cases := map[string]func(s *RecentSnapshot){
		"smaller ring":  func(s *RecentSnapshot) {},
		"other mask":    func(s *RecentSnapshot) { s.Resize(32); s.Mask[3] = 0 },
		"bad ring":      func(s *RecentSnapshot) { s.Ring = 24 },
		"index 0":       func(s *RecentSnapshot) { s.Resize(32); s.Entries[0].Index = 0 },
		"index > n":     func(s *RecentSnapshot) { s.Resize(32); s.Entries[0].Index = 9 },
		"partial wrap":  func(s *RecentSnapshot) { s.Resize(32); s.Entries[0].Index = 1 },
		"no stamps":     func(s *RecentSnapshot) { s.Resize(32); s.Entries[0].StampsNS = nil },
		"rank gap":      func(s *RecentSnapshot) { s.Resize(32); s.Entries[1].Rank = 2 },
		"rank twice":    func(s *RecentSnapshot) { s.Resize(32); s.Entries[2].Rank = 1; s.Entries[3].Rank = 1 },
		"over capacity": func(s *RecentSnapshot) { s.Resize(32); s.Capacity = 2 },
		"zero address":  func(s *RecentSnapshot) { s.Resize(32); s.Entries[0].Addr = netip.Addr{} },
	}
	for name, mut := range cases {
		s := good
		s.Entries = slices.Clone(good.Entries)
		for i := range s.Entries {
			s.Entries[i].StampsNS = slices.Clone(s.Entries[i].StampsNS)
		}
		mut(&s)
		if err := dst.Restore(&s); err == nil {
			t.Errorf("%s: restored", name)
		}
		if got := recentProc(dst); got != before {
			t.Errorf("%s: list changed by a refused restore", name)
		}
	}
}

func TestRecentResize(t *testing.T) {
	s := RecentSnapshot{Name: "x", RecentLayout: RecentLayout{Ring: 4, Capacity: 10}, Entries: []RecentSnapEntry{
		{Addr: netip.MustParseAddr("10.0.0.1"), Index: 2, StampsNS: []int64{50, 60, 30, 40}}, // wrapped: 30 40 50 60
		{Addr: netip.MustParseAddr("10.0.0.2"), Index: 2, StampsNS: []int64{10, 20}},
		{Addr: netip.MustParseAddr("10.0.0.3"), Index: 4, StampsNS: []int64{1, 2, 3, 4}},
	}}
	up := s
	up.Entries = slices.Clone(s.Entries)
	up.Resize(16)
	want := [][]int64{{30, 40, 50, 60}, {10, 20}, {1, 2, 3, 4}}
	for i, e := range up.Entries {
		if !slices.Equal(e.StampsNS, want[i]) || e.Index != len(want[i]) || e.LastNS() != want[i][len(want[i])-1] {
			t.Errorf("grow entry %d: %v index %d", i, e.StampsNS, e.Index)
		}
	}
	if err := up.Validate(); err != nil {
		t.Error(err)
	}
	down := s
	down.Entries = slices.Clone(s.Entries)
	down.Resize(2)
	want = [][]int64{{50, 60}, {10, 20}, {3, 4}}
	for i, e := range down.Entries {
		if !slices.Equal(e.StampsNS, want[i]) || e.Index != 2 {
			t.Errorf("shrink entry %d: %v index %d", i, e.StampsNS, e.Index)
		}
	}
	if err := down.Validate(); err != nil {
		t.Error(err)
	}
}

func hlProc(t HashlimitTable, now int64) string {
	var lines []string
	t.Entries(now, func(e *HashlimitEntry) bool {
		lines = append(lines, string(AppendHashlimitProc(nil, e, t.Config().IPv6)))
		return true
	})
	sort.Strings(lines) // bucket order depends on the table's hash key
	return strings.Join(lines, "")
}

func hlKey(src string, dport uint16) HashlimitKey {
	var k HashlimitKey
	a := netip.MustParseAddr(src).As4()
	copy(k.Src[:], a[:])
	k.DstPort = dport
	return k
}

func TestHashlimitSnapshotRoundTrip(t *testing.T) {
	for _, bytes := range []bool{false, true} {
		cfg := HashlimitConfig{Name: "H", Mode: hlModeSrcIP | hlModeDstPort, SrcMask: 32, DstMask: 32,
			Avg: 200_000, Burst: 5, Size: 16, Max: 64, ExpireMS: 10_000}
		if bytes {
			cfg.Bytes, cfg.Avg, cfg.Burst = true, 1000, 2
		}
		mk := func(seed uint64) HashlimitTable {
			tb, _ := NewMemory(seq64(seed)).NewHashlimitTable(cfg)
			return tb
		}
		a := mk(1)
		now := int64(5_000_000_000_000)
		for i := 0; i < 40; i++ {
			now += 13_000_000
			a.Consume(hlKey("10.0.0."+string(rune('1'+i%4)), uint16(22+i%3)), 1200, now)
		}
		s := a.(HashlimitSnapshotter).Snapshot()
		if len(s.Entries) != 12 {
			t.Fatalf("bytes=%v: %d entries", bytes, len(s.Entries))
		}
		b := mk(77)
		if err := b.(HashlimitSnapshotter).Restore(&s, now); err != nil {
			t.Fatal(err)
		}
		if pa, pb := hlProc(a, now), hlProc(b, now); pa != pb {
			t.Fatalf("bytes=%v: proc differs:\n%s\nvs\n%s", bytes, pa, pb)
		}
		for i := 0; i < 30; i++ {
			now += 9_000_000
			k := hlKey("10.0.0."+string(rune('1'+i%5)), uint16(22+i%3))
			ua, _ := a.Consume(k, 1500, now)
			ub, _ := b.Consume(k, 1500, now)
			if ua != ub {
				t.Fatalf("bytes=%v: packet %d: original under=%v restored %v", bytes, i, ua, ub)
			}
		}
		// Eleven seconds later the gc has removed every bucket (expiry 10 s).
		later := now + 11_000_000_000
		c := mk(5)
		s = b.(HashlimitSnapshotter).Snapshot()
		if err := c.(HashlimitSnapshotter).Restore(&s, later); err != nil {
			t.Fatal(err)
		}
		if c.Len() != 0 {
			t.Errorf("bytes=%v: %d expired buckets survived the restore", bytes, c.Len())
		}
	}
}

func TestHashlimitRestoreRefuses(t *testing.T) {
	cfg := HashlimitConfig{Name: "H", Mode: hlModeSrcIP, SrcMask: 24, Avg: 200_000, Burst: 5}
	a, _ := NewMemory(seq64(1)).NewHashlimitTable(cfg)
	now := int64(1e12)
	var k HashlimitKey
	k.Src[0], k.Src[1], k.Src[2] = 10, 1, 2
	a.Consume(k, 100, now)
	good := a.(HashlimitSnapshotter).Snapshot()
	b, _ := NewMemory(seq64(2)).NewHashlimitTable(cfg)
	b.Consume(hlKey("10.9.9.0", 0), 100, now)
	before := hlProc(b, now)
	other := cfg
	other.Avg = 100_000
	cases := map[string]func(s *HashlimitSnapshot){
		"other rate":       func(s *HashlimitSnapshot) { s.Config.Avg = 100_000 },
		"bits beyond mask": func(s *HashlimitSnapshot) { s.Entries[0].Key.Src[3] = 1 },
		"unused port":      func(s *HashlimitSnapshot) { s.Entries[0].Key.DstPort = 80 },
		"credit over cap":  func(s *HashlimitSnapshot) { s.Entries[0].Credit = s.Entries[0].CreditCap + 1 },
		"wrong cost":       func(s *HashlimitSnapshot) { s.Entries[0].Cost++ },
		"duplicate key":    func(s *HashlimitSnapshot) { s.Entries = append(s.Entries, s.Entries[0]) },
		"gc not started":   func(s *HashlimitSnapshot) { s.GCStarted = false },
		"max below size":   func(s *HashlimitSnapshot) { s.Config.Max = 1 },
	}
	for name, mut := range cases {
		s := good
		s.Entries = slices.Clone(good.Entries)
		mut(&s)
		if err := b.(HashlimitSnapshotter).Restore(&s, now); err == nil {
			t.Errorf("%s: restored", name)
		}
		if got := hlProc(b, now); got != before {
			t.Errorf("%s: table changed by a refused restore", name)
		}
	}
}
