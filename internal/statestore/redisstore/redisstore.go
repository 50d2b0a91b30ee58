// Package redisstore keeps the recent lists and hashlimit tables of the
// stateful matches in Redis (or Valkey), so that several uptables daemons
// behind a load balancer share one ban list and one rate limit: a client
// that one daemon's `-m recent --set` recorded is seen by every other
// daemon's `--rcheck`/`--update`, and a client's hashlimit bucket drains
// whichever daemon its packets reach. It is opt-in; the default store stays
// in memory (statestore.Memory). Options.Share selects what is shared; the
// rest stays in each daemon's memory (Options.Local).
//
// # Semantics
//
// Each packet's whole xt_recent step (spec §4.2: lookup by family, masked
// address and TTL rule; hit counting over the ring of stamps with the
// --seconds window; --reap of the least recently recorded entry; recording
// for --set and for an --update whose final result is true, "!" included)
// runs atomically inside Redis as one Lua script called with EVALSHA, so two
// daemons racing on one address see the same sequence as two CPUs of one
// kernel under recent_lock. The answers are those of the memory store for
// the same queries: stamps are kept in ns and compared at the kernel's jiffy
// granularity (statestore.Jiffy), the list holds ip_list_tot = 100 entries
// and evicts the least recently recorded one, and a rule asking for a larger
// ring flushes the list (the ring size lives in the list's meta key, so the
// flush and the new size reach every daemon). The differential test runs
// random query sequences against both stores and compares every answer and
// every listing.
//
// Key layout, for a list NAME and the prefix P (default "uptables:recent:";
// the braces are a Redis Cluster hash tag that keeps a list's three keys in
// one slot, as a script needs):
//
//	P{NAME}:meta  hash: ring (stamps per entry), seq (LRU clock), mask (hex)
//	P{NAME}:lru   sorted set: entry id -> seq of its last recording
//	P{NAME}:ent   hash: entry id -> TTL, ring write index, stamp count and
//	              the stamps (fixed-width decimal, ns)
//
// An entry id is the masked address in text form ("192.0.2.0", "2001:db8::",
// "::ffff:192.0.2.1" for an IPv4-mapped IPv6 address, which the kernel keeps
// apart from the IPv4 one), readable with redis-cli. The LRU order is a
// counter, not a clock, because the kernel's order is that of its
// list_move_tail calls: daemons whose clocks disagree by a few milliseconds
// still agree on which entry is the oldest.
//
// The list's mask is the first daemon's: the first Require stores it in the
// meta key and later daemons adopt it (with a warning when their rule said
// otherwise), as a kernel list keeps its creating rule's mask.
//
// Lifetime differs from the kernel on purpose: the kernel destroys a list
// with its last rule, while a Redis list outlives the rules of any single
// daemon (the others may still use it) and survives a daemon's restart. Flush
// it with the /proc-style command "/" (`uptables recent NAME /`), or delete
// its keys. The ring never shrinks (a kernel list neither); deleting the meta
// key resets it. The memory store's persistence (internal/persist) skips
// these lists: Redis keeps them.
//
// # Failures
//
// Every call carries a deadline (Options.Timeout, default 50 ms), so a slow
// or dead Redis never holds a packet longer than that. When a call fails the
// match answers by Options.Fail:
//
//   - FailOpen (default): as if the address were not listed: --rcheck,
//     --update and --remove are false (true with "!"), --set is true (false
//     with "!") but records nothing. Banned clients get through while Redis
//     is away; nobody is locked out.
//   - FailClosed: the packet is hot-dropped, as the kernel does when it cannot
//     allocate an entry.
//
// After a failure the store does not ask Redis again for Options.Backoff
// (default 1 s) and answers by the fail mode at once, so an outage costs one
// timeout per second instead of one per packet; the first call after the
// backoff probes Redis again. Failures are counted (Stats) and logged at
// most once per Options.LogInterval (default 10 s) with the count and the
// last error.
//
// # Cost
//
// A recent or hashlimit match costs one round trip to Redis per packet
// that reaches it (about 40-70 µs on loopback against 0.06-0.4 µs in
// memory; BenchmarkRecentUpdate, BenchmarkHashlimitConsume),
// and go-redis allocates for every command (about 20 allocations; the
// benchmark reports the exact number). Rules put these matches behind
// "-m conntrack --ctstate NEW" or "--syn" in practice, so only new
// connections pay; a ruleset that sends every packet through a Redis-backed
// match is bounded by Redis's latency, and every daemon's steps are
// serialised in the one Redis.
//
// # Hashlimit
//
// Each packet's hashlimit step (hashlimit_mt_common: the gc tick that is
// due, lookup, rateinfo_init or rateinfo_recalc, the new expiry, the
// charge, packet and byte mode) is one Lua script too, with the memory
// table's arithmetic exactly (credits in the kernel's 64-bit units, kept as
// two 32-bit halves because Lua numbers are doubles). Tables are shared by
// name and family, like the kernel's; the first daemon's configuration
// (rate, burst, mode, masks, sizes, intervals) is stored in the table's
// meta key and adopted, with a warning, by a daemon whose rule says
// otherwise, as a kernel table keeps its creating rule's. A full table
// (htable-max buckets) refuses new keys (the match hot-drops), as the
// kernel's; htable-size has no meaning in Redis except through the
// default htable-max (8 * size). Buckets expire as in the kernel: at the
// first packet after each gcinterval tick (the tick phase starts at the
// table's first packet step in Redis) a bucket idle for expire is
// removed. Every step refreshes the keys' TTL (expire + 2 gcintervals +
// 61 s, Redis's clock), so a table nobody uses any more leaves Redis by
// itself (and with it the stored configuration: the next daemon creates
// the table anew with its own). See hashlimit.go for the key layout.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/uptables/uptables/internal/statestore"
)

// FailMode is what a recent match answers when Redis cannot be reached.
type FailMode uint8

const (
	// FailOpen answers as if the address were not in the list.
	FailOpen FailMode = iota
	// FailClosed hot-drops the packet.
	FailClosed
)

// String returns "open" or "closed", as the URL's fail= parameter spells it.
func (m FailMode) String() string {
	if m == FailClosed {
		return "closed"
	}
	return "open"
}

// Share selects the state a Store keeps in Redis.
type Share uint8

const (
	// ShareRecent keeps the recent lists in Redis.
	ShareRecent Share = 1 << iota
	// ShareHashlimit keeps the hashlimit tables in Redis.
	ShareHashlimit
	// ShareAll is both (the zero Options.Share means ShareAll).
	ShareAll = ShareRecent | ShareHashlimit
)

// String lists the shared kinds as the URL's share= parameter spells
// them ("recent,hashlimit").
func (s Share) String() string {
	var p []string
	if s&ShareRecent != 0 {
		p = append(p, "recent")
	}
	if s&ShareHashlimit != 0 {
		p = append(p, "hashlimit")
	}
	return strings.Join(p, ",")
}

// Defaults of Options.
const (
	DefaultPrefix          = "uptables:recent:"
	DefaultHashlimitPrefix = "uptables:hashlimit:"
	DefaultTimeout         = 50 * time.Millisecond
	DefaultControl         = 5 * time.Second
	DefaultBackoff         = time.Second
	DefaultLogInterval     = 10 * time.Second
)

// Options configures a Store. The zero value is usable.
type Options struct {
	// Prefix starts every key (DefaultPrefix when empty). Daemons that
	// share lists must use the same prefix; different prefixes keep
	// fleets apart on one Redis.
	Prefix string
	// Timeout bounds every Redis call of the packet path, Apply
	// (DefaultTimeout when 0).
	Timeout time.Duration
	// ControlTimeout bounds the control plane's calls: Require (at rule
	// load), Entries, Command, Len, Ping (DefaultControl when 0). They
	// neither wait for nor start a backoff.
	ControlTimeout time.Duration
	// Fail is the answer of a match while Redis is unreachable.
	Fail FailMode
	// Backoff is how long after a failure the store answers by Fail
	// without asking Redis (DefaultBackoff when 0, none when negative).
	Backoff time.Duration
	// LogInterval spaces the failure reports (DefaultLogInterval when 0).
	LogInterval time.Duration
	// Logger receives the failure reports and mask warnings (nil discards).
	Logger *slog.Logger
	// Now is the wall clock of the backoff and the log interval (time.Now
	// when nil); packet times never come from it.
	Now func() time.Time
	// HashlimitPrefix starts the hashlimit tables' keys: when empty,
	// DefaultHashlimitPrefix with the default Prefix, Prefix+"hashlimit:"
	// with another one (so that a prefix that separates fleets separates
	// their hashlimit tables too).
	HashlimitPrefix string
	// Share is what lives in Redis (ShareAll when 0).
	Share Share
	// Local makes what is not shared (statestore.NewMemory(nil) when nil).
	Local statestore.Factory
	// Describe names the backend in status reports (Open sets the
	// redacted URL; "redis" when empty).
	Describe string
}

// Stats counts a store's Redis calls.
type Stats struct {
	Calls    uint64 // calls that reached Redis and succeeded
	Errors   uint64 // calls that failed (timeout, connection, script error)
	Skipped  uint64 // calls answered by the fail mode during a backoff
	Hotdrops uint64 // packets hot-dropped by FailClosed
}

// Store is the Redis-backed statestore.Factory.
type Store struct {
	c      redis.Scripter
	opt    Options
	closer func() error

	calls, errs, skipped, hotdrops atomic.Uint64
	// failUntil is the wall-clock ns until which calls are skipped.
	failUntil atomic.Int64
	// lastLog is the wall-clock ns of the last failure report; logged is
	// the error count it reported.
	lastLog atomic.Int64
	logged  atomic.Uint64
	lastErr atomic.Pointer[errBox]
}

type errBox struct{ err error }

var _ statestore.Factory = (*Store)(nil)
var _ statestore.SharedStore = (*Store)(nil)

// New returns a store over client (a *redis.Client, *redis.ClusterClient or
// *redis.Ring). The client's own timeouts still apply; every call also gets
// a context deadline of opt.Timeout, which go-redis honours on the socket
// when the client has ContextTimeoutEnabled (ParseURL sets it).
func New(client redis.Scripter, opt Options) *Store {
	if opt.Prefix == "" {
		opt.Prefix = DefaultPrefix
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.ControlTimeout <= 0 {
		opt.ControlTimeout = DefaultControl
	}
	if opt.Backoff == 0 {
		opt.Backoff = DefaultBackoff
	}
	if opt.LogInterval <= 0 {
		opt.LogInterval = DefaultLogInterval
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.HashlimitPrefix == "" {
		opt.HashlimitPrefix = DefaultHashlimitPrefix
		if opt.Prefix != DefaultPrefix {
			opt.HashlimitPrefix = opt.Prefix + "hashlimit:"
		}
	}
	if opt.Share == 0 {
		opt.Share = ShareAll
	}
	if opt.Local == nil {
		opt.Local = statestore.NewMemory(nil)
	}
	if opt.Describe == "" {
		opt.Describe = "redis"
	}
	return &Store{c: client, opt: opt}
}

// Options returns the store's options with the defaults filled in.
func (s *Store) Options() Options { return s.opt }

// Stats returns the call counters.
func (s *Store) Stats() Stats {
	return Stats{Calls: s.calls.Load(), Errors: s.errs.Load(), Skipped: s.skipped.Load(), Hotdrops: s.hotdrops.Load()}
}

// Close closes the client when the store opened it (Open); otherwise the
// caller owns the client and Close does nothing.
func (s *Store) Close() error {
	if s.closer == nil {
		return nil
	}
	return s.closer()
}

// NewRecentList implements statestore.Factory. It does not talk to Redis:
// the list's first Require does. Without ShareRecent the list is
// Options.Local's.
func (s *Store) NewRecentList(cfg statestore.RecentConfig) (statestore.RecentList, error) {
	if s.opt.Share&ShareRecent == 0 {
		return s.opt.Local.NewRecentList(cfg)
	}
	if cfg.Entries < 0 || cfg.Entries > 1<<20 {
		return nil, fmt.Errorf("recent: list size %d out of range", cfg.Entries)
	}
	return newRecentList(s, cfg), nil
}

// NewHashlimitTable implements statestore.Factory. It reads (or, for a
// new table, records) the table's configuration in Redis within the
// control timeout; without Redis the rule's own configuration is used.
// Without ShareHashlimit the table is Options.Local's.
func (s *Store) NewHashlimitTable(cfg statestore.HashlimitConfig) (statestore.HashlimitTable, error) {
	if s.opt.Share&ShareHashlimit == 0 {
		return s.opt.Local.NewHashlimitTable(cfg)
	}
	if cfg.Name == "" {
		return nil, fmt.Errorf("hashlimit: table without a name")
	}
	return newHlTable(s, cfg), nil
}

// SharedStatus implements statestore.SharedStore: what the store shares,
// where, and its call counters (`uptables status`, metrics).
func (s *Store) SharedStatus() statestore.SharedStatus {
	st := s.Stats()
	out := statestore.SharedStatus{Backend: s.opt.Describe, Fail: s.opt.Fail.String(),
		Calls: st.Calls, Errors: st.Errors, Skipped: st.Skipped, Hotdrops: st.Hotdrops}
	if s.opt.Share&ShareRecent != 0 {
		out.Shared = append(out.Shared, "recent")
	}
	if s.opt.Share&ShareHashlimit != 0 {
		out.Shared = append(out.Shared, "hashlimit")
	}
	if err := s.LastError(); err != nil {
		out.LastError = err.Error()
	}
	return out
}

// errBackoff is the error of a call skipped during a backoff.
var errBackoff = errors.New("redisstore: redis unavailable (backing off after a failure)")

// ready reports whether a call may go to Redis now (false during a
// backoff, counted as skipped).
func (s *Store) ready() bool {
	if s.opt.Backoff < 0 {
		return true
	}
	if u := s.failUntil.Load(); u != 0 && s.opt.Now().UnixNano() < u {
		s.skipped.Add(1)
		return false
	}
	return true
}

// run calls script from the packet path: skipped during a backoff, bounded
// by Timeout, starting a backoff when it fails.
func (s *Store) run(sc *redis.Script, keys []string, args ...any) (any, error) {
	if !s.ready() {
		return nil, errBackoff
	}
	return s.call(s.opt.Timeout, true, sc, keys, args...)
}

// control calls script for the control plane, bounded by ControlTimeout.
func (s *Store) control(sc *redis.Script, keys []string, args ...any) (any, error) {
	return s.call(s.opt.ControlTimeout, false, sc, keys, args...)
}

func (s *Store) call(d time.Duration, backoff bool, sc *redis.Script, keys []string, args ...any) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	v, err := sc.Run(ctx, s.c, keys, args...).Result()
	cancel()
	if err != nil {
		s.failed(err, backoff)
		return nil, err
	}
	s.calls.Add(1)
	return v, nil
}

// failed counts err, starts a backoff when asked and reports at most once
// per LogInterval.
func (s *Store) failed(err error, backoff bool) {
	n := s.errs.Add(1)
	s.lastErr.Store(&errBox{err})
	now := s.opt.Now().UnixNano()
	if backoff && s.opt.Backoff > 0 {
		s.failUntil.Store(now + int64(s.opt.Backoff))
	}
	last := s.lastLog.Load()
	if last != 0 && now-last < int64(s.opt.LogInterval) {
		return
	}
	if !s.lastLog.CompareAndSwap(last, now) {
		return
	}
	prev := s.logged.Swap(n)
	s.opt.Logger.Warn("redisstore: redis call failed", "errors", n-prev, "total_errors", n,
		"skipped", s.skipped.Load(), "fail", s.opt.Fail.String(), "err", err)
}

// LastError returns the last Redis error seen (nil when none).
func (s *Store) LastError() error {
	if b := s.lastErr.Load(); b != nil {
		return b.err
	}
	return nil
}
