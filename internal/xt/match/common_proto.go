package match

// Shared helpers of the protocol and state matches (tcp, udp, icmp,
// multiport, state, conntrack, connlimit, recent, limit, hashlimit, length,
// ttl): an emulation of iptables' option framework (xtopt) with its exact
// error texts, the value parsers those extensions use, and port ranges.

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// Omitter is implemented by matches whose nft translation can leave nothing
// in the kernel rule (tcp/udp with only inverted full port ranges or an empty
// flag mask): iptables-nft then prints the rule without the `-m NAME` block
// at all, and the match constrains nothing. The grammar should drop the match
// from -S/-L output (and the engine may skip it) when Omitted is true.
type Omitter interface {
	Omitted() bool
}

// psOpt mirrors one entry of an xtopt option table. Aliases are separate
// entries with the same id; messages always name the first entry of an id.
type psOpt struct {
	name   string
	id     uint
	arg    xt.ArgKind
	extra  int
	invert bool   // XTOPT_INVERT: "!" allowed
	mand   bool   // XTOPT_MAND: must be given
	multi  bool   // XTOPT_MULTI: may be repeated
	excl   uint32 // ids that may not be combined with this one
	also   uint32 // ids this one needs
}

// psTable is the option table of one extension.
type psTable struct {
	ext     string // name used in messages ("udp", "connlimit")
	entries []psOpt
}

// options lists the long options for the registry (all names, aliases too).
func (t *psTable) options() []xt.Option {
	out := make([]xt.Option, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, xt.Option{Name: e.name, Arg: e.arg, Extra: e.extra})
	}
	return out
}

// lookup finds the entry for an option name as given by the user.
func (t *psTable) lookup(name string) *psOpt {
	for i := range t.entries {
		if t.entries[i].name == name {
			return &t.entries[i]
		}
	}
	return nil
}

// byID returns the first entry with the id (its canonical name).
func (t *psTable) byID(id uint) *psOpt {
	for i := range t.entries {
		if t.entries[i].id == id {
			return &t.entries[i]
		}
	}
	return nil
}

// begin performs xtables_option_parse's generic checks for one occurrence
// of an option: repetition and inversion. It returns the canonical entry;
// the caller marks the id in flags once its value parsed.
func (t *psTable) begin(flags uint32, name string, invert bool) (*psOpt, error) {
	e := t.lookup(name)
	if e == nil {
		return nil, xt.Errorf("unknown option \"--%s\"", name)
	}
	c := t.byID(e.id)
	bit := uint32(1) << c.id
	if (!c.multi || c.excl&bit != 0) && flags&bit != 0 {
		return nil, xt.Errorf("%s: option \"--%s\" can only be used once.\n", t.ext, c.name)
	}
	if invert && !c.invert {
		return nil, xt.Errorf("%s: option \"--%s\" cannot be inverted.\n", t.ext, c.name)
	}
	return c, nil
}

// fcheck is xtables_options_fcheck: for each entry in table order, the
// mandatory check, then "also requires" and "cannot be used together" in id
// order. It runs after the extension's own final check, as in iptables.
func (t *psTable) fcheck(flags uint32) error {
	for _, e := range t.entries {
		bit := uint32(1) << e.id
		if e.mand && flags&bit == 0 {
			return xt.Errorf("%s: option \"--%s\" must be specified\n", t.ext, e.name)
		}
		if flags&bit == 0 {
			continue
		}
		for i := uint(0); i < 32; i++ {
			if i == e.id {
				continue
			}
			ib := uint32(1) << i
			if e.also&ib != 0 && flags&ib == 0 {
				return xt.Errorf("%s: option \"--%s\" also requires \"--%s\".\n", t.ext, e.name, t.byID(i).name)
			}
			if e.excl&ib != 0 && flags&ib != 0 {
				return xt.Errorf("%s: option \"--%s\" cannot be used together with \"--%s\".\n", t.ext, e.name, t.byID(i).name)
			}
		}
	}
	return nil
}

// badValue is xtopt's error for an integer option out of range.
func (t *psTable) badValue(e *psOpt, min, max uint64) error {
	return xt.Errorf("%s: bad value for option \"--%s\", or out of range (%d-%d).\n", t.ext, e.name, min, max)
}

// parseUintOpt parses an XTTYPE_UINT* argument (strtoul base 0, no sign).
func (t *psTable) parseUintOpt(e *psOpt, s string, min, max uint64) (uint64, error) {
	v, ok := xt.ParseUint(s, min, max)
	if !ok {
		return 0, t.badValue(e, min, max)
	}
	return v, nil
}

// parseUintRange parses an XTTYPE_UINT16RC/UINT32RC argument: "a", "a:b",
// ":b" (0:b), "a:" (a:max), "" (0), ":" (0:max). n is the number of
// components given (1 or 2). Reversed ranges are accepted, as iptables does.
func (t *psTable) parseUintRange(e *psOpt, s string, max uint64) (lo, hi uint64, n int, err error) {
	rest := s
	var vals [2]uint64
	for {
		if n == 2 {
			return 0, 0, 0, xt.Errorf("%s: Too many components for option \"--%s\" (max: 2)\n", t.ext, e.name)
		}
		if rest == "" || rest[0] == ':' {
			if n == 1 {
				vals[n] = max
			}
		} else {
			v, r, ok := xt.ParseUintPrefix(rest)
			if !ok || v > max {
				return 0, 0, 0, xt.Errorf("%s: bad value for option \"--%s\" near \"%s\", or out of range (0-%d).\n", t.ext, e.name, rest, max)
			}
			if r != "" && r[0] != ':' {
				return 0, 0, 0, xt.Errorf("%s: Argument to \"--%s\" has unexpected characters near \"%s\".\n", t.ext, e.name, r)
			}
			vals[n] = v
			rest = r
		}
		n++
		if rest == "" {
			break
		}
		rest = rest[1:] // the ':'
	}
	if n == 1 {
		return vals[0], vals[0], 1, nil
	}
	return vals[0], vals[1], 2, nil
}

// PortRange is an inclusive range of ports as the kernel stores it.
type PortRange struct {
	Min, Max uint16
}

// psFullPorts is the range that matches every port.
var psFullPorts = PortRange{0, 65535}

// Full reports whether the range covers every port.
func (r PortRange) Full() bool { return r.Min == 0 && r.Max == 65535 }

// Contains reports whether p lies in the range.
func (r PortRange) Contains(p uint16) bool { return p >= r.Min && p <= r.Max }

// appendSave prints the range as iptables-save does: "a" when Min == Max,
// "a:b" otherwise.
func (r PortRange) appendSave(b *strings.Builder) {
	b.WriteString(strconv.Itoa(int(r.Min)))
	if r.Min != r.Max {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(int(r.Max)))
	}
}

// psPortByName emulates xtables_getportbyname (getaddrinfo on the service
// string): decimal digits as glibc's strtoul reads them, truncated through
// an int to 16 bits (70000 is 4464, 4294967296 is 0, values that are
// negative as an int fail), else a service name of any protocol.
func psPortByName(s string) (uint16, bool) {
	if n, ok := psServiceNum(s); ok {
		if n < 0 {
			return 0, false
		}
		return uint16(n), true
	}
	return xt.ServicePort(s, "")
}

// psServiceNum reads s as getaddrinfo reads a numeric service: strtoul
// base 10 over the whole string, then stored in an int. ok is false when s
// is not entirely a number (so it is a service name).
func psServiceNum(s string) (int32, bool) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] >= '\t' && s[i] <= '\r') {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var v uint64
	overflow := false
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		d := uint64(s[i] - '0')
		if v > (^uint64(0)-d)/10 {
			overflow = true
		}
		v = v*10 + d
		i++
	}
	if i == start || i != len(s) {
		return 0, false
	}
	if overflow {
		v = ^uint64(0)
	} else if neg {
		v = -v
	}
	return int32(uint32(v)), true
}

// parsePortRC parses an XTTYPE_PORTRC argument (udp ports, conntrack
// ports): up to two ':'-separated components, an empty first one is 0 and an
// empty second one 65535; no min <= max check.
func (t *psTable) parsePortRC(e *psOpt, s string) (PortRange, error) {
	parts := strings.Split(s, ":")
	if len(parts) > 2 {
		return PortRange{}, xt.Errorf("%s: Too many components for option \"--%s\" (max: 2)\n", t.ext, e.name)
	}
	var v [2]uint16
	for i, p := range parts {
		if p == "" {
			if i == 1 {
				v[i] = 65535
			}
			continue
		}
		n, ok := psPortByName(p)
		if !ok {
			return PortRange{}, xt.Errorf("Port \"%s\" does not resolve to anything.\n", p)
		}
		v[i] = n
	}
	if len(parts) == 1 {
		return PortRange{v[0], v[0]}, nil
	}
	return PortRange{v[0], v[1]}, nil
}

// psPlenMask parses an XTTYPE_PLENMASK argument (connlimit --mask,
// the mask part of conntrack addresses): a prefix length 0..max, else a
// numeric address used as a netmask. A non-contiguous mask (including
// "33", which inet_aton reads as 0.0.0.33) gives -1: iptables stores prefix
// length 255 then, which connlimit and conntrack turn into the all-ones
// mask and the kernel refuses for hashlimit. ok is false when neither form
// parses.
func psPlenMaskRaw(f xt.Family, s string) (int, bool) {
	bits := 32
	if f == xt.IPv6 {
		bits = 128
	}
	if v, ok := xt.ParseUint(s, 0, uint64(bits)); ok {
		return int(v), true
	}
	// otherwise a mask as getaddrinfo reads it, inet_aton's forms
	// (measured: "255.255.0" is /16, " 40" is refused)
	a, err := xt.ParseHost(f, s)
	if err != nil {
		return 0, false
	}
	return xt.MaskLen(a), true
}

// psPlenMask is psPlenMaskRaw with a non-contiguous mask read as all ones.
func psPlenMask(f xt.Family, s string) (int, bool) {
	n, ok := psPlenMaskRaw(f, s)
	if ok && n < 0 {
		n = psFamilyBits(f)
	}
	return n, ok
}

// psFamilyBits is the address length of the family in bits.
func psFamilyBits(f xt.Family) int {
	if f == xt.IPv6 {
		return 128
	}
	return 32
}

// parseHostMask parses an XTTYPE_HOSTMASK argument: an address as
// getaddrinfo reads it (xt.ParseHost: "10.1" is 10.0.0.1) with an optional
// "/mask" after the first '/' (plen or netmask, see psPlenMask). The
// address is kept as given (not masked), as the conntrack match stores it.
func (t *psTable) parseHostMask(e *psOpt, f xt.Family, s string) (addr netip.Addr, plen int, err error) {
	as, ms, has := strings.Cut(s, "/")
	addr, err = xt.ParseHost(f, as)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	plen = psFamilyBits(f)
	if has {
		n, ok := psPlenMask(f, ms)
		if !ok {
			return netip.Addr{}, 0, xt.Errorf("%s: bad value for option \"--%s\", neither a valid network mask nor valid CIDR (0-%d).\n", t.ext, e.name, psFamilyBits(f))
		}
		plen = n
	}
	return addr, plen, nil
}

// psInv writes " !" when inv is set (the save form of a negation).
func psInv(b *strings.Builder, inv bool) {
	if inv {
		b.WriteString(" !")
	}
}

// psPortName returns the service name iptables -L prints for a port of the
// protocol (getservbyport), or the number.
func psPortName(p uint16, proto string, numeric bool) string {
	if !numeric {
		if n, ok := xt.ServiceName(p, proto); ok {
			return n
		}
	}
	return strconv.Itoa(int(p))
}

// psUnknownOpt is returned when the grammar hands an option the extension
// does not know (a grammar bug, or a name from another revision).
func psUnknownOpt(opt string) error {
	return xt.Errorf("unknown option \"--%s\"", opt)
}

// nativePorts compares the ports the way iptables-nft's native tcp/udp
// payload expressions do: a full range emits no test; a port whose bytes
// are missing from l4 makes the rule not match, "!" included.
func nativePorts(l4 []byte, src PortRange, invSrc bool, dst PortRange, invDst bool) bool {
	if !src.Full() {
		v, ok := rtBE16(l4, 0)
		if !ok || src.Contains(v) == invSrc {
			return false
		}
	}
	if !dst.Full() {
		v, ok := rtBE16(l4, 2)
		if !ok || dst.Contains(v) == invDst {
			return false
		}
	}
	return true
}
