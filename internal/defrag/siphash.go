package defrag

import "math/bits"

// sipHash24 is SipHash-2-4 (Aumasson & Bernstein) over 64-bit words. The
// queue table is keyed with it because the IP identification is chosen by
// the sender: an unkeyed hash would let a peer pile every queue into one
// chain (the kernel keys its fragment rhashtable with a random seed for the
// same reason).
func sipHash24(k0, k1 uint64, m []uint64) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
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
	}
	for _, w := range m {
		v3 ^= w
		round()
		round()
		v0 ^= w
	}
	b := uint64(len(m)*8) << 56
	v3 ^= b
	round()
	round()
	v0 ^= b
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}
