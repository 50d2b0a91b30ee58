package conntrack

import "math/bits"

// sipHash24 is SipHash-2-4 (Aumasson & Bernstein) over five 64-bit words,
// the keyed hash that picks a tuple's bucket. It is keyed per table so that
// a remote peer cannot choose tuples that pile up in one bucket (the kernel
// keys its conntrack hash the same way).
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

func (t *Table) hash(tu *Tuple) uint64 {
	s, d := tu.Src.As16(), tu.Dst.As16()
	var m [5]uint64
	m[0] = le64(s[:8])
	m[1] = le64(s[8:])
	m[2] = le64(d[:8])
	m[3] = le64(d[8:])
	m[4] = uint64(tu.SrcID)<<48 | uint64(tu.DstID)<<32 | uint64(tu.Proto)<<16 | uint64(tu.Zone)
	return sipHash24(t.cfg.HashKey[0], t.cfg.HashKey[1], m[:])
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
