// Package ipset is the kernel's ip_set (family inet) in user space: named
// sets of addresses, networks and address/port pairs that iptables rules
// test with `-m set --match-set` and fill with `-j SET`, and that the
// `ipset` tool creates, edits, lists and saves (Exec speaks its command
// language, with its output and error texts).
//
// Types: hash:ip, hash:net (with nomatch entries), hash:ip,port,
// hash:net,port and bitmap:port, with the create options hashsize, maxelem,
// timeout, counters and comment. Memory is bounded as in the kernel: a set
// holds at most maxelem entries ("Hash is full, cannot add more elements").
//
// Lookups take a read lock and allocate nothing. hash:net and hash:net,port
// keep, as the kernel does, one count per prefix length present and probe
// the prefix lengths from the most to the least specific, so a country list
// of 60,000 networks costs at most one probe per distinct prefix length
// (typically about 20), whatever the number of entries, and a per-length
// bitmap over the networks' leading bits skips most of those probes (see
// Set). Entries live in one open-addressing table per set whose buckets
// are chosen by a seeded mix of the packed key, keyed from the injected
// random source (the kernel keys its jhash with the set's random initval),
// so that a peer cannot choose addresses that pile up in one bucket.
//
// Time is data: every call that can see an entry expire takes "now" in
// nanoseconds since the Unix epoch (the packet's timestamp on the packet
// path, the wall clock in the CLI), so replays are deterministic.
package ipset

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/uptables/uptables/internal/siphash"
)

// Type is a set type (the `TYPENAME` of `ipset create`).
type Type uint8

// The supported set types.
const (
	HashIP Type = iota + 1
	HashNet
	HashIPPort
	HashNetPort
	BitmapPort
)

var typeNames = [...]string{HashIP: "hash:ip", HashNet: "hash:net", HashIPPort: "hash:ip,port", HashNetPort: "hash:net,port", BitmapPort: "bitmap:port"}

// revisions are the type revisions the kernel 6.18 / ipset 7.17 pair
// reports in `ipset list` (Revision:).
var revisions = [...]int{HashIP: 6, HashNet: 7, HashIPPort: 7, HashNetPort: 8, BitmapPort: 3}

func (t Type) String() string { return typeNames[t] }

// Dim is the number of dimensions of the type (how many src/dst flags a
// --match-set uses).
func (t Type) Dim() int {
	switch t {
	case HashIPPort, HashNetPort:
		return 2
	}
	return 1
}

func (t Type) hasNet() bool  { return t == HashNet || t == HashNetPort }
func (t Type) hasPort() bool { return t == HashIPPort || t == HashNetPort }

// TypeByName returns the type called name.
func TypeByName(name string) (Type, bool) {
	for i, n := range typeNames {
		if n != "" && n == name {
			return Type(i), true
		}
	}
	return 0, false
}

// CreateOptions are a set's header: what `ipset create` accepted.
type CreateOptions struct {
	// HashSize is the initial bucket count as the kernel reports it: the
	// next power of two >= the requested value, at least 64 (default 1024).
	HashSize uint32
	// MaxElem bounds the number of entries (default 65536).
	MaxElem uint32
	// HasTimeout says the set was created with a timeout; Timeout is then
	// the default per-entry timeout in seconds (0: entries are permanent
	// unless given one).
	HasTimeout bool
	Timeout    uint32
	Counters   bool
	Comment    bool
	// Initval is the value ipset prints as its jhash seed; it is kept so
	// that save/restore round-trips, and is not the lookup hash's key.
	Initval uint32
	// PortFrom and PortTo are bitmap:port's range.
	PortFrom, PortTo uint16
}

// Key is one element in its canonical form. Unused fields are zero: Addr
// is masked to CIDR bits for the net types and CIDR is 32 for the ip types.
type Key struct {
	Addr  uint32
	Port  uint16 // port, or ICMP type<<8|code
	Proto uint8
	CIDR  uint8
}

// entry is one element's data. expires and comment change only under the
// set's write lock; the counters are atomics so that matches bump them
// under the read lock.
type entry struct {
	key     Key
	nomatch bool
	used    bool  // slot in use
	expires int64 // ns since the epoch; 0 = never
	packets atomic.Uint64
	bytes   atomic.Uint64
	comment string
}

// Set is one named set. Its methods are safe for concurrent use: lookups
// share a read lock, changes take the write lock.
//
// Storage: one open-addressing table with linear probing, at most half
// full. keys holds each slot's key packed in one word (0: empty), so that
// a probe walks 8-byte words and touches the slot's entry only on a hit;
// the bucket is chosen by a seeded multiply-xorshift mix of that word (see
// mix), keyed from the registry's random source as the kernel keys its
// jhash with a random initval.
//
// The net types also keep, per prefix length present, a bitmap over the
// leading min(c, 16) bits of the networks of that length (filter[c]); a
// lookup probes the table for length c only when the packet's bit is set.
// A country list of 60,000 networks over 13 lengths then costs one or two
// probes for an address it does not hold, instead of 13. A bitmap is a
// superset: deletions leave their bit set (a wasted probe, never a wrong
// answer) until the table grows or the length empties, when it is rebuilt.
// Its size is 2^min(c,16) bits: at most 8 KiB per length, 264 KiB for all 33.
type Set struct {
	mu   sync.RWMutex
	typ  Type
	opts CreateOptions
	key  siphash.Key

	keys  []uint64 // packed key per slot (pack), 0 = empty; len a power of two
	slots []entry  // the entries, parallel to keys
	n     int      // live entries (including expired ones not yet reaped)

	// cidrCount[c] is how many entries have prefix length c; cidrs lists
	// the present lengths from the most to the least specific (net types).
	cidrCount [33]uint32
	cidrs     []uint8
	filter    [33][]uint64
}

// Type returns the set's type.
func (s *Set) Type() Type { return s.typ }

// Options returns the set's header.
func (s *Set) Options() CreateOptions { return s.opts }

func newSet(t Type, o CreateOptions, key siphash.Key) *Set {
	s := &Set{typ: t, opts: o, key: key}
	s.keys = make([]uint64, 64)
	s.slots = make([]entry, 64)
	return s
}

// pack is a key in one word: address, port, protocol and prefix length,
// with bit 7 set (prefix lengths stop at 32) so that no key packs to 0.
func pack(k Key) uint64 {
	return uint64(k.Addr)<<32 | uint64(k.Port)<<16 | uint64(k.Proto)<<8 | uint64(k.CIDR) | 0x80
}

// mix is the bucket hash: two rounds of xor with a secret word, multiply
// by an odd constant and fold the high half down (the finaliser of
// splitmix64/murmur3 with the seed mixed in). Keys are one fixed-size
// word, so this does the job of SipHash at a fraction of its cost; like
// the kernel's jhash with a random initval it is not a MAC, it only keeps
// a peer from predicting buckets.
func (s *Set) mix(w uint64) uint64 {
	h := (w ^ s.key.K0) * 0x9e3779b97f4a7c15
	h ^= h >> 29
	h = (h ^ s.key.K1) * 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return h
}

// find returns the slot index of k, or -1.
func (s *Set) find(k Key) int {
	w := pack(k)
	keys := s.keys
	mask := len(keys) - 1
	for i := int(s.mix(w)) & mask; ; i = (i + 1) & mask {
		switch keys[i] {
		case w:
			return i
		case 0:
			return -1
		}
	}
}

// filterBits is how many leading address bits the prefix-length-c bitmap
// indexes.
func filterBits(c uint8) uint8 { return min(c, 16) }

func filterIndex(addr uint32, c uint8) uint32 {
	b := filterBits(c)
	if b == 0 {
		return 0
	}
	return addr >> (32 - b)
}

// mark sets k's bit in its prefix length's bitmap.
func (s *Set) mark(k Key) {
	f := s.filter[k.CIDR]
	if f == nil {
		f = make([]uint64, max(1, (1<<filterBits(k.CIDR))/64))
		s.filter[k.CIDR] = f
	}
	i := filterIndex(k.Addr, k.CIDR)
	f[i>>6] |= 1 << (i & 63)
}

// rebuildFilters recomputes every bitmap from the live entries.
func (s *Set) rebuildFilters() {
	if !s.typ.hasNet() {
		return
	}
	for c := range s.filter {
		if f := s.filter[c]; f != nil {
			clear(f)
		}
	}
	for i, w := range s.keys {
		if w != 0 {
			s.mark(s.slots[i].key)
		}
	}
}

// insertSlot places k in the table (grown as needed) and returns its
// entry, zeroed.
func (s *Set) insertSlot(k Key) *entry {
	if (s.n+1)*2 > len(s.slots) {
		s.grow()
	}
	w := pack(k)
	mask := len(s.keys) - 1
	i := int(s.mix(w)) & mask
	for s.keys[i] != 0 {
		i = (i + 1) & mask
	}
	s.keys[i] = w
	e := &s.slots[i]
	e.used, e.key = true, k
	s.n++
	if s.typ.hasNet() {
		if s.cidrCount[k.CIDR] == 0 {
			s.rebuildCIDRs(k.CIDR, true)
		}
		s.cidrCount[k.CIDR]++
		s.mark(k)
	}
	return e
}

func (s *Set) grow() {
	oldKeys, old := s.keys, s.slots
	s.keys = make([]uint64, len(oldKeys)*2)
	s.slots = make([]entry, len(old)*2)
	mask := len(s.keys) - 1
	for i, w := range oldKeys {
		if w == 0 {
			continue
		}
		j := int(s.mix(w)) & mask
		for s.keys[j] != 0 {
			j = (j + 1) & mask
		}
		s.keys[j] = w
		moveEntry(&s.slots[j], &old[i])
	}
	s.rebuildFilters()
}

func moveEntry(dst, src *entry) {
	dst.key, dst.nomatch, dst.used, dst.expires, dst.comment = src.key, src.nomatch, src.used, src.expires, src.comment
	dst.packets.Store(src.packets.Load())
	dst.bytes.Store(src.bytes.Load())
}

// rebuildCIDRs publishes a new prefix-length list (copy on write, so a
// reader that loaded the old slice under the read lock is unaffected).
func (s *Set) rebuildCIDRs(c uint8, add bool) {
	var out []uint8
	for l := 32; l >= 0; l-- {
		present := s.cidrCount[l] > 0
		if uint8(l) == c {
			present = add
		}
		if present {
			out = append(out, uint8(l))
		}
	}
	s.cidrs = out
	if !add {
		s.filter[c] = nil
	}
}

// removeAt deletes slot i with backward-shift deletion (linear probing).
func (s *Set) removeAt(i int) {
	k := s.slots[i].key
	if s.typ.hasNet() {
		s.cidrCount[k.CIDR]--
		if s.cidrCount[k.CIDR] == 0 {
			s.rebuildCIDRs(k.CIDR, false)
		}
	}
	mask := len(s.keys) - 1
	s.keys[i] = 0
	s.slots[i] = entry{}
	s.n--
	j := i
	for {
		j = (j + 1) & mask
		w := s.keys[j]
		if w == 0 {
			return
		}
		h := int(s.mix(w)) & mask
		// The entry at j may move to i if i lies cyclically in [h, j).
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			s.keys[i] = w
			moveEntry(&s.slots[i], &s.slots[j])
			s.keys[j] = 0
			s.slots[j] = entry{}
			i = j
		}
	}
}

func (e *entry) expired(now int64) bool { return e.expires != 0 && now >= e.expires }

// reap removes expired entries (the kernel's garbage collector, run here
// when a listing or a full set needs it).
func (s *Set) reap(now int64) {
	for i := 0; i < len(s.slots); {
		if s.keys[i] != 0 && s.slots[i].expired(now) {
			s.removeAt(i)
			continue // slot i now holds a shifted entry
		}
		i++
	}
}

// Len returns the number of entries that have not expired at now.
func (s *Set) Len(now int64) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for i := range s.slots {
		if e := &s.slots[i]; e.used && !e.expired(now) {
			n++
		}
	}
	return n
}

// MaxDim is the most src/dst flags a rule may give (IPSET_DIM_MAX).
const MaxDim = 6

// Packet is what a lookup needs of a packet: the addresses and ports (ICMP
// type<<8|code) of both ends and the protocol. PortOK false means the
// packet carries no usable port (a non-first fragment, a protocol without
// ports): port dimensions do not match then.
type Packet struct {
	Src, Dst         uint32
	SrcPort, DstPort uint16
	Proto            uint8
	PortOK           bool
	Len              uint32 // L3 length, for counters
}

// Result of a lookup.
type Result uint8

const (
	NoMatch      Result = iota // nothing found
	Match                      // an entry matched
	NoMatchEntry               // the most specific entry found is a nomatch entry
)

// Probe builds the key a packet presents for the set's dimensions; src[i]
// chooses the source side for dimension i.
func (s *Set) probe(p *Packet, src *[MaxDim]bool) (Key, bool) {
	var k Key
	pick := func(i int) uint32 {
		if src[i] {
			return p.Src
		}
		return p.Dst
	}
	switch s.typ {
	case HashIP:
		k.Addr, k.CIDR = pick(0), 32
	case HashNet:
		k.Addr = pick(0)
	case HashIPPort, HashNetPort:
		if !p.PortOK {
			return k, false
		}
		k.Addr, k.Proto = pick(0), p.Proto
		if src[1] {
			k.Port = p.SrcPort
		} else {
			k.Port = p.DstPort
		}
		if s.typ == HashIPPort {
			k.CIDR = 32
		}
	case BitmapPort:
		if !p.PortOK || !portProto(p.Proto) {
			return k, false
		}
		if src[0] {
			k.Port = p.SrcPort
		} else {
			k.Port = p.DstPort
		}
		if k.Port < s.opts.PortFrom || k.Port > s.opts.PortTo {
			return k, false
		}
	}
	return k, true
}

// portProto reports protocols whose port dimension is a real port.
func portProto(p uint8) bool { return p == 6 || p == 17 || p == 132 || p == 136 }

// Lookup tests a packet against the set, as the set match does, and
// updates the matched entry's counters when count is true and the set has
// counters. It returns the entry's counters (after the update) for
// --packets-*/--bytes-*. It allocates nothing.
func (s *Set) Lookup(p *Packet, src *[MaxDim]bool, now int64, count bool) (r Result, packets, bytes uint64) {
	k, ok := s.probe(p, src)
	if !ok {
		return NoMatch, 0, 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.lookupLocked(k, now)
	if e == nil {
		return NoMatch, 0, 0
	}
	if e.nomatch {
		return NoMatchEntry, 0, 0
	}
	if s.opts.Counters {
		if count {
			packets = e.packets.Add(1)
			bytes = e.bytes.Add(uint64(p.Len))
		} else {
			packets, bytes = e.packets.Load(), e.bytes.Load()
		}
	}
	return Match, packets, bytes
}

// lookupLocked finds the entry deciding for k (most specific prefix first
// for the net types), ignoring expired entries.
func (s *Set) lookupLocked(k Key, now int64) *entry {
	if !s.typ.hasNet() {
		if i := s.find(k); i >= 0 && !s.slots[i].expired(now) {
			return &s.slots[i]
		}
		return nil
	}
	addr := k.Addr
	for _, c := range s.cidrs {
		if f, b := s.filter[c], filterIndex(addr, c); f[b>>6]&(1<<(b&63)) == 0 {
			continue // no network of length c shares addr's leading bits
		}
		k.Addr, k.CIDR = addr&maskOf(c), c
		if i := s.find(k); i >= 0 && !s.slots[i].expired(now) {
			return &s.slots[i]
		}
	}
	return nil
}

func maskOf(c uint8) uint32 {
	if c == 0 {
		return 0
	}
	return ^uint32(0) << (32 - c)
}

// AddFlags carry the per-entry options of an add.
type AddFlags struct {
	Exist   bool // -exist / --exist: re-adding refreshes instead of failing
	Timeout uint32
	// HasTimeout: Timeout was given (0 = permanent); otherwise the set's
	// default applies.
	HasTimeout bool
	NoMatch    bool
	HasPackets bool
	Packets    uint64
	HasBytes   bool
	Bytes      uint64
	Comment    string
	HasComment bool
}

// add inserts one key. Caller holds the write lock.
func (s *Set) add(k Key, f *AddFlags, now int64) error {
	timeout := s.opts.Timeout
	if f.HasTimeout {
		timeout = f.Timeout
	}
	var expires int64
	if s.opts.HasTimeout && timeout > 0 {
		expires = now + int64(timeout)*1e9
	}
	if i := s.find(k); i >= 0 {
		e := &s.slots[i]
		if !e.expired(now) && !f.Exist {
			return errf(errExists)
		}
		// -exist (or an expired entry): the kernel overwrites the entry's
		// timeout, nomatch flag and extensions.
		s.fill(e, f, expires, !e.expired(now))
		return nil
	}
	if uint32(s.n) >= s.opts.MaxElem {
		s.reap(now)
		if uint32(s.n) >= s.opts.MaxElem {
			return errf(errFull)
		}
	}
	e := s.insertSlot(k)
	s.fill(e, f, expires, false)
	return nil
}

func (s *Set) fill(e *entry, f *AddFlags, expires int64, keep bool) {
	e.expires, e.nomatch = expires, f.NoMatch
	if !keep || f.HasPackets {
		e.packets.Store(f.Packets)
	}
	if !keep || f.HasBytes {
		e.bytes.Store(f.Bytes)
	}
	if !keep || f.HasComment {
		e.comment = f.Comment
	}
}

func (s *Set) del(k Key, now int64, exist bool) error {
	i := s.find(k)
	if i < 0 || s.slots[i].expired(now) {
		if i >= 0 {
			s.removeAt(i)
		}
		if exist {
			return nil
		}
		return errf(errNotAdded)
	}
	s.removeAt(i)
	return nil
}

// Add adds keys (one command's expansion) as `ipset add` does: one by one,
// stopping at the first failure, with what was added before it kept, as
// the kernel does.
func (s *Set) Add(keys []Key, f AddFlags, now int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if err := s.add(k, &f, now); err != nil {
			return err
		}
	}
	return nil
}

// Del deletes keys, stopping at the first one not in the set.
func (s *Set) Del(keys []Key, exist bool, now int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if err := s.del(k, now, exist); err != nil {
			return err
		}
	}
	return nil
}

// Test reports whether every key is in the set (a nomatch entry, or a
// network covered only by a nomatch entry, is not).
func (s *Set) Test(keys []Key, now int64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, k := range keys {
		var e *entry
		if s.typ.hasNet() && k.CIDR == 32 {
			// A single address is looked up as a packet would be.
			e = s.lookupLocked(k, now)
		} else if i := s.find(k); i >= 0 && !s.slots[i].expired(now) {
			e = &s.slots[i]
		}
		if e == nil || e.nomatch {
			return false
		}
	}
	return true
}

// Flush removes every entry.
func (s *Set) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
}

func (s *Set) flushLocked() {
	s.keys = make([]uint64, 64)
	s.slots = make([]entry, 64)
	s.filter = [33][]uint64{}
	s.n = 0
	s.cidrCount = [33]uint32{}
	s.cidrs = nil
}

// Element is one entry as listings show it.
type Element struct {
	Key     Key
	NoMatch bool
	// Timeout is the remaining time in whole seconds (ipset's rounding
	// down); Permanent when the entry never expires.
	Timeout   uint32
	Permanent bool
	Packets   uint64
	Bytes     uint64
	Comment   string
	// Expires is when the entry expires, ns on the set's clock (0: never).
	Expires int64
}

// Elements returns the live entries at now in ipset's sorted order
// (address, then the more specific prefix, protocol and port).
func (s *Set) Elements(now int64) []Element {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Element, 0, s.n)
	for i := range s.slots {
		e := &s.slots[i]
		if !e.used || e.expired(now) {
			continue
		}
		el := Element{Key: e.key, NoMatch: e.nomatch, Packets: e.packets.Load(), Bytes: e.bytes.Load(), Comment: e.comment, Expires: e.expires}
		if e.expires == 0 {
			el.Permanent = true
		} else {
			el.Timeout = uint32((e.expires - now) / 1e9)
		}
		out = append(out, el)
	}
	sort.Slice(out, func(i, j int) bool { return lessKey(out[i].Key, out[j].Key) })
	return out
}

func lessKey(a, b Key) bool {
	if a.Addr != b.Addr {
		return a.Addr < b.Addr
	}
	if a.CIDR != b.CIDR {
		return a.CIDR > b.CIDR
	}
	if a.Port != b.Port {
		return a.Port < b.Port
	}
	return a.Proto < b.Proto
}

// MemSize is an estimate of the set's memory, printed on the "Size in
// memory" line (the kernel's figure depends on its allocator and cannot
// be reproduced).
func (s *Set) MemSize() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return 200 + len(s.slots)*int(entrySize)
}

const entrySize = 64

// keyFor is the key a packet adds or deletes (the SET target): the net
// types take the set's most specific prefix length present, /32 when the
// set is empty, as the kernel's kadt does. Caller holds a lock.
func (s *Set) keyFor(p *Packet, src *[MaxDim]bool) (Key, bool) {
	k, ok := s.probe(p, src)
	if ok && s.typ.hasNet() {
		c := uint8(32)
		if len(s.cidrs) > 0 {
			c = s.cidrs[0]
		}
		k.Addr, k.CIDR = k.Addr&maskOf(c), c
	}
	return k, ok
}

// AddPacket adds the packet's element (-j SET --add-set). exist refreshes
// an existing entry's timeout (--exist); timeout is used when hasTimeout,
// else the set's default. A full set or an existing entry without exist
// are ignored silently, as by the kernel's target.
func (s *Set) AddPacket(p *Packet, src *[MaxDim]bool, now int64, timeout uint32, hasTimeout, exist bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keyFor(p, src)
	if !ok {
		return
	}
	f := AddFlags{Exist: exist, Timeout: timeout, HasTimeout: hasTimeout && s.opts.HasTimeout}
	_ = s.add(k, &f, now)
}

// DelPacket deletes the packet's element (-j SET --del-set).
func (s *Set) DelPacket(p *Packet, src *[MaxDim]bool, now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keyFor(p, src); ok {
		_ = s.del(k, now, true)
	}
}
