package statestore

import (
	"sync"
)

// Kernel constants of xt_hashlimit at HZ=250 (revision >= 2, 64-bit
// credits): credits per jiffy, the largest power of two below
// 2^64/(HZ*86400), and in byte mode the largest power of two below
// 2^32/HZ.
const (
	hlCPJ      = uint64(1) << 39
	hlCPJBytes = uint64(1) << 24
	hlScale    = 1_000_000
	// HashlimitMaxSize caps htable-size and htable-max (HASHLIMIT_MAX_SIZE).
	HashlimitMaxSize = 1 << 20
	// HashlimitDefaultSize is the kernel's default bucket count on a
	// machine with more than 1 GiB of RAM.
	HashlimitDefaultSize = 8192
	hlChunk              = 256 // entries per slab chunk
)

// HashlimitCredits is user2credits for revision >= 2: the constant
// factor HZ*CPJ/1e6 first, then the product, wrapping at 64 bits as the
// kernel's does.
func HashlimitCredits(user uint64) uint64 { return user * (HZ * hlCPJ / hlScale) }

// hashlimitByteCredits is user2credits_byte.
func hashlimitByteCredits(user uint64) uint64 {
	return uint64(uint32((user * HZ * hlCPJBytes) >> 32))
}

// msToJiffies is msecs_to_jiffies at HZ=250 (rounds up).
func msToJiffies(ms uint32) int64 {
	per := int64(1000 / HZ)
	return (int64(ms) + per - 1) / per
}

// hlEnt is one bucket (dsthash_ent); next chains the hash bucket or the
// free list.
type hlEnt struct {
	key     HashlimitKey
	used    bool
	next    int32
	expires int64 // jiffies
	prev    int64 // jiffies of the last refill
	credit  uint64
	cap     uint64
	cost    uint64
}

// hashlimitTable is the memory HashlimitTable: Size hash buckets, entries
// in a slab that grows in chunks of 256 up to Max and is recycled through
// a free list, so steady-state operation allocates nothing. One mutex
// guards the table (the kernel locks per entry plus the table on insert).
type hashlimitTable struct {
	mu      sync.Mutex
	cfg     HashlimitConfig
	key     sipKey
	heads   []int32
	chunks  [][]hlEnt
	free    int32
	count   int
	started bool
	gcEvery int64 // jiffies
	gcNext  int64 // jiffies of the next collection
	expire  int64 // jiffies
}

var _ HashlimitTable = (*hashlimitTable)(nil)

// normalizeHashlimit applies the kernel's defaults and caps to sizes.
func normalizeHashlimit(cfg HashlimitConfig) HashlimitConfig {
	if cfg.Size == 0 {
		cfg.Size = HashlimitDefaultSize
	}
	if cfg.Size > HashlimitMaxSize {
		cfg.Size = HashlimitMaxSize
	}
	if cfg.Max == 0 {
		cfg.Max = 8 * cfg.Size
	} else if cfg.Max < cfg.Size {
		cfg.Max = cfg.Size
	}
	if cfg.Max > HashlimitMaxSize {
		cfg.Max = HashlimitMaxSize
	}
	if cfg.GCIntervalMS == 0 {
		cfg.GCIntervalMS = 1000
	}
	if cfg.ExpireMS == 0 {
		cfg.ExpireMS = 1000
	}
	return cfg
}

func newHashlimitTable(cfg HashlimitConfig, key sipKey) *hashlimitTable {
	cfg = normalizeHashlimit(cfg)
	t := &hashlimitTable{cfg: cfg, key: key, free: -1}
	t.heads = make([]int32, cfg.Size)
	for i := range t.heads {
		t.heads[i] = -1
	}
	t.gcEvery = msToJiffies(cfg.GCIntervalMS)
	if t.gcEvery < 1 {
		t.gcEvery = 1
	}
	t.expire = msToJiffies(cfg.ExpireMS)
	return t
}

// Config implements HashlimitTable.
func (t *hashlimitTable) Config() HashlimitConfig { return t.cfg }

func (t *hashlimitTable) ent(i int32) *hlEnt { return &t.chunks[i/hlChunk][i%hlChunk] }

func (t *hashlimitTable) bucket(k *HashlimitKey) int {
	m := [5]uint64{le64(k.Src[0:8]), le64(k.Src[8:16]), le64(k.Dst[0:8]), le64(k.Dst[8:16]),
		uint64(k.SrcPort)<<16 | uint64(k.DstPort)}
	return int(t.key.sum(&m, 5) % uint64(len(t.heads)))
}

// alloc takes a free entry, growing the slab by one chunk when needed;
// -1 when the table holds Max entries.
func (t *hashlimitTable) alloc() int32 {
	if t.count >= int(t.cfg.Max) {
		return -1
	}
	if t.free < 0 {
		base := int32(len(t.chunks) * hlChunk)
		c := make([]hlEnt, hlChunk)
		for i := range c {
			c[i].next = base + int32(i) + 1
		}
		c[hlChunk-1].next = -1
		t.chunks = append(t.chunks, c)
		t.free = base
	}
	i := t.free
	t.free = t.ent(i).next
	return i
}

// collect is the gc worker (htable_selective_cleanup): the kernel runs it
// every gcinterval from the table's creation; we run, at the first packet
// after a due tick, the collection of the last tick that is due, which
// removes exactly the entries the kernel's worker would have removed.
func (t *hashlimitTable) collect(nowJ int64) {
	if !t.started {
		t.started = true
		t.gcNext = nowJ + t.gcEvery
		return
	}
	if nowJ < t.gcNext {
		return
	}
	tick := t.gcNext + (nowJ-t.gcNext)/t.gcEvery*t.gcEvery
	t.gcNext = tick + t.gcEvery
	for b := range t.heads {
		for p := &t.heads[b]; *p >= 0; {
			e := t.ent(*p)
			if tick-e.expires >= 0 {
				i := *p
				*p = e.next
				*e = hlEnt{next: t.free}
				t.free = i
				t.count--
				continue
			}
			p = &e.next
		}
	}
}

// init is rateinfo_init (HashlimitInit).
func (t *hashlimitTable) init(e *hlEnt, nowJ int64) {
	e.prev = nowJ
	e.credit, e.cap, e.cost = HashlimitInit(t.cfg)
}

// recalc is rateinfo_recalc: credits for the jiffies elapsed, capped
// (HashlimitRefill).
func (t *hashlimitTable) recalc(e *hlEnt, nowJ int64) {
	d := nowJ - e.prev
	if d <= 0 {
		return
	}
	e.prev = nowJ
	e.credit = HashlimitRefill(t.cfg.Bytes, e.credit, e.cap, d)
}

// byteCost is hashlimit_byte_cost: 16-byte chunks times the cost, at most
// one second of credit; an empty bucket with refills left is refilled.
func (t *hashlimitTable) byteCost(e *hlEnt, pktLen int) uint64 {
	limit := hlCPJBytes * HZ
	c := (uint64(pktLen)>>4 + 1) * e.cost
	if c > limit || e.cost != 0 && c/e.cost != uint64(pktLen)>>4+1 {
		c = limit
	}
	if e.credit < c && e.cap > 0 {
		e.cap--
		e.credit = limit
	}
	return c
}

// Consume implements HashlimitTable (hashlimit_mt_common).
func (t *hashlimitTable) Consume(k HashlimitKey, pktLen int, nowNS int64) (bool, bool) {
	nowJ := Jiffy(nowNS)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.collect(nowJ)
	b := t.bucket(&k)
	var e *hlEnt
	for i := t.heads[b]; i >= 0; {
		x := t.ent(i)
		if x.key == k {
			e = x
			break
		}
		i = x.next
	}
	if e == nil {
		i := t.alloc()
		if i < 0 {
			return false, false
		}
		e = t.ent(i)
		*e = hlEnt{key: k, used: true, next: t.heads[b]}
		t.heads[b] = i
		t.count++
		t.init(e, nowJ)
	} else {
		t.recalc(e, nowJ)
	}
	e.expires = nowJ + t.expire
	cost := e.cost
	if t.cfg.Bytes {
		cost = t.byteCost(e, pktLen)
	}
	if e.credit >= cost {
		e.credit -= cost
		return true, true
	}
	return false, true
}

// Entries implements HashlimitTable.
func (t *hashlimitTable) Entries(nowNS int64, fn func(e *HashlimitEntry) bool) {
	nowJ := Jiffy(nowNS)
	t.mu.Lock()
	defer t.mu.Unlock()
	var he HashlimitEntry
	for b := range t.heads {
		for i := t.heads[b]; i >= 0; {
			e := t.ent(i)
			t.recalc(e, nowJ)
			he = HashlimitEntry{Key: e.key, ExpiresInS: (e.expires - nowJ) / HZ,
				Credit: e.credit, CreditCap: e.cap, Cost: e.cost}
			i = e.next
			if !fn(&he) {
				return
			}
		}
	}
}

// Len implements HashlimitTable.
func (t *hashlimitTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.count
}
