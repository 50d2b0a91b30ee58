package match

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// mark (xt_mark): --mark value[/mask] matches (skb->mark & mask) == value.
// iptables-nft turns it into a native "meta mark" expression, with the same
// semantics.

var markOpts = optTable{
	{name: "mark", id: 0, arg: xt.RequiredArg, flags: optMand | optInvert},
}

// Mark is a configured mark match.
type Mark struct {
	seen   uint32
	Value  uint32
	Mask   uint32
	Invert bool
}

var (
	_ xt.Match         = (*Mark)(nil)
	_ xt.PacketMatcher = (*Mark)(nil)
)

func newMarkSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "mark", Options: markOpts.options(), New: func() xt.Match { return &Mark{} }}
}

// Parse implements xt.Match.
func (m *Mark) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if _, err := markOpts.begin("mark", &m.seen, opt, invert); err != nil {
		return err
	}
	v, mask, err := parseMarkOpt("mark", opt, arg)
	if err != nil {
		return err
	}
	m.Value, m.Mask, m.Invert = v, mask, invert
	return nil
}

// Final implements xt.Match.
func (m *Mark) Final(*xt.ParseContext) error { return markOpts.fcheck("mark", m.seen) }

// Save implements xt.Match.
func (m *Mark) Save(b *strings.Builder) {
	saveNot(b, m.Invert)
	b.WriteString(" --mark " + markString(m.Value, m.Mask))
}

// List implements xt.Match.
func (m *Mark) List(b *strings.Builder, _ bool) {
	b.WriteString(" mark match")
	saveNot(b, m.Invert)
	b.WriteString(" " + markString(m.Value, m.Mask))
}

// Matches implements xt.PacketMatcher.
func (m *Mark) Matches(c *xt.Ctx) bool {
	return (c.P.Mark&m.Mask == m.Value) != m.Invert
}
