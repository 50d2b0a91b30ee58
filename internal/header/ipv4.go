package header

import "net/netip"

// IPv4 is a view of an IPv4 header (RFC 791), options included. The caller
// ensures len >= IPv4MinLen before reading the fixed fields and
// len >= HeaderLen() before Options or the checksum methods.
type IPv4 []byte

// IPv4 header sizes and field offsets.
const (
	IPv4MinLen = 20
	IPv4MaxLen = 60 // IHL is 4 bits of 32-bit words

	IPv4TOSOff      = 1
	IPv4TotalLenOff = 2
	IPv4IDOff       = 4
	IPv4FragOff     = 6
	IPv4TTLOff      = 8
	IPv4ProtoOff    = 9
	IPv4ChecksumOff = 10
	IPv4SrcOff      = 12
	IPv4DstOff      = 16
)

// IPv4 flag bits in the 16-bit flags/fragment-offset word.
const (
	IPv4FlagReserved = 0x8000 // "evil bit"; LOG prints it as CE
	IPv4FlagDF       = 0x4000
	IPv4FlagMF       = 0x2000
	IPv4FragOffMask  = 0x1fff
)

// Version returns the IP version nibble.
func (h IPv4) Version() uint8 { return h[0] >> 4 }

// HeaderLen returns IHL*4, the header length in bytes claimed by the header.
func (h IPv4) HeaderLen() int { return int(h[0]&0x0f) * 4 }

// TOS returns the type-of-service (DSCP+ECN) byte.
func (h IPv4) TOS() uint8 { return h[IPv4TOSOff] }

// TotalLen returns the total length field (header and data, bytes).
func (h IPv4) TotalLen() uint16 { return be.Uint16(h[IPv4TotalLenOff:]) }

// ID returns the identification field.
func (h IPv4) ID() uint16 { return be.Uint16(h[IPv4IDOff:]) }

// FlagsFrag returns the raw flags/fragment-offset word.
func (h IPv4) FlagsFrag() uint16 { return be.Uint16(h[IPv4FragOff:]) }

// FragOff returns the fragment offset in 8-byte units.
func (h IPv4) FragOff() uint16 { return h.FlagsFrag() & IPv4FragOffMask }

// MoreFragments reports the MF flag.
func (h IPv4) MoreFragments() bool { return h.FlagsFrag()&IPv4FlagMF != 0 }

// DontFragment reports the DF flag.
func (h IPv4) DontFragment() bool { return h.FlagsFrag()&IPv4FlagDF != 0 }

// TTL returns the time-to-live.
func (h IPv4) TTL() uint8 { return h[IPv4TTLOff] }

// Protocol returns the L4 protocol number.
func (h IPv4) Protocol() uint8 { return h[IPv4ProtoOff] }

// Checksum returns the header checksum field.
func (h IPv4) Checksum() uint16 { return be.Uint16(h[IPv4ChecksumOff:]) }

// Src returns the source address bytes.
func (h IPv4) Src() [4]byte { return [4]byte(h[IPv4SrcOff : IPv4SrcOff+4]) }

// Dst returns the destination address bytes.
func (h IPv4) Dst() [4]byte { return [4]byte(h[IPv4DstOff : IPv4DstOff+4]) }

// SrcAddr returns the source address.
func (h IPv4) SrcAddr() netip.Addr { return netip.AddrFrom4(h.Src()) }

// DstAddr returns the destination address.
func (h IPv4) DstAddr() netip.Addr { return netip.AddrFrom4(h.Dst()) }

// Options returns the option bytes (between the fixed header and HeaderLen),
// cut at the end of h, nil when IHL is below 5.
func (h IPv4) Options() []byte {
	n := h.HeaderLen()
	if n < IPv4MinLen {
		return nil
	}
	return h[IPv4MinLen:min(n, len(h))]
}

// CalculateChecksum returns the header checksum computed over HeaderLen bytes
// with the checksum field taken as zero.
func (h IPv4) CalculateChecksum() uint16 {
	return checksumSkip(h[:h.HeaderLen()], IPv4ChecksumOff, 0)
}

// ChecksumValid reports whether the stored checksum is correct, the test
// ip_rcv makes before the packet reaches netfilter.
func (h IPv4) ChecksumValid() bool {
	return Sum(h[:h.HeaderLen()], 0) == 0xffff
}

// SetChecksum stores c in the checksum field.
func (h IPv4) SetChecksum(c uint16) { be.PutUint16(h[IPv4ChecksumOff:], c) }

// SetTTL sets the TTL and patches the header checksum (RFC 1624), as the TTL
// target does.
func (h IPv4) SetTTL(ttl uint8) {
	old := be.Uint16(h[IPv4TTLOff:])
	h[IPv4TTLOff] = ttl
	h.SetChecksum(Update16(h.Checksum(), old, be.Uint16(h[IPv4TTLOff:])))
}

// SetTOS sets the TOS byte and patches the header checksum, as the DSCP and
// TOS targets do.
func (h IPv4) SetTOS(tos uint8) {
	old := be.Uint16(h[0:])
	h[IPv4TOSOff] = tos
	h.SetChecksum(Update16(h.Checksum(), old, be.Uint16(h[0:])))
}

// SetTotalLen sets the total length and patches the header checksum (used
// when TCPMSS grows the TCP header).
func (h IPv4) SetTotalLen(n uint16) {
	old := h.TotalLen()
	be.PutUint16(h[IPv4TotalLenOff:], n)
	h.SetChecksum(Update16(h.Checksum(), old, n))
}

// SetSrc replaces the source address and patches the header checksum. The L4
// checksum is the caller's (UpdateL4ChecksumForAddr).
func (h IPv4) SetSrc(a [4]byte) { UpdateIPv4Addr(h, IPv4SrcOff, a) }

// SetDst replaces the destination address and patches the header checksum.
func (h IPv4) SetDst(a [4]byte) { UpdateIPv4Addr(h, IPv4DstOff, a) }

// UpdateIPv4Addr writes a at the address field at off (IPv4SrcOff or
// IPv4DstOff) of the header h, patches the header checksum and returns the
// previous address, which UpdateL4ChecksumForAddr needs next.
func UpdateIPv4Addr(h IPv4, off int, a [4]byte) (old [4]byte) {
	copy(old[:], h[off:off+4])
	copy(h[off:off+4], a[:])
	h.SetChecksum(UpdateBytes(h.Checksum(), old[:], a[:]))
	return old
}

// IPv4 option kinds (RFC 791) for callers walking Options with OptionIter.
const (
	IPv4OptEnd       = 0
	IPv4OptNOP       = 1
	IPv4OptRR        = 7
	IPv4OptTimestamp = 68
	IPv4OptLSRR      = 131
	IPv4OptSSRR      = 137
	IPv4OptRA        = 148
)
