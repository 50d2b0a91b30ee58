package redisstore

import (
	"testing"
	"time"

	"github.com/uptables/uptables/internal/statestore"
)

// BenchmarkHashlimitConsume is one packet through a known bucket of a
// "--hashlimit-upto 1000/sec --hashlimit-burst 1000000 --hashlimit-mode
// srcip" table (credits beyond 2^53: the 32-bit-halves path), in memory
// and through Redis, with 1,000 other buckets in the table. The Redis
// numbers include the round trip to a loopback server.
func BenchmarkHashlimitConsume(b *testing.B) {
	cfg := statestore.HashlimitConfig{Name: "B", Mode: hlSrcIP, SrcMask: 32, DstMask: 32, Avg: 1000, Burst: 1_000_000, ExpireMS: 60_000}
	run := func(b *testing.B, tb statestore.HashlimitTable) {
		now := int64(1_700_000_000_000_000_000)
		for i := 0; i < 1000; i++ {
			k := hlKey4("10.0.0.1")
			k.Src[2], k.Src[3] = byte(i>>8), byte(i)
			tb.Consume(k, 60, now)
		}
		k := hlKey4("192.0.2.9")
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			now += 1e6
			if u, ok := tb.Consume(k, 60, now); !u || !ok {
				b.Fatal("over the limit")
			}
		}
	}
	b.Run("memory", func(b *testing.B) {
		tb, _ := statestore.NewMemory(nil).NewHashlimitTable(cfg)
		run(b, tb)
	})
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) {
			s := New(newClient(b, be.addr), Options{Prefix: "bench:", Timeout: 5 * time.Second})
			tb, _ := s.NewHashlimitTable(cfg)
			run(b, tb)
			if st := s.Stats(); st.Errors != 0 {
				b.Fatalf("errors: %+v (%v)", st, s.LastError())
			}
		})
	}
}

// TestConsumeAllocations pins the allocation count of one Redis-backed
// hashlimit step (go-redis's command and reply, the context deadline, the
// argument string), so that a regression shows.
func TestConsumeAllocations(t *testing.T) {
	be := backends(t)
	s := New(newClient(t, be[0].addr), Options{Prefix: "alloc:", Timeout: 5 * time.Second})
	tb, _ := s.NewHashlimitTable(hlCfg)
	k := hlKey4("192.0.2.9")
	now := int64(1e18)
	n := testing.AllocsPerRun(200, func() {
		now += 1e6
		tb.Consume(k, 60, now)
	})
	t.Logf("%s: %.0f allocations per Consume", be[0].name, n)
	if n > 25 {
		t.Fatalf("%.0f allocations per Consume, want at most 25", n)
	}
}
