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
	v, ok := xt.ParseDSCPClass(arg)
	if !ok {
		return xt.Errorf("Invalid DSCP value `%s'", arg)
	}
	m.DSCP, m.Invert = v, invert
	return nil
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
