package proxy

import (
	"encoding/binary"
	"math/bits"
)

// sum is header.Sum (the RFC 1071 one's complement sum of b added to
// initial, folded, not complemented) for the proxy's data segments, whose
// L4 checksum covers every payload byte the proxy relays: with one segment
// per read it was a fifth of the proxy's CPU time on a loopback stream.
//
// It adds 64-bit little-endian words with end-around carry (bits.Add64),
// 64 bytes per iteration in two carry chains, and swaps the bytes of the folded result at the
// end: the one's complement sum is independent of byte order up to that
// swap (RFC 1071 §2(B)), and a sum of 64-bit words modulo 2^64-1 folds to
// the same value as a sum of 16-bit words modulo 2^16-1 because 2^16-1
// divides 2^64-1. An odd trailing byte is padded with a zero as in
// header.Sum; every piece but the last must have an even length.
func sum(b []byte, initial uint16) uint16 {
	le := binary.LittleEndian
	var s, c uint64
	if len(b) >= 64 {
		// Two independent carry chains, so that the CPU can run them in
		// parallel; joined with end-around carry.
		var s2, c2 uint64
		for len(b) >= 64 {
			s, c = bits.Add64(s, le.Uint64(b), c)
			s2, c2 = bits.Add64(s2, le.Uint64(b[8:]), c2)
			s, c = bits.Add64(s, le.Uint64(b[16:]), c)
			s2, c2 = bits.Add64(s2, le.Uint64(b[24:]), c2)
			s, c = bits.Add64(s, le.Uint64(b[32:]), c)
			s2, c2 = bits.Add64(s2, le.Uint64(b[40:]), c2)
			s, c = bits.Add64(s, le.Uint64(b[48:]), c)
			s2, c2 = bits.Add64(s2, le.Uint64(b[56:]), c2)
			b = b[64:]
		}
		s, c = bits.Add64(s, s2, c)
		s, c = bits.Add64(s, c2, c)
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, le.Uint64(b), c)
		b = b[8:]
	}
	if len(b) >= 4 {
		s, c = bits.Add64(s, uint64(le.Uint32(b)), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		s, c = bits.Add64(s, uint64(le.Uint16(b)), c)
		b = b[2:]
	}
	if len(b) == 1 {
		// At an even offset: the high-order byte of a big-endian word,
		// the low-order one of the little-endian words summed here.
		s, c = bits.Add64(s, uint64(b[0]), c)
	}
	s, c = bits.Add64(s, 0, c) // end-around carry
	s += c                     // s is 0 if that carried: no overflow
	// Fold 64 → 32 → 16 bits with end-around carries.
	t := (s >> 32) + (s & 0xffffffff)
	t = (t >> 32) + (t & 0xffffffff)
	t = (t >> 16) + (t & 0xffff)
	t = (t >> 16) + (t & 0xffff)
	v := bits.ReverseBytes16(uint16(t))
	r := uint32(v) + uint32(initial)
	return uint16(r + r>>16)
}
