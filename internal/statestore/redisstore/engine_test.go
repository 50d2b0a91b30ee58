package redisstore_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/statestore/redisstore"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
	"github.com/uptables/uptables/internal/xt/match"
)

// sshRules is seed 002's SSH rate limit with the brief's window: at most
// 3 new SSH connections per address per hour.
const sshRules = `
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp --dport 22 -m state --state NEW -m recent --name SSHPOOL --rcheck --seconds 3600 --hitcount 3 -j DROP
-A INPUT -p tcp --dport 22 -m state --state NEW -m recent --name SSHPOOL --set -j ACCEPT`

func ruleset4(t testing.TB, commands string) *ruleset.Ruleset {
	t.Helper()
	reg := builtin.Registry()
	rs := ruleset.New(xt.IPv4)
	for _, line := range strings.Split(strings.TrimSpace(commands), "\n") {
		args, err := iptables.SplitShell(strings.TrimSpace(line))
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		var out strings.Builder
		res, _, err := iptables.Run(rs, reg, args, &out)
		if err != nil {
			t.Fatalf("iptables %s: %v", line, err)
		}
		if res.Ruleset != nil {
			rs = res.Ruleset
		}
	}
	return rs
}

type discard struct{}

func (discard) Reply(*xt.Ctx, []byte)      {}
func (discard) Log(*xt.Ctx, uint8, []byte) {}

// daemon is one uptables engine with its worker.
type daemon struct {
	e *netfilter.Engine
	w *netfilter.Worker
	p packet.Packet
}

// newDaemon builds an engine; with st it shares its recent lists through
// Redis, registered before the first Load as a daemon does.
func newDaemon(t testing.TB, st *redisstore.Store, rules string) *daemon {
	t.Helper()
	e := netfilter.New(netfilter.Config{Seed: 1, Conntrack: conntrack.Config{HashKey: [2]uint64{3, 4}}})
	if st != nil {
		if err := redisstore.Register(e.Named(), st); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Load(ruleset4(t, rules)); err != nil {
		t.Fatalf("load: %v", err)
	}
	return &daemon{e: e, w: e.NewWorker(discard{})}
}

// syn sends a new connection's SYN to port 22 and returns the verdict.
func (d *daemon) syn(t testing.TB, src string, sport uint16, nowNS int64) xt.Verdict {
	t.Helper()
	b := packettest.TCP(packettest.TCPOpts{Src: src, Dst: "10.0.0.100", SrcPort: sport, DstPort: 22,
		Flags: packettest.SYN, Seq: 1000, Window: 64240})
	if st := d.p.Decode(b); st == packet.BadL3 {
		t.Fatal("SYN does not decode")
	}
	d.p.InIface, d.p.OutIface, d.p.TimeNS = "eth0", "", nowNS
	return d.w.Process(netfilter.PathInput, &d.p).Verdict
}

func verdicts(vs ...xt.Verdict) string {
	var b strings.Builder
	for _, v := range vs {
		if v == xt.VerdictAccept {
			b.WriteByte('A')
		} else {
			b.WriteByte('D')
		}
	}
	return b.String()
}

// Two daemons behind a load balancer share one ban list: daemon A records
// three SSH attempts from a client, and daemon B, which never saw that
// client, drops its fourth. Two daemons with memory stores let it in on
// the second (the seeds' complaint: nothing is shared across servers).
func TestTwoEnginesShareOneBanList(t *testing.T) {
	for _, be := range redisstore.Backends(t) {
		t.Run(be.Name(), func(t *testing.T) {
			open := func() *redisstore.Store {
				c := redis.NewClient(&redis.Options{Addr: be.Addr(), ContextTimeoutEnabled: true})
				t.Cleanup(func() { c.Close() })
				return redisstore.New(c, redisstore.Options{Prefix: "fleet:", Timeout: 2 * time.Second})
			}
			a, b := newDaemon(t, open(), sshRules), newDaemon(t, open(), sshRules)
			// The same fleet without Redis: each daemon its own list.
			memA, memB := newDaemon(t, nil, sshRules), newDaemon(t, nil, sshRules)
			now := int64(1_700_000_000_000_000_000)
			var got []xt.Verdict
			for i := 0; i < 3; i++ {
				got = append(got, a.syn(t, "192.0.2.50", uint16(40000+i), now))
				memA.syn(t, "192.0.2.50", uint16(40000+i), now)
				now += 10e9
			}
			got = append(got, b.syn(t, "192.0.2.50", 40003, now))
			if s := verdicts(got...); s != "AAAD" {
				t.Fatalf("3 attempts on A, the 4th on B: %s, want AAAD", s)
			}
			if s := verdicts(memA.syn(t, "192.0.2.50", 40003, now), memB.syn(t, "192.0.2.50", 40003, now)); s != "DA" {
				t.Fatalf("the 4th on memory-store daemons A and B: %s, want DA (nothing shared)", s)
			}
			if v := b.syn(t, "192.0.2.51", 40000, now); v != xt.VerdictAccept {
				t.Fatalf("another client on B: %v", v)
			}
			// B's control plane lists what A recorded.
			l, ok := match.RecentListByName(b.e.Named(), "SSHPOOL")
			if !ok {
				t.Fatal("B has no SSHPOOL list")
			}
			ents := l.Entries(nil)
			if len(ents) != 2 || ents[0].Addr != netip.MustParseAddr("192.0.2.50") || len(ents[0].StampsNS) != 3 ||
				ents[1].Addr != netip.MustParseAddr("192.0.2.51") || len(ents[1].StampsNS) != 1 {
				t.Fatalf("B's listing: %+v", ents)
			}
			// An hour after the first attempts A lets the client in again.
			if v := a.syn(t, "192.0.2.50", 40004, now+3600e9); v != xt.VerdictAccept {
				t.Fatalf("an hour later on A: %v", v)
			}
			// A /proc-style "-ADDR" on A unbans on B at once.
			la, _ := match.RecentListByName(a.e.Named(), "SSHPOOL")
			for i := 0; i < 3; i++ {
				b.syn(t, "192.0.2.52", uint16(41000+i), now)
			}
			if v := b.syn(t, "192.0.2.52", 41003, now); v == xt.VerdictAccept {
				t.Fatal("4th attempt of .52 accepted")
			}
			if err := la.Command("-192.0.2.52\n", now); err != nil {
				t.Fatal(err)
			}
			if v := b.syn(t, "192.0.2.52", 41004, now); v != xt.VerdictAccept {
				t.Fatalf("after -192.0.2.52 on A, B: %v", v)
			}
		})
	}
}

// Register must come before the first Load of a ruleset with a stateful
// match; after a ruleset without one the engine forgets the factory, and
// registering again before the next Load puts it back.
func TestRegisterBeforeLoad(t *testing.T) {
	be := redisstore.Backends(t)
	c := redis.NewClient(&redis.Options{Addr: be[len(be)-1].Addr()})
	defer c.Close()
	st := redisstore.New(c, redisstore.Options{Prefix: "reg:"})

	late := newDaemon(t, nil, sshRules)
	if err := redisstore.Register(late.e.Named(), st); err == nil || !strings.Contains(err.Error(), "before the first Load") {
		t.Fatalf("Register after a Load with recent rules: %v", err)
	}

	e := netfilter.New(netfilter.Config{Seed: 1})
	for i, rules := range []string{"-A INPUT -p tcp --dport 80 -j ACCEPT", sshRules, "-A INPUT -j ACCEPT", sshRules} {
		if err := redisstore.Register(e.Named(), st); err != nil {
			t.Fatalf("Register before load %d: %v", i, err)
		}
		if err := e.Load(ruleset4(t, rules)); err != nil {
			t.Fatal(err)
		}
		var f statestore.Factory
		v, ok := e.Shared(match.NamedStoreKind, match.NamedStoreName)
		if ok {
			f, _ = v.(statestore.Factory)
		}
		if strings.Contains(rules, "recent") && f != statestore.Factory(st) {
			t.Fatalf("load %d: the engine's factory is %T, want the Redis store", i, v)
		}
	}
}
