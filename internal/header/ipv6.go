package header

import "net/netip"

// IPv6 is a view of the fixed IPv6 header (RFC 8200). The caller ensures
// len >= IPv6Len. Extension headers are walked by WalkIPv6.
type IPv6 []byte

// IPv6 header size and field offsets.
const (
	IPv6Len           = 40
	IPv6PayloadLenOff = 4
	IPv6NextHdrOff    = 6
	IPv6HopLimitOff   = 7
	IPv6SrcOff        = 8
	IPv6DstOff        = 24
	IPv6FragHdrLen    = 8
)

// Version returns the IP version nibble.
func (h IPv6) Version() uint8 { return h[0] >> 4 }

// TrafficClass returns the traffic class (the IPv4 TOS equivalent).
func (h IPv6) TrafficClass() uint8 { return h[0]<<4 | h[1]>>4 }

// FlowLabel returns the 20-bit flow label.
func (h IPv6) FlowLabel() uint32 { return be.Uint32(h[0:]) & 0xfffff }

// PayloadLen returns the payload length field (everything after the fixed
// header, extension headers included).
func (h IPv6) PayloadLen() uint16 { return be.Uint16(h[IPv6PayloadLenOff:]) }

// NextHeader returns the next-header field of the fixed header.
func (h IPv6) NextHeader() uint8 { return h[IPv6NextHdrOff] }

// HopLimit returns the hop limit (the IPv4 TTL equivalent).
func (h IPv6) HopLimit() uint8 { return h[IPv6HopLimitOff] }

// Src returns the source address bytes.
func (h IPv6) Src() [16]byte { return [16]byte(h[IPv6SrcOff : IPv6SrcOff+16]) }

// Dst returns the destination address bytes.
func (h IPv6) Dst() [16]byte { return [16]byte(h[IPv6DstOff : IPv6DstOff+16]) }

// SrcAddr returns the source address.
func (h IPv6) SrcAddr() netip.Addr { return netip.AddrFrom16(h.Src()) }

// DstAddr returns the destination address.
func (h IPv6) DstAddr() netip.Addr { return netip.AddrFrom16(h.Dst()) }

// SetHopLimit sets the hop limit (no header checksum in IPv6).
func (h IPv6) SetHopLimit(v uint8) { h[IPv6HopLimitOff] = v }

// SetTrafficClass sets the traffic class, keeping version and flow label.
func (h IPv6) SetTrafficClass(tc uint8) {
	h[0] = h[0]&0xf0 | tc>>4
	h[1] = h[1]&0x0f | tc<<4
}

// IPv6Ext is what WalkIPv6 found after the fixed header.
type IPv6Ext struct {
	// Proto is the upper-layer protocol (TCP, UDP, ICMPv6, ESP, NoNext, ...).
	// When Truncated, it is the type of the extension header that was cut.
	Proto uint8
	// Off is the offset of the upper-layer header (of the cut extension
	// header when Truncated; of the fragment data for a non-first fragment).
	Off int
	// FragHdrOff is the offset of the fragment header, 0 if none.
	FragHdrOff int
	FragOff    uint16 // fragment offset in 8-byte units
	MoreFrag   bool
	FragID     uint32
	// Truncated is set when an extension header runs past the end of b.
	Truncated bool
}

// IsIPv6ExtHeader reports whether proto is an extension header the walk skips:
// hop-by-hop, routing, fragment, destination options, AH (the kernel's
// ipv6_ext_hdr, minus "no next header", which ends the walk). ESP is not: it
// is treated as the upper layer, as ip6tables does.
func IsIPv6ExtHeader(proto uint8) bool {
	switch proto {
	case ProtoHopByHop, ProtoRouting, ProtoFragment, ProtoDstOpts, ProtoAH:
		return true
	}
	return false
}

// WalkIPv6 follows the extension-header chain of the IPv6 packet b (fixed
// header first, len(b) >= IPv6Len; b should end where the packet ends) to the
// upper-layer protocol, like the kernel's ipv6_find_hdr with no target: a
// non-first fragment stops the walk and reports the fragment's next header.
// The walk is bounded by len(b): every extension header is at least 8 bytes.
func WalkIPv6(b []byte) IPv6Ext {
	var r IPv6Ext
	nh := b[IPv6NextHdrOff]
	off := IPv6Len
	for IsIPv6ExtHeader(nh) {
		if nh == ProtoFragment {
			if off+IPv6FragHdrLen > len(b) {
				return IPv6Ext{Proto: nh, Off: off, FragHdrOff: r.FragHdrOff, Truncated: true}
			}
			fo := be.Uint16(b[off+2:])
			r.FragHdrOff = off
			r.FragOff = fo >> 3
			r.MoreFrag = fo&1 != 0
			r.FragID = be.Uint32(b[off+4:])
			nh = b[off]
			off += IPv6FragHdrLen
			if r.FragOff != 0 {
				break
			}
			continue
		}
		if off+2 > len(b) {
			r.Proto, r.Off, r.Truncated = nh, off, true
			return r
		}
		var n int
		if nh == ProtoAH {
			n = (int(b[off+1]) + 2) * 4
		} else {
			n = (int(b[off+1]) + 1) * 8
		}
		if off+n > len(b) {
			r.Proto, r.Off, r.Truncated = nh, off, true
			return r
		}
		nh = b[off]
		off += n
	}
	r.Proto, r.Off = nh, off
	return r
}
