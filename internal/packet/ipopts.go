package packet

import "encoding/binary"

// IPv4 option kinds the receive check treats specially (RFC 791, 1108,
// 2113).
const (
	optEnd   = 0
	optNOP   = 1
	optRR    = 7
	optTS    = 68
	optRA    = 148
	optLSRR  = 131
	optSSRR  = 137
	optCIPSO = 134
)

// Timestamp option flags (low nibble of its fourth byte).
const (
	tsOnly     = 0
	tsAndAddr  = 1
	tsPrespec  = 3
	msPerDay   = 86400000
	nsPerMilli = 1000000
)

// RcvOptions is what the kernel does with a received IPv4 packet's options
// between PREROUTING and INPUT/FORWARD (ip_rcv_finish -> ip_rcv_options ->
// ip_options_compile with the packet's route): it reports drop=true when
// the options are malformed (duplicate record-route/timestamp/source-route,
// lengths < 2 or past the header, pointers < 4/5, full pointers that leave
// no room, router alert shorter than 4 bytes, timestamp overflow at 15) or
// carry a loose/strict source route, which a host with
// net.ipv4.conf.all.accept_source_route=0 (the namespace default) drops.
// A packet that is kept has its options updated in place as the kernel
// does for local delivery (local=true): bytes after an end-of-list option
// zeroed, record route and timestamp-with-address filled with the packet's
// destination (the local address), timestamps written as milliseconds
// since midnight UTC of nowNS, full timestamp options' overflow counter
// incremented. The header checksum is left as the kernel leaves it (not
// recomputed). Packets without options, IPv6 and forwarded packets'
// rewriting (ip_forward_options) are not touched: forwarded packets are
// only checked. CIPSO (134) options are accepted without cipso_v4_validate.
// It allocates nothing.
func (p *Packet) RcvOptions(local bool, nowNS int64) (drop bool) {
	if p.Version != 4 || p.HdrLen <= 20 || len(p.Data) < p.HdrLen {
		return false
	}
	iph := p.Data[:p.HdrLen]
	var seenRR, seenTS, seenSRR bool
	i := 20
	for i < len(iph) {
		switch iph[i] {
		case optEnd:
			if local {
				for j := i + 1; j < len(iph); j++ {
					iph[j] = 0
				}
			}
			return seenSRR
		case optNOP:
			i++
			continue
		}
		l := len(iph) - i
		if l < 2 {
			return true
		}
		optlen := int(iph[i+1])
		if optlen < 2 || optlen > l {
			return true
		}
		o := iph[i : i+optlen]
		switch o[0] {
		case optLSRR, optSSRR:
			if optlen < 3 || o[2] < 4 || seenSRR {
				return true
			}
			seenSRR = true
		case optRR:
			if seenRR || optlen < 3 || o[2] < 4 {
				return true
			}
			if int(o[2]) <= optlen {
				if int(o[2])+3 > optlen {
					return true
				}
				if local {
					d := p.Dst.As4()
					copy(o[o[2]-1:], d[:])
					o[2] += 4
				}
			}
			seenRR = true
		case optTS:
			if seenTS || optlen < 4 || o[2] < 5 {
				return true
			}
			if int(o[2]) <= optlen {
				if int(o[2])+3 > optlen {
					return true
				}
				ts := -1 // offset of the stamp to write
				switch o[3] & 0x0f {
				case tsOnly:
					ts = int(o[2]) - 1
					if local {
						o[2] += 4
					}
				case tsAndAddr:
					if int(o[2])+7 > optlen {
						return true
					}
					ts = int(o[2]) + 3
					if local {
						d := p.Dst.As4()
						copy(o[o[2]-1:], d[:])
						o[2] += 8
					}
				case tsPrespec:
					if int(o[2])+7 > optlen {
						return true
					}
					// The prespecified address is stamped unless
					// inet_addr_type calls it RTN_UNICAST (not ours):
					// ours here is Dst (the only local address known),
					// 0.0.0.0/8, 255.255.255.255 and multicast.
					d := p.Dst.As4()
					a := [4]byte(o[o[2]-1 : o[2]+3])
					if a == d || a[0] == 0 || a == [4]byte{255, 255, 255, 255} || a[0]&0xf0 == 0xe0 {
						ts = int(o[2]) + 3
						if local {
							o[2] += 8
						}
					}
				}
				if local && ts >= 0 {
					ms := uint32((nowNS / nsPerMilli) % msPerDay)
					binary.BigEndian.PutUint32(o[ts:], ms)
				}
			} else if o[3]&0x0f != tsPrespec {
				over := o[3] >> 4
				if over == 15 {
					return true
				}
				if local {
					o[3] = o[3]&0x0f | (over+1)<<4
				}
			}
			seenTS = true
		case optRA:
			if optlen < 4 {
				return true
			}
		}
		i += optlen
	}
	return seenSRR
}
