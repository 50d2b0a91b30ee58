package statestore

import (
	"net/netip"
	"strings"
	"sync"
)

// RecentListTot is xt_recent's ip_list_tot default: entries per list.
const RecentListTot = 100

// recentRingDefault is the ring a rule without --hitcount asks for.
const recentRingDefault = 32

// recentPreallocMax: rings up to this many stamps in total are allocated
// with the list; bigger ones (hitcount in the thousands) slot by slot.
const recentPreallocMax = 1 << 16

// recentEnt is one address (xt_recent's recent_entry). Links are indexes
// into recentList.ents; -1 ends a chain.
type recentEnt struct {
	addr    [16]byte
	fam     uint8 // 4 or 6
	ttl     uint8
	used    bool
	index   uint32 // ring write index, 1..ring after the first stamp
	nstamps uint32 // valid stamps
	hnext   int32  // hash chain
	lprev   int32  // LRU list, oldest first
	lnext   int32
}

// recentList is the memory RecentList: a fixed array of ip_list_tot
// entries, a keyed hash over them, an LRU list ordered by the last
// recorded stamp, and one ring of stamps (ns) per entry slot. One mutex
// guards everything, as the kernel's recent_lock.
type recentList struct {
	mu      sync.Mutex
	name    string
	mask    [16]byte
	key     sipKey
	ring    int // stamps per entry, a power of two
	heads   []int32
	ents    []recentEnt
	stamps  []int64   // len(ents)*ring when preallocated
	slots   [][]int64 // per-slot rings otherwise
	free    int32     // free slot chain through hnext
	lruHead int32
	lruTail int32
	count   int
}

var _ RecentList = (*recentList)(nil)

// NewRecentList returns an empty memory list. The ring starts at 0 stamps
// and is sized by the first Require.
func newRecentList(cfg RecentConfig, key sipKey) *recentList {
	n := cfg.Entries
	if n <= 0 {
		n = RecentListTot
	}
	l := &recentList{name: cfg.Name, key: key}
	// iptables starts from an all-ones nf_inet_addr and an IPv4 --mask
	// overwrites only its first four bytes.
	for i := range l.mask {
		l.mask[i] = 0xff
	}
	if cfg.Mask.IsValid() {
		copy(l.mask[:], cfg.Mask.AsSlice())
	}
	l.ents = make([]recentEnt, n)
	l.heads = make([]int32, nextPow2(n))
	l.reset()
	return l
}

// reset empties the list (caller holds mu or owns l).
func (l *recentList) reset() {
	for i := range l.heads {
		l.heads[i] = -1
	}
	for i := range l.ents {
		l.ents[i] = recentEnt{hnext: int32(i + 1), lprev: -1, lnext: -1}
	}
	l.ents[len(l.ents)-1].hnext = -1
	l.free = 0
	l.lruHead, l.lruTail = -1, -1
	l.count = 0
}

// Require implements RecentList.
func (l *recentList) Require(ring int) bool {
	if ring <= 0 {
		ring = recentRingDefault
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requireLocked(ring)
}

func (l *recentList) requireLocked(ring int) bool {
	ring = nextPow2(ring)
	if ring <= l.ring {
		return false
	}
	flushed := l.ring != 0
	l.ring = ring
	l.reset()
	if len(l.ents)*ring <= recentPreallocMax {
		l.stamps = make([]int64, len(l.ents)*ring)
		l.slots = nil
	} else {
		l.stamps = nil
		l.slots = make([][]int64, len(l.ents))
	}
	return flushed
}

// ringOf returns slot i's stamp ring, allocating it on first use when the
// list is too big to preallocate.
func (l *recentList) ringOf(i int32) []int64 {
	if l.stamps != nil {
		return l.stamps[int(i)*l.ring : int(i+1)*l.ring]
	}
	if l.slots[i] == nil {
		l.slots[i] = make([]int64, l.ring)
	}
	return l.slots[i]
}

func (l *recentList) bucket(a *[16]byte, fam uint8) int {
	return int(l.key.addr(a, uint64(fam)) & uint64(len(l.heads)-1))
}

// keyOf returns the address bytes and family of a, masked when mask.
func (l *recentList) keyOf(a netip.Addr, mask bool) ([16]byte, uint8) {
	var k [16]byte
	fam := uint8(6)
	if a.Is4() {
		fam = 4
		b := a.As4()
		copy(k[:], b[:])
		if mask {
			for i := 0; i < 4; i++ {
				k[i] &= l.mask[i]
			}
		}
		return k, fam
	}
	k = a.As16()
	if mask {
		for i := range k {
			k[i] &= l.mask[i]
		}
	}
	return k, fam
}

// lookup is recent_entry_lookup: same family and address, and a TTL that
// fits (ttl 0 on either side matches any).
func (l *recentList) lookup(k *[16]byte, fam, ttl uint8) int32 {
	for i := l.heads[l.bucket(k, fam)]; i >= 0; i = l.ents[i].hnext {
		e := &l.ents[i]
		if e.fam == fam && e.addr == *k && (ttl == 0 || e.ttl == 0 || e.ttl == ttl) {
			return i
		}
	}
	return -1
}

func (l *recentList) lruUnlink(i int32) {
	e := &l.ents[i]
	if e.lprev >= 0 {
		l.ents[e.lprev].lnext = e.lnext
	} else {
		l.lruHead = e.lnext
	}
	if e.lnext >= 0 {
		l.ents[e.lnext].lprev = e.lprev
	} else {
		l.lruTail = e.lprev
	}
	e.lprev, e.lnext = -1, -1
}

func (l *recentList) lruPushTail(i int32) {
	e := &l.ents[i]
	e.lprev, e.lnext = l.lruTail, -1
	if l.lruTail >= 0 {
		l.ents[l.lruTail].lnext = i
	} else {
		l.lruHead = i
	}
	l.lruTail = i
}

// remove is recent_entry_remove.
func (l *recentList) remove(i int32) {
	e := &l.ents[i]
	b := l.bucket(&e.addr, e.fam)
	for p := &l.heads[b]; *p >= 0; p = &l.ents[*p].hnext {
		if *p == i {
			*p = e.hnext
			break
		}
	}
	l.lruUnlink(i)
	*e = recentEnt{hnext: l.free, lprev: -1, lnext: -1}
	l.free = i
	l.count--
}

// insert is recent_entry_init: evict the least recently recorded entry
// when the list is full, then record the first stamp.
func (l *recentList) insert(k *[16]byte, fam, ttl uint8, now int64) int32 {
	if l.count >= len(l.ents) {
		l.remove(l.lruHead)
	}
	i := l.free
	e := &l.ents[i]
	l.free = e.hnext
	*e = recentEnt{addr: *k, fam: fam, ttl: ttl, used: true, index: 1, nstamps: 1, lprev: -1, lnext: -1}
	l.ringOf(i)[0] = now
	b := l.bucket(k, fam)
	e.hnext = l.heads[b]
	l.heads[b] = i
	l.lruPushTail(i)
	l.count++
	return i
}

// update is recent_entry_update: stamp now at the write index (wrapping
// first), move to the LRU tail.
func (l *recentList) update(i int32, now int64) {
	e := &l.ents[i]
	e.index &= uint32(l.ring - 1)
	l.ringOf(i)[e.index] = now
	e.index++
	if e.index > e.nstamps {
		e.nstamps = e.index
	}
	l.lruUnlink(i)
	l.lruPushTail(i)
}

// Apply implements RecentList with the algorithm of spec §4.2.
func (l *recentList) Apply(q RecentQuery) (bool, bool) {
	k, fam := l.keyOf(q.Addr, true)
	want := uint8(0)
	if q.RTTL {
		want = q.TTL
	}
	res := q.Invert
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ring == 0 {
		l.requireLocked(recentRingDefault)
	}
	i := l.lookup(&k, fam, want)
	if i < 0 {
		if q.Cmd != RecentSet {
			return res, false
		}
		l.insert(&k, fam, q.TTL, q.NowNS)
		return !res, false
	}
	switch q.Cmd {
	case RecentSet:
		res = !res
	case RecentRemove:
		l.remove(i)
		return !res, false
	case RecentCheck, RecentUpdate:
		nowJ := Jiffy(q.NowNS)
		thresh := nowJ - int64(q.Seconds)*HZ
		e := &l.ents[i]
		r := l.ringOf(i)
		hits := uint32(0)
		for s := uint32(0); s < e.nstamps; s++ {
			if q.Seconds != 0 && Jiffy(r[s]) < thresh {
				continue
			}
			hits++
			if q.Hits == 0 || hits >= q.Hits {
				res = !res
				break
			}
		}
		if q.Reap && q.Seconds != 0 {
			l.reap(thresh, i, q.Cmd == RecentUpdate && res)
			if !l.ents[i].used {
				return res, false
			}
		}
	}
	if q.Cmd == RecentSet || q.Cmd == RecentUpdate && res {
		l.update(i, q.NowNS)
		l.ents[i].ttl = q.TTL
	}
	return res, false
}

// reap is recent_entry_reap: look only at the least recently recorded
// entry and delete it when its newest stamp is older than thresh, unless
// it is the working entry about to be updated.
func (l *recentList) reap(thresh int64, working int32, update bool) {
	o := l.lruHead
	if o < 0 || o == working && update {
		return
	}
	e := &l.ents[o]
	last := l.ringOf(o)[(e.index-1)&uint32(l.ring-1)]
	if Jiffy(last) < thresh {
		l.remove(o)
	}
}

// Entries implements RecentList.
func (l *recentList) Entries(dst []RecentEntry) []RecentEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := l.lruHead; i >= 0; i = l.ents[i].lnext {
		e := &l.ents[i]
		r := l.ringOf(i)
		var a netip.Addr
		if e.fam == 4 {
			a = netip.AddrFrom4([4]byte(e.addr[:4]))
		} else {
			a = netip.AddrFrom16(e.addr)
		}
		st := make([]int64, e.nstamps)
		copy(st, r[:e.nstamps])
		dst = append(dst, RecentEntry{
			Addr: a, TTL: e.ttl, LastSeenNS: r[(e.index-1)&uint32(l.ring-1)],
			Index: int(e.index), StampsNS: st,
		})
	}
	return dst
}

// Len implements RecentList.
func (l *recentList) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

// Command implements RecentList (recent_mt_proc_write): the address is
// not masked and a new entry gets TTL 0, which matches any --rttl.
func (l *recentList) Command(cmd string, nowNS int64) error {
	if cmd == "" {
		return ErrInvalid
	}
	op := cmd[0]
	if op == '/' {
		l.mu.Lock()
		if l.ring != 0 {
			l.reset()
		}
		l.mu.Unlock()
		return nil
	}
	if op != '+' && op != '-' {
		return ErrInvalid
	}
	s := strings.TrimSuffix(cmd[1:], "\n")
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || strings.Contains(s, ":") != a.Is6() {
		return ErrInvalid
	}
	if a.Is4() && strings.Count(s, ".") != 3 {
		return ErrInvalid
	}
	k, fam := l.keyOf(a, false)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ring == 0 {
		l.requireLocked(recentRingDefault)
	}
	i := l.lookup(&k, fam, 0)
	switch {
	case i < 0 && op == '+':
		l.insert(&k, fam, 0, nowNS)
	case i >= 0 && op == '+':
		l.update(i, nowNS)
	case i >= 0:
		l.remove(i)
	}
	return nil
}
