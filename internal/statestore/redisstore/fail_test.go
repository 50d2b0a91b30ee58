package redisstore

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/uptables/uptables/internal/statestore"
)

// logRecorder keeps the messages logged through it.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	r.mu.Lock()
	r.msgs = append(r.msgs, b.String())
	r.mu.Unlock()
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }
func (r *logRecorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// fakeClock is a settable wall clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// deadAddr returns a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

var failQueries = []struct {
	q    statestore.RecentQuery
	open bool // the fail-open answer
}{
	{statestore.RecentQuery{Cmd: statestore.RecentSet}, true},
	{statestore.RecentQuery{Cmd: statestore.RecentSet, Invert: true}, false},
	{statestore.RecentQuery{Cmd: statestore.RecentCheck, Seconds: 60, Hits: 3}, false},
	{statestore.RecentQuery{Cmd: statestore.RecentCheck, Invert: true}, true},
	{statestore.RecentQuery{Cmd: statestore.RecentUpdate, Seconds: 60}, false},
	{statestore.RecentQuery{Cmd: statestore.RecentUpdate, Invert: true}, true},
	{statestore.RecentQuery{Cmd: statestore.RecentRemove}, false},
	{statestore.RecentQuery{Cmd: statestore.RecentRemove, Invert: true}, true},
}

// With Redis unreachable, fail-open answers as for an address that is not
// listed, fail-closed hot-drops; the first failure starts a backoff during
// which Redis is not asked; failures are logged once per interval.
func TestFailModes(t *testing.T) {
	for _, mode := range []FailMode{FailOpen, FailClosed} {
		t.Run(mode.String(), func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1000, 0)}
			rec := &logRecorder{}
			c := redis.NewClient(&redis.Options{Addr: deadAddr(t), MaxRetries: -1, ContextTimeoutEnabled: true})
			defer c.Close()
			s := New(c, Options{Fail: mode, Timeout: 200 * time.Millisecond, ControlTimeout: 200 * time.Millisecond, Logger: slog.New(rec), Now: clk.now})
			l, _ := s.NewRecentList(statestore.RecentConfig{Name: "X"})
			if l.Require(32) {
				t.Fatal("Require without Redis reported a flush")
			}
			for i, fq := range failQueries {
				q := fq.q
				q.Addr, q.TTL, q.NowNS = netip.MustParseAddr("192.0.2.1"), 64, 1e18
				m, hot := l.Apply(q)
				want, wantHot := fq.open, false
				if mode == FailClosed {
					want, wantHot = false, true
				}
				if m != want || hot != wantHot {
					t.Errorf("query %d %+v: (%v,%v), want (%v,%v)", i, fq.q, m, hot, want, wantHot)
				}
			}
			st := s.Stats()
			// Require and the first Apply reached the (dead) server; the
			// other seven Applies were answered during the backoff.
			if st.Errors != 2 || st.Skipped != 7 || st.Calls != 0 {
				t.Fatalf("stats %+v, want 2 errors and 7 skipped", st)
			}
			if mode == FailClosed && st.Hotdrops != 8 {
				t.Fatalf("hotdrops %d, want 8", st.Hotdrops)
			}
			if n := len(rec.lines()); n != 1 {
				t.Fatalf("%d log lines, want 1 per interval: %q", n, rec.lines())
			}
			if !strings.Contains(rec.lines()[0], "fail="+mode.String()) {
				t.Fatalf("log line %q does not name the fail mode", rec.lines()[0])
			}
			// After the backoff Redis is asked again; after the log
			// interval the next failure is logged with its count.
			clk.t = clk.t.Add(DefaultLogInterval + time.Second)
			l.Apply(statestore.RecentQuery{Addr: netip.MustParseAddr("192.0.2.1"), Cmd: statestore.RecentCheck})
			if st := s.Stats(); st.Errors != 3 {
				t.Fatalf("after the backoff: %+v, want a third error", st)
			}
			if lines := rec.lines(); len(lines) != 2 || !strings.Contains(lines[1], "errors=2 ") || !strings.Contains(lines[1], "skipped=7") {
				t.Fatalf("second report: %q", lines)
			}
			if _, err := l.(*recentList).EntriesErr(nil); err == nil {
				t.Fatal("Entries without Redis: no error")
			}
			if err := l.Command("+192.0.2.9", 1e18); err == nil || !strings.Contains(err.Error(), "redisstore") {
				t.Fatalf("Command without Redis: %v", err)
			}
			if s.LastError() == nil {
				t.Fatal("no last error")
			}
		})
	}
}

// A server that accepts and never answers costs a packet at most the
// store's timeout.
func TestTimeoutBoundsThePacketPath(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	ro, o, err := ParseURL("redis://" + ln.Addr().String() + "/0?timeout=40ms&fail=closed&protocol=2")
	if err != nil {
		t.Fatal(err)
	}
	ro.MaxRetries = -1
	c := redis.NewClient(ro)
	defer c.Close()
	s := New(c, o)
	l, _ := s.NewRecentList(statestore.RecentConfig{Name: "T"})
	start := time.Now()
	m, hot := l.Apply(statestore.RecentQuery{Addr: netip.MustParseAddr("192.0.2.1"), Cmd: statestore.RecentCheck, NowNS: 1e18})
	el := time.Since(start)
	if m || !hot {
		t.Fatalf("fail-closed answer (%v,%v)", m, hot)
	}
	if el > time.Second {
		t.Fatalf("Apply against a silent server took %v with a 40ms timeout", el)
	}
	t.Logf("Apply against a silent server returned after %v (timeout 40ms)", el)
}

// A Redis restart: failures while it is down, then the store recovers on
// its own after the backoff.
func TestRecoversAfterOutage(t *testing.T) {
	m := miniredis.RunT(t)
	clk := &fakeClock{t: time.Unix(1000, 0)}
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
	defer c.Close()
	s := New(c, Options{Timeout: time.Second, Now: clk.now})
	l, _ := s.NewRecentList(statestore.RecentConfig{Name: "R"})
	l.Require(4)
	a := netip.MustParseAddr("198.51.100.7")
	set := statestore.RecentQuery{Addr: a, TTL: 64, Cmd: statestore.RecentSet, NowNS: 1e18}
	check := statestore.RecentQuery{Addr: a, TTL: 64, Cmd: statestore.RecentCheck, NowNS: 1e18}
	l.Apply(set)
	if r, _ := l.Apply(check); !r {
		t.Fatal("not listed after --set")
	}
	m.Close()
	if r, hot := l.Apply(check); r || hot {
		t.Fatalf("fail-open during the outage: (%v,%v)", r, hot)
	}
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	if r, _ := l.Apply(check); r {
		t.Fatal("asked Redis during the backoff")
	}
	clk.t = clk.t.Add(2 * DefaultBackoff)
	// miniredis keeps its data across Restart: the entry is back.
	if r, _ := l.Apply(check); !r {
		t.Fatalf("after the backoff: not listed; stats %+v, last error %v", s.Stats(), s.LastError())
	}
}
