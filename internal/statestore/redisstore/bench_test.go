package redisstore

import (
	"net/netip"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/statestore"
)

// BenchmarkRecentUpdate is one packet through a hit "--update --seconds 60
// --hitcount 10" (the seeds' rule) on a listed address whose ring is full
// (32 stamps), in memory and through Redis. The Redis numbers include the
// round trip to a loopback server.
func BenchmarkRecentUpdate(b *testing.B) {
	q := statestore.RecentQuery{Addr: netip.MustParseAddr("192.0.2.9"), TTL: 64, Cmd: statestore.RecentUpdate,
		Seconds: 60, Hits: 10, NowNS: 1_700_000_000_000_000_000}
	run := func(b *testing.B, l statestore.RecentList) {
		l.Require(32)
		set := q
		set.Cmd, set.Seconds, set.Hits = statestore.RecentSet, 0, 0
		for i := 0; i < 40; i++ {
			set.NowNS += 1e6
			l.Apply(set)
		}
		q.NowNS = set.NowNS
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			q.NowNS += 1e6
			if m, _ := l.Apply(q); !m {
				b.Fatal("no match")
			}
		}
	}
	b.Run("memory", func(b *testing.B) {
		l, _ := statestore.NewMemory(nil).NewRecentList(statestore.RecentConfig{Name: "B"})
		run(b, l)
	})
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			s := New(newClient(b, be.addr), Options{Prefix: "bench:", Timeout: 5 * time.Second})
			l, _ := s.NewRecentList(statestore.RecentConfig{Name: "B"})
			run(b, l)
			if st := s.Stats(); st.Errors != 0 {
				b.Fatalf("errors: %+v (%v)", st, s.LastError())
			}
		})
	}
}

// TestApplyAllocations pins the allocation count of one Redis-backed
// packet step (go-redis's command, its argument slice and reply; the
// context deadline; the key and stamp strings), so that a regression shows.
func TestApplyAllocations(t *testing.T) {
	be := backends(t)
	s := New(newClient(t, be[0].addr), Options{Prefix: "alloc:", Timeout: 5 * time.Second})
	l, _ := s.NewRecentList(statestore.RecentConfig{Name: "A"})
	l.Require(32)
	q := statestore.RecentQuery{Addr: netip.MustParseAddr("192.0.2.9"), TTL: 64, Cmd: statestore.RecentSet, NowNS: 1e18}
	n := testing.AllocsPerRun(200, func() {
		q.NowNS += 1e6
		l.Apply(q)
	})
	t.Logf("%s: %.0f allocations per Apply", be[0].name, n)
	if n > 25 {
		t.Fatalf("%.0f allocations per Apply, want at most 25 (19 on go-redis v9.17)", n)
	}
}
