package nfqueue

import "net"

// maxIfIndex bounds the cache: an index above it is looked up every time
// (still correct, only slower). Linux allocates indexes sequentially per
// namespace, so real hosts stay far below.
const maxIfIndex = 4096

// ifCache maps interface indexes to names and hardware addresses. It is
// owned by one worker. A miss (unknown index, or an index whose interface
// was replaced since) asks the kernel again; hits allocate nothing.
type ifCache struct {
	entries []ifEntry
	lookup  func(idx int) (name string, mac []byte, ok bool)
}

type ifEntry struct {
	name string
	mac  []byte
	ok   bool
}

func newIfCache(lookup func(int) (string, []byte, bool)) *ifCache {
	if lookup == nil {
		lookup = lookupInterface
	}
	return &ifCache{lookup: lookup}
}

func lookupInterface(idx int) (string, []byte, bool) {
	ifi, err := net.InterfaceByIndex(idx)
	if err != nil {
		return "", nil, false
	}
	return ifi.Name, ifi.HardwareAddr, true
}

// get returns the entry of idx; idx 0 is "no interface".
func (c *ifCache) get(idx uint32) *ifEntry {
	if idx == 0 {
		return nil
	}
	if idx < maxIfIndex && int(idx) < len(c.entries) && c.entries[idx].ok {
		return &c.entries[idx]
	}
	name, mac, ok := c.lookup(int(idx))
	if !ok {
		return nil
	}
	if idx >= maxIfIndex {
		return &ifEntry{name: name, mac: mac, ok: true}
	}
	for int(idx) >= len(c.entries) {
		c.entries = append(c.entries, ifEntry{})
	}
	c.entries[idx] = ifEntry{name: name, mac: mac, ok: true}
	return &c.entries[idx]
}

// invalidate forgets every entry: called when an interface is found gone or
// renamed (a netlink error on the device), and periodically by the owner.
func (c *ifCache) invalidate() { c.entries = c.entries[:0] }
