// Package defrag reassembles IPv4 fragments the way the kernel's
// nf_defrag_ipv4 does at priority -400 in PREROUTING and OUTPUT whenever
// conntrack is active in the namespace: the raw table, conntrack and every
// later table see whole datagrams, `-f` never matches, and `length` and the
// byte counters see the reassembled size.
//
// The rules are those of ip_defrag on Linux 6.18, checked against the kernel
// in namespaces (testdata/kernel: oracle.py, observed*.txt):
//
//   - A queue is keyed by (source, destination, id, protocol, user), user
//     being the hook direction (PREROUTING vs OUTPUT) and the conntrack zone.
//   - A fragment overlapping data already queued discards the whole datagram
//     (RFC 5722 style, "ip: discard IPv4 datagrams with overlapping segments",
//     2018). A fragment lying entirely inside a "run" (fragments that arrived
//     in order, each starting where the previous one ended, at the tail) is a
//     duplicate: it alone is dropped and the first copy wins. Whether a
//     fragment is a duplicate or an overlap therefore depends on arrival
//     order, as in the kernel.
//   - A last fragment (MF clear) that ends before data already seen, or a
//     second last fragment with a different end, or a non-last fragment
//     beyond the end, discards the datagram; so does an empty fragment. The
//     end of a non-last fragment is rounded down to a multiple of 8.
//   - The reassembled header is the first fragment's (options, TTL, TOS,
//     id), with the total length set, the fragment offset and MF cleared, DF
//     set only if the largest fragment carried DF, CE added when a fragment
//     was CE and the others ECT (RFC 3168 §5.3), a Not-ECT/ECT mix dropped,
//     and the checksum recomputed. A datagram longer than 65535 bytes is
//     dropped when it completes.
//   - A queue lives Timeout (ipfrag_time, 30 s) from its first fragment; it
//     is not refreshed by later fragments. If more than MaxDist
//     (ipfrag_max_dist, 64) fragments from the same source reach other
//     queues between two fragments of a queue, the queue's fragments are
//     thrown away and it restarts with the new one (and a new timer).
//   - Memory: while the accounted memory is above HighThresh
//     (ipfrag_high_thresh, 4 MiB) every fragment, even one that would
//     complete a datagram, is dropped; queues are freed only when they
//     complete, fail or expire (Linux >= 4.17 has no evictor; low_thresh is
//     unused). Config.Evict restores the pre-4.17 evictor instead.
//
// All times come from the packets (packet.Packet.TimeNS); there is no timer
// goroutine: the owner calls GC.
package defrag

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"github.com/uptables/uptables/internal/siphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptables/uptables/internal/packet"
)

// Kernel defaults (net.ipv4.ipfrag_*).
const (
	DefaultHighThresh = 4 << 20
	DefaultLowThresh  = 3 << 20
	DefaultTimeout    = 30 * time.Second
	DefaultMaxDist    = 64
)

// MaxDatagram is the largest reassembled IPv4 datagram (the 16-bit total
// length field).
const MaxDatagram = 65535

// Config tunes a Defrag. The zero value gives the kernel defaults.
type Config struct {
	// HighThresh bounds the memory held by incomplete datagrams, in bytes
	// (ipfrag_high_thresh, default 4 MiB). A queue is charged what the
	// kernel charges on a veth (200 bytes, plus about 804 bytes + the
	// fragment length per fragment, at least 832) or the memory it really
	// holds, whichever is larger.
	HighThresh int
	// LowThresh is where eviction stops when Evict is set (ipfrag_low_thresh,
	// default 3 MiB). Unused otherwise, as in Linux >= 4.17.
	LowThresh int
	// Evict makes a fragment arriving above HighThresh first free the oldest
	// queues down to LowThresh (the pre-4.17 kernel evictor), instead of
	// being dropped. Off by default: the 6.18 kernel drops.
	Evict bool
	// Timeout is a queue's lifetime from its first fragment (ipfrag_time,
	// default 30 s).
	Timeout time.Duration
	// MaxDist is ipfrag_max_dist (default 64); a negative value disables the
	// check (sysctl 0).
	MaxDist int
	// MaxFrags, when > 0, discards a datagram that needs more than MaxFrags
	// fragments. The kernel has no such limit for IPv4 (memory bounds it);
	// 0 keeps the kernel's behaviour.
	MaxFrags int
	// HashKey keys the queue table hash (SipHash-2-4) so that a sender
	// cannot choose ids that collide in one bucket or shard (the kernel
	// keys its fragment hash with a random seed). All zero = a random key
	// from crypto/rand; set it for reproducible tests.
	HashKey [2]uint64
}

// Errors returned by Add. In every case the fragment is consumed: the
// caller drops it (the kernel's defrag hook returns NF_STOLEN for queued
// and for refused fragments alike, so no rule ever sees either).
var (
	// ErrNotFragment: the packet is not an IPv4 fragment (or failed the IP
	// header checks); the caller should not have offered it.
	ErrNotFragment = errors.New("defrag: not an IPv4 fragment")
	// ErrHook: defragmentation runs only in PREROUTING and OUTPUT.
	ErrHook = errors.New("defrag: hook is not PREROUTING or OUTPUT")
	// ErrIPv6: IPv6 reassembly (nf_defrag_ipv6) is not implemented.
	ErrIPv6 = errors.New("defrag: IPv6 fragment reassembly is not supported")
	// ErrNoMemory: the accounted memory is above HighThresh.
	ErrNoMemory = errors.New("defrag: fragment memory above high threshold")
	// ErrDuplicate: the fragment repeats data already queued; it is dropped
	// and the datagram goes on.
	ErrDuplicate = errors.New("defrag: duplicate fragment")
	// ErrOverlap: the fragment overlaps queued data; the datagram is
	// discarded (IPSTATS_MIB_REASM_OVERLAPS).
	ErrOverlap = errors.New("defrag: overlapping fragment, datagram discarded")
	// ErrBadEnd: an inconsistent end (data past the last fragment, two last
	// fragments with different ends, a last fragment before queued data);
	// the datagram is discarded.
	ErrBadEnd = errors.New("defrag: inconsistent datagram end, datagram discarded")
	// ErrEmpty: a fragment without data; the datagram is discarded.
	ErrEmpty = errors.New("defrag: empty fragment, datagram discarded")
	// ErrTooManyFrags: more than Config.MaxFrags fragments.
	ErrTooManyFrags = errors.New("defrag: too many fragments, datagram discarded")
	// ErrECN: fragments mixing Not-ECT with ECT/CE (RFC 3168 §5.3).
	ErrECN = errors.New("defrag: fragments with inconsistent ECN, datagram discarded")
	// ErrOversize: the reassembled datagram would exceed 65535 bytes.
	ErrOversize = errors.New("defrag: reassembled datagram longer than 65535 bytes, discarded")
)

// Result is the outcome of Add when no error is returned.
type Result struct {
	// Done: the datagram is complete and Out holds it (IP header on), a
	// prefix of the caller's dst buffer unless dst was too small. Otherwise
	// the fragment was queued and the caller treats it as stolen.
	Done bool
	Out  []byte
	// MaxFragSize is the total length of the largest fragment received (the
	// kernel's IPCB frag_max_size): when the datagram is forwarded, the
	// kernel re-fragments it to this size. When it equals the largest DF
	// fragment's size the reassembled header carries DF.
	MaxFragSize int
}

// Stats are the kernel's reassembly SNMP counters (nstat Ip*Reasm*) plus the
// current occupancy.
type Stats struct {
	ReasmReqds    uint64 // fragments offered
	ReasmOKs      uint64 // datagrams reassembled
	ReasmFails    uint64 // failures (discarded datagrams, refused fragments)
	ReasmTimeout  uint64 // queues expired by GC
	ReasmOverlaps uint64 // datagrams discarded for an overlap
	Duplicates    uint64 // duplicate fragments dropped
	Evicted       uint64 // queues freed by the evictor (Config.Evict)
	Reinits       uint64 // queues restarted by the MaxDist check
	Queues        int    // incomplete datagrams held
	Mem           int64  // accounted bytes
}

// Expired describes an incomplete datagram that GC timed out. Header and
// Data are valid only during the callback.
//
// The kernel (ip_expire) answers with ICMP time exceeded, code 1
// ("fragment reassembly time exceeded"), quoting the first fragment, only
// when the first fragment had arrived (Header != nil); for PREROUTING
// queues (user IP_DEFRAG_CONNTRACK_IN) only when the destination is a local
// address; for OUTPUT queues always. [obs: a first fragment to 10.77.0.2
// (local) produced the ICMP after ipfrag_time, one to 10.77.0.9 (routed) or
// a lone non-first fragment did not.] Emitting it is the engine's job.
type Expired struct {
	Hook   packet.Hook
	Zone   uint16
	Header []byte // the first fragment's IP header (nil if it never came)
	Data   []byte // the first fragment's data
}

// AppendFirst appends the first fragment as received (header then data) to
// b, for quoting in the ICMP error.
func (e *Expired) AppendFirst(b []byte) []byte {
	return append(append(b, e.Header...), e.Data...)
}

const numShards = 16

// Defrag holds the reassembly queues of one network namespace. It is safe
// for concurrent use: queues are spread over shards, each with its own
// mutex; the memory total is shared (atomic).
type Defrag struct {
	high, low int64
	evict     bool
	timeout   int64
	maxDist   int
	maxFrags  int
	k0, k1    uint64

	mem    atomic.Int64
	shards [numShards]shard

	reqds, oks, fails, timeouts, overlaps, dups, evicted, reinits atomic.Uint64
}

// New returns an empty Defrag. Zero Config fields take the kernel defaults.
func New(cfg Config) *Defrag {
	d := &Defrag{
		high: int64(cfg.HighThresh), low: int64(cfg.LowThresh),
		evict: cfg.Evict, timeout: int64(cfg.Timeout), maxDist: cfg.MaxDist,
		maxFrags: cfg.MaxFrags, k0: cfg.HashKey[0], k1: cfg.HashKey[1],
	}
	if d.k0 == 0 && d.k1 == 0 {
		// Every caller that leaves the key unset (the engine's own
		// reassembly did) would otherwise hash with the public key 0.
		var b [16]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		d.k0 = binary.LittleEndian.Uint64(b[:8])
		d.k1 = binary.LittleEndian.Uint64(b[8:])
	}
	if d.high <= 0 {
		d.high = DefaultHighThresh
	}
	if d.low <= 0 || d.low > d.high {
		d.low = min(DefaultLowThresh, d.high*3/4)
	}
	if d.timeout <= 0 {
		d.timeout = int64(DefaultTimeout)
	}
	if d.maxDist == 0 {
		d.maxDist = DefaultMaxDist
	}
	// Enough buckets for chains of a few queues at the smallest charge.
	nb := 64
	for nb*numShards*queueCharge*4 < int(d.high) && nb < 1<<16 {
		nb <<= 1
	}
	for i := range d.shards {
		d.shards[i].buckets = make([]*queue, nb)
		d.shards[i].mask = uint64(nb - 1)
	}
	return d
}

// Stats returns a snapshot of the counters.
func (d *Defrag) Stats() Stats {
	s := Stats{
		ReasmReqds: d.reqds.Load(), ReasmOKs: d.oks.Load(), ReasmFails: d.fails.Load(),
		ReasmTimeout: d.timeouts.Load(), ReasmOverlaps: d.overlaps.Load(), Duplicates: d.dups.Load(),
		Evicted: d.evicted.Load(), Reinits: d.reinits.Load(), Mem: d.mem.Load(),
	}
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		s.Queues += sh.n
		sh.mu.Unlock()
	}
	return s
}

// IsFragment reports whether p is an IPv4 or IPv6 fragment that the defrag
// hook takes (ip_is_fragment: MF set or a non-zero offset), i.e. whether the
// engine should call Add.
func IsFragment(p *packet.Packet) bool {
	if p.Status == packet.BadL3 {
		return false
	}
	if p.Version == 6 {
		return p.FragHdrOff != 0
	}
	return p.Version == 4 && (p.MoreFrag || p.FragOff != 0)
}

// Add offers the fragment p (decoded by package packet; p.TimeNS is the
// clock) arriving at hook (packet.PreRouting or packet.LocalOut) in the
// conntrack zone zone. p.Data is copied; the caller keeps its buffer.
//
// When the fragment completes its datagram, Add writes the datagram into
// dst (grown only if too small) and returns Done. Otherwise the fragment was
// queued (nil error) or refused (an error saying why); either way the
// caller drops the fragment from the hook. Add never panics and, in steady
// state (queues and buffers recycled, dst large enough), allocates nothing.
func (d *Defrag) Add(p *packet.Packet, hook packet.Hook, zone uint16, dst []byte) (Result, error) {
	if hook != packet.PreRouting && hook != packet.LocalOut {
		return Result{}, ErrHook
	}
	if p.Version == 6 && p.Status != packet.BadL3 {
		return Result{}, ErrIPv6
	}
	if !IsFragment(p) || p.HdrLen < 20 || p.HdrLen > 60 || p.TotalLen < p.HdrLen || p.TotalLen > len(p.Data) {
		return Result{}, ErrNotFragment
	}
	d.reqds.Add(1)
	if d.mem.Load() > d.high {
		if d.evict {
			d.evictTo(d.low)
		}
		if d.mem.Load() > d.high {
			d.fails.Add(1)
			return Result{}, ErrNoMemory
		}
	}
	var k qkey
	k.src = p.Src.As16()
	k.dst = p.Dst.As16()
	k.id = uint32(p.ID)
	k.proto = p.Proto
	k.user = uint32(hook)<<16 | uint32(zone)
	w := [5]uint64{
		be64(k.src[8:]), be64(k.dst[8:]),
		uint64(k.id)<<32 | uint64(k.proto)<<24, uint64(k.user), 0,
	}
	h := siphash.Sum24(siphash.Key{K0: d.k0, K1: d.k1}, w[:4])
	// The shard is chosen by source so that the per-source counter of the
	// MaxDist check lives with the queues it concerns.
	hs := siphash.Sum24(siphash.Key{K0: d.k0, K1: d.k1}, w[:1])
	sh := &d.shards[hs&(numShards-1)]

	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := p.TimeNS
	q := sh.lookup(&k, h, now)
	if q == nil {
		q = sh.newQueue(&k, h, now+d.timeout)
		q.charge = queueCharge
		d.mem.Add(queueCharge)
	}
	return d.enqueue(sh, q, p, now, hs, dst)
}

// GC expires the queues whose lifetime ended at or before now (ns, the
// packet clock), calling emit (if not nil) for each, outside the shard lock.
// It returns how many queues expired. Call it regularly (say once per second
// of packet time); a queue past its lifetime is already ignored by Add, so
// GC only decides when its memory is released and its ICMP error reported.
func (d *Defrag) GC(now int64, emit func(*Expired)) int {
	n := 0
	for i := range d.shards {
		sh := &d.shards[i]
		for {
			sh.mu.Lock()
			q := sh.oldest
			if q == nil || q.deadline > now {
				sh.mu.Unlock()
				break
			}
			sh.unlink(q)
			d.mem.Add(-q.charge)
			sh.mu.Unlock()
			n++
			d.timeouts.Add(1)
			d.fails.Add(1)
			if emit != nil {
				e := Expired{Hook: packet.Hook(q.key.user >> 16), Zone: uint16(q.key.user)}
				if q.flags&firstIn != 0 {
					e.Header = q.hdr[:q.hdrLen]
					e.Data = q.firstData()
				}
				emit(&e)
			}
			sh.mu.Lock()
			sh.recycle(q)
			sh.mu.Unlock()
		}
	}
	return n
}

// evictTo frees the oldest queue of each shard in turn until the accounted
// memory is at most target (the pre-4.17 inet_frag_evictor).
func (d *Defrag) evictTo(target int64) {
	for progress := true; progress && d.mem.Load() > target; {
		progress = false
		for i := range d.shards {
			if d.mem.Load() <= target {
				return
			}
			sh := &d.shards[i]
			sh.mu.Lock()
			if q := sh.oldest; q != nil {
				d.kill(sh, q)
				d.evicted.Add(1)
				d.fails.Add(1)
				progress = true
			}
			sh.mu.Unlock()
		}
	}
}

// shard is one lock's worth of queues.
type shard struct {
	mu      sync.Mutex
	buckets []*queue // chains through queue.next
	mask    uint64
	// Age list, oldest first. Lifetimes are equal and counted from creation
	// (or a MaxDist restart, which moves the queue to the end), so this is
	// also expiry order.
	oldest, newest *queue
	n              int
	free           []*queue
	peers          [peerSlots]peer
	_              [64]byte // keep shards' hot fields on separate cache lines
}

func (sh *shard) lookup(k *qkey, h uint64, now int64) *queue {
	for pp := &sh.buckets[h&sh.mask]; *pp != nil; pp = &(*pp).next {
		q := *pp
		if q.hash != h || q.key != *k {
			continue
		}
		if q.deadline <= now {
			// Its timer has fired: the queue is dead. Unhash it; it stays
			// on the age list (and charged) until GC reports it.
			*pp = q.next
			q.next = nil
			q.hashed = false
			return nil
		}
		return q
	}
	return nil
}

func (sh *shard) newQueue(k *qkey, h uint64, deadline int64) *queue {
	var q *queue
	if n := len(sh.free); n > 0 {
		q = sh.free[n-1]
		sh.free = sh.free[:n-1]
	} else {
		q = new(queue)
	}
	q.key, q.hash, q.deadline = *k, h, deadline
	b := &sh.buckets[h&sh.mask]
	q.next = *b
	*b = q
	q.hashed = true
	sh.pushNewest(q)
	sh.n++
	return q
}

func (sh *shard) pushNewest(q *queue) {
	q.newer = nil
	q.older = sh.newest
	if sh.newest != nil {
		sh.newest.newer = q
	} else {
		sh.oldest = q
	}
	sh.newest = q
}

func (sh *shard) unlinkAge(q *queue) {
	if q.older != nil {
		q.older.newer = q.newer
	} else {
		sh.oldest = q.newer
	}
	if q.newer != nil {
		q.newer.older = q.older
	} else {
		sh.newest = q.older
	}
	q.older, q.newer = nil, nil
}

// unlink removes q from the table and the age list. The caller releases
// its charge and recycles it.
func (sh *shard) unlink(q *queue) {
	if q.hashed {
		for pp := &sh.buckets[q.hash&sh.mask]; *pp != nil; pp = &(*pp).next {
			if *pp == q {
				*pp = q.next
				break
			}
		}
		q.hashed = false
		q.next = nil
	}
	sh.unlinkAge(q)
	sh.n--
}

// Recycling keeps a few idle queues with small buffers so that the common
// case (a datagram in two or three MTU-sized fragments) allocates nothing;
// larger buffers go back to the Go heap so idle memory stays small.
const (
	maxFree      = 16
	keepDataCap  = 4096
	keepFragsCap = 16
)

func (sh *shard) recycle(q *queue) {
	q.reset()
	q.key = qkey{}
	if cap(q.data) > keepDataCap {
		q.data = nil
	}
	if cap(q.frags) > keepFragsCap {
		q.frags = nil
	}
	if cap(q.runs) > keepFragsCap {
		q.runs = nil
	}
	if len(sh.free) < maxFree {
		if sh.free == nil {
			sh.free = make([]*queue, 0, maxFree)
		}
		sh.free = append(sh.free, q)
	}
}

// kill discards q (failure, completion or eviction) and frees it.
func (d *Defrag) kill(sh *shard, q *queue) {
	sh.unlink(q)
	d.mem.Add(-q.charge)
	sh.recycle(q)
}

func be64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}
