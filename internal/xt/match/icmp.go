package match

import (
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/xt"
)

// ICMP is the icmp match (`-p icmp --icmp-type T[/C]|NAME`), xt_icmp: the
// packet's type must equal Type and its code lie in [CodeMin, CodeMax];
// Type 255 ("any") matches every ICMP packet.
type ICMP struct {
	Type             uint8
	CodeMin, CodeMax uint8
	Invert           bool

	flags uint32
}

// psICMPName is one entry of iptables' ICMP type table; the order matters
// for prefix matching and for which name -L prints.
type psICMPName struct {
	name             string
	typ              uint8
	codeMin, codeMax uint8
}

var psICMPNames = [...]psICMPName{
	{"any", 0xFF, 0, 0xFF},
	{"echo-reply", 0, 0, 0xFF},
	{"pong", 0, 0, 0xFF},
	{"destination-unreachable", 3, 0, 0xFF},
	{"network-unreachable", 3, 0, 0},
	{"host-unreachable", 3, 1, 1},
	{"protocol-unreachable", 3, 2, 2},
	{"port-unreachable", 3, 3, 3},
	{"fragmentation-needed", 3, 4, 4},
	{"source-route-failed", 3, 5, 5},
	{"network-unknown", 3, 6, 6},
	{"host-unknown", 3, 7, 7},
	{"network-prohibited", 3, 9, 9},
	{"host-prohibited", 3, 10, 10},
	{"TOS-network-unreachable", 3, 11, 11},
	{"TOS-host-unreachable", 3, 12, 12},
	{"communication-prohibited", 3, 13, 13},
	{"host-precedence-violation", 3, 14, 14},
	{"precedence-cutoff", 3, 15, 15},
	{"source-quench", 4, 0, 0xFF},
	{"redirect", 5, 0, 0xFF},
	{"network-redirect", 5, 0, 0},
	{"host-redirect", 5, 1, 1},
	{"TOS-network-redirect", 5, 2, 2},
	{"TOS-host-redirect", 5, 3, 3},
	{"echo-request", 8, 0, 0xFF},
	{"ping", 8, 0, 0xFF},
	{"router-advertisement", 9, 0, 0xFF},
	{"router-solicitation", 10, 0, 0xFF},
	{"time-exceeded", 11, 0, 0xFF},
	{"ttl-exceeded", 11, 0, 0xFF},
	{"ttl-zero-during-transit", 11, 0, 0},
	{"ttl-zero-during-reassembly", 11, 1, 1},
	{"parameter-problem", 12, 0, 0xFF},
	{"ip-header-bad", 12, 0, 0},
	{"required-option-missing", 12, 1, 1},
	{"timestamp-request", 13, 0, 0xFF},
	{"timestamp-reply", 14, 0, 0xFF},
	{"address-mask-request", 17, 0, 0xFF},
	{"address-mask-reply", 18, 0, 0xFF},
}

var psICMPOpts = &psTable{ext: "icmp", entries: []psOpt{
	{name: "icmp-type", id: 0, arg: xt.RequiredArg, invert: true, mand: true},
}}

var _ xt.Match = (*ICMP)(nil)
var _ xt.Checker = (*ICMP)(nil)
var _ xt.PacketMatcher = (*ICMP)(nil)

func newICMPSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name:    "icmp",
		Family:  xt.IPv4,
		Options: psICMPOpts.options(),
		New:     func() xt.Match { return &ICMP{CodeMax: 0xFF} },
	}
}

// psParseICMPType parses a type name (any unambiguous case-insensitive
// prefix), or "type[/code]" numerically.
func psParseICMPType(s string) (typ, lo, hi uint8, err error) {
	match := -1
	for i, n := range psICMPNames {
		if len(s) <= len(n.name) && strings.EqualFold(n.name[:len(s)], s) {
			if match >= 0 {
				return 0, 0, 0, xt.Errorf("Ambiguous ICMP type `%s': `%s' or `%s'?", s, psICMPNames[match].name, n.name)
			}
			match = i
		}
	}
	if match >= 0 {
		n := psICMPNames[match]
		return n.typ, n.codeMin, n.codeMax, nil
	}
	v, rest, ok := xt.ParseUintPrefix(s)
	if !ok || v > 255 {
		return 0, 0, 0, xt.Errorf("Unknown ICMP type `%s'", s)
	}
	typ, lo, hi = uint8(v), 0, 0xFF
	if rest != "" && rest[0] == '/' {
		c, r2, ok := xt.ParseUintPrefix(rest[1:])
		if !ok || c > 255 {
			return 0, 0, 0, xt.Errorf("Unknown ICMP code `%s'", s)
		}
		lo, hi, rest = uint8(c), uint8(c), r2
	}
	if rest != "" {
		return 0, 0, 0, xt.Errorf("unknown character %c", rest[0])
	}
	return typ, lo, hi, nil
}

// Parse implements xt.Match.
func (m *ICMP) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := psICMPOpts.begin(m.flags, opt, invert)
	if err != nil {
		return err
	}
	t, lo, hi, err := psParseICMPType(arg)
	if err != nil {
		return err
	}
	m.Type, m.CodeMin, m.CodeMax, m.Invert = t, lo, hi, invert
	m.flags |= 1 << e.id
	return nil
}

// Final implements xt.Match (--icmp-type is mandatory).
func (m *ICMP) Final(ctx *xt.ParseContext) error {
	return psICMPOpts.fcheck(m.flags)
}

// Check implements xt.Checker: xt_icmp is registered for protocol icmp.
func (m *ICMP) Check(ctx *xt.CheckContext) error {
	if ctx.Proto != 1 || ctx.InvProto {
		return xt.EINVAL("xt_icmp: only valid for protocol 1")
	}
	return nil
}

// Save implements xt.Match: numeric, "any" for type 255 whatever the codes,
// the code only when it is not the full 0-255 range.
func (m *ICMP) Save(b *strings.Builder) {
	psInv(b, m.Invert)
	if m.Type == 0xFF {
		b.WriteString(" --icmp-type any")
		return
	}
	b.WriteString(" --icmp-type ")
	b.WriteString(strconv.Itoa(int(m.Type)))
	if m.CodeMin != 0 || m.CodeMax != 0xFF {
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(m.CodeMin)))
	}
}

// List implements xt.Match. Without -n the first table name with exactly
// this type and code range is printed; otherwise "icmptype 8" (iptables
// prints no space after "icmp" there) or "icmp !type 8".
func (m *ICMP) List(b *strings.Builder, numeric bool) {
	b.WriteString(" icmp")
	if !numeric {
		for _, n := range psICMPNames {
			if n.typ == m.Type && n.codeMin == m.CodeMin && n.codeMax == m.CodeMax {
				b.WriteByte(' ')
				if m.Invert {
					b.WriteByte('!')
				}
				b.WriteString(n.name)
				return
			}
		}
	}
	if m.Invert {
		b.WriteString(" !")
	}
	b.WriteString("type ")
	b.WriteString(strconv.Itoa(int(m.Type)))
	if m.CodeMin == m.CodeMax {
		b.WriteString(" code ")
		b.WriteString(strconv.Itoa(int(m.CodeMin)))
	} else if m.CodeMin != 0 || m.CodeMax != 0xFF {
		b.WriteString(" codes ")
		b.WriteString(strconv.Itoa(int(m.CodeMin)))
		b.WriteByte('-')
		b.WriteString(strconv.Itoa(int(m.CodeMax)))
	}
}

// Matches implements xt.PacketMatcher (xt_icmp, which iptables-nft keeps as
// an xt match): a non-first fragment does not match, a header shorter than
// the 8 bytes of struct icmphdr hot-drops, type 255 ("any") matches every
// type and code, otherwise the type must be equal and the code in range;
// "!" negates the result.
func (m *ICMP) Matches(c *xt.Ctx) bool {
	l4, ok := rtXTHeader(c, header.ICMPv4MinLen, false)
	if !ok {
		return false
	}
	hit := m.Type == 0xFF || l4[0] == m.Type && l4[1] >= m.CodeMin && l4[1] <= m.CodeMax
	return hit != m.Invert
}
