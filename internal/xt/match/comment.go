package match

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// comment (xt_comment): --comment TEXT, at most 255 bytes (the kernel struct
// holds 256 with the NUL); longer text is silently cut, as iptables does.
// Always matches.

const commentMaxLen = 255

var commentOpts = optTable{
	{name: "comment", id: 0, arg: xt.RequiredArg, flags: optMand},
}

// Comment is a configured comment match.
type Comment struct {
	seen uint32
	Text string
}

var (
	_ xt.Match         = (*Comment)(nil)
	_ xt.PacketMatcher = (*Comment)(nil)
)

func newCommentSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "comment", Options: commentOpts.options(), New: func() xt.Match { return &Comment{} }}
}

// Parse implements xt.Match.
func (m *Comment) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if _, err := commentOpts.begin("comment", &m.seen, opt, invert); err != nil {
		return err
	}
	if len(arg) > commentMaxLen {
		arg = arg[:commentMaxLen]
	}
	m.Text = arg
	return nil
}

// Final implements xt.Match.
func (m *Comment) Final(*xt.ParseContext) error { return commentOpts.fcheck("comment", m.seen) }

// Save implements xt.Match.
func (m *Comment) Save(b *strings.Builder) {
	b.WriteString(" --comment ")
	xt.SaveString(b, m.Text)
}

// List implements xt.Match.
func (m *Comment) List(b *strings.Builder, _ bool) {
	b.WriteString(" /* " + m.Text + " */")
}

// Matches implements xt.PacketMatcher: a comment always matches.
func (m *Comment) Matches(*xt.Ctx) bool { return true }
