package match

import (
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
	_ xt.Match   = (*AddrType)(nil)
	_ xt.Checker = (*AddrType)(nil)
)

func newAddrTypeSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "addrtype", Options: addrtypeOpts.options(), New: func() xt.Match { return &AddrType{} }}
}

// Parse implements xt.Match.
func (m *AddrType) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	e, err := addrtypeOpts.begin("addrtype", &m.seen, opt, invert)
	if err != nil {
		return err
	}
	switch e.id {
	case atSrc, atDst:
		var mask uint16
		for _, t := range strings.Split(arg, ",") {
			bit := -1
			for i, n := range addrTypeNames {
				if strings.EqualFold(n, t) {
					bit = i
				}
			}
			if bit < 0 {
				return xt.Errorf("addrtype: bad type \"%s\"", t)
			}
			mask |= 1 << bit
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
