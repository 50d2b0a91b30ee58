// Package siphash is the keyed hash (SipHash, Aumasson & Bernstein) that
// every table an attacker can aim at uses to pick buckets: conntrack,
// fragment queues, recent lists, hashlimit tables. Each table draws its own
// key, as the kernel keys its hashes with a random seed, so that a remote
// peer cannot choose tuples that pile up in one bucket. The input is a
// short slice of 64-bit words, which is how every caller already holds its
// key; no allocation happens.
package siphash

import "math/bits"

// Key is a 128-bit SipHash key.
type Key struct{ K0, K1 uint64 }

func round(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// sum is SipHash-c-d over the 8*len(m) bytes of m in little-endian order.
func sum(k Key, m []uint64, c, d int) uint64 {
	v0 := k.K0 ^ 0x736f6d6570736575
	v1 := k.K1 ^ 0x646f72616e646f6d
	v2 := k.K0 ^ 0x6c7967656e657261
	v3 := k.K1 ^ 0x7465646279746573
	for _, w := range m {
		v3 ^= w
		for i := 0; i < c; i++ {
			v0, v1, v2, v3 = round(v0, v1, v2, v3)
		}
		v0 ^= w
	}
	b := uint64(len(m)*8) << 56
	v3 ^= b
	for i := 0; i < c; i++ {
		v0, v1, v2, v3 = round(v0, v1, v2, v3)
	}
	v0 ^= b
	v2 ^= 0xff
	for i := 0; i < d; i++ {
		v0, v1, v2, v3 = round(v0, v1, v2, v3)
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// Sum24 is SipHash-2-4, the conservative variant (conntrack, defrag).
func Sum24(k Key, m []uint64) uint64 { return sum(k, m, 2, 4) }

// Sum13 is SipHash-1-3, the faster variant the kernel also uses for
// hash tables (recent lists, hashlimit tables).
func Sum13(k Key, m []uint64) uint64 { return sum(k, m, 1, 3) }
