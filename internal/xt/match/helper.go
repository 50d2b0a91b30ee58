package match

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// helper (xt_helper): --helper NAME matches packets of connections (or their
// expectations' masters) handled by the conntrack helper NAME. The kernel
// field holds 30 bytes, so iptables keeps the first 29 characters. The
// runtime needs the conntrack entry's helper name.

const helperMaxLen = 29

var helperOpts = optTable{
	{name: "helper", id: 0, arg: xt.RequiredArg, flags: optMand | optInvert},
}

// Helper is a configured helper match.
type Helper struct {
	seen   uint32
	Name   string
	Invert bool
}

var _ xt.Match = (*Helper)(nil)
var _ xt.PacketMatcher = (*Helper)(nil)

func newHelperSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "helper", Options: helperOpts.options(), New: func() xt.Match { return &Helper{} }}
}

// Parse implements xt.Match.
func (m *Helper) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if _, err := helperOpts.begin("helper", &m.seen, opt, invert); err != nil {
		return err
	}
	if len(arg) > helperMaxLen {
		arg = arg[:helperMaxLen]
	}
	m.Name, m.Invert = arg, invert
	return nil
}

// Final implements xt.Match.
func (m *Helper) Final(*xt.ParseContext) error { return helperOpts.fcheck("helper", m.seen) }

// Save implements xt.Match.
func (m *Helper) Save(b *strings.Builder) {
	saveNot(b, m.Invert)
	b.WriteString(" --helper ")
	xt.SaveString(b, m.Name)
}

// List implements xt.Match: the name is always in double quotes, unescaped.
func (m *Helper) List(b *strings.Builder, _ bool) {
	b.WriteString(" helper match")
	saveNot(b, m.Invert)
	b.WriteString(" \"" + m.Name + "\"")
}

// Matches implements xt.PacketMatcher. xt_helper matches packets of a
// connection whose master connection has the named helper attached (an
// expected data connection of FTP, say); when the packet has no
// connection, no master or the master no helper, it returns the bare "!"
// flag. uptables has no conntrack helpers and no expectations, so that is
// every packet: `--helper ftp` never matches and `! --helper ftp` always
// does, exactly as on a kernel where no helper was assigned (since 4.7 the
// kernel assigns none automatically; a CT --helper target would be needed).
func (m *Helper) Matches(*xt.Ctx) bool { return m.Invert }
