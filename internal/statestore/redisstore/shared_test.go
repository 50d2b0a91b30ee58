package redisstore

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/statestore"
)

// The list's mask and ring are the list's, not the daemon's: the first
// daemon's --mask wins (a kernel list keeps its creating rule's mask), and
// a rule on one daemon asking for a larger ring flushes the list for all.
func TestListMetaIsShared(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			rec := &logRecorder{}
			a := New(newClient(t, be.addr), Options{Prefix: "meta:", Timeout: 2 * time.Second})
			b := New(newClient(t, be.addr), Options{Prefix: "meta:", Timeout: 2 * time.Second, Logger: slog.New(rec)})
			la, _ := a.NewRecentList(statestore.RecentConfig{Name: "M", Mask: netip.MustParseAddr("255.255.255.0")})
			lb, _ := b.NewRecentList(statestore.RecentConfig{Name: "M", Mask: netip.MustParseAddr("255.255.255.255")})
			if la.Require(32) || lb.Require(32) {
				t.Fatal("flush on first Require")
			}
			if len(rec.lines()) != 1 || !strings.Contains(rec.lines()[0], "keeps the mask") {
				t.Fatalf("no mask warning on B: %q", rec.lines())
			}
			set := statestore.RecentQuery{Addr: netip.MustParseAddr("192.0.2.77"), TTL: 64, Cmd: statestore.RecentSet, NowNS: 1e18}
			lb.Apply(set)
			// B keyed it with A's /24 mask: A finds another host of the /24.
			if m, _ := la.Apply(statestore.RecentQuery{Addr: netip.MustParseAddr("192.0.2.1"), Cmd: statestore.RecentCheck, NowNS: 1e18}); !m {
				t.Fatal("B's entry is not A's /24")
			}
			if e := lb.Entries(nil); len(e) != 1 || e[0].Addr != netip.MustParseAddr("192.0.2.0") {
				t.Fatalf("entries %+v", e)
			}
			// B loads a rule with --hitcount 100: ring 128, the list is
			// flushed for A too, and A's entries now hold 128 stamps.
			if !lb.Require(128) {
				t.Fatal("Require(128) did not flush")
			}
			if n := la.Len(); n != 0 {
				t.Fatalf("A still sees %d entries after B's flush", n)
			}
			if la.Require(32) {
				t.Fatal("A's smaller ring flushed")
			}
			for i := 0; i < 130; i++ {
				set.NowNS += 1e9
				la.Apply(set)
			}
			e := lb.Entries(nil)
			if len(e) != 1 || len(e[0].StampsNS) != 128 || e[0].Index != 2 {
				t.Fatalf("after 131 stamps in a 128 ring: %d entries, %d stamps, index %d", len(e), len(e[0].StampsNS), e[0].Index)
			}
			if e[0].LastSeenNS != set.NowNS {
				t.Fatalf("last seen %d, want %d", e[0].LastSeenNS, set.NowNS)
			}
		})
	}
}

// Concurrent packets from several daemons: every step is one script, so no
// stamp is lost and the capacity holds.
func TestConcurrentDaemons(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			var lists []statestore.RecentList
			for i := 0; i < 4; i++ {
				s := New(newClient(t, be.addr), Options{Prefix: "conc:", Timeout: 5 * time.Second})
				l, _ := s.NewRecentList(statestore.RecentConfig{Name: "C"})
				l.Require(256)
				lists = append(lists, l)
			}
			const per = 50
			done := make(chan struct{})
			for g, l := range lists {
				go func() {
					defer func() { done <- struct{}{} }()
					for i := 0; i < per; i++ {
						now := int64(1e18) + int64(g*per+i)*1e6
						l.Apply(statestore.RecentQuery{Addr: netip.MustParseAddr("192.0.2.1"), TTL: 64, Cmd: statestore.RecentSet, NowNS: now})
						l.Apply(statestore.RecentQuery{Addr: netip.AddrFrom4([4]byte{10, byte(g), byte(i), 1}), TTL: 64, Cmd: statestore.RecentSet, NowNS: now})
					}
				}()
			}
			for range lists {
				<-done
			}
			ents := lists[0].Entries(nil)
			if len(ents) != statestore.RecentListTot {
				t.Fatalf("%d entries, want the capacity %d", len(ents), statestore.RecentListTot)
			}
			for _, e := range ents {
				if e.Addr == netip.MustParseAddr("192.0.2.1") {
					if len(e.StampsNS) != len(lists)*per || e.Index != len(lists)*per {
						t.Fatalf("192.0.2.1: %d stamps, index %d, want %d", len(e.StampsNS), e.Index, len(lists)*per)
					}
					return
				}
			}
			// After its last recording each daemon inserts at most one
			// more address, so it cannot be among the evicted.
			t.Fatalf("192.0.2.1 evicted: %+v", ents[len(ents)-1])
		})
	}
}
