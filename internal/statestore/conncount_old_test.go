package statestore

// The connlimit bookkeeping as it was before list entries kept a
// conntrack.ConnRef: every walk looks each listed tuple up in the hash
// (ConnlimitAlive, then TupleTaken). Kept verbatim as the oracle of
// TestConncountDifferential; not used outside tests.

import (
	"sync"

	"github.com/uptables/uptables/internal/conntrack"
)

type oldConnTable interface {
	ConnlimitAlive(tu conntrack.Tuple, now int64) bool
	TupleTaken(tu conntrack.Tuple, now int64) bool
}

var _ oldConnTable = (*conntrack.Table)(nil)

type oldNode struct {
	tu    conntrack.Tuple
	owner uintptr // who added it (the kernel's cpu)
	jiff  int64
	next  int32 // list or free chain
}

type oldKey struct {
	k     ConnKey
	used  bool
	head  int32
	tail  int32
	count int32
	hnext int32 // hash chain or free chain
}

// oldConncount is one connlimit rule's bookkeeping (nf_conncount_data): per
// key, the list of connection tuples that passed the rule. Memory: nodes
// and keys live in slabs that grow in chunks up to a cap (the conntrack
// table's maximum plus slack, since only live connections stay listed)
// and are recycled through free lists; an evaluation that needs a node
// when none is left first collects dead entries and otherwise fails, which
// the match turns into a hot drop, as the kernel does when kmalloc fails.
type oldConncount struct {
	mu     sync.Mutex
	hkey   sipKey
	heads  []int32
	keys   [][]oldKey
	nodes  [][]oldNode
	kfree  int32
	nfree  int32
	nkeys  int
	nnodes int
	limit  int // node cap
	cursor int32
}

// newOldConncount returns empty bookkeeping holding at most limit tuples
// (0 = conntrack.DefaultMax + 1024). rnd seeds the key hash (nil: random).
func newOldConncount(limit int, rnd func() uint64) *oldConncount {
	if limit <= 0 {
		limit = conntrack.DefaultMax + 1024
	}
	h := nextPow2(limit / 4)
	if h < 256 {
		h = 256
	}
	c := &oldConncount{hkey: newSipKey(rnd), heads: make([]int32, h), kfree: -1, nfree: -1, limit: limit}
	for i := range c.heads {
		c.heads[i] = -1
	}
	return c
}

func (c *oldConncount) key(i int32) *oldKey   { return &c.keys[i/ccChunk][i%ccChunk] }
func (c *oldConncount) node(i int32) *oldNode { return &c.nodes[i/ccChunk][i%ccChunk] }

func (c *oldConncount) bucket(k *ConnKey) int {
	tag := uint64(k.Zone)
	if k.IPv6 {
		tag |= 1 << 16
	}
	return int(c.hkey.addr(&k.Addr, tag) & uint64(len(c.heads)-1))
}

func (c *oldConncount) findKey(k *ConnKey) int32 {
	for i := c.heads[c.bucket(k)]; i >= 0; i = c.key(i).hnext {
		if c.key(i).k == *k {
			return i
		}
	}
	return -1
}

func (c *oldConncount) allocNode() int32 {
	if c.nfree < 0 {
		if len(c.nodes)*ccChunk >= c.limit {
			return -1
		}
		base := int32(len(c.nodes) * ccChunk)
		ch := make([]oldNode, ccChunk)
		for i := range ch {
			ch[i].next = base + int32(i) + 1
		}
		ch[ccChunk-1].next = -1
		c.nodes = append(c.nodes, ch)
		c.nfree = base
	}
	i := c.nfree
	c.nfree = c.node(i).next
	c.nnodes++
	return i
}

func (c *oldConncount) freeNode(i int32) {
	*c.node(i) = oldNode{next: c.nfree}
	c.nfree = i
	c.nnodes--
}

func (c *oldConncount) allocKey(k *ConnKey) int32 {
	if c.kfree < 0 {
		base := int32(len(c.keys) * ccChunk)
		ch := make([]oldKey, ccChunk)
		for i := range ch {
			ch[i].hnext = base + int32(i) + 1
		}
		ch[ccChunk-1].hnext = -1
		c.keys = append(c.keys, ch)
		c.kfree = base
	}
	i := c.kfree
	e := c.key(i)
	c.kfree = e.hnext
	b := c.bucket(k)
	*e = oldKey{k: *k, used: true, head: -1, tail: -1, hnext: c.heads[b]}
	c.heads[b] = i
	c.nkeys++
	return i
}

func (c *oldConncount) freeKey(i int32) {
	e := c.key(i)
	for p := &c.heads[c.bucket(&e.k)]; *p >= 0; p = &c.key(*p).hnext {
		if *p == i {
			*p = e.hnext
			break
		}
	}
	*e = oldKey{hnext: c.kfree}
	c.kfree = i
	c.nkeys--
}

// evictable is find_or_evict's decision for an entry conntrack does not
// report alive: gone is true when it must go; when false the entry is
// kept (another goroutine added it under 2 jiffies ago and conntrack has
// no such connection yet: it may be unconfirmed).
func oldEvictable(n *oldNode, ct oldConnTable, owner uintptr, nowNS int64) bool {
	if n.owner == owner || Jiffy(nowNS)-n.jiff >= ccGrace || ct == nil {
		return true
	}
	return ct.TupleTaken(n.tu, nowNS)
}

// Add is nf_conncount_count for one packet: walk the key's list,
// dropping tuples whose connection is gone or closed (TIME_WAIT, CLOSE),
// append tu unless it is already there, and return the list's length
// (the current connection included). owner identifies the caller's
// goroutine (the kernel's cpu). ok is false when no memory is left.
func (c *oldConncount) Add(k *ConnKey, tu *conntrack.Tuple, owner uintptr, ct oldConnTable, nowNS int64) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gcStep(ct, owner, nowNS)
	ki := c.findKey(k)
	if ki >= 0 {
		key := c.key(ki)
		collect := 0
		prev := int32(-1)
		for i := key.head; i >= 0; {
			if collect > ccCollectMax {
				break
			}
			n := c.node(i)
			next := n.next
			equal := n.tu == *tu
			alive := ct != nil && ct.ConnlimitAlive(n.tu, nowNS)
			drop := false
			switch {
			case alive && equal:
				return int(key.count), true
			case alive:
			case equal:
				// Found but closed, or not yet confirmed elsewhere:
				// the kernel calls that "already exists".
				if ct != nil && ct.TupleTaken(n.tu, nowNS) || !oldEvictable(n, ct, owner, nowNS) {
					return int(key.count), true
				}
				drop = true
			default:
				drop = oldEvictable(n, ct, owner, nowNS)
			}
			if drop {
				c.unlinkNode(key, prev, i)
				collect++
			} else {
				prev = i
			}
			i = next
		}
	}
	ni := c.allocNode()
	if ni < 0 {
		c.collectAll(ct, owner, nowNS)
		if ni = c.allocNode(); ni < 0 {
			if ki >= 0 && c.key(ki).used && c.key(ki).count == 0 {
				c.freeKey(ki)
			}
			return 0, false
		}
	}
	if ki < 0 || !c.key(ki).used {
		ki = c.allocKey(k)
	}
	key := c.key(ki)
	*c.node(ni) = oldNode{tu: *tu, owner: owner, jiff: Jiffy(nowNS), next: -1}
	if key.tail >= 0 {
		c.node(key.tail).next = ni
	} else {
		key.head = ni
	}
	key.tail = ni
	key.count++
	return int(key.count), true
}

func (c *oldConncount) unlinkNode(key *oldKey, prev, i int32) {
	n := c.node(i)
	if prev >= 0 {
		c.node(prev).next = n.next
	} else {
		key.head = n.next
	}
	if key.tail == i {
		key.tail = prev
	}
	key.count--
	c.freeNode(i)
}

// cleanKey drops up to budget dead entries of key ki (examining at most
// budget entries, or all when budget < 0) and frees the key when empty.
func (c *oldConncount) cleanKey(ki int32, budget int, ct oldConnTable, owner uintptr, nowNS int64) {
	key := c.key(ki)
	prev := int32(-1)
	for i := key.head; i >= 0 && budget != 0; budget-- {
		n := c.node(i)
		next := n.next
		alive := ct != nil && ct.ConnlimitAlive(n.tu, nowNS)
		if !alive && oldEvictable(n, ct, owner, nowNS) {
			c.unlinkNode(key, prev, i)
		} else {
			prev = i
		}
		i = next
	}
	if key.count == 0 {
		c.freeKey(ki)
	}
}

// gcStep examines a few entries of the next key in slab order, so that
// lists of addresses that stopped sending do not keep dead tuples forever.
func (c *oldConncount) gcStep(ct oldConnTable, owner uintptr, nowNS int64) {
	n := int32(len(c.keys) * ccChunk)
	if n == 0 {
		return
	}
	for tries := 0; tries < 4; tries++ {
		c.cursor = (c.cursor + 1) % n
		if c.key(c.cursor).used {
			c.cleanKey(c.cursor, ccGCStep, ct, owner, nowNS)
			return
		}
	}
}

// collectAll cleans every key (memory pressure).
func (c *oldConncount) collectAll(ct oldConnTable, owner uintptr, nowNS int64) {
	for i := int32(0); i < int32(len(c.keys)*ccChunk); i++ {
		if c.key(i).used {
			c.cleanKey(i, -1, ct, owner, nowNS)
		}
	}
}

// Counts appends each key's list length to dst. With a non-nil ct, dead
// and closed entries are dropped first, so the counts are what the next
// packet of each key would see (minus itself).
func (c *oldConncount) Counts(dst []KeyCount, ct oldConnTable, nowNS int64) []KeyCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ct != nil {
		c.collectAll(ct, 0, nowNS)
	}
	for i := int32(0); i < int32(len(c.keys)*ccChunk); i++ {
		if k := c.key(i); k.used {
			dst = append(dst, KeyCount{Key: k.k, Count: int(k.count)})
		}
	}
	return dst
}

// Len returns the number of tuples held.
func (c *oldConncount) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nnodes
}
