package redisstore

import (
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		addr    string
		db      int
		prefix  string
		timeout time.Duration
		fail    FailMode
		backoff time.Duration
		share   Share
		hlp     string
		err     string
	}{
		{url: "redis://127.0.0.1:6379/0", addr: "127.0.0.1:6379"},
		{url: "redis://10.0.0.5:6380/2?prefix=edge:recent:&timeout=20ms&fail=closed", addr: "10.0.0.5:6380", db: 2,
			prefix: "edge:recent:", timeout: 20 * time.Millisecond, fail: FailClosed},
		{url: "valkey://kv.internal/1?fail=open&backoff=0", addr: "kv.internal:6379", db: 1, backoff: -1},
		{url: "redis://h:1/0?backoff=250ms&pool_size=4", addr: "h:1", backoff: 250 * time.Millisecond},
		{url: "redis://user:secret@h:1/3", addr: "h:1", db: 3},
		{url: "rediss://h:1/0", addr: "h:1"},
		{url: "memcached://h:1", err: `unsupported scheme "memcached"`},
		{url: "redis://h:1/0?fail=maybe", err: `fail="maybe": want open or closed`},
		{url: "redis://h:1/0?timeout=50", err: `timeout "50"`},
		{url: "redis://h:1/0?timeout=-1s", err: `timeout "-1s"`},
		{url: "redis://h:1/0?prefix=", err: "empty prefix"},
		{url: "redis://h:1/0?colour=blue", err: "unexpected option: colour"},
		{url: "redis://h:1/x", err: "invalid database number"},
		{url: "redis://h:1/0?share=recent", addr: "h:1", share: ShareRecent},
		{url: "redis://h:1/0?share=hashlimit&hashlimit_prefix=edge:hl:", addr: "h:1", share: ShareHashlimit, hlp: "edge:hl:"},
		{url: "redis://h:1/0?share=hashlimit,recent", addr: "h:1", share: ShareAll},
		{url: "redis://h:1/0?share=conntrack", err: `share="conntrack": want a comma list of recent and hashlimit`},
		{url: "redis://h:1/0?share=", err: `share="": want`},
		{url: "redis://h:1/0?hashlimit_prefix=", err: "empty hashlimit_prefix"},
	} {
		ro, o, err := ParseURL(tc.url)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.url, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if ro.Addr != tc.addr || ro.DB != tc.db || o.Prefix != tc.prefix || o.Timeout != tc.timeout || o.Fail != tc.fail || o.Backoff != tc.backoff ||
			o.Share != tc.share || o.HashlimitPrefix != tc.hlp {
			t.Errorf("%s: addr %s db %d, options %+v", tc.url, ro.Addr, ro.DB, o)
		}
		if !ro.ContextTimeoutEnabled {
			t.Errorf("%s: context deadlines not honoured", tc.url)
		}
		if strings.HasPrefix(tc.url, "rediss") != (ro.TLSConfig != nil) {
			t.Errorf("%s: TLS %v", tc.url, ro.TLSConfig != nil)
		}
	}
	// The hashlimit prefix follows the recent prefix unless given.
	for _, tc := range []struct{ prefix, hlp, want string }{
		{"", "", DefaultHashlimitPrefix},
		{"edge:", "", "edge:hashlimit:"},
		{"edge:", "x:", "x:"},
	} {
		if got := New(nil, Options{Prefix: tc.prefix, HashlimitPrefix: tc.hlp}).Options().HashlimitPrefix; got != tc.want {
			t.Errorf("prefix %q, hashlimit_prefix %q: %q, want %q", tc.prefix, tc.hlp, got, tc.want)
		}
	}
	if got := Describe("redis://user:secret@h:1/3?fail=closed"); strings.Contains(got, "secret") || !strings.Contains(got, "h:1/3") {
		t.Errorf("Describe leaks or loses: %q", got)
	}
}
