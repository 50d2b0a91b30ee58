package match

import (
	"fmt"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// tos (xt_tos revision 1): --tos value[/mask] or a symbolic name matches
// (TOS & mask) == value on the IPv4 TOS byte (IPv6: the traffic class). A
// number without mask uses 0xff; the names of RFC 1349 use mask 0x3f.

var tosOpts = optTable{
	{name: "tos", id: 0, arg: xt.RequiredArg, flags: optMand | optInvert},
}

// tosNames are the symbolic values, in iptables' help order.
var tosNames = []struct {
	name string
	val  uint8
}{
	{"Minimize-Delay", 0x10}, {"Maximize-Throughput", 0x08}, {"Maximize-Reliability", 0x04},
	{"Minimize-Cost", 0x02}, {"Normal-Service", 0x00},
}

// TOS is a configured tos match.
type TOS struct {
	seen   uint32
	Value  uint8
	Mask   uint8
	Invert bool
}

var (
	_ xt.Match         = (*TOS)(nil)
	_ xt.PacketMatcher = (*TOS)(nil)
)

func newTOSSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "tos", Options: tosOpts.options(), New: func() xt.Match { return &TOS{} }}
}

// Parse implements xt.Match.
func (m *TOS) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if _, err := tosOpts.begin("tos", &m.seen, opt, invert); err != nil {
		return err
	}
	v, mask, err := parseTOSValue(arg)
	if err != nil {
		return err
	}
	m.Value, m.Mask, m.Invert = v, mask, invert
	return nil
}

// parseTOSValue is tos_parse_numeric then tos_parse_symbolic: a first number
// that does not parse (or exceeds 255) falls through to the names.
func parseTOSValue(s string) (val, mask uint8, err error) {
	v, rest, ok := xt.ParseUintPrefix(s)
	if ok && v <= 0xff && !strings.HasPrefix(strings.TrimLeft(s, " \t"), "-") {
		mask := uint64(0xff)
		if strings.HasPrefix(rest, "/") {
			var ok2 bool
			mask, rest, ok2 = xt.ParseUintPrefix(rest[1:])
			if !ok2 || mask > 0xff {
				return 0, 0, xt.Errorf("Illegal value: \"%s\"", s)
			}
		}
		if rest != "" {
			return 0, 0, xt.Errorf("Illegal value: \"%s\"", s)
		}
		return uint8(v), uint8(mask), nil
	}
	for _, n := range tosNames {
		if strings.EqualFold(n.name, s) {
			return n.val, 0x3f, nil
		}
	}
	return 0, 0, xt.Errorf("Symbolic name \"%s\" is unknown", s)
}

// Final implements xt.Match.
func (m *TOS) Final(*xt.ParseContext) error { return tosOpts.fcheck("tos", m.seen) }

// Save implements xt.Match.
func (m *TOS) Save(b *strings.Builder) {
	saveNot(b, m.Invert)
	fmt.Fprintf(b, " --tos 0x%02x/0x%02x", m.Value, m.Mask)
}

// List implements xt.Match. iptables glues the value to "tos match"; without
// -n a value with mask 0x3f that has a name is shown by name.
func (m *TOS) List(b *strings.Builder, numeric bool) {
	b.WriteString(" tos match")
	if m.Invert {
		b.WriteString("!")
	}
	if !numeric && m.Mask == 0x3f {
		for _, n := range tosNames {
			if n.val == m.Value {
				b.WriteString(" " + n.name)
				return
			}
		}
	}
	fmt.Fprintf(b, "0x%02x/0x%02x", m.Value, m.Mask)
}

// Matches implements xt.PacketMatcher.
func (m *TOS) Matches(c *xt.Ctx) bool {
	return (c.P.TOS&m.Mask == m.Value) != m.Invert
}
