package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/match"
)

// ParseURL parses a --state URL:
//
//	redis://[user:password@]host:port/db?prefix=P&timeout=50ms&fail=open|closed&backoff=1s&share=recent,hashlimit&hashlimit_prefix=H
//
// The schemes are redis, rediss (TLS) and unix (redis://...'s socket form,
// unix:///run/redis.sock?db=0), with valkey and valkeys as synonyms of
// redis and rediss. prefix, timeout, fail, backoff, share and
// hashlimit_prefix are this package's Options (timeout and backoff are Go
// durations: "50ms", "1s"; backoff 0 turns the backoff off; share is a
// comma list of recent and hashlimit, both by default, what is not listed
// staying in each daemon's memory); every other query parameter is go-redis's
// (dial_timeout, read_timeout, pool_size, max_retries, ...). The client
// honours context deadlines (ContextTimeoutEnabled), so each call waits at
// most the store's timeout (packets) or control timeout (listing, /proc
// writes, rule loads), within go-redis's own socket timeouts.
func ParseURL(raw string) (*redis.Options, Options, error) {
	var o Options
	u, err := url.Parse(raw)
	if err != nil {
		return nil, o, fmt.Errorf("--state: %w", err)
	}
	switch u.Scheme {
	case "valkey":
		u.Scheme = "redis"
	case "valkeys":
		u.Scheme = "rediss"
	case "redis", "rediss", "unix":
	default:
		return nil, o, fmt.Errorf("--state: unsupported scheme %q (want redis://, rediss://, valkey://, valkeys:// or unix://)", u.Scheme)
	}
	q := u.Query()
	if v, ok := pop(q, "prefix"); ok {
		if v == "" {
			return nil, o, fmt.Errorf("--state: empty prefix")
		}
		o.Prefix = v
	}
	if v, ok := pop(q, "timeout"); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, o, fmt.Errorf("--state: timeout %q: want a positive duration such as 50ms", v)
		}
		o.Timeout = d
	}
	if v, ok := pop(q, "fail"); ok {
		switch v {
		case "open":
			o.Fail = FailOpen
		case "closed":
			o.Fail = FailClosed
		default:
			return nil, o, fmt.Errorf("--state: fail=%q: want open or closed", v)
		}
	}
	if v, ok := pop(q, "backoff"); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return nil, o, fmt.Errorf("--state: backoff %q: want a duration such as 1s (0 = none)", v)
		}
		o.Backoff = d
		if d == 0 {
			o.Backoff = -1
		}
	}
	if v, ok := pop(q, "share"); ok {
		var sh Share
		for _, w := range strings.Split(v, ",") {
			switch w {
			case "recent":
				sh |= ShareRecent
			case "hashlimit":
				sh |= ShareHashlimit
			default:
				return nil, o, fmt.Errorf("--state: share=%q: want a comma list of recent and hashlimit", v)
			}
		}
		o.Share = sh
	}
	if v, ok := pop(q, "hashlimit_prefix"); ok {
		if v == "" {
			return nil, o, fmt.Errorf("--state: empty hashlimit_prefix")
		}
		o.HashlimitPrefix = v
	}
	u.RawQuery = q.Encode()
	ro, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, o, fmt.Errorf("--state: %w", err)
	}
	ro.ContextTimeoutEnabled = true
	return ro, o, nil
}

// pop removes a query parameter, reporting whether it was there.
func pop(q url.Values, k string) (string, bool) {
	v, ok := q[k]
	if !ok {
		return "", false
	}
	delete(q, k)
	if len(v) == 0 {
		return "", true
	}
	return v[len(v)-1], true
}

// Open parses a --state URL and returns a store over a new client, which
// the store's Close closes. It does not contact Redis (a daemon starts even
// when Redis is down, answering by the fail mode); call Ping for that.
func Open(raw string, logger *slog.Logger) (*Store, error) {
	ro, o, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	o.Logger = logger
	o.Describe = Describe(raw)
	c := redis.NewClient(ro)
	s := New(c, o)
	s.closer = c.Close
	return s, nil
}

// Ping loads the store's scripts into Redis (so the first packets find
// them by SHA) within the store's timeout, and reports whether Redis
// answered.
func (s *Store) Ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.ControlTimeout)
	defer cancel()
	for _, sc := range []*redis.Script{applyScript, requireScript, entriesScript, flushScript, lenScript,
		consumeScript, hlEntriesScript, hlConfigScript, hlLenScript} {
		if err := sc.Load(ctx, s.c).Err(); err != nil {
			return fmt.Errorf("redisstore: %w", err)
		}
	}
	return nil
}

// Register installs s as the state-store factory of an engine's named
// registry (netfilter.Engine.Named()), under the kind and name that
// match.StateFactory looks up. Call it before the first Load: once a
// ruleset with a recent or hashlimit rule is compiled, the registry holds
// the memory store and Register fails. It is idempotent, and because the
// engine forgets registry objects that the loaded ruleset does not use,
// call it before every Load (a ruleset without recent and hashlimit rules
// drops the factory).
func Register(named xt.NamedState, s *Store) error {
	v, err := named.Shared(match.NamedStoreKind, match.NamedStoreName, func() (any, error) { return s, nil })
	if err != nil {
		return fmt.Errorf("redisstore: register: %w", err)
	}
	if v != any(s) {
		return fmt.Errorf("redisstore: the engine already uses another state store (%T): register before the first Load", v)
	}
	return nil
}

// Describe returns the URL's redacted form for logs: scheme, host, db and
// the store's options, without credentials.
func Describe(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid --state URL>"
	}
	u.User = nil
	return strings.TrimSuffix(u.String(), "?")
}
