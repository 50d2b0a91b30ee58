package statestore

import (
	"net/netip"
	"strconv"
)

// InitialJiffies is the kernel's jiffies value at boot (INITIAL_JIFFIES,
// 300 s before the 32-bit wrap at HZ=250), so /proc values near 2^32 are
// normal (spec §4.5).
const InitialJiffies = uint64(1<<32) - 300*HZ

// ProcJiffies converts packet times to the jiffies /proc prints, counting
// from InitialJiffies at BootNS (the replay uses its first packet's time).
type ProcJiffies struct{ BootNS int64 }

// At returns the jiffies value at t (never before boot).
func (j ProcJiffies) At(tNS int64) uint64 {
	d := tNS - j.BootNS
	if d < 0 {
		d = 0
	}
	return InitialJiffies + uint64(d/JiffyNS)
}

// AppendProcAddr formats an address as the kernel's %pI4 / %pI6: dotted
// quad, or eight groups of four hex digits.
func AppendProcAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		return a.AppendTo(b)
	}
	const hex = "0123456789abcdef"
	x := a.As16()
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[x[i]>>4], hex[x[i]&15], hex[x[i+1]>>4], hex[x[i+1]&15])
	}
	return b
}

// AppendRecentProc appends one /proc/net/xt_recent/NAME line (with its
// newline):
//
//	src=10.99.0.1 ttl: 64 last_seen: 4294993159 oldest_pkt: 6 4294990223, 4294990352
func AppendRecentProc(b []byte, e *RecentEntry, j ProcJiffies) []byte {
	b = append(b, "src="...)
	b = AppendProcAddr(b, e.Addr)
	b = append(b, " ttl: "...)
	b = strconv.AppendUint(b, uint64(e.TTL), 10)
	b = append(b, " last_seen: "...)
	b = strconv.AppendUint(b, j.At(e.LastSeenNS), 10)
	b = append(b, " oldest_pkt: "...)
	b = strconv.AppendInt(b, int64(e.Index), 10)
	for i, s := range e.StampsNS {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, ' ')
		b = strconv.AppendUint(b, j.At(s), 10)
	}
	return append(b, '\n')
}

// AppendHashlimitProc appends one /proc/net/ipt_hashlimit/NAME line (or
// ip6t_hashlimit when ipv6):
//
//	<seconds to expiry> <src>:<sport>-><dst>:<dport> <credit> <credit_cap> <cost>
func AppendHashlimitProc(b []byte, e *HashlimitEntry, ipv6 bool) []byte {
	b = strconv.AppendInt(b, e.ExpiresInS, 10)
	b = append(b, ' ')
	b = appendKeyAddr(b, &e.Key.Src, ipv6)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(e.Key.SrcPort), 10)
	b = append(b, "->"...)
	b = appendKeyAddr(b, &e.Key.Dst, ipv6)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(e.Key.DstPort), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, e.Credit, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, e.CreditCap, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, e.Cost, 10)
	return append(b, '\n')
}

func appendKeyAddr(b []byte, a *[16]byte, ipv6 bool) []byte {
	if !ipv6 {
		return netip.AddrFrom4([4]byte(a[:4])).AppendTo(b)
	}
	return AppendProcAddr(b, netip.AddrFrom16(*a))
}
