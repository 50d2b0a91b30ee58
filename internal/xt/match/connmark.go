package match

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// connmark (xt_connmark revision 1): --mark value[/mask] matches
// (ct->mark & mask) == value. A packet without a conntrack entry never
// matches, even with "!" (the kernel returns false before applying the
// inversion). The runtime needs the packet's conntrack entry.

// Connmark is a configured connmark match.
type Connmark struct {
	seen   uint32
	Value  uint32
	Mask   uint32
	Invert bool
}

var _ xt.Match = (*Connmark)(nil)
var _ xt.PacketMatcher = (*Connmark)(nil)

func newConnmarkSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "connmark", Options: markOpts.options(), New: func() xt.Match { return &Connmark{} }}
}

// Parse implements xt.Match.
func (m *Connmark) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if _, err := markOpts.begin("connmark", &m.seen, opt, invert); err != nil {
		return err
	}
	v, mask, err := parseMarkOpt("connmark", opt, arg)
	if err != nil {
		return err
	}
	m.Value, m.Mask, m.Invert = v, mask, invert
	return nil
}

// Final implements xt.Match.
func (m *Connmark) Final(*xt.ParseContext) error { return markOpts.fcheck("connmark", m.seen) }

// Save implements xt.Match.
func (m *Connmark) Save(b *strings.Builder) {
	saveNot(b, m.Invert)
	b.WriteString(" --mark " + markString(m.Value, m.Mask))
}

// List implements xt.Match. iptables prints "connmark match " and then the
// optional "!" and " value": two spaces when not inverted.
func (m *Connmark) List(b *strings.Builder, _ bool) {
	b.WriteString(" connmark match ")
	if m.Invert {
		b.WriteString("!")
	}
	b.WriteString(" " + markString(m.Value, m.Mask))
}

// MatchMark is the test the runtime applies to a tracked packet's ct mark.
func (m *Connmark) MatchMark(ctmark uint32) bool {
	return (ctmark&m.Mask == m.Value) != m.Invert
}

// Matches implements xt.PacketMatcher (connmark_mt): false for a packet
// without a connection, before and regardless of "!".
func (m *Connmark) Matches(c *xt.Ctx) bool {
	if c.CT.Conn == nil {
		return false
	}
	return m.MatchMark(c.CT.Conn.Mark())
}
