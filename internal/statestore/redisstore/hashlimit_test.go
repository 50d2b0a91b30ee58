package redisstore

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/uptables/uptables/internal/statestore"
)

func hlKey4(src string) statestore.HashlimitKey {
	var k statestore.HashlimitKey
	a := netip.MustParseAddr(src).As4()
	copy(k.Src[:], a[:])
	return k
}

// 3/sec burst 3 per source address: the seeds' rate shape.
var hlCfg = statestore.HashlimitConfig{Name: "HL", Mode: hlSrcIP, SrcMask: 32, DstMask: 32, Avg: 333333, Burst: 3}

// With Redis unreachable, fail-open counts every packet under the limit
// (nobody is rate limited, nobody locked out), fail-closed hot-drops; the
// backoff and the counters are the recent lists'.
func TestHashlimitFailModes(t *testing.T) {
	for _, mode := range []FailMode{FailOpen, FailClosed} {
		t.Run(mode.String(), func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1000, 0)}
			c := redis.NewClient(&redis.Options{Addr: deadAddr(t), MaxRetries: -1, ContextTimeoutEnabled: true})
			defer c.Close()
			s := New(c, Options{Fail: mode, Timeout: 200 * time.Millisecond, ControlTimeout: 200 * time.Millisecond, Now: clk.now})
			tb, err := s.NewHashlimitTable(hlCfg)
			if err != nil {
				t.Fatal(err)
			}
			if tb.Config() != statestore.NormalizeHashlimit(hlCfg) {
				t.Fatalf("without Redis the rule's configuration is used: %+v", tb.Config())
			}
			for i := 0; i < 10; i++ {
				under, ok := tb.Consume(hlKey4("192.0.2.1"), 60, 1e18+int64(i))
				if mode == FailOpen && (!under || !ok) || mode == FailClosed && (under || ok) {
					t.Fatalf("packet %d: (%v,%v) with fail=%s", i, under, ok, mode)
				}
			}
			st := s.Stats()
			// The configuration read and the first packet reached the dead
			// server; the other nine were answered during the backoff.
			if st.Errors != 2 || st.Skipped != 9 || st.Calls != 0 {
				t.Fatalf("stats %+v", st)
			}
			if mode == FailClosed && st.Hotdrops != 10 {
				t.Fatalf("hotdrops %d, want 10", st.Hotdrops)
			}
			if err := tb.(*hlTable).EntriesErr(1e18, func(*statestore.HashlimitEntry) bool { return true }); err == nil {
				t.Fatal("listing without Redis: no error")
			}
			if _, err := tb.(*hlTable).LenErr(); err == nil {
				t.Fatal("Len without Redis: no error")
			}
			ss := s.SharedStatus()
			if ss.Fail != mode.String() || ss.Errors != 3+1 || ss.LastError == "" || strings.Join(ss.Shared, ",") != "recent,hashlimit" {
				t.Fatalf("shared status %+v", ss)
			}
		})
	}
}

// The first daemon's configuration is the table's: a daemon whose rule
// says 100/sec adopts the stored 3/sec (with a warning) and both see one
// bucket per client; share=recent keeps hashlimit tables in memory.
func TestHashlimitConfigAndShare(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			rec := &logRecorder{}
			a := New(newClient(t, be.addr), Options{Prefix: "hlcfg:", Timeout: 2 * time.Second})
			b := New(newClient(t, be.addr), Options{Prefix: "hlcfg:", Timeout: 2 * time.Second, Logger: slog.New(rec)})
			ta, _ := a.NewHashlimitTable(hlCfg)
			other := hlCfg
			other.Avg, other.Burst = 10000, 100
			tb, _ := b.NewHashlimitTable(other)
			if tb.Config() != ta.Config() {
				t.Fatalf("B's table %+v, want A's %+v", tb.Config(), ta.Config())
			}
			if l := rec.lines(); len(l) != 1 || !strings.Contains(l[0], "keeps the configuration") {
				t.Fatalf("B's warnings: %q", l)
			}
			// burst 3 shared: A takes two, B one, then both are over.
			now := int64(1e18)
			var got []byte
			for _, tbl := range []statestore.HashlimitTable{ta, ta, tb, tb, ta} {
				u, ok := tbl.Consume(hlKey4("192.0.2.9"), 60, now)
				if !ok {
					t.Fatal("hot-drop")
				}
				got = append(got, "OU"[b01(u)])
			}
			if string(got) != "UUUOO" {
				t.Fatalf("A,A,B,B,A: %s, want UUUOO (one shared burst of 3)", got)
			}
			// The keys carry TTLs, so an abandoned table leaves Redis.
			meta, ent, exp := ta.(*hlTable).Keys()
			c := newClient(t, be.addr)
			for _, k := range []string{meta, ent, exp} {
				d, err := c.TTL(context.Background(), k).Result()
				if err != nil || d <= 0 || d > time.Duration(hlTTL(ta.Config()))*time.Second {
					t.Fatalf("TTL of %s: %v %v", k, d, err)
				}
			}
			if !strings.HasPrefix(meta, "hlcfg:hashlimit:{HL}:4:") {
				t.Fatalf("key %q: want the prefix + hashlimit:", meta)
			}

			// share=recent: hashlimit stays per daemon.
			ro, o, err := ParseURL("redis://" + be.addr + "/0?prefix=hlcfg2:&share=recent")
			if err != nil {
				t.Fatal(err)
			}
			if o.Share != ShareRecent {
				t.Fatalf("share %v", o.Share)
			}
			cl := redis.NewClient(ro)
			defer cl.Close()
			loc := New(cl, o)
			lt, _ := loc.NewHashlimitTable(hlCfg)
			if _, isRedis := lt.(*hlTable); isRedis {
				t.Fatal("share=recent made a Redis hashlimit table")
			}
			if rl, _ := loc.NewRecentList(statestore.RecentConfig{Name: "R"}); rl == nil {
				t.Fatal("no recent list")
			} else if _, isRedis := rl.(*recentList); !isRedis {
				t.Fatal("share=recent did not share recent")
			}
			if ss := loc.SharedStatus(); strings.Join(ss.Shared, ",") != "recent" {
				t.Fatalf("status %+v", ss)
			}
		})
	}
}

// miniredis's clock: a table nobody touches for its TTL is gone, and the
// next daemon creates it anew with its own configuration.
func TestHashlimitAbandonedTableExpires(t *testing.T) {
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true})
	defer c.Close()
	s := New(c, Options{Timeout: time.Second})
	tb, _ := s.NewHashlimitTable(hlCfg)
	for i := 0; i < 50; i++ {
		tb.Consume(hlKey4("192.0.2.1"), 60, 1e18+int64(i)*1e6)
	}
	if tb.Len() != 1 {
		t.Fatalf("len %d", tb.Len())
	}
	m.FastForward(time.Duration(hlTTL(tb.Config())+1) * time.Second)
	if n := len(m.Keys()); n != 0 {
		t.Fatalf("%d keys left after the TTL: %q", n, m.Keys())
	}
	other := hlCfg
	other.Burst = 7
	t2, _ := s.NewHashlimitTable(other)
	if t2.Config().Burst != 7 {
		t.Fatalf("recreated table config %+v", t2.Config())
	}
}

// Concurrent packets from four daemons on one bucket of burst 100 at one
// instant: every step is one script, so exactly 100 are under the limit.
func TestHashlimitConcurrentDaemons(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			cfg := hlCfg
			cfg.Name, cfg.Avg, cfg.Burst = "C", 1_000_000*60, 100 // 1/min: no refill within the test
			var tables []statestore.HashlimitTable
			for i := 0; i < 4; i++ {
				s := New(newClient(t, be.addr), Options{Prefix: "hlconc:", Timeout: 5 * time.Second})
				tb, _ := s.NewHashlimitTable(cfg)
				tables = append(tables, tb)
			}
			const per = 60
			under := make(chan int, len(tables))
			for _, tb := range tables {
				go func() {
					n := 0
					for i := 0; i < per; i++ {
						if u, ok := tb.Consume(hlKey4("192.0.2.1"), 60, 1e18); u && ok {
							n++
						}
					}
					under <- n
				}()
			}
			total := 0
			for range tables {
				total += <-under
			}
			if total != 100 {
				t.Fatalf("%d of %d packets under the limit, want the burst 100", total, len(tables)*per)
			}
		})
	}
}

// A source flood fills 2,500 buckets; the first gc tick after their
// expiry removes them all in one step (HDEL in chunks of 1,000), as the
// memory table does.
func TestHashlimitCollectsAFlood(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			cfg := hlCfg
			cfg.Name = "F"
			s := New(newClient(t, be.addr), Options{Prefix: "hlflood:", Timeout: 5 * time.Second})
			tb, _ := s.NewHashlimitTable(cfg)
			mt, _ := statestore.NewMemory(nil).NewHashlimitTable(cfg)
			now := int64(1e18)
			for i := 0; i < 2500; i++ {
				k := hlKey4("10.0.0.0")
				k.Src[2], k.Src[3] = byte(i>>8), byte(i)
				tb.Consume(k, 60, now)
				mt.Consume(k, 60, now)
			}
			if tb.Len() != 2500 {
				t.Fatalf("len %d", tb.Len())
			}
			for _, dt := range []int64{900e6, 1100e6, 2100e6} {
				u1, _ := tb.Consume(hlKey4("192.0.2.1"), 60, now+dt)
				u2, _ := mt.Consume(hlKey4("192.0.2.1"), 60, now+dt)
				if u1 != u2 || tb.Len() != mt.Len() {
					t.Fatalf("+%v: redis (%v, %d buckets), memory (%v, %d)", time.Duration(dt), u1, tb.Len(), u2, mt.Len())
				}
			}
			if tb.Len() != 1 {
				t.Fatalf("after expiry: %d buckets, want only the last packet's", tb.Len())
			}
		})
	}
}
