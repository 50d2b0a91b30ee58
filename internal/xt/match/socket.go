package match

import (
	"errors"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// socket (xt_socket revision 3): matches packets for which a local socket
// exists (a lookup in the host's socket tables). --transparent: only
// IP_TRANSPARENT sockets; --nowildcard: also sockets bound to the wildcard
// address; --restore-skmark: copy the socket's mark to the packet. The
// kernel allows it only in PREROUTING and INPUT. The runtime needs a socket
// lookup, which user space cannot do for the host.

const (
	sockTransparent = iota
	sockNoWildcard
	sockRestoreMark
)

var socketOpts = optTable{
	{name: "transparent", id: sockTransparent, arg: xt.NoArg},
	{name: "nowildcard", id: sockNoWildcard, arg: xt.NoArg},
	{name: "restore-skmark", id: sockRestoreMark, arg: xt.NoArg},
}

// Socket is a configured socket match.
type Socket struct {
	seen          uint32
	Transparent   bool
	NoWildcard    bool
	RestoreSkmark bool
}

var (
	_ xt.Match        = (*Socket)(nil)
	_ xt.Checker      = (*Socket)(nil)
	_ xt.MatchBuilder = (*Socket)(nil)
)

func newSocketSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "socket", Options: socketOpts.options(), New: func() xt.Match { return &Socket{} }}
}

// Parse implements xt.Match.
func (m *Socket) Parse(_ *xt.ParseContext, opt string, invert bool, _ string, _ []string) error {
	e, err := socketOpts.begin("socket", &m.seen, opt, invert)
	if err != nil {
		return err
	}
	switch e.id {
	case sockTransparent:
		m.Transparent = true
	case sockNoWildcard:
		m.NoWildcard = true
	case sockRestoreMark:
		m.RestoreSkmark = true
	}
	return nil
}

// Final implements xt.Match.
func (m *Socket) Final(*xt.ParseContext) error { return socketOpts.fcheck("socket", m.seen) }

func (m *Socket) flags(b *strings.Builder) {
	if m.Transparent {
		b.WriteString(" --transparent")
	}
	if m.NoWildcard {
		b.WriteString(" --nowildcard")
	}
	if m.RestoreSkmark {
		b.WriteString(" --restore-skmark")
	}
}

// Save implements xt.Match.
func (m *Socket) Save(b *strings.Builder) { m.flags(b) }

// List implements xt.Match.
func (m *Socket) List(b *strings.Builder, _ bool) {
	b.WriteString(" socket")
	m.flags(b)
}

// Check implements xt.Checker: PREROUTING and INPUT only.
func (m *Socket) Check(ctx *xt.CheckContext) error {
	if !ctx.Hooks.Only(xt.MaskOf(xt.PreRouting, xt.LocalIn)) {
		return xt.EINVAL("socket match: only valid in PREROUTING and INPUT")
	}
	return nil
}

// Build implements xt.MatchBuilder by refusing: the match looks the packet
// up in the host kernel's socket tables (established and listening TCP/UDP
// sockets, IP_TRANSPARENT, the socket mark), which user space cannot do
// per packet.
func (m *Socket) Build(*xt.Env) (xt.PacketMatcher, error) {
	return nil, errors.New("socket: the match needs a lookup in the host kernel's socket tables, which uptables cannot do from user space")
}
