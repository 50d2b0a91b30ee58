package match

import (
	"net/netip"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// iprange (xt_iprange revision 1): --src-range / --dst-range A[-B], inclusive,
// compared as unsigned integers in network order. A reversed range is
// accepted (iptables only warns) and never matches.

const (
	iprSrc = iota
	iprDst
)

var iprangeOpts = optTable{
	{name: "src-range", id: iprSrc, arg: xt.RequiredArg, flags: optInvert},
	{name: "dst-range", id: iprDst, arg: xt.RequiredArg, flags: optInvert},
}

// IPRange is a configured iprange match.
type IPRange struct {
	seen uint32
	// Src and Dst are the ranges; HasSrc/HasDst say whether each was given.
	HasSrc, HasDst bool
	SrcMin, SrcMax netip.Addr
	DstMin, DstMax netip.Addr
	InvSrc, InvDst bool
}

var (
	_ xt.Match         = (*IPRange)(nil)
	_ xt.PacketMatcher = (*IPRange)(nil)
)

func newIPRangeSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "iprange", Options: iprangeOpts.options(), New: func() xt.Match { return &IPRange{} }}
}

// Parse implements xt.Match.
func (m *IPRange) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	e, err := iprangeOpts.begin("iprange", &m.seen, opt, invert)
	if err != nil {
		return err
	}
	lo, hi, err := parseIPRange(ctx.Family, opt, arg)
	if err != nil {
		return err
	}
	if e.id == iprSrc {
		m.HasSrc, m.SrcMin, m.SrcMax, m.InvSrc = true, lo, hi, invert
	} else {
		m.HasDst, m.DstMin, m.DstMax, m.InvDst = true, lo, hi, invert
	}
	return nil
}

// parseIPRange parses "A[-B]"; a single address is the range A-A.
func parseIPRange(f xt.Family, opt, arg string) (lo, hi netip.Addr, err error) {
	a, b, two := strings.Cut(arg, "-")
	lo, ok := parseNumericAddr(f, a)
	if !ok {
		return lo, hi, errBadValue("iprange", opt, a)
	}
	if !two {
		return lo, lo, nil
	}
	hi, ok = parseNumericAddr(f, b)
	if !ok {
		return lo, hi, errBadValue("iprange", opt, b)
	}
	return lo, hi, nil
}

// parseNumericAddr is xtables_numeric_to_ipaddr: for IPv4 one to four
// dotted parts of 0-255, missing trailing parts are zero ("10.1" is
// 10.1.0.0); for IPv6 the textual form. No names.
func parseNumericAddr(f xt.Family, s string) (netip.Addr, bool) {
	if f == xt.IPv6 {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Addr{}, false
		}
		return a, true
	}
	a, _, ok := xt.ParseNumericIPv4(s)
	return a, ok
}

// Final implements xt.Match.
func (m *IPRange) Final(*xt.ParseContext) error {
	if !m.HasSrc && !m.HasDst {
		return xt.Errorf("iprange match: You must specify `--src-range' or `--dst-range'")
	}
	return iprangeOpts.fcheck("iprange", m.seen)
}

// Save implements xt.Match.
func (m *IPRange) Save(b *strings.Builder) {
	if m.HasSrc {
		saveNot(b, m.InvSrc)
		b.WriteString(" --src-range " + m.SrcMin.String() + "-" + m.SrcMax.String())
	}
	if m.HasDst {
		saveNot(b, m.InvDst)
		b.WriteString(" --dst-range " + m.DstMin.String() + "-" + m.DstMax.String())
	}
}

// List implements xt.Match.
func (m *IPRange) List(b *strings.Builder, _ bool) {
	if m.HasSrc {
		b.WriteString(" source IP range")
		saveNot(b, m.InvSrc)
		b.WriteString(" " + m.SrcMin.String() + "-" + m.SrcMax.String())
	}
	if m.HasDst {
		b.WriteString(" destination IP range")
		saveNot(b, m.InvDst)
		b.WriteString(" " + m.DstMin.String() + "-" + m.DstMax.String())
	}
}

// Matches implements xt.PacketMatcher: both given ranges must hold (each after
// its own "!"). A packet of the other family never matches a bound.
func (m *IPRange) Matches(c *xt.Ctx) bool {
	if m.HasSrc && inRange(c.P.Src, m.SrcMin, m.SrcMax) == m.InvSrc {
		return false
	}
	if m.HasDst && inRange(c.P.Dst, m.DstMin, m.DstMax) == m.InvDst {
		return false
	}
	return true
}

func inRange(a, lo, hi netip.Addr) bool {
	return a.BitLen() == lo.BitLen() && a.Compare(lo) >= 0 && a.Compare(hi) <= 0
}
