package match

import (
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// quota (xt_quota): --quota BYTES matches while the rule's byte budget lasts;
// each matching packet's length is subtracted. With "!" it matches once the
// budget is used up. The budget is per rule and shared by all CPUs, so the
// runtime needs a per-rule counter (state), not just the packet.

var quotaOpts = optTable{
	{name: "quota", id: 0, arg: xt.RequiredArg, flags: optMand | optInvert},
}

// Quota is a configured quota match.
type Quota struct {
	seen   uint32
	Bytes  uint64
	Invert bool
}

var _ xt.Match = (*Quota)(nil)

func newQuotaSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "quota", Options: quotaOpts.options(), New: func() xt.Match { return &Quota{} }}
}

// Parse implements xt.Match.
func (m *Quota) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if _, err := quotaOpts.begin("quota", &m.seen, opt, invert); err != nil {
		return err
	}
	v, err := parseUintOpt("quota", opt, arg, 0, 1<<64-1)
	if err != nil {
		return err
	}
	m.Bytes, m.Invert = v, invert
	return nil
}

// Final implements xt.Match.
func (m *Quota) Final(*xt.ParseContext) error { return quotaOpts.fcheck("quota", m.seen) }

// Save implements xt.Match.
func (m *Quota) Save(b *strings.Builder) {
	saveNot(b, m.Invert)
	b.WriteString(" --quota " + strconv.FormatUint(m.Bytes, 10))
}

// List implements xt.Match: iptables does not show the "!" here.
func (m *Quota) List(b *strings.Builder, _ bool) {
	b.WriteString(" quota: " + strconv.FormatUint(m.Bytes, 10) + " bytes")
}
