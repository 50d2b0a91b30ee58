package statestore

import (
	"testing"

	"github.com/uptables/uptables/internal/conntrack"
)

// TestHashKeysPerInstance: every table whose buckets remote addresses
// choose gets its own key: recent lists, hashlimit tables and connlimit
// bookkeeping from the seeded source or, without one, the runtime's random
// seed; the conntrack table from crypto/rand when none is configured. A
// fixed key would let a flood be aimed at one bucket chain.
func TestHashKeysPerInstance(t *testing.T) {
	a, b := newSipKey(nil), newSipKey(nil)
	if a == (sipKey{}) || a == b {
		t.Errorf("unseeded keys %x and %x: want two distinct non-zero keys", a, b)
	}
	var n uint64
	rnd := func() uint64 { n++; return n * 0x9e3779b97f4a7c15 }
	c, d := newSipKey(rnd), newSipKey(rnd)
	if c == d {
		t.Errorf("two objects from one seeded source share key %x", c)
	}
	m := NewMemory(nil)
	l1, _ := m.NewRecentList(RecentConfig{Name: "A"})
	l2, _ := m.NewRecentList(RecentConfig{Name: "B"})
	if l1.(*recentList).key == l2.(*recentList).key {
		t.Error("two recent lists share a hash key")
	}
	if NewConncount(0, nil).hkey == NewConncount(0, nil).hkey {
		t.Error("two connlimit tables share a hash key")
	}
	t1, err := conntrack.NewTable(conntrack.Config{Max: 64})
	if err != nil {
		t.Fatal(err)
	}
	t2, _ := conntrack.NewTable(conntrack.Config{Max: 64})
	if k := t1.Config().HashKey; k == [2]uint64{} || k == t2.Config().HashKey {
		t.Errorf("conntrack keys %x and %x", k, t2.Config().HashKey)
	}
}
