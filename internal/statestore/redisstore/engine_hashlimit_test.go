package redisstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/statestore/redisstore"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/match"
)

// At most 3 new SSH connections per /24 and minute, burst 3.
const hlRules = `
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp --dport 22 --syn -m hashlimit --hashlimit-above 3/min --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-srcmask 24 --hashlimit-name SSHRATE -j DROP
-A INPUT -p tcp --dport 22 --syn -j ACCEPT`

// Two daemons share one hashlimit bucket per /24: two connections through
// A and one through B spend the burst, the fourth (on B) is dropped, and a
// minute later one token is back on both. Memory-store daemons each grant
// their own burst of 3.
func TestTwoEnginesShareOneHashlimit(t *testing.T) {
	for _, be := range redisstore.Backends(t) {
		t.Run(be.Name(), func(t *testing.T) {
			open := func() *redisstore.Store {
				c := redis.NewClient(&redis.Options{Addr: be.Addr(), ContextTimeoutEnabled: true})
				t.Cleanup(func() { c.Close() })
				return redisstore.New(c, redisstore.Options{Prefix: "fleethl:", Timeout: 2 * time.Second})
			}
			a, b := newDaemon(t, open(), hlRules), newDaemon(t, open(), hlRules)
			memA, memB := newDaemon(t, nil, hlRules), newDaemon(t, nil, hlRules)
			now := int64(1_700_000_000_000_000_000)
			got := verdicts(
				a.syn(t, "192.0.2.50", 40000, now),
				a.syn(t, "192.0.2.51", 40001, now+1e6),
				b.syn(t, "192.0.2.52", 40002, now+2e6),
				b.syn(t, "192.0.2.53", 40003, now+3e6),
				a.syn(t, "198.51.100.1", 40004, now+4e6), // another /24
			)
			if got != "AAADA" {
				t.Fatalf("A,A,B,B from one /24 then A from another: %s, want AAADA", got)
			}
			mem := verdicts(memA.syn(t, "192.0.2.50", 40000, now), memA.syn(t, "192.0.2.51", 40001, now+1e6),
				memB.syn(t, "192.0.2.52", 40002, now+2e6), memB.syn(t, "192.0.2.53", 40003, now+3e6))
			if mem != "AAAA" {
				t.Fatalf("memory-store daemons: %s, want AAAA (nothing shared)", mem)
			}
			// 20 s later (one token per 20 s) one more connection, on either.
			later := now + 3e6 + 20e9
			if got := verdicts(b.syn(t, "192.0.2.60", 40010, later), a.syn(t, "192.0.2.61", 40011, later)); got != "AD" {
				t.Fatalf("a token later, B then A: %s, want AD", got)
			}
			// A's control plane lists B's bucket as /proc/net/ipt_hashlimit does.
			tb, ok := match.HashlimitTableByName(a.e.Named(), xt.IPv4, "SSHRATE")
			if !ok {
				t.Fatal("A has no SSHRATE table")
			}
			var lines []string
			tb.Entries(later, func(e *statestore.HashlimitEntry) bool {
				lines = append(lines, strings.TrimSpace(string(statestore.AppendHashlimitProc(nil, e, false))))
				return true
			})
			if len(lines) != 2 || !strings.Contains(strings.Join(lines, "\n"), "192.0.2.0:0->0.0.0.0:0") {
				t.Fatalf("A's listing: %q", lines)
			}
			if ss, ok := any(open()).(statestore.SharedStore); !ok || len(ss.SharedStatus().Shared) != 2 {
				t.Fatal("the store does not report what it shares")
			}
		})
	}
}
