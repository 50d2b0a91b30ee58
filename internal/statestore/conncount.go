package statestore

import (
	"net/netip"
	"sync"

	"github.com/uptables/uptables/internal/conntrack"
)

// ConnTable is what connlimit's bookkeeping asks the connection table
// (*conntrack.Table implements it).
type ConnTable interface {
	// ConnlimitCheck tells whether the listed tuple tu still has a
	// connection (Gone) and whether it counts (Alive) or is a TCP
	// connection in TIME_WAIT or CLOSE (Closed): the answer of a lookup of
	// tu. ref is the entry's cached reference: the table may answer from
	// it without a lookup, and refreshes it when it looks tu up.
	ConnlimitCheck(ref *conntrack.ConnRef, tu *conntrack.Tuple, now int64) conntrack.Liveness
}

var _ ConnTable = (*conntrack.Table)(nil)

const (
	// ccCollectMax bounds the stale entries one evaluation removes from its
	// key's list (nf_conncount's per-call collect limit).
	ccCollectMax = 64
	// ccGCStep is how many entries of another key the background step
	// examines per evaluation (the kernel's gc worker, done inline).
	ccGCStep = 8
	// ccChunk is the slab growth unit.
	ccChunk = 256
	// ccGrace is the age in jiffies under which an entry that another
	// goroutine added and that conntrack does not know yet is kept (it may
	// still be unconfirmed).
	ccGrace = 2
)

// ConnKey is a connlimit key: the masked address and the conntrack zone.
type ConnKey struct {
	Addr [16]byte
	IPv6 bool
	Zone uint16
}

// Prefix returns the key's address as a prefix of bits bits.
func (k ConnKey) Prefix(bits int) netip.Prefix {
	if !k.IPv6 {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(k.Addr[:4])), bits)
	}
	return netip.PrefixFrom(netip.AddrFrom16(k.Addr), bits)
}

type ccNode struct {
	tu    conntrack.Tuple
	ref   conntrack.ConnRef // tu's connection when last seen, a lookup-free hint
	owner uintptr           // who added it (the kernel's cpu)
	jiff  int64
	next  int32 // list or free chain
}

type ccKey struct {
	k     ConnKey
	used  bool
	head  int32
	tail  int32
	count int32
	hnext int32 // hash chain or free chain
}

// Conncount is one connlimit rule's bookkeeping (nf_conncount_data): per
// key, the list of connection tuples that passed the rule. Memory: nodes
// and keys live in slabs that grow in chunks up to a cap (the conntrack
// table's maximum plus slack, since only live connections stay listed)
// and are recycled through free lists; an evaluation that needs a node
// when none is left first collects dead entries and otherwise fails, which
// the match turns into a hot drop, as the kernel does when kmalloc fails.
type Conncount struct {
	mu     sync.Mutex
	hkey   sipKey
	heads  []int32
	keys   [][]ccKey
	nodes  [][]ccNode
	kfree  int32
	nfree  int32
	nkeys  int
	nnodes int
	limit  int // node cap
	cursor int32
}

// NewConncount returns empty bookkeeping holding at most limit tuples
// (0 = conntrack.DefaultMax + 1024). rnd seeds the key hash (nil: random).
func NewConncount(limit int, rnd func() uint64) *Conncount {
	if limit <= 0 {
		limit = conntrack.DefaultMax + 1024
	}
	h := nextPow2(limit / 4)
	if h < 256 {
		h = 256
	}
	c := &Conncount{hkey: newSipKey(rnd), heads: make([]int32, h), kfree: -1, nfree: -1, limit: limit}
	for i := range c.heads {
		c.heads[i] = -1
	}
	return c
}

func (c *Conncount) key(i int32) *ccKey   { return &c.keys[i/ccChunk][i%ccChunk] }
func (c *Conncount) node(i int32) *ccNode { return &c.nodes[i/ccChunk][i%ccChunk] }

func (c *Conncount) bucket(k *ConnKey) int {
	tag := uint64(k.Zone)
	if k.IPv6 {
		tag |= 1 << 16
	}
	return int(c.hkey.addr(&k.Addr, tag) & uint64(len(c.heads)-1))
}

func (c *Conncount) findKey(k *ConnKey) int32 {
	for i := c.heads[c.bucket(k)]; i >= 0; i = c.key(i).hnext {
		if c.key(i).k == *k {
			return i
		}
	}
	return -1
}

func (c *Conncount) allocNode() int32 {
	if c.nfree < 0 {
		if len(c.nodes)*ccChunk >= c.limit {
			return -1
		}
		base := int32(len(c.nodes) * ccChunk)
		ch := make([]ccNode, ccChunk)
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

func (c *Conncount) freeNode(i int32) {
	*c.node(i) = ccNode{next: c.nfree}
	c.nfree = i
	c.nnodes--
}

func (c *Conncount) allocKey(k *ConnKey) int32 {
	if c.kfree < 0 {
		base := int32(len(c.keys) * ccChunk)
		ch := make([]ccKey, ccChunk)
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
	*e = ccKey{k: *k, used: true, head: -1, tail: -1, hnext: c.heads[b]}
	c.heads[b] = i
	c.nkeys++
	return i
}

func (c *Conncount) freeKey(i int32) {
	e := c.key(i)
	for p := &c.heads[c.bucket(&e.k)]; *p >= 0; p = &c.key(*p).hnext {
		if *p == i {
			*p = e.hnext
			break
		}
	}
	*e = ccKey{hnext: c.kfree}
	c.kfree = i
	c.nkeys--
}

// liveness asks conntrack about a listed entry (Gone without a table).
func liveness(n *ccNode, ct ConnTable, nowNS int64) conntrack.Liveness {
	if ct == nil {
		return conntrack.Gone
	}
	return ct.ConnlimitCheck(&n.ref, &n.tu, nowNS)
}

// evictable is find_or_evict's decision for an entry conntrack does not
// report alive (l is Gone or Closed): true when it must go; false keeps
// it (another goroutine added it under 2 jiffies ago and conntrack has
// no such connection yet: it may be unconfirmed).
func evictable(n *ccNode, l conntrack.Liveness, ct ConnTable, owner uintptr, nowNS int64) bool {
	if n.owner == owner || Jiffy(nowNS)-n.jiff >= ccGrace || ct == nil {
		return true
	}
	return l != conntrack.Gone
}

// Add is nf_conncount_count for one packet: walk the key's list,
// dropping tuples whose connection is gone or closed (TIME_WAIT, CLOSE),
// append tu unless it is already there, and return the list's length
// (the current connection included). ref is the packet's connection
// (conntrack.Conn.Ref; zero for a packet without one), an entry of the
// table passed as ct, kept with the tuple so that later walks need no
// hash lookup for it (the answers are the lookup's). owner identifies
// the caller's goroutine (the kernel's cpu). ok is false when no memory
// is left.
func (c *Conncount) Add(k *ConnKey, tu *conntrack.Tuple, ref conntrack.ConnRef, owner uintptr, ct ConnTable, nowNS int64) (int, bool) {
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
			l := liveness(n, ct, nowNS)
			drop := false
			switch {
			case l == conntrack.Alive && equal:
				return int(key.count), true
			case l == conntrack.Alive:
			case equal:
				// Found but closed, or not yet confirmed elsewhere:
				// the kernel calls that "already exists".
				if l == conntrack.Closed || !evictable(n, l, ct, owner, nowNS) {
					return int(key.count), true
				}
				drop = true
			default:
				drop = evictable(n, l, ct, owner, nowNS)
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
	*c.node(ni) = ccNode{tu: *tu, ref: ref, owner: owner, jiff: Jiffy(nowNS), next: -1}
	if key.tail >= 0 {
		c.node(key.tail).next = ni
	} else {
		key.head = ni
	}
	key.tail = ni
	key.count++
	return int(key.count), true
}

func (c *Conncount) unlinkNode(key *ccKey, prev, i int32) {
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
func (c *Conncount) cleanKey(ki int32, budget int, ct ConnTable, owner uintptr, nowNS int64) {
	key := c.key(ki)
	prev := int32(-1)
	for i := key.head; i >= 0 && budget != 0; budget-- {
		n := c.node(i)
		next := n.next
		if l := liveness(n, ct, nowNS); l != conntrack.Alive && evictable(n, l, ct, owner, nowNS) {
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
func (c *Conncount) gcStep(ct ConnTable, owner uintptr, nowNS int64) {
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
func (c *Conncount) collectAll(ct ConnTable, owner uintptr, nowNS int64) {
	for i := int32(0); i < int32(len(c.keys)*ccChunk); i++ {
		if c.key(i).used {
			c.cleanKey(i, -1, ct, owner, nowNS)
		}
	}
}

// KeyCount is one key of a connlimit rule's bookkeeping.
type KeyCount struct {
	Key   ConnKey
	Count int
}

// Counts appends each key's list length to dst. With a non-nil ct, dead
// and closed entries are dropped first, so the counts are what the next
// packet of each key would see (minus itself).
func (c *Conncount) Counts(dst []KeyCount, ct ConnTable, nowNS int64) []KeyCount {
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
func (c *Conncount) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nnodes
}
