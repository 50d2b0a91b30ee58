package match

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// addrtype (xt_addrtype revision 1): --src-type / --dst-type TYPE[,TYPE...]
// match the routing type of the address (LOCAL, UNICAST, BROADCAST, ...),
// optionally looked up only on the incoming (--limit-iface-in) or outgoing
// (--limit-iface-out) interface. The runtime needs the host's routing table
// (the local and broadcast addresses at least).

const (
	atSrc = iota
	atDst
	atLimitIn
	atLimitOut
)

var addrtypeOpts = optTable{
	{name: "src-type", id: atSrc, arg: xt.RequiredArg, flags: optInvert},
	{name: "dst-type", id: atDst, arg: xt.RequiredArg, flags: optInvert},
	{name: "limit-iface-in", id: atLimitIn, arg: xt.NoArg, excl: 1 << atLimitOut},
	{name: "limit-iface-out", id: atLimitOut, arg: xt.NoArg, excl: 1 << atLimitIn},
}

// addrTypeNames are the route types, bit i = 1<<i (RTN_UNSPEC ... RTN_XRESOLVE).
var addrTypeNames = [...]string{"UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST",
	"BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE"}

// Address type bits.
const (
	AddrTypeUnspec uint16 = 1 << iota
	AddrTypeUnicast
	AddrTypeLocal
	AddrTypeBroadcast
	AddrTypeAnycast
	AddrTypeMulticast
	AddrTypeBlackhole
	AddrTypeUnreachable
	AddrTypeProhibit
	AddrTypeThrow
	AddrTypeNAT
	AddrTypeXResolve
)

// AddrType is a configured addrtype match.
type AddrType struct {
	seen              uint32
	Src, Dst          uint16 // type bits; 0 = not given
	InvSrc, InvDst    bool
	LimitIn, LimitOut bool
}

var (
	_ xt.Match        = (*AddrType)(nil)
	_ xt.Checker      = (*AddrType)(nil)
	_ xt.MatchBuilder = (*AddrType)(nil)
)

func newAddrTypeSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "addrtype", Options: addrtypeOpts.options(), New: func() xt.Match { return &AddrType{} }}
}

// parseAddrTypes reads a comma list of types as libxt_addrtype does: each
// word is a case-insensitive prefix of a type name, the first in kernel
// order wins ("loc" is LOCAL, "u" UNSPEC); a bad word before a comma is
// reported with the rest of the list in `...', the last one alone in "...".
func parseAddrTypes(arg string) (uint16, error) {
	var mask uint16
	for rest := arg; ; {
		t, tail, more := strings.Cut(rest, ",")
		bit := -1
		if t != "" {
			for i, n := range addrTypeNames {
				if len(t) <= len(n) && strings.EqualFold(n[:len(t)], t) {
					bit = i
					break
				}
			}
		}
		if bit < 0 {
			if more {
				return 0, xt.Errorf("addrtype: bad type `%s'", rest)
			}
			return 0, xt.Errorf("addrtype: bad type \"%s\"", t)
		}
		mask |= 1 << bit
		if !more {
			return mask, nil
		}
		rest = tail
	}
}

// Parse implements xt.Match.
func (m *AddrType) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	e, err := addrtypeOpts.begin("addrtype", &m.seen, opt, invert)
	if err != nil {
		return err
	}
	switch e.id {
	case atSrc, atDst:
		mask, err := parseAddrTypes(arg)
		if err != nil {
			return err
		}
		if e.id == atSrc {
			m.Src, m.InvSrc = mask, invert
		} else {
			m.Dst, m.InvDst = mask, invert
		}
	case atLimitIn:
		m.LimitIn = true
	case atLimitOut:
		m.LimitOut = true
	}
	return nil
}

// Final implements xt.Match.
func (m *AddrType) Final(*xt.ParseContext) error {
	if m.seen&(1<<atSrc|1<<atDst) == 0 {
		return xt.Errorf("addrtype: you must specify --src-type or --dst-type")
	}
	return addrtypeOpts.fcheck("addrtype", m.seen)
}

func typeList(mask uint16) string {
	var s []string
	for i, n := range addrTypeNames {
		if mask&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	return strings.Join(s, ",")
}

// Save implements xt.Match.
func (m *AddrType) Save(b *strings.Builder) {
	if m.seen&(1<<atSrc) != 0 {
		saveNot(b, m.InvSrc)
		b.WriteString(" --src-type " + typeList(m.Src))
	}
	if m.seen&(1<<atDst) != 0 {
		saveNot(b, m.InvDst)
		b.WriteString(" --dst-type " + typeList(m.Dst))
	}
	if m.LimitIn {
		b.WriteString(" --limit-iface-in")
	}
	if m.LimitOut {
		b.WriteString(" --limit-iface-out")
	}
}

// List implements xt.Match.
func (m *AddrType) List(b *strings.Builder, _ bool) {
	b.WriteString(" ADDRTYPE match")
	if m.seen&(1<<atSrc) != 0 {
		b.WriteString(" src-type ")
		if m.InvSrc {
			b.WriteString("!")
		}
		b.WriteString(typeList(m.Src))
	}
	if m.seen&(1<<atDst) != 0 {
		b.WriteString(" dst-type ")
		if m.InvDst {
			b.WriteString("!")
		}
		b.WriteString(typeList(m.Dst))
	}
	if m.LimitIn {
		b.WriteString(" limit-in")
	}
	if m.LimitOut {
		b.WriteString(" limit-out")
	}
}

// Check implements xt.Checker (addrtype_mt_checkentry_v1).
func (m *AddrType) Check(ctx *xt.CheckContext) error {
	if m.LimitIn && m.LimitOut {
		return xt.EINVAL("addrtype: both incoming and outgoing interface limitation cannot be selected")
	}
	if m.LimitIn && ctx.Hooks&xt.MaskOf(xt.LocalOut, xt.PostRouting) != 0 {
		return xt.EINVAL("addrtype: output interface limitation not valid in PREROUTING and INPUT")
	}
	if m.LimitOut && ctx.Hooks&xt.MaskOf(xt.PreRouting, xt.LocalIn) != 0 {
		return xt.EINVAL("addrtype: input interface limitation not valid in POSTROUTING and OUTPUT")
	}
	if ctx.Family == xt.IPv6 {
		all := m.Src | m.Dst
		if all&AddrTypeBlackhole != 0 {
			return xt.EINVAL("addrtype: ipv6 BLACKHOLE matching not supported")
		}
		if all >= AddrTypeProhibit {
			return xt.EINVAL("addrtype: ipv6 PROHIBIT (THROW, NAT ..) matching not supported")
		}
		if all&AddrTypeBroadcast != 0 {
			return xt.EINVAL("addrtype: ipv6 does not support BROADCAST matching")
		}
	}
	return nil
}

// Route types (RTN_*), the bit numbers of the addrtype masks.
const (
	rtnUnicast   = 1
	rtnLocal     = 2
	rtnBroadcast = 3
	rtnMulticast = 5
)

// atNeedsRoutes are the types that only routes uptables does not know can
// produce (ANYCAST, BLACKHOLE, UNREACHABLE, PROHIBIT, THROW, NAT, XRESOLVE
// entries in the kernel's local table, which an administrator adds by
// hand): Build refuses them rather than never matching in silence.
const atNeedsRoutes = AddrTypeAnycast | AddrTypeBlackhole | AddrTypeUnreachable | AddrTypeProhibit |
	AddrTypeThrow | AddrTypeNAT | AddrTypeXResolve

// rtLocalRoute is one entry of the local routing table (table 255).
type rtLocalRoute struct {
	dst   netip.Prefix
	typ   uint8
	iface string
}

// rtLocalTable is the IPv4 local routing table the kernel derives from the
// host's addresses (fib_add_ifaddr): for every address a LOCAL /32 route;
// for a loopback interface also a LOCAL route for its whole prefix; for a
// prefix shorter than /31 a BROADCAST route for its last address. Routes
// are kept longest prefix first, so the first one containing an address is
// what a lookup finds.
type rtLocalTable struct {
	routes []rtLocalRoute
}

// rtHostAddrs returns env's host addresses, or a lone loopback interface.
func rtHostAddrs(env *xt.Env) []xt.HostAddr {
	if env.LocalAddrs != nil {
		return env.LocalAddrs()
	}
	return []xt.HostAddr{
		{Iface: "lo", Prefix: netip.MustParsePrefix("127.0.0.1/8")},
		{Iface: "lo", Prefix: netip.MustParsePrefix("::1/128")},
	}
}

func newLocalTable(addrs []xt.HostAddr) *rtLocalTable {
	t := &rtLocalTable{}
	for _, h := range addrs {
		a := h.Prefix.Addr().Unmap()
		if !a.Is4() {
			continue
		}
		bits := h.Prefix.Bits()
		t.routes = append(t.routes, rtLocalRoute{netip.PrefixFrom(a, 32), rtnLocal, h.Iface})
		pfx := netip.PrefixFrom(a, bits).Masked()
		if rtZeroNet(pfx.Addr()) || pfx.Addr() == a && bits == 32 {
			continue
		}
		if h.Iface == "lo" {
			t.routes = append(t.routes, rtLocalRoute{pfx, rtnLocal, h.Iface})
		}
		if bits < 31 {
			b := pfx.Addr().As4()
			host := ^uint32(0) >> bits
			b[0] |= byte(host >> 24)
			b[1] |= byte(host >> 16)
			b[2] |= byte(host >> 8)
			b[3] |= byte(host)
			t.routes = append(t.routes, rtLocalRoute{netip.PrefixFrom(netip.AddrFrom4(b), 32), rtnBroadcast, h.Iface})
		}
	}
	sort.SliceStable(t.routes, func(i, j int) bool { return t.routes[i].dst.Bits() > t.routes[j].dst.Bits() })
	return t
}

// rtZeroNet reports whether a is in 0.0.0.0/8.
func rtZeroNet(a netip.Addr) bool { return a.Is4() && a.As4()[0] == 0 }

// addrType is inet_dev_addr_type: 0.0.0.0/8 and 255.255.255.255 are
// BROADCAST and 224.0.0.0/4 MULTICAST whatever the interface; otherwise the
// local table's route decides when it goes through dev (any route when dev
// is ""), and everything else is UNICAST.
func (t *rtLocalTable) addrType(a netip.Addr, dev string) uint8 {
	a = a.Unmap()
	if rtZeroNet(a) || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return rtnBroadcast
	}
	if a.IsMulticast() {
		return rtnMulticast
	}
	for i := range t.routes {
		r := &t.routes[i]
		if r.dst.Contains(a) {
			if dev == "" || dev == r.iface {
				return r.typ
			}
			return rtnUnicast
		}
	}
	return rtnUnicast
}

// Build implements xt.MatchBuilder: it snapshots the local table from
// env.LocalAddrs. Refused: IPv6 (xt_addrtype does a full IPv6 route lookup
// there, which uptables does not model) and the types only hand-made routes
// produce (atNeedsRoutes).
func (m *AddrType) Build(env *xt.Env) (xt.PacketMatcher, error) {
	if env.Family == xt.IPv6 {
		return nil, fmt.Errorf("addrtype: IPv6 address types come from an IPv6 route lookup (rt6), which uptables does not model")
	}
	for _, o := range [2]struct {
		name string
		mask uint16
	}{{"--src-type", m.Src}, {"--dst-type", m.Dst}} {
		if bad := o.mask & atNeedsRoutes; bad != 0 {
			return nil, fmt.Errorf("addrtype: %s %s: only routes added by hand to the kernel's local table have this type, and uptables knows no routes (it derives LOCAL, BROADCAST, MULTICAST and UNICAST from the host's addresses)", o.name, typeList(bad))
		}
	}
	return &addrTypeRuntime{m: m, table: newLocalTable(rtHostAddrs(env))}, nil
}

// addrTypeRuntime is a built addrtype match.
type addrTypeRuntime struct {
	m     *AddrType
	table *rtLocalTable
}

// Matches implements xt.PacketMatcher (addrtype_mt_v1 for IPv4): the source
// type test, then the destination type test, each after its "!"; with
// --limit-iface-in/out the lookup only accepts routes through the packet's
// input/output interface (none known: no restriction).
func (r *addrTypeRuntime) Matches(c *xt.Ctx) bool {
	m, p := r.m, c.P
	dev := ""
	if m.LimitIn {
		dev = p.InIface
	} else if m.LimitOut {
		dev = p.OutIface
	}
	if m.Src != 0 && (m.Src&(1<<r.table.addrType(p.Src, dev)) != 0) == m.InvSrc {
		return false
	}
	if m.Dst != 0 && (m.Dst&(1<<r.table.addrType(p.Dst, dev)) != 0) == m.InvDst {
		return false
	}
	return true
}
