package match

import (
	"fmt"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// mac (xt_mac): --mac-source XX:XX:XX:XX:XX:XX matches the Ethernet source
// address. The kernel allows it in PREROUTING, INPUT and FORWARD only, and a
// packet without an Ethernet header never matches, even with "!".

var macOpts = optTable{
	{name: "mac-source", id: 0, arg: xt.RequiredArg, flags: optMand | optInvert},
}

// MAC is a configured mac match.
type MAC struct {
	seen   uint32
	Addr   [6]byte
	Invert bool
}

var (
	_ xt.Match         = (*MAC)(nil)
	_ xt.Checker       = (*MAC)(nil)
	_ xt.PacketMatcher = (*MAC)(nil)
)

func newMACSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "mac", Options: macOpts.options(), New: func() xt.Match { return &MAC{} }}
}

// Parse implements xt.Match.
func (m *MAC) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if _, err := macOpts.begin("mac", &m.seen, opt, invert); err != nil {
		return err
	}
	a, ok := parseMAC(arg)
	if !ok {
		return xt.Errorf("Invalid MAC address specified.")
	}
	m.Addr, m.Invert = a, invert
	return nil
}

// parseMAC reads six ':'-separated groups of at most two hex digits (an
// empty group is 0, as strtol reads it).
func parseMAC(s string) ([6]byte, bool) {
	var a [6]byte
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return a, false
	}
	for i, p := range parts {
		if len(p) > 2 {
			return a, false
		}
		var v byte
		for j := 0; j < len(p); j++ {
			c := p[j]
			switch {
			case c >= '0' && c <= '9':
				v = v*16 + c - '0'
			case c >= 'a' && c <= 'f':
				v = v*16 + c - 'a' + 10
			case c >= 'A' && c <= 'F':
				v = v*16 + c - 'A' + 10
			default:
				return a, false
			}
		}
		a[i] = v
	}
	return a, true
}

func (m *MAC) addr() string {
	a := m.Addr
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3], a[4], a[5])
}

// Final implements xt.Match.
func (m *MAC) Final(*xt.ParseContext) error { return macOpts.fcheck("mac", m.seen) }

// Save implements xt.Match.
func (m *MAC) Save(b *strings.Builder) {
	saveNot(b, m.Invert)
	b.WriteString(" --mac-source " + m.addr())
}

// List implements xt.Match.
func (m *MAC) List(b *strings.Builder, _ bool) {
	b.WriteString(" MAC")
	saveNot(b, m.Invert)
	b.WriteString(" " + m.addr())
}

// Check implements xt.Checker.
func (m *MAC) Check(ctx *xt.CheckContext) error {
	if !ctx.Hooks.Only(hooksWithIn) {
		return xt.EINVAL("mac match: only valid in PREROUTING, INPUT and FORWARD")
	}
	return nil
}

// Matches implements xt.PacketMatcher. p.Link must hold the Ethernet header
// (destination, source, type: 14 bytes); without it the match fails.
func (m *MAC) Matches(c *xt.Ctx) bool {
	l := c.P.Link
	if len(l) < 14 {
		return false
	}
	eq := [6]byte(l[6:12]) == m.Addr
	return eq != m.Invert
}
