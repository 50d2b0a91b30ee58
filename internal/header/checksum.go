// Package header gives zero-copy views of IPv4, IPv6, TCP, UDP and ICMP
// headers over []byte, the Internet checksum (RFC 1071) with its TCP/UDP
// pseudo-header, incremental checksum update (RFC 1624) for the rewrites
// netfilter targets do (NAT, TTL, DSCP/TOS, TCPMSS), and writers that build
// REJECT's replies into a caller-provided buffer.
//
// A view is a named []byte whose methods read and write fields at fixed
// offsets. Views do no bounds checking of their own beyond Go's: the caller
// checks the length first (IPv4MinLen, TCPMinLen, ...), as package packet does
// when it decodes. Nothing here allocates.
package header

import (
	"encoding/binary"
	"math/bits"
)

var be = binary.BigEndian

// Sum returns the 16-bit one's complement sum of b (RFC 1071) added to
// initial, folded but not complemented. It lets a checksum be computed over
// several pieces (pseudo-header, header, payload): pass the result of one
// piece as initial to the next. Every piece but the last must have an even
// length, since an odd trailing byte is padded with a zero.
func Sum(b []byte, initial uint16) uint16 {
	if len(b) >= wideMin {
		return sumWide(b, initial)
	}
	return sumNarrow(b, initial)
}

// wideMin is the length from which sumWide's setup pays off.
const wideMin = 128

// sumNarrow is Sum with 32-bit words, for headers and short payloads.
func sumNarrow(b []byte, initial uint16) uint16 {
	s := uint64(initial)
	// 32-bit words summed into 64 bits cannot overflow for any slice Go can
	// hold; folding at the end gives the same result as 16-bit addition with
	// end-around carry because 2^16 ≡ 1 (mod 2^16-1).
	for len(b) >= 8 {
		s += uint64(be.Uint32(b)) + uint64(be.Uint32(b[4:]))
		b = b[8:]
	}
	if len(b) >= 4 {
		s += uint64(be.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		s += uint64(be.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return fold64(s)
}

// Checksum returns the Internet checksum of b continuing from the partial sum
// initial: the value to store in a checksum field that was zero while b was
// summed.
func Checksum(b []byte, initial uint16) uint16 {
	return ^Sum(b, initial)
}

func fold64(s uint64) uint16 {
	for s > 0xffff {
		s = (s >> 16) + (s & 0xffff)
	}
	return uint16(s)
}

// add16 is one's complement addition of two 16-bit values.
func add16(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// PseudoHeaderSum returns the partial sum of the TCP/UDP/ICMPv6 pseudo-header:
// source and destination address (4 bytes each for IPv4, 16 for IPv6), the
// protocol number and the L4 length (RFC 793, RFC 768, RFC 8200 §8.1). Pass
// it as initial to the L4 checksum computation.
func PseudoHeaderSum(src, dst []byte, proto uint8, l4len int) uint16 {
	s := Sum(src, 0)
	s = Sum(dst, s)
	s = add16(s, uint16(proto))
	s = add16(s, uint16(uint32(l4len)>>16))
	return add16(s, uint16(l4len))
}

// checksumSkip computes the checksum of b as if the 2-byte field at off were
// zero. off must be even and off+2 <= len(b).
func checksumSkip(b []byte, off int, initial uint16) uint16 {
	s := Sum(b[:off], initial)
	return ^Sum(b[off+2:], s)
}

// Update16 returns the new value of a checksum field after a 16-bit word
// covered by it changed from old to new: RFC 1624 equation 3,
// HC' = ~(~HC + ~m + m'). Unlike equation 2 it never turns a correct result
// into 0xffff, so it equals a full recomputation for any data that is not
// all zeros (no IP header or L4 pseudo-header is).
func Update16(csum, old, new uint16) uint16 {
	return ^add16(add16(^csum, ^old), new)
}

// Update32 is Update16 for an aligned 32-bit word (an IPv4 address, a TCP
// sequence number).
func Update32(csum uint16, old, new uint32) uint16 {
	s := add16(^csum, ^uint16(old>>16))
	s = add16(s, ^uint16(old))
	s = add16(s, uint16(new>>16))
	s = add16(s, uint16(new))
	return ^s
}

// UpdateBytes is Update16 for a run of 16-bit aligned words that changed from
// old to new (an IPv4 or IPv6 address). old and new must have the same even
// length; otherwise csum is returned unchanged.
func UpdateBytes(csum uint16, old, new []byte) uint16 {
	if len(old) != len(new) || len(old)%2 != 0 {
		return csum
	}
	s := ^csum
	for i := 0; i < len(old); i += 2 {
		s = add16(s, ^be.Uint16(old[i:]))
		s = add16(s, be.Uint16(new[i:]))
	}
	return ^s
}

// UpdateL4ChecksumForAddr patches the checksum of the L4 header l4 (protocol
// proto, starting at the L4 header) after an address in the pseudo-header
// changed from old to new, as NAT does. It handles the protocols whose
// checksum covers a pseudo-header: TCP, UDP (a zero checksum, "none", stays
// zero), UDP-Lite, DCCP and ICMPv6. It reports false, changing nothing, when
// proto has no pseudo-header checksum (ICMP, SCTP's CRC32c, ...) or l4 is too
// short to hold the checksum field (a datagram quoted in an ICMP error).
func UpdateL4ChecksumForAddr(proto uint8, l4 []byte, old, new []byte) bool {
	off, ok := l4ChecksumOffset(proto)
	if !ok || len(l4) < off+2 {
		return false
	}
	c := be.Uint16(l4[off:])
	if proto == ProtoUDP {
		if c == 0 {
			return true
		}
		c = UpdateBytes(c, old, new)
		if c == 0 {
			c = 0xffff
		}
	} else {
		c = UpdateBytes(c, old, new)
	}
	be.PutUint16(l4[off:], c)
	return true
}

// l4ChecksumOffset is where the checksum field of a pseudo-header protocol is.
func l4ChecksumOffset(proto uint8) (int, bool) {
	switch proto {
	case ProtoTCP:
		return 16, true
	case ProtoUDP, ProtoUDPLite, ProtoDCCP:
		return 6, true
	case ProtoICMPv6:
		return 2, true
	}
	return 0, false
}

// Protocol numbers (IANA) used by the decoders.
const (
	ProtoHopByHop uint8 = 0
	ProtoICMP     uint8 = 1
	ProtoTCP      uint8 = 6
	ProtoUDP      uint8 = 17
	ProtoDCCP     uint8 = 33
	ProtoRouting  uint8 = 43
	ProtoFragment uint8 = 44
	ProtoESP      uint8 = 50
	ProtoAH       uint8 = 51
	ProtoICMPv6   uint8 = 58
	ProtoNoNext   uint8 = 59
	ProtoDstOpts  uint8 = 60
	ProtoSCTP     uint8 = 132
	ProtoUDPLite  uint8 = 136
)

// sumWide is Sum for long slices (payloads): it adds 64-bit little-endian
// words with end-around carry (bits.Add64), 64 bytes per iteration in two
// independent carry chains, and swaps the bytes of the folded result at the
// end. The one's complement sum is independent of byte order up to that
// swap (RFC 1071 §2(B)), and a sum of 64-bit words modulo 2^64-1 folds to
// the same value as a sum of 16-bit words modulo 2^16-1 because 2^16-1
// divides 2^64-1. An odd trailing byte is padded with a zero as in Sum.
// About 3.5 times faster than the 32-bit loop: it was a fifth of the
// proxy's CPU on a loopback stream, where every relayed byte is summed.
func sumWide(b []byte, initial uint16) uint16 {
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
