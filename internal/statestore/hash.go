package statestore

import (
	"hash/maphash"
	"math/bits"

	"github.com/uptables/uptables/internal/siphash"
)

// sipKey is a SipHash-1-3 key. Addresses come from the network, so bucket
// indexes must not be predictable: each list or table draws its own key.
type sipKey struct{ k0, k1 uint64 }

// newSipKey builds a key from rnd (the engine's seeded source) or, when rnd
// is nil, from the runtime's random maphash seed.
func newSipKey(rnd func() uint64) sipKey {
	if rnd != nil {
		return sipKey{rnd(), rnd()}
	}
	var h maphash.Hash
	h.WriteByte(1)
	a := h.Sum64()
	h.WriteByte(2)
	return sipKey{a, h.Sum64()}
}

// sum hashes the first n words of m (SipHash-1-3 over 8n bytes).
func (k sipKey) sum(m *[5]uint64, n int) uint64 {
	return siphash.Sum13(siphash.Key{K0: k.k0, K1: k.k1}, m[:n])
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// addrWords hashes a 16-byte address with a tag (family, zone...).
func (k sipKey) addr(a *[16]byte, tag uint64) uint64 {
	m := [5]uint64{le64(a[0:8]), le64(a[8:16]), tag}
	return k.sum(&m, 3)
}

// nextPow2 returns the smallest power of two >= n (n >= 1).
func nextPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}
