package conntrack

import (
	"encoding/binary"
	"net/netip"

	"github.com/uptables/uptables/internal/packet"
)

// pkt is the part of a packet the trackers look at, read straight from the
// packet bytes (so that conntrack does not depend on which optional fields a
// decoder filled in).
type pkt struct {
	tuple Tuple
	data  []byte // Data[:end]
	l4    []byte // data[L4Off:]
	// wire is the L4 length on the wire: len(l4), or more for a packet
	// of which only the first bytes are present (packet.Packet.Cut, an
	// NFQUEUE copy). The kernel holds the whole packet, so sequence
	// tracking and the UDP length check use this length.
	wire  int
	v6    bool
	check bool // verify the L4 checksum (PREROUTING, checksum=1, not L4CsumTrusted)
	tcp   tcpSeg
}

func (t *Table) parse(p *packet.Packet, hook packet.Hook, zone uint16, k *pkt) Reason {
	if p.Status == packet.BadL3 || p.Status == packet.Fragment || p.FragOff != 0 {
		// Fragments are reassembled before conntrack in the kernel
		// (priority -400); a fragment reaching us has no L4 header.
		return ReasonTruncated
	}
	end := len(p.Data)
	if p.TotalLen > 0 && p.TotalLen < end {
		end = p.TotalLen
	}
	if p.L4Off <= 0 || p.L4Off > end {
		return ReasonTruncated
	}
	k.data = p.Data[:end]
	k.l4 = k.data[p.L4Off:]
	k.wire = len(k.l4)
	if p.Cut {
		k.wire = p.TotalLen - p.L4Off
	}
	k.v6 = p.Version == 6
	// As nf_ip_checksum: only in PREROUTING, and not for a packet whose
	// checksum is already verified or not computed yet (L4CsumTrusted).
	// A Cut packet's checksum cannot be computed: its tail is missing.
	k.check = hook == packet.PreRouting && !t.cfg.NoChecksum && !p.L4CsumTrusted && !p.Cut
	k.tuple = Tuple{Src: p.Src, Dst: p.Dst, Proto: p.Proto, Zone: zone}
	switch {
	case hasPorts(p.Proto):
		if len(k.l4) < 8 { // the kernel reads 8 bytes to get the ports
			return ReasonTruncated
		}
		k.tuple.SrcID = binary.BigEndian.Uint16(k.l4)
		k.tuple.DstID = binary.BigEndian.Uint16(k.l4[2:])
	case p.Proto == ProtoSCTP:
		// nf_ct_get_tuple_ports: only the ports are needed to find the
		// connection; the SCTP tracker checks the rest of the header.
		if len(k.l4) < 4 {
			return ReasonTruncated
		}
		k.tuple.SrcID = binary.BigEndian.Uint16(k.l4)
		k.tuple.DstID = binary.BigEndian.Uint16(k.l4[2:])
	case p.Proto == ProtoGRE:
		src, dst, ok := greKeys(k.l4)
		if !ok {
			return ReasonGREVersion
		}
		k.tuple.SrcID, k.tuple.DstID = src, dst
	case isICMP(p.Proto):
		if len(k.l4) < 8 {
			return ReasonTruncated
		}
		k.tuple.DstID = binary.BigEndian.Uint16(k.l4) // type<<8 | code
		k.tuple.SrcID = binary.BigEndian.Uint16(k.l4[4:])
	}
	return ReasonNone
}

// l4Checksum verifies the L4 checksum (with the pseudo header, except for
// ICMPv4). A zero UDP/IPv4 checksum means "none".
func l4Checksum(k *pkt) bool {
	var sum uint32
	if k.tuple.Proto != ProtoICMP {
		if k.v6 {
			a, b := k.tuple.Src.As16(), k.tuple.Dst.As16()
			sum = sumBytes(sum, a[:])
			sum = sumBytes(sum, b[:])
		} else {
			a, b := k.tuple.Src.As4(), k.tuple.Dst.As4()
			sum = sumBytes(sum, a[:])
			sum = sumBytes(sum, b[:])
		}
		sum += uint32(k.tuple.Proto) + uint32(len(k.l4))&0xffff + uint32(len(k.l4))>>16
	}
	sum = sumBytes(sum, k.l4)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum) == 0xffff
}

func sumBytes(sum uint32, b []byte) uint32 {
	n := len(b) &^ 1
	for i := 0; i < n; i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)&1 != 0 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return sum
}

// tcpError validates a TCP segment (tcp_error) and decodes it into k.tcp.
func tcpError(k *pkt) Reason {
	l := k.l4
	if len(l) < 20 {
		return ReasonTruncated
	}
	doff := int(l[12]>>4) * 4
	if doff < 20 || doff > len(l) {
		return ReasonTruncated
	}
	if k.check && !l4Checksum(k) {
		return ReasonChecksum
	}
	f := l[13]
	if !tcpValidFlags(f) {
		return ReasonTCPFlags
	}
	s := &k.tcp
	s.flags = f
	s.seq = binary.BigEndian.Uint32(l[4:])
	s.ack = binary.BigEndian.Uint32(l[8:])
	s.win = uint32(binary.BigEndian.Uint16(l[14:]))
	s.opts = l[20:doff]
	s.end = s.seq + uint32(k.wire-doff)
	if f&flSYN != 0 {
		s.end++
	}
	if f&flFIN != 0 {
		s.end++
	}
	return ReasonNone
}

// udpError validates a UDP/UDP-Lite datagram (udp_error).
func udpError(k *pkt) Reason {
	l := k.l4
	ulen := int(binary.BigEndian.Uint16(l[4:]))
	csum := binary.BigEndian.Uint16(l[6:])
	if k.tuple.Proto == ProtoUDPLite {
		// UDP-Lite: the length field is the checksum coverage (0 = all).
		if ulen != 0 && (ulen < 8 || ulen > k.wire) {
			return ReasonTruncated
		}
		if csum == 0 {
			return ReasonUDPZeroCsum
		}
		if k.check {
			cov := l
			if ulen != 0 {
				cov = l[:ulen]
			}
			var sum uint32
			sum = pseudo(k, uint32(len(l)))
			sum = sumBytes(sum, cov)
			if fold(sum) != 0xffff {
				return ReasonChecksum
			}
		}
		return ReasonNone
	}
	if ulen > k.wire || ulen < 8 {
		return ReasonTruncated
	}
	if csum == 0 {
		if k.v6 {
			return ReasonUDPZeroCsum
		}
		return ReasonNone
	}
	// nf_ip_checksum covers everything after the IP header (skb->len -
	// dataoff, the pseudo header's length too), not the UDP length field:
	// a datagram shorter than the IP payload is checked with its trailer.
	if k.check && !l4Checksum(k) {
		return ReasonChecksum
	}
	return ReasonNone
}

func pseudo(k *pkt, length uint32) uint32 {
	var sum uint32
	if k.v6 {
		a, b := k.tuple.Src.As16(), k.tuple.Dst.As16()
		sum = sumBytes(sumBytes(0, a[:]), b[:])
	} else {
		a, b := k.tuple.Src.As4(), k.tuple.Dst.As4()
		sum = sumBytes(sumBytes(0, a[:]), b[:])
	}
	return sum + uint32(k.tuple.Proto) + length&0xffff + length>>16
}

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// icmpClass says how an ICMP packet is handled before tracking.
type icmpClass uint8

const (
	icmpQuery   icmpClass = iota // tracked like any other packet
	icmpErr                      // error: RELATED to the quoted connection or INVALID
	icmpNoTrack                  // ICMPv6 ND/MLD: UNTRACKED
)

// icmpCheck is icmp_error / icmpv6_error: length, checksum and type checks
// done before any lookup.
func icmpCheck(k *pkt) (icmpClass, Reason) {
	typ := k.tuple.ICMPType()
	if k.check && !l4Checksum(k) {
		return 0, ReasonChecksum
	}
	if k.tuple.Proto == ProtoICMP {
		if typ > 18 {
			return 0, ReasonICMPType
		}
		switch typ {
		case 3, 4, 5, 11, 12:
			return icmpErr, ReasonNone
		}
		return icmpQuery, ReasonNone
	}
	switch typ {
	case 130, 131, 132, 133, 134, 135, 136, 143:
		// MLD and neighbour discovery are never tracked (kernel noct_valid_new).
		return icmpNoTrack, ReasonNone
	}
	if typ < 128 {
		return icmpErr, ReasonNone
	}
	return icmpQuery, ReasonNone
}

// icmpCanCreate: only queries that have an answer type start a connection
// (echo, timestamp, info, address mask; ICMPv6 echo and node info query).
func icmpCanCreate(tu Tuple) bool {
	typ := tu.ICMPType()
	if tu.Proto == ProtoICMP {
		return typ == 8 || typ == 13 || typ == 15 || typ == 17
	}
	return typ == 128 || typ == 139
}

// innerTuple extracts the tuple of the datagram quoted by an ICMP error
// (IP header + at least 8 bytes of its L4 header). The quoted packet was
// travelling the other way, so the caller inverts it for the lookup.
func innerTuple(k *pkt, zone uint16) (Tuple, bool) {
	q := k.l4[8:]
	var tu Tuple
	var l4 []byte
	if !k.v6 {
		if len(q) < 20 || q[0]>>4 != 4 {
			return Tuple{}, false
		}
		ihl := int(q[0]&0x0f) * 4
		if ihl < 20 || len(q) < ihl {
			return Tuple{}, false
		}
		if binary.BigEndian.Uint16(q[6:])&0x1fff != 0 {
			return Tuple{}, false // quoted non-first fragment: no L4 header
		}
		tu.Proto = q[9]
		tu.Src = netip.AddrFrom4([4]byte(q[12:16]))
		tu.Dst = netip.AddrFrom4([4]byte(q[16:20]))
		l4 = q[ihl:]
	} else {
		if len(q) < 40 || q[0]>>4 != 6 {
			return Tuple{}, false
		}
		tu.Src = netip.AddrFrom16([16]byte(q[8:24]))
		tu.Dst = netip.AddrFrom16([16]byte(q[24:40]))
		nh, off := q[6], 40
		for i := 0; i < 8; i++ {
			switch nh {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if len(q) < off+8 {
					return Tuple{}, false
				}
				nh, off = q[off], off+(int(q[off+1])+1)*8
				continue
			case 44: // fragment
				if len(q) < off+8 || binary.BigEndian.Uint16(q[off+2:])&0xfff8 != 0 {
					return Tuple{}, false
				}
				nh, off = q[off], off+8
				continue
			}
			break
		}
		if off > len(q) {
			return Tuple{}, false
		}
		tu.Proto = nh
		l4 = q[off:]
	}
	tu.Zone = zone
	switch {
	case hasPorts(tu.Proto):
		// nf_ct_get_tuple_ports reads only the two ports of the quoted
		// header: a quote cut after 4 bytes still names its connection.
		if len(l4) < 4 {
			return Tuple{}, false
		}
		tu.SrcID = binary.BigEndian.Uint16(l4)
		tu.DstID = binary.BigEndian.Uint16(l4[2:])
	case tu.Proto == ProtoSCTP:
		if len(l4) < 4 {
			return Tuple{}, false
		}
		tu.SrcID = binary.BigEndian.Uint16(l4)
		tu.DstID = binary.BigEndian.Uint16(l4[2:])
	case tu.Proto == ProtoGRE:
		src, dst, ok := greKeys(l4)
		if !ok {
			return Tuple{}, false
		}
		tu.SrcID, tu.DstID = src, dst
	case isICMP(tu.Proto):
		if len(l4) < 8 || (tu.Proto == ProtoICMPv6) != k.v6 {
			return Tuple{}, false
		}
		tu.DstID = binary.BigEndian.Uint16(l4)
		tu.SrcID = binary.BigEndian.Uint16(l4[4:])
	}
	return tu, true
}
