package target

import (
	"strconv"

	"github.com/uptables/uptables/internal/packet"
)

// This file formats the line the kernel's LOG target prints (nf_log_ipv4,
// §7.2), byte for byte, from a decoded packet into a caller's buffer. It
// reads the packet bytes itself rather than the decoded fields, because
// the line shows raw header values (reserved bits, option bytes) and, for
// ICMP errors, the quoted inner packet.

// LogLineMax is a buffer size that holds any line: the kernel formats into
// a 1024-byte buffer and truncates there.
const LogLineMax = 1024

const hexUpper = "0123456789ABCDEF"
const hexLower = "0123456789abcdef"

// icmpRequiredLen is the number of ICMP bytes the kernel needs before it
// prints a type's details (else "INCOMPLETE [n bytes]").
var icmpRequiredLen = [19]uint8{
	0: 8, 3: 28, 4: 28, 5: 28, 8: 8, 11: 28, 12: 28, 13: 20, 14: 20, 17: 12, 18: 12,
}

// AppendLine appends the kernel's LOG line for p to dst and returns it: the
// prefix glued to "IN=", every field followed by a space, no newline. The
// syslog level (l.Level) is the caller's to apply. Only IPv4 is formatted;
// for other packets dst is returned unchanged. With enough capacity in
// dst it allocates nothing (LogLineMax always suffices).
func (l *Log) AppendLine(dst []byte, p *packet.Packet) []byte {
	d := p.Data
	if len(d) < 1 || d[0]>>4 != 4 {
		return dst
	}
	dst = append(dst, l.Prefix...)
	dst = append(dst, "IN="...)
	dst = append(dst, p.InIface...)
	dst = append(dst, " OUT="...)
	dst = append(dst, p.OutIface...)
	dst = append(dst, ' ')
	if p.InIface != "" {
		dst = appendMAC(dst, p.Link, l.Flags&LogMACDecode != 0)
	}
	dst = l.appendIPv4(dst, d, 0, p)
	return dst
}

// appendMAC prints the link-layer header: decoded for Ethernet with
// --log-macdecode, else as colon-separated bytes ("MAC= " when none).
func appendMAC(dst, link []byte, decode bool) []byte {
	if decode && len(link) == 14 {
		dst = append(dst, "MACSRC="...)
		dst = appendColonHex(dst, link[6:12])
		dst = append(dst, " MACDST="...)
		dst = appendColonHex(dst, link[0:6])
		dst = append(dst, " MACPROTO="...)
		dst = append(dst, hexLower[link[12]>>4], hexLower[link[12]&0xf], hexLower[link[13]>>4], hexLower[link[13]&0xf], ' ')
		return dst
	}
	dst = append(dst, "MAC="...)
	if len(link) == 0 {
		return append(dst, ' ')
	}
	dst = appendColonHex(dst, link)
	return append(dst, ' ')
}

func appendColonHex(dst, b []byte) []byte {
	for i, c := range b {
		if i > 0 {
			dst = append(dst, ':')
		}
		dst = append(dst, hexLower[c>>4], hexLower[c&0xf])
	}
	return dst
}

func appendUpperHex(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexUpper[c>>4], hexUpper[c&0xf])
	}
	return dst
}

func appendIP4(dst, a []byte) []byte {
	for i := 0; i < 4; i++ {
		if i > 0 {
			dst = append(dst, '.')
		}
		dst = strconv.AppendUint(dst, uint64(a[i]), 10)
	}
	return dst
}

func appendField(dst []byte, name string, v uint64) []byte {
	dst = append(dst, name...)
	dst = strconv.AppendUint(dst, v, 10)
	return append(dst, ' ')
}

func appendIncomplete(dst []byte, n int) []byte {
	dst = append(dst, "INCOMPLETE ["...)
	dst = strconv.AppendUint(dst, uint64(n), 10)
	return append(dst, " bytes] "...)
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// appendIPv4 prints the IPv4 packet starting at d[off:]; off > 0 is the
// packet quoted in an ICMP error, printed without UID/MARK and without
// further nesting. Lengths ("INCOMPLETE") count to the end of d, as the
// kernel counts to the end of the skb.
func (l *Log) appendIPv4(dst, d []byte, off int, p *packet.Packet) []byte {
	if len(d)-off < 20 {
		return append(dst, "TRUNCATED"...)
	}
	ih := d[off:]
	ihl := int(ih[0]&0x0f) * 4
	dst = append(dst, "SRC="...)
	dst = appendIP4(dst, ih[12:16])
	dst = append(dst, " DST="...)
	dst = appendIP4(dst, ih[16:20])
	dst = append(dst, ' ')
	tot := uint64(be16(ih[2:]))
	if off == 0 && tot == 0 {
		// A GSO aggregate beyond 64 KiB: the kernel prints its real
		// length (iph_totlen), measured as LEN=95284 on 6.18 loopback.
		tot = uint64(p.TotalLen)
	}
	dst = appendField(dst, "LEN=", tot)
	tos := ih[1]
	dst = append(dst, "TOS=0x"...)
	dst = append(dst, hexUpper[(tos&0x1e)>>4], hexUpper[tos&0x1e&0xf])
	dst = append(dst, " PREC=0x"...)
	dst = append(dst, hexUpper[(tos&0xe0)>>4], hexUpper[tos&0xe0&0xf], ' ')
	dst = appendField(dst, "TTL=", uint64(ih[8]))
	dst = appendField(dst, "ID=", uint64(be16(ih[4:])))
	frag := be16(ih[6:])
	if frag&0x8000 != 0 {
		dst = append(dst, "CE "...)
	}
	if frag&0x4000 != 0 {
		dst = append(dst, "DF "...)
	}
	if frag&0x2000 != 0 {
		dst = append(dst, "MF "...)
	}
	fragOff := frag & 0x1fff
	if fragOff != 0 {
		dst = append(dst, "FRAG:"...)
		dst = strconv.AppendUint(dst, uint64(fragOff), 10)
		dst = append(dst, ' ')
	}
	if l.Flags&LogIPOpt != 0 && ihl > 20 {
		if len(ih) < ihl {
			return append(dst, "TRUNCATED"...)
		}
		dst = append(dst, "OPT ("...)
		dst = appendUpperHex(dst, ih[20:ihl])
		dst = append(dst, ") "...)
	}
	l4 := off + ihl
	if l4 > len(d) {
		l4 = len(d)
	}
	avail := len(d) - l4
	switch proto := ih[9]; proto {
	case 6:
		dst = append(dst, "PROTO=TCP "...)
		if fragOff != 0 {
			break
		}
		if avail < 20 {
			// nf_log_dump_tcp_header returns 1: the line ends here,
			// without UID/GID/MARK.
			return appendIncomplete(dst, avail)
		}
		th := d[l4:]
		dst = appendField(dst, "SPT=", uint64(be16(th[0:])))
		dst = appendField(dst, "DPT=", uint64(be16(th[2:])))
		if l.Flags&LogTCPSeq != 0 {
			dst = appendField(dst, "SEQ=", uint64(be32(th[4:])))
			dst = appendField(dst, "ACK=", uint64(be32(th[8:])))
		}
		dst = appendField(dst, "WINDOW=", uint64(be16(th[14:])))
		res := (th[12] & 0x0e) << 2
		dst = append(dst, "RES=0x"...)
		dst = append(dst, hexLower[res>>4], hexLower[res&0xf], ' ')
		if th[12]&0x01 != 0 {
			dst = append(dst, "AE "...)
		}
		for _, f := range tcpFlagNames {
			if th[13]&f.bit != 0 {
				dst = append(dst, f.name...)
			}
		}
		dst = appendField(dst, "URGP=", uint64(be16(th[18:])))
		if doff := int(th[12]>>4) * 4; l.Flags&LogTCPOpt != 0 && doff > 20 {
			if avail < doff {
				// The kernel prints "OPT (TRUNCATED)", without a
				// trailing blank, and ends the line (no UID/MARK).
				return append(dst, "OPT (TRUNCATED)"...)
			}
			dst = append(dst, "OPT ("...)
			dst = appendUpperHex(dst, th[20:doff])
			dst = append(dst, ") "...)
		}
	case 17, 136:
		if proto == 17 {
			dst = append(dst, "PROTO=UDP "...)
		} else {
			dst = append(dst, "PROTO=UDPLITE "...)
		}
		if fragOff != 0 {
			break
		}
		if avail < 8 {
			// nf_log_dump_udp_header returns 1: no UID/GID/MARK.
			return appendIncomplete(dst, avail)
		}
		uh := d[l4:]
		dst = appendField(dst, "SPT=", uint64(be16(uh[0:])))
		dst = appendField(dst, "DPT=", uint64(be16(uh[2:])))
		dst = appendField(dst, "LEN=", uint64(be16(uh[4:])))
	case 1:
		dst = append(dst, "PROTO=ICMP "...)
		if fragOff != 0 {
			break
		}
		if avail < 8 {
			dst = appendIncomplete(dst, avail)
			break
		}
		ic := d[l4:]
		typ, code := ic[0], ic[1]
		dst = appendField(dst, "TYPE=", uint64(typ))
		dst = appendField(dst, "CODE=", uint64(code))
		if int(typ) < len(icmpRequiredLen) && icmpRequiredLen[typ] != 0 && avail < int(icmpRequiredLen[typ]) {
			dst = appendIncomplete(dst, avail)
			break
		}
		switch typ {
		case 0, 8:
			dst = appendField(dst, "ID=", uint64(be16(ic[4:])))
			dst = appendField(dst, "SEQ=", uint64(be16(ic[6:])))
		case 12:
			dst = appendField(dst, "PARAMETER=", uint64(ic[4]))
		case 3, 4, 5, 11:
			if typ == 5 {
				dst = append(dst, "GATEWAY="...)
				dst = appendIP4(dst, ic[4:8])
				dst = append(dst, ' ')
			}
			if off == 0 {
				dst = append(dst, '[')
				dst = l.appendIPv4(dst, d, l4+8, nil)
				dst = append(dst, "] "...)
			}
			if typ == 3 && code == 4 {
				dst = appendField(dst, "MTU=", uint64(be16(ic[6:])))
			}
		}
	case 51:
		dst = append(dst, "PROTO=AH "...)
		if fragOff != 0 {
			break
		}
		if avail < 12 {
			dst = appendIncomplete(dst, avail)
			break
		}
		dst = appendSPI(dst, be32(d[l4+4:]))
	case 50:
		dst = append(dst, "PROTO=ESP "...)
		if fragOff != 0 {
			break
		}
		if avail < 8 {
			dst = appendIncomplete(dst, avail)
			break
		}
		dst = appendSPI(dst, be32(d[l4:]))
	default:
		dst = appendField(dst, "PROTO=", uint64(proto))
	}
	if off != 0 || p == nil {
		return dst
	}
	if l.Flags&LogUID != 0 && p.HasOwner {
		dst = appendField(dst, "UID=", uint64(p.UID))
		dst = appendField(dst, "GID=", uint64(p.GID))
	}
	if p.Mark != 0 {
		dst = append(dst, "MARK=0x"...)
		dst = strconv.AppendUint(dst, uint64(p.Mark), 16)
		dst = append(dst, ' ')
	}
	return dst
}

func appendSPI(dst []byte, spi uint32) []byte {
	dst = append(dst, "SPI=0x"...)
	dst = strconv.AppendUint(dst, uint64(spi), 16)
	return append(dst, ' ')
}

// tcpFlagNames in the order the kernel prints them (AE comes first, from
// the reserved nibble).
var tcpFlagNames = [...]struct {
	bit  uint8
	name string
}{
	{0x80, "CWR "}, {0x40, "ECE "}, {0x20, "URG "}, {0x10, "ACK "},
	{0x08, "PSH "}, {0x04, "RST "}, {0x02, "SYN "}, {0x01, "FIN "},
}
