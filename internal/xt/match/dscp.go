package match

import (
	"fmt"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// dscp (xt_dscp): --dscp N (0-63) or --dscp-class NAME matches the upper six
// bits of the TOS byte (IPv6: traffic class).

const (
	dscpValue = iota
	dscpClass
)

var dscpOpts = optTable{
	{name: "dscp", id: dscpValue, arg: xt.RequiredArg, flags: optInvert, excl: 1 << dscpClass},
	{name: "dscp-class", id: dscpClass, arg: xt.RequiredArg, flags: optInvert, excl: 1 << dscpValue},
}

// dscpClasses are the DiffServ class names iptables knows (case-insensitive).
var dscpClasses = []struct {
	name string
	val  uint8
}{
	{"CS0", 0x00}, {"CS1", 0x08}, {"CS2", 0x10}, {"CS3", 0x18}, {"CS4", 0x20}, {"CS5", 0x28},
	{"CS6", 0x30}, {"CS7", 0x38}, {"BE", 0x00}, {"AF11", 0x0a}, {"AF12", 0x0c}, {"AF13", 0x0e},
	{"AF21", 0x12}, {"AF22", 0x14}, {"AF23", 0x16}, {"AF31", 0x1a}, {"AF32", 0x1c}, {"AF33", 0x1e},
	{"AF41", 0x22}, {"AF42", 0x24}, {"AF43", 0x26}, {"EF", 0x2e},
}

// DSCP is a configured dscp match.
type DSCP struct {
	seen   uint32
	DSCP   uint8
	Invert bool
}

var (
	_ xt.Match         = (*DSCP)(nil)
	_ xt.PacketMatcher = (*DSCP)(nil)
)

func newDSCPSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "dscp", Options: dscpOpts.options(), New: func() xt.Match { return &DSCP{} }}
}

// Parse implements xt.Match.
func (m *DSCP) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	e, err := dscpOpts.begin("dscp", &m.seen, opt, invert)
	if err != nil {
		return err
	}
	if e.id == dscpValue {
		v, err := parseUintOpt("dscp", opt, arg, 0, 63)
		if err != nil {
			return err
		}
		m.DSCP, m.Invert = uint8(v), invert
		return nil
	}
	for _, c := range dscpClasses {
		if strings.EqualFold(c.name, arg) {
			m.DSCP, m.Invert = c.val, invert
			return nil
		}
	}
	return xt.Errorf("Invalid DSCP value `%s'", arg)
}

// Final implements xt.Match.
func (m *DSCP) Final(*xt.ParseContext) error {
	if m.seen == 0 {
		return xt.Errorf("DSCP match: Parameter --dscp is required")
	}
	return dscpOpts.fcheck("dscp", m.seen)
}

// Save implements xt.Match: a class is saved as its value.
func (m *DSCP) Save(b *strings.Builder) {
	saveNot(b, m.Invert)
	fmt.Fprintf(b, " --dscp 0x%02x", m.DSCP)
}

// List implements xt.Match.
func (m *DSCP) List(b *strings.Builder, _ bool) {
	b.WriteString(" DSCP match ")
	if m.Invert {
		b.WriteString("!")
	}
	fmt.Fprintf(b, "0x%02x", m.DSCP)
}

// Matches implements xt.PacketMatcher.
func (m *DSCP) Matches(c *xt.Ctx) bool {
	return (c.P.TOS>>2 == m.DSCP) != m.Invert
}
