package statestore

// Snapshots: the complete state of a memory recent list or hashlimit table
// as plain data, and its restoration, so that a daemon can keep across a
// restart what the kernel keeps in memory and loses at reboot (users work
// around that with scripts that dump /proc/net/xt_recent and write it
// back, which loses the rings and the TTLs). internal/persist decides what
// to do when the rules changed in between; this file only copies state out
// and, after checking it, back in.
//
// Times are packet-clock ns (the engine's clock: ns since the Unix epoch
// for live traffic); hashlimit's jiffies are stored as jiffies*JiffyNS so
// that they convert back exactly.

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
)

// RecentRingMax is the largest ring a list can have: the next power of two
// above the largest --hitcount the kernel accepts (65535).
const RecentRingMax = 1 << 16

// RecentCapacityMax is the largest ip_list_tot a memory list accepts.
const RecentCapacityMax = 1 << 20

// RecentLayout is what a list's rules fixed: the --mask of the rule that
// created it, its capacity (ip_list_tot) and its ring size (the largest
// any of its rules required).
type RecentLayout struct {
	Mask     [16]byte
	Capacity int
	Ring     int
}

// RecentSnapshot is the complete state of one recent list.
type RecentSnapshot struct {
	Name string
	RecentLayout
	// Entries are in LRU order, least recently recorded first (the order
	// /proc/net/xt_recent lists them in here, and the order in which a full
	// list evicts).
	Entries []RecentSnapEntry
}

// RecentSnapEntry is one address of a list with its whole ring.
type RecentSnapEntry struct {
	Addr netip.Addr // 4-byte for IPv4 entries, 16-byte (possibly 4in6) for IPv6
	TTL  uint8
	// Index is the ring write index, 1..Ring (the kernel's "oldest_pkt").
	Index int
	// StampsNS are ring slots 0..n-1, n being the number of valid stamps:
	// n == Index until the ring first wraps, then n == Ring.
	StampsNS []int64
	// Rank orders entries of the same address (they exist only through
	// --rttl): a lookup finds rank 0 first. 0 for every other entry.
	Rank int
}

// LastNS is the entry's newest stamp (the kernel's last_seen).
func (e *RecentSnapEntry) LastNS() int64 { return e.StampsNS[e.Index-1] }

// Chronological returns the entry's stamps oldest first.
func (e *RecentSnapEntry) Chronological() []int64 {
	out := make([]int64, 0, len(e.StampsNS))
	// Until the ring wraps Index == len and slot 0 is the oldest; after,
	// the slot at Index (mod Ring) is.
	start := e.Index % len(e.StampsNS)
	out = append(out, e.StampsNS[start:]...)
	return append(out, e.StampsNS[:start]...)
}

// RecentSnapshotter is implemented by recent lists whose state can be
// copied out and restored (the memory store's lists).
type RecentSnapshotter interface {
	// Layout returns the list's mask, capacity and ring size.
	Layout() RecentLayout
	// Snapshot copies the list's state atomically (under its lock).
	Snapshot() RecentSnapshot
	// Restore replaces the list's entries with s.Entries atomically. s must
	// pass Validate, carry the list's mask, hold at most Capacity entries
	// and have a ring at least the list's: a larger ring grows the list's
	// (as if the list had lived through the rules that needed it). On error
	// the list is unchanged.
	Restore(s *RecentSnapshot) error
}

var _ RecentSnapshotter = (*recentList)(nil)

// Validate checks that s could have been produced by a list: a ring that
// is a power of two, at most Capacity entries, per entry a valid address,
// a write index and stamp count the ring algorithm can reach, and ranks
// that number each address's entries 0..k-1.
func (s *RecentSnapshot) Validate() error {
	if s.Ring < 1 || s.Ring > RecentRingMax || s.Ring&(s.Ring-1) != 0 {
		return fmt.Errorf("recent list %q: ring size %d is not a power of two in 1..%d", s.Name, s.Ring, RecentRingMax)
	}
	if s.Capacity < 1 || s.Capacity > RecentCapacityMax {
		return fmt.Errorf("recent list %q: capacity %d out of range 1..%d", s.Name, s.Capacity, RecentCapacityMax)
	}
	if len(s.Entries) > s.Capacity {
		return fmt.Errorf("recent list %q: %d entries exceed its capacity %d", s.Name, len(s.Entries), s.Capacity)
	}
	ranks := map[netip.Addr][]bool{}
	for i := range s.Entries {
		e := &s.Entries[i]
		if !e.Addr.IsValid() || e.Addr.Zone() != "" {
			return fmt.Errorf("recent list %q: entry %d: invalid address %v", s.Name, i, e.Addr)
		}
		n := len(e.StampsNS)
		if n < 1 || n > s.Ring || e.Index < 1 || e.Index > n || n != e.Index && n != s.Ring {
			return fmt.Errorf("recent list %q: entry %d (%v): %d stamps with write index %d cannot occur in a ring of %d",
				s.Name, i, e.Addr, n, e.Index, s.Ring)
		}
		if e.Rank < 0 || e.Rank >= s.Capacity {
			return fmt.Errorf("recent list %q: entry %d (%v): rank %d out of range", s.Name, i, e.Addr, e.Rank)
		}
		r := ranks[e.Addr]
		for len(r) <= e.Rank {
			r = append(r, false)
		}
		if r[e.Rank] {
			return fmt.Errorf("recent list %q: entry %d (%v): rank %d given twice", s.Name, i, e.Addr, e.Rank)
		}
		r[e.Rank] = true
		ranks[e.Addr] = r
	}
	for a, r := range ranks {
		for k, ok := range r {
			if !ok {
				return fmt.Errorf("recent list %q: address %v has no entry of rank %d", s.Name, a, k)
			}
		}
	}
	return nil
}

// Resize moves every entry into a ring of the given size (a power of two),
// keeping its newest stamps in chronological order: a smaller ring keeps
// the newest ring stamps (all any rule of that list can count), a larger
// one all of them. The write index then points after the newest stamp.
func (s *RecentSnapshot) Resize(ring int) {
	if ring == s.Ring {
		return
	}
	for i := range s.Entries {
		e := &s.Entries[i]
		c := e.Chronological()
		if len(c) > ring {
			c = c[len(c)-ring:]
		}
		e.StampsNS = c
		e.Index = len(c)
	}
	s.Ring = ring
}

// KeepNewest drops the least recently recorded entries beyond n (what a
// full list would have evicted) and returns how many it dropped. Ranks are
// renumbered.
func (s *RecentSnapshot) KeepNewest(n int) int {
	if len(s.Entries) <= n {
		return 0
	}
	d := len(s.Entries) - n
	s.Entries = append([]RecentSnapEntry(nil), s.Entries[d:]...)
	s.Renumber()
	return d
}

// Filter keeps the entries keep returns true for, renumbers the ranks and
// returns how many it dropped.
func (s *RecentSnapshot) Filter(keep func(e *RecentSnapEntry) bool) int {
	out := s.Entries[:0]
	for i := range s.Entries {
		if keep(&s.Entries[i]) {
			out = append(out, s.Entries[i])
		}
	}
	d := len(s.Entries) - len(out)
	s.Entries = out
	if d > 0 {
		s.Renumber()
	}
	return d
}

// Renumber closes gaps in the ranks left by dropped entries, keeping each
// address's lookup order.
func (s *RecentSnapshot) Renumber() {
	byAddr := map[netip.Addr][]int{}
	for i := range s.Entries {
		byAddr[s.Entries[i].Addr] = append(byAddr[s.Entries[i].Addr], i)
	}
	for _, idx := range byAddr {
		sort.SliceStable(idx, func(a, b int) bool { return s.Entries[idx[a]].Rank < s.Entries[idx[b]].Rank })
		for r, i := range idx {
			s.Entries[i].Rank = r
		}
	}
}

// Layout implements RecentSnapshotter.
func (l *recentList) Layout() RecentLayout {
	l.mu.Lock()
	defer l.mu.Unlock()
	return RecentLayout{Mask: l.mask, Capacity: len(l.ents), Ring: l.ring}
}

// Snapshot implements RecentSnapshotter.
func (l *recentList) Snapshot() RecentSnapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := RecentSnapshot{Name: l.name, RecentLayout: RecentLayout{Mask: l.mask, Capacity: len(l.ents), Ring: l.ring}}
	s.Entries = make([]RecentSnapEntry, 0, l.count)
	for i := l.lruHead; i >= 0; i = l.ents[i].lnext {
		e := &l.ents[i]
		var a netip.Addr
		if e.fam == 4 {
			a = netip.AddrFrom4([4]byte(e.addr[:4]))
		} else {
			a = netip.AddrFrom16(e.addr)
		}
		rank := 0
		for j := l.heads[l.bucket(&e.addr, e.fam)]; j >= 0 && j != i; j = l.ents[j].hnext {
			if o := &l.ents[j]; o.fam == e.fam && o.addr == e.addr {
				rank++
			}
		}
		st := make([]int64, e.nstamps)
		copy(st, l.ringOf(i)[:e.nstamps])
		s.Entries = append(s.Entries, RecentSnapEntry{Addr: a, TTL: e.ttl, Index: int(e.index), StampsNS: st, Rank: rank})
	}
	return s
}

// Restore implements RecentSnapshotter.
func (l *recentList) Restore(s *RecentSnapshot) error {
	if err := s.Validate(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.Mask != l.mask {
		return fmt.Errorf("recent list %q: saved mask %x differs from the list's %x", l.name, s.Mask, l.mask)
	}
	if len(s.Entries) > len(l.ents) {
		return fmt.Errorf("recent list %q: %d entries exceed the list's capacity %d", l.name, len(s.Entries), len(l.ents))
	}
	if s.Ring < l.ring {
		return fmt.Errorf("recent list %q: saved ring %d is smaller than the list's %d (Resize it first)", l.name, s.Ring, l.ring)
	}
	if s.Ring > l.ring {
		l.requireLocked(s.Ring) // empties the list; it is rebuilt below
	}
	l.reset()
	// Slot i holds entry i; the LRU list follows the snapshot's order.
	for i := range s.Entries {
		se := &s.Entries[i]
		k, fam := l.keyOf(se.Addr, false)
		e := &l.ents[i]
		*e = recentEnt{addr: k, fam: fam, ttl: se.TTL, used: true, index: uint32(se.Index),
			nstamps: uint32(len(se.StampsNS)), hnext: -1, lprev: -1, lnext: -1}
		copy(l.ringOf(int32(i)), se.StampsNS)
		l.lruPushTail(int32(i))
	}
	// Hash chains: pushing higher ranks first leaves rank 0 at the front of
	// its address's run, so lookups find the entries in the saved order.
	order := make([]int, len(s.Entries))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return s.Entries[order[a]].Rank > s.Entries[order[b]].Rank })
	for _, i := range order {
		e := &l.ents[i]
		b := l.bucket(&e.addr, e.fam)
		e.hnext = l.heads[b]
		l.heads[b] = int32(i)
	}
	n := len(s.Entries)
	l.count = n
	if n < len(l.ents) {
		l.free = int32(n)
	} else {
		l.free = -1
	}
	return nil
}

// HashlimitSnapshot is the complete state of one hashlimit table.
type HashlimitSnapshot struct {
	// Config is the table's normalized configuration (defaults applied).
	Config HashlimitConfig
	// GCStarted and GCNextNS are the garbage collector's schedule: it
	// starts with the table's first packet and runs every gcinterval.
	GCStarted bool
	GCNextNS  int64
	// Entries are the buckets in use, in no particular order.
	Entries []HashlimitSnapEntry
}

// HashlimitSnapEntry is one bucket, raw: no refill is applied (unlike
// Entries, which refills as /proc does).
type HashlimitSnapEntry struct {
	Key                     HashlimitKey
	Credit, CreditCap, Cost uint64
	// LastNS is the time of the last refill, ExpiresNS the expiry time,
	// both on a jiffy boundary.
	LastNS, ExpiresNS int64
}

// HashlimitSnapshotter is implemented by hashlimit tables whose state can
// be copied out and restored (the memory store's tables).
type HashlimitSnapshotter interface {
	Config() HashlimitConfig
	// Snapshot copies the table's state atomically.
	Snapshot() HashlimitSnapshot
	// Restore replaces the table's buckets and gc schedule with s's, then
	// runs the collection that is due at nowNS, so that buckets the kernel's
	// worker would have removed by then are gone. s must pass Validate and
	// have a configuration HashlimitCompatible with the table's and at most
	// its Max entries. On error the table is unchanged.
	Restore(s *HashlimitSnapshot, nowNS int64) error
}

var _ HashlimitSnapshotter = (*hashlimitTable)(nil)

// HashlimitCompatible reports whether buckets made under configuration a
// mean the same under b: same family, key (mode and masks) and rate (mode
// bytes, avg, burst). Sizes, gc interval and expiry may differ.
func HashlimitCompatible(a, b HashlimitConfig) bool {
	return a.IPv6 == b.IPv6 && a.Mode == b.Mode && a.SrcMask == b.SrcMask && a.DstMask == b.DstMask &&
		a.Bytes == b.Bytes && a.Avg == b.Avg && a.Burst == b.Burst
}

// hashlimit mode bits as match.Hashlimit* defines them.
const (
	hlModeDstIP   = 1
	hlModeDstPort = 2
	hlModeSrcIP   = 4
	hlModeSrcPort = 8
)

// Validate checks that s could have been produced by a table with its
// configuration: sizes in range, keys unique, zero where the mode does not
// use them and masked to the table's prefixes, costs and caps those of
// the configured rate and credits within the caps.
func (s *HashlimitSnapshot) Validate() error {
	c := &s.Config
	name := c.Name
	if c.Size < 1 || c.Size > HashlimitMaxSize || c.Max < c.Size || c.Max > HashlimitMaxSize {
		return fmt.Errorf("hashlimit table %q: htable-size %d / htable-max %d out of range", name, c.Size, c.Max)
	}
	if c.GCIntervalMS == 0 || c.ExpireMS == 0 {
		return fmt.Errorf("hashlimit table %q: zero gc interval or expiry", name)
	}
	if c.Mode&^0xf != 0 {
		return fmt.Errorf("hashlimit table %q: mode %#x invalid", name, c.Mode)
	}
	bits := 32
	if c.IPv6 {
		bits = 128
	}
	if int(c.SrcMask) > bits || int(c.DstMask) > bits {
		return fmt.Errorf("hashlimit table %q: mask /%d or /%d longer than /%d", name, c.SrcMask, c.DstMask, bits)
	}
	if len(s.Entries) > int(c.Max) {
		return fmt.Errorf("hashlimit table %q: %d entries exceed htable-max %d", name, len(s.Entries), c.Max)
	}
	if len(s.Entries) > 0 && !s.GCStarted {
		return fmt.Errorf("hashlimit table %q: entries without a started garbage collector", name)
	}
	var wantCost, wantCap uint64
	if c.Bytes {
		wantCost = hashlimitByteCredits(c.Avg)
	} else {
		wantCost = HashlimitCredits(c.Avg)
		wantCap = HashlimitCredits(c.Avg * c.Burst)
	}
	seen := make(map[HashlimitKey]struct{}, len(s.Entries))
	for i := range s.Entries {
		e := &s.Entries[i]
		where := func() string { return fmt.Sprintf("hashlimit table %q: entry %d", name, i) }
		if _, dup := seen[e.Key]; dup {
			return fmt.Errorf("%s: key given twice", where())
		}
		seen[e.Key] = struct{}{}
		if err := checkKeyAddr(&e.Key.Src, c.Mode&hlModeSrcIP != 0, int(c.SrcMask), bits); err != nil {
			return fmt.Errorf("%s: source %v", where(), err)
		}
		if err := checkKeyAddr(&e.Key.Dst, c.Mode&hlModeDstIP != 0, int(c.DstMask), bits); err != nil {
			return fmt.Errorf("%s: destination %v", where(), err)
		}
		if c.Mode&hlModeSrcPort == 0 && e.Key.SrcPort != 0 || c.Mode&hlModeDstPort == 0 && e.Key.DstPort != 0 {
			return fmt.Errorf("%s: a port the mode does not use is set", where())
		}
		if e.Cost != wantCost {
			return fmt.Errorf("%s: cost %d is not the configured rate's %d", where(), e.Cost, wantCost)
		}
		if c.Bytes {
			if e.CreditCap > c.Burst || e.Credit > hlCPJBytes*HZ {
				return fmt.Errorf("%s: credit %d / refills %d beyond the byte bucket's limits", where(), e.Credit, e.CreditCap)
			}
		} else if e.CreditCap != wantCap || e.Credit > wantCap {
			return fmt.Errorf("%s: credit %d / cap %d do not fit the configured cap %d", where(), e.Credit, e.CreditCap, wantCap)
		}
	}
	return nil
}

// errKeyBits: an address with bits beyond its prefix or family.
var errKeyBits = errors.New("has bits outside the table's mask")

func checkKeyAddr(a *[16]byte, used bool, mask, bits int) error {
	if !used {
		mask = 0
	}
	for i := 0; i < 16; i++ {
		keep := 0
		switch {
		case i*8+8 <= mask:
			keep = 0xff
		case i*8 < mask:
			keep = 0xff << (8 - (mask - i*8)) & 0xff
		}
		if i*8 >= bits {
			keep = 0
		}
		if a[i]&^byte(keep) != 0 {
			return errKeyBits
		}
	}
	return nil
}

// Snapshot implements HashlimitSnapshotter.
func (t *hashlimitTable) Snapshot() HashlimitSnapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := HashlimitSnapshot{Config: t.cfg, GCStarted: t.started, GCNextNS: t.gcNext * JiffyNS}
	s.Entries = make([]HashlimitSnapEntry, 0, t.count)
	for b := range t.heads {
		for i := t.heads[b]; i >= 0; {
			e := t.ent(i)
			s.Entries = append(s.Entries, HashlimitSnapEntry{Key: e.key, Credit: e.credit, CreditCap: e.cap,
				Cost: e.cost, LastNS: e.prev * JiffyNS, ExpiresNS: e.expires * JiffyNS})
			i = e.next
		}
	}
	return s
}

// Restore implements HashlimitSnapshotter.
func (t *hashlimitTable) Restore(s *HashlimitSnapshot, nowNS int64) error {
	if err := s.Validate(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !HashlimitCompatible(s.Config, t.cfg) {
		return fmt.Errorf("hashlimit table %q: saved configuration differs in key or rate from the table's", t.cfg.Name)
	}
	if len(s.Entries) > int(t.cfg.Max) {
		return fmt.Errorf("hashlimit table %q: %d entries exceed htable-max %d", t.cfg.Name, len(s.Entries), t.cfg.Max)
	}
	for b := range t.heads {
		t.heads[b] = -1
	}
	t.chunks, t.free, t.count = nil, -1, 0
	for k := range s.Entries {
		se := &s.Entries[k]
		i := t.alloc()
		e := t.ent(i)
		b := t.bucket(&se.Key)
		*e = hlEnt{key: se.Key, used: true, next: t.heads[b], expires: Jiffy(se.ExpiresNS), prev: Jiffy(se.LastNS),
			credit: se.Credit, cap: se.CreditCap, cost: se.Cost}
		t.heads[b] = i
		t.count++
	}
	t.started = s.GCStarted
	t.gcNext = Jiffy(s.GCNextNS)
	if t.started {
		t.collect(Jiffy(nowNS))
	}
	return nil
}
