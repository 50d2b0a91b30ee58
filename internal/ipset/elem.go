package ipset

import (
	"net/netip"
	"strconv"
	"strings"
)

// maxExpand bounds how many entries one add/del/test command may expand to
// (an address range, a prefix given to hash:ip, a port range): the kernel's
// IPSET_MAX_RANGE of 2^20.
const maxExpand = 1 << 20

var protoNames = map[string]uint8{"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51, "sctp": 132, "udplite": 136}

func protoName(p uint8) string {
	for n, v := range protoNames {
		if v == p {
			return n
		}
	}
	return strconv.Itoa(int(p))
}

// icmpTypes are ipset's ICMP type/code names (its icmp.c table, as
// `ipset list` prints them).
var icmpTypes = []struct {
	name string
	tc   uint16
}{
	{"echo-reply", 0x0000}, {"pong", 0x0000}, {"network-unreachable", 0x0300}, {"host-unreachable", 0x0301},
	{"protocol-unreachable", 0x0302}, {"port-unreachable", 0x0303}, {"fragmentation-needed", 0x0304},
	{"source-route-failed", 0x0305}, {"network-unknown", 0x0306}, {"host-unknown", 0x0307},
	{"network-prohibited", 0x0309}, {"host-prohibited", 0x030a}, {"TOS-network-unreachable", 0x030b},
	{"TOS-host-unreachable", 0x030c}, {"communication-prohibited", 0x030d}, {"host-precedence-violation", 0x030e},
	{"precedence-cutoff", 0x030f}, {"source-quench", 0x0400}, {"network-redirect", 0x0500},
	{"host-redirect", 0x0501}, {"TOS-network-redirect", 0x0502}, {"TOS-host-redirect", 0x0503},
	{"echo-request", 0x0800}, {"ping", 0x0800}, {"router-advertisement", 0x0900}, {"router-solicitation", 0x0a00},
	{"ttl-zero-during-transit", 0x0b00}, {"ttl-zero-during-reassembly", 0x0b01}, {"ip-header-bad", 0x0c00},
	{"required-option-missing", 0x0c01}, {"timestamp-request", 0x0d00}, {"timestamp-reply", 0x0e00},
	{"address-mask-request", 0x1100}, {"address-mask-reply", 0x1200},
}

func parseAddr(s string) (uint32, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, syntaxf("cannot parse " + s + ": resolving to IPv4 address failed")
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}

func addrString(a uint32) string {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}).String()
}

// addrPart is the address part of an element: a range [from, to] or a
// prefix (cidr > 0 and isNet).
type addrPart struct {
	from, to uint32
	cidr     uint8
	isNet    bool // written as A/c
	isRange  bool // written as A-B
}

func parseAddrPart(s string) (addrPart, error) {
	if a, b, ok := strings.Cut(s, "-"); ok {
		from, err := parseAddr(a)
		if err != nil {
			return addrPart{}, err
		}
		to, err := parseAddr(b)
		if err != nil {
			return addrPart{}, err
		}
		if from > to {
			from, to = to, from
		}
		return addrPart{from: from, to: to, isRange: true}, nil
	}
	if a, c, ok := strings.Cut(s, "/"); ok {
		ip, err := parseAddr(a)
		if err != nil {
			return addrPart{}, err
		}
		n, err := strconv.ParseUint(c, 10, 8)
		if err != nil || n > 32 {
			return addrPart{}, syntaxf("cannot parse " + s + ": resolving to IPv4 address failed")
		}
		m := maskOf(uint8(n))
		return addrPart{from: ip & m, to: ip&m | ^m, cidr: uint8(n), isNet: true}, nil
	}
	ip, err := parseAddr(s)
	return addrPart{from: ip, to: ip, cidr: 32}, err
}

// cidrs covers [from, to] with the fewest prefixes (ipset's range to
// networks for the net types).
func cidrs(from, to uint32) []addrPart {
	var out []addrPart
	for {
		c := uint8(32)
		for c > 0 {
			m := maskOf(c - 1)
			if from&^m != 0 || from|^m > to {
				break
			}
			c--
		}
		m := maskOf(c)
		out = append(out, addrPart{from: from, to: from | ^m, cidr: c})
		if from|^m >= to {
			return out
		}
		from = from | ^m + 1
	}
}

// portPart is the port part: protocol and a port range (ICMP: one
// type/code).
type portPart struct {
	proto    uint8
	from, to uint16
}

func parsePortPart(s string, t Type) (portPart, error) {
	proto := uint8(6)
	pname := "tcp"
	if p, rest, ok := strings.Cut(s, ":"); ok {
		v, known := protoNames[p]
		if !known {
			n, err := strconv.ParseUint(p, 10, 8)
			if err != nil {
				return portPart{}, syntaxf("cannot parse '" + p + "' as a protocol")
			}
			v = uint8(n)
		}
		proto, pname, s = v, p, rest
	}
	if proto == 1 {
		for _, it := range icmpTypes {
			if it.name == s {
				return portPart{proto: 1, from: it.tc, to: it.tc}, nil
			}
		}
		ty, co, ok := strings.Cut(s, "/")
		a, e1 := strconv.ParseUint(ty, 10, 8)
		b, e2 := strconv.ParseUint(co, 10, 8)
		if !ok || e1 != nil || e2 != nil {
			return portPart{}, &Error{Msg: "Cannot parse " + s + " as an ICMP type/code.", Code: 1}
		}
		tc := uint16(a)<<8 | uint16(b)
		return portPart{proto: 1, from: tc, to: tc}, nil
	}
	parseOne := func(w string) (uint16, error) {
		n, err := strconv.ParseUint(w, 10, 16)
		if err != nil {
			if _, e2 := strconv.ParseUint(w, 10, 64); e2 == nil {
				return 0, syntaxf("'" + w + "' is out of range 0-65535\nSyntax error: '" + pname + "' is invalid as number\ncannot parse '" + w + "' as a " + pname + " port")
			}
			return 0, syntaxf("cannot parse '" + w + "' as a " + pname + " port")
		}
		return uint16(n), nil
	}
	lo, hi := s, s
	if a, b, ok := strings.Cut(s, "-"); ok {
		lo, hi = a, b
	}
	from, err := parseOne(lo)
	if err != nil {
		return portPart{}, err
	}
	to, err := parseOne(hi)
	if err != nil {
		return portPart{}, err
	}
	if from > to {
		from, to = to, from
	}
	if !portProto(proto) && (from != 0 || to != 0) {
		return portPart{}, syntaxf("Protocol " + strconv.Itoa(int(proto)) + " can be used with pseudo port value 0 only.")
	}
	return portPart{proto: proto, from: from, to: to}, nil
}

// ParseElem parses an element as `ipset add/del/test` does for the set's
// type and returns the keys it stands for.
func (s *Set) ParseElem(str string) ([]Key, error) {
	t := s.typ
	if t == BitmapPort {
		pp, err := parsePortPart(str, t)
		if err != nil {
			return nil, err
		}
		if pp.from < s.opts.PortFrom || pp.to > s.opts.PortTo {
			return nil, errf(errRange)
		}
		keys := make([]Key, 0, int(pp.to-pp.from)+1)
		for p := int(pp.from); p <= int(pp.to); p++ {
			keys = append(keys, Key{Port: uint16(p)})
		}
		return keys, nil
	}
	addrS, portS := str, ""
	if t.hasPort() {
		var ok bool
		addrS, portS, ok = strings.Cut(str, ",")
		if !ok {
			return nil, syntaxf("Second element is missing from " + str + ".")
		}
	}
	ap, err := parseAddrPart(addrS)
	if err != nil {
		return nil, err
	}
	var addrs []addrPart
	if t.hasNet() {
		switch {
		case ap.isNet && ap.cidr == 0:
			return nil, errf("The value of the CIDR parameter of the IP address is invalid")
		case ap.isRange:
			addrs = cidrs(ap.from, ap.to)
		default:
			addrs = []addrPart{ap}
		}
	} else {
		if ap.isNet && ap.cidr == 0 {
			return nil, errf("The value of the CIDR parameter of the IP address is invalid")
		}
		if uint64(ap.to)-uint64(ap.from)+1 > maxExpand {
			return nil, errf("The value of the CIDR parameter of the IP address is invalid")
		}
		for a := uint64(ap.from); a <= uint64(ap.to); a++ {
			addrs = append(addrs, addrPart{from: uint32(a), cidr: 32})
		}
	}
	var pp portPart
	if t.hasPort() {
		if pp, err = parsePortPart(portS, t); err != nil {
			return nil, err
		}
	}
	n := uint64(len(addrs)) * (uint64(pp.to) - uint64(pp.from) + 1)
	if n > maxExpand {
		return nil, errf("The value of the CIDR parameter of the IP address is invalid")
	}
	keys := make([]Key, 0, n)
	for _, a := range addrs {
		for p := uint32(pp.from); p <= uint32(pp.to); p++ {
			keys = append(keys, Key{Addr: a.from, CIDR: a.cidr, Proto: pp.proto, Port: uint16(p)})
		}
	}
	return keys, nil
}

// FormatKey prints an element as ipset does.
func (s *Set) FormatKey(b *strings.Builder, k Key) {
	if s.typ == BitmapPort {
		b.WriteString(strconv.Itoa(int(k.Port)))
		return
	}
	b.WriteString(addrString(k.Addr))
	if s.typ.hasNet() && k.CIDR < 32 {
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(k.CIDR)))
	}
	if !s.typ.hasPort() {
		return
	}
	b.WriteByte(',')
	b.WriteString(protoName(k.Proto))
	b.WriteByte(':')
	if k.Proto == 1 {
		for _, it := range icmpTypes {
			if it.tc == k.Port {
				b.WriteString(it.name)
				return
			}
		}
		b.WriteString(strconv.Itoa(int(k.Port >> 8)))
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(k.Port & 0xff)))
		return
	}
	b.WriteString(strconv.Itoa(int(k.Port)))
}
