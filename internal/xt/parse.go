package xt

import (
	"net/netip"
	"strconv"
	"strings"
)

type protoEntry struct {
	num     uint8
	name    string
	aliases []string
}

type serviceEntry struct {
	name    string
	port    uint16
	proto   string
	aliases []string
}

// chainProtos is the short list iptables consults before the protocol
// database, both to parse and to print (xtables_chain_protos).
var chainProtos = []struct {
	name string
	num  uint8
}{
	{"tcp", 6}, {"sctp", 132}, {"udp", 17}, {"udplite", 136},
	{"icmp", 1}, {"icmpv6", 58}, {"esp", 50}, {"ah", 51}, {"mh", 135}, {"all", 0},
}

// ParseUint parses an unsigned number as strtoul(s, NULL, 0) does in
// xtables_strtoui: "0x" prefix for hex, a leading "0" for octal, decimal
// otherwise; the whole string must be consumed and the value lie in
// [min, max].
func ParseUint(s string, min, max uint64) (uint64, bool) {
	v, rest, ok := ParseUintPrefix(s)
	if !ok || rest != "" || v < min || v > max {
		return 0, false
	}
	return v, true
}

// ParseUintPrefix parses the longest numeric prefix of s (base detected as
// strtoul with base 0) and returns the rest. ok is false when no digit was
// read or the value overflows 64 bits.
func ParseUintPrefix(s string) (v uint64, rest string, ok bool) {
	// strtoul skips what C's isspace accepts (" \t\n\v\f\r": "\n80"
	// is port 80) and takes a '+'; xtables_strtoui refuses a '-' itself.
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] >= '\t' && s[i] <= '\r') {
		i++
	}
	if i < len(s) && s[i] == '+' {
		i++
	}
	base := uint64(10)
	start := i
	if i+1 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') && i+2 < len(s) && isHex(s[i+2]) {
		base = 16
		i += 2
		start = i
	} else if i < len(s) && s[i] == '0' {
		base = 8
	}
	for i < len(s) {
		d, okd := digitVal(s[i])
		if !okd || d >= base {
			break
		}
		nv := v*base + d
		if nv/base != v && v != 0 || nv < v {
			return 0, s, false
		}
		v = nv
		i++
	}
	if i == start {
		return 0, s, false
	}
	return v, s[i:], true
}

func isHex(c byte) bool {
	_, ok := digitVal(c)
	return ok
}

func digitVal(c byte) (uint64, bool) {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0'), true
	case c >= 'a' && c <= 'f':
		return uint64(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return uint64(c-'A') + 10, true
	}
	return 0, false
}

// ParseProtocol parses a -p value: a number 0-255, "all", or a name
// (case-insensitive, as iptables lower-cases it) from the protocol database.
func ParseProtocol(s string) (uint8, error) {
	if v, ok := ParseUint(s, 0, 255); ok {
		return uint8(v), nil
	}
	l := strings.ToLower(s)
	for _, p := range chainProtos {
		if p.name == l {
			return p.num, nil
		}
	}
	for _, p := range protocolTable {
		if p.name == l {
			return p.num, nil
		}
		for _, a := range p.aliases {
			if a == l {
				return p.num, nil
			}
		}
	}
	return 0, Errorf("unknown protocol \"%s\" specified", s)
}

// ProtoName returns the name iptables prints for a protocol number in -S
// output, or the number when it has no name.
func ProtoName(n uint8) string {
	for _, p := range chainProtos {
		if p.num == n {
			return p.name
		}
	}
	for _, p := range protocolTable {
		if p.num == n {
			return p.name
		}
	}
	return strconv.Itoa(int(n))
}

// ParsePort parses a port number (base as ParseUint, 0-65535) or a service
// name for proto ("tcp", "udp", ...; "" = any protocol), as
// xtables_parse_port. The error text is iptables' own.
func ParsePort(s, proto string) (uint16, error) {
	if v, ok := ParseUint(s, 0, 65535); ok {
		return uint16(v), nil
	}
	if p, ok := ServicePort(s, proto); ok {
		return p, nil
	}
	return 0, Errorf("invalid port/service `%s' specified", s)
}

// ServicePort looks a service name up in the services database.
func ServicePort(name, proto string) (uint16, bool) {
	for _, e := range serviceTable {
		if proto != "" && e.proto != proto {
			continue
		}
		if e.name == name {
			return e.port, true
		}
		for _, a := range e.aliases {
			if a == name {
				return e.port, true
			}
		}
	}
	return 0, false
}

// ServiceName returns the service name for a port (for -L without -n).
func ServiceName(port uint16, proto string) (string, bool) {
	for _, e := range serviceTable {
		if e.port == port && (proto == "" || e.proto == proto) {
			return e.name, true
		}
	}
	return "", false
}

// ParseMarkMask parses "value[/mask]" (each 32-bit, base as ParseUint). A
// missing mask is reported as 0xffffffff with hasMask false.
func ParseMarkMask(s string) (val, mask uint32, hasMask, ok bool) {
	v, rest, ok1 := ParseUintPrefix(s)
	if !ok1 || v > 0xffffffff {
		return 0, 0, false, false
	}
	if rest == "" {
		return uint32(v), 0xffffffff, false, true
	}
	if rest[0] != '/' {
		return 0, 0, false, false
	}
	m, ok2 := ParseUint(rest[1:], 0, 0xffffffff)
	if !ok2 {
		return 0, 0, false, false
	}
	return uint32(v), uint32(m), true, true
}

// PrefixMask returns the netmask with the first bits set, for the family.
func PrefixMask(f Family, bits int) netip.Addr {
	if f == IPv6 {
		var b [16]byte
		for i := 0; i < 16; i++ {
			b[i] = byteMask(bits - 8*i)
		}
		return netip.AddrFrom16(b)
	}
	var b [4]byte
	for i := 0; i < 4; i++ {
		b[i] = byteMask(bits - 8*i)
	}
	return netip.AddrFrom4(b)
}

func byteMask(bits int) byte {
	switch {
	case bits >= 8:
		return 0xff
	case bits <= 0:
		return 0
	}
	return ^byte(0xff >> bits)
}

// MaskLen returns the prefix length of a netmask, or -1 when the mask is not
// contiguous (iptables then prints the dotted mask).
func MaskLen(mask netip.Addr) int {
	b := mask.AsSlice()
	n := 0
	seenZero := false
	for _, x := range b {
		for i := 7; i >= 0; i-- {
			if x&(1<<i) != 0 {
				if seenZero {
					return -1
				}
				n++
			} else {
				seenZero = true
			}
		}
	}
	return n
}

// ApplyMask returns addr & mask.
func ApplyMask(addr, mask netip.Addr) netip.Addr {
	a := addr.AsSlice()
	m := mask.AsSlice()
	if len(a) != len(m) {
		return addr
	}
	for i := range a {
		a[i] &= m[i]
	}
	r, _ := netip.AddrFromSlice(a)
	return r
}

// ParseNumericIPv4 reads an IPv4 address as iptables does before any name
// lookup (xtables_numeric_to_ipaddr): up to four dot-separated parts, each
// a number 0-255 in strtoul's base 0 (so "010" is 8 and "0x0a" is 10), the
// missing trailing parts zero ("10.1" is 10.1.0.0). Measured with iptables
// 1.8.9: -s 10.0.0.010 lists as 10.0.0.8/32, -s 0x0a.1 as 10.1.0.0/32.
// parts reports how many parts were given.
func ParseNumericIPv4(s string) (a netip.Addr, parts int, ok bool) {
	var b [4]byte
	for s != "" || parts == 0 {
		if parts == 4 {
			return netip.Addr{}, 0, false
		}
		// each part goes through xtables_strtoui, so blanks and a '+'
		// before it are fine (measured: -s "1.+2. 3.4" is 1.2.3.4)
		p, rest, more := strings.Cut(s, ".")
		if p == "" {
			return netip.Addr{}, 0, false
		}
		v, okv := ParseUint(p, 0, 255)
		if !okv {
			return netip.Addr{}, 0, false
		}
		b[parts] = byte(v)
		parts++
		s = rest
		if !more {
			break
		}
		if s == "" {
			return netip.Addr{}, 0, false
		}
	}
	return netip.AddrFrom4(b), parts, true
}

// ParseAddr parses a numeric address of the family. Hostnames are refused:
// uptables never resolves names while parsing rules (iptables would ask DNS,
// which makes a rule's meaning depend on the network at load time). Where
// iptables' own numeric parser fails it asks the resolver, which still
// takes the inet_aton forms ("10.256" is 10.0.1.0, measured), so those are
// accepted here too.
func ParseAddr(f Family, s string) (netip.Addr, error) {
	if f == IPv4 {
		if a, _, ok := ParseNumericIPv4(s); ok {
			return a, nil
		}
		if a, ok := parseInetAton(s); ok {
			return a, nil
		}
	} else if a, err := netip.ParseAddr(s); err == nil && a.Is6() && !a.Is4In6() && a.Zone() == "" {
		return a, nil
	}
	return netip.Addr{}, &ParamError{
		Msg:  "host/network `" + s + "' not found",
		Hint: "uptables does not resolve host names in rules; give a numeric address",
	}
}

// ParseHost parses an option of libxtables' "host" and "hostmask" types
// (recent --mask, conntrack --ctorigsrc ...), which go straight to
// getaddrinfo: inet_aton's forms for IPv4 ("16" is 0.0.0.16, "10.1" is
// 10.0.0.1), never a name lookup here. A failure is reported as
// getaddrinfo's "Name or service not known" (iptables says "Temporary
// failure in name resolution" instead when it tried DNS for a name).
func ParseHost(f Family, s string) (netip.Addr, error) {
	a, ok := netip.Addr{}, false
	if f == IPv4 {
		a, ok = parseInetAton(s)
	} else {
		var err error
		a, err = ParseAddr(f, s)
		ok = err == nil
	}
	if !ok {
		return netip.Addr{}, &ParamError{
			Msg:  "getaddrinfo: Name or service not known\n",
			Hint: "uptables does not resolve host names in rules; give a numeric address",
		}
	}
	return a, nil
}

// parseInetAton accepts the shorter dotted forms inet_aton does ("10.1" =
// 10.0.0.1), which iptables passes through.
func parseInetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	var vals []uint64
	for _, p := range parts {
		v, ok := ParseUint(p, 0, 0xffffffff)
		if !ok || strings.HasPrefix(p, "+") || strings.HasPrefix(p, " ") {
			return netip.Addr{}, false
		}
		vals = append(vals, v)
	}
	var n uint64
	last := len(vals) - 1
	for i := 0; i < last; i++ {
		if vals[i] > 255 {
			return netip.Addr{}, false
		}
		n |= vals[i] << (24 - 8*uint(i))
	}
	if vals[last] >= 1<<(8*uint(4-last)) {
		return netip.Addr{}, false
	}
	n |= vals[last]
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// ParseAddrMask parses "addr[/mask]" where mask is a prefix length or, for
// IPv4, a dotted netmask. The returned address is already masked, as the
// kernel stores it. A missing mask means a host (/32 or /128).
func ParseAddrMask(f Family, s string) (addr, mask netip.Addr, err error) {
	bits := 32
	if f == IPv6 {
		bits = 128
	}
	// the mask is what follows the last '/' (xtables_ipparse_any uses
	// strrchr: "1.2.3.4/8/16" is host "1.2.3.4/8" with mask 16)
	as, ms, hasMask := s, "", false
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		as, ms, hasMask = s[:i], s[i+1:], true
	}
	if hasMask {
		if v, ok := ParseUint(ms, 0, uint64(bits)); ok && !strings.Contains(ms, ".") {
			mask = PrefixMask(f, int(v))
		} else if f == IPv4 && strings.Contains(ms, ".") {
			m, parts, ok := ParseNumericIPv4(ms)
			if !ok || parts != 4 {
				return netip.Addr{}, netip.Addr{}, Errorf("invalid mask `%s' specified", ms)
			}
			mask = m
		} else {
			return netip.Addr{}, netip.Addr{}, Errorf("invalid mask `%s' specified", ms)
		}
	} else {
		mask = PrefixMask(f, bits)
	}
	a, err := ParseAddr(f, as)
	if err != nil {
		return netip.Addr{}, netip.Addr{}, err
	}
	return ApplyMask(a, mask), mask, nil
}

// FormatAddrMask prints an address with its mask as iptables-save does:
// "a.b.c.d/len", or "a.b.c.d/m.m.m.m" for a non-contiguous mask.
func FormatAddrMask(addr, mask netip.Addr) string {
	if n := MaskLen(mask); n >= 0 {
		return addr.String() + "/" + strconv.Itoa(n)
	}
	return addr.String() + "/" + mask.String()
}
