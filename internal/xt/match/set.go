package match

import (
	"errors"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// set (xt_set): --match-set NAME src|dst[,...] matches against an ipset.
// iptables looks the set up while it parses the option; uptables has no
// ipset support yet, so every set is missing and the option fails with
// iptables' own error for a missing set. The counter options are parsed so
// that their errors come in iptables' order.

const (
	setMatchSet = iota
	setReturnNoMatch
	setUpdateCounters
	setUpdateSubcounters
	setPacketsEq
	setPacketsLt
	setPacketsGt
	setBytesEq
	setBytesLt
	setBytesGt
)

var setOpts = optTable{
	{name: "match-set", id: setMatchSet, arg: xt.RequiredArg, extra: 1, flags: optInvert},
	{name: "set", id: setMatchSet, arg: xt.RequiredArg, extra: 1, flags: optInvert},
	{name: "return-nomatch", id: setReturnNoMatch, arg: xt.NoArg},
	{name: "update-counters", id: setUpdateCounters, arg: xt.NoArg, flags: optInvert},
	{name: "update-subcounters", id: setUpdateSubcounters, arg: xt.NoArg, flags: optInvert},
	{name: "packets-eq", id: setPacketsEq, arg: xt.RequiredArg, flags: optInvert},
	{name: "packets-lt", id: setPacketsLt, arg: xt.RequiredArg},
	{name: "packets-gt", id: setPacketsGt, arg: xt.RequiredArg},
	{name: "bytes-eq", id: setBytesEq, arg: xt.RequiredArg, flags: optInvert},
	{name: "bytes-lt", id: setBytesLt, arg: xt.RequiredArg},
	{name: "bytes-gt", id: setBytesGt, arg: xt.RequiredArg},
}

const setNameMax = 31 // IPSET_MAXNAMELEN - 1

// SetLookup tells whether an ipset exists. uptables has none yet.
type SetLookup func(name string) bool

// Set is a configured set match. It can only be built once an ipset
// implementation provides sets; until then Parse refuses every name.
type Set struct {
	seen   uint32
	exists SetLookup
	Name   string
	Flags  string
	Invert bool
}

var _ xt.Match = (*Set)(nil)
var _ xt.MatchBuilder = (*Set)(nil)

func newSetSpec(lookup SetLookup) *xt.MatchSpec {
	return &xt.MatchSpec{Name: "set", Options: setOpts.options(), New: func() xt.Match { return &Set{exists: lookup} }}
}

// Parse implements xt.Match.
func (m *Set) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := setOpts.begin("set", &m.seen, opt, invert)
	if err != nil {
		return err
	}
	switch e.id {
	case setMatchSet:
		if len(extra) < 1 {
			return xt.Errorf("--%s requires two args.", opt)
		}
		if len(arg) > setNameMax {
			return xt.Errorf("setname `%s' too long, max %d characters.", arg, setNameMax)
		}
		if m.exists == nil || !m.exists(arg) {
			return &xt.ParamError{Msg: "Set " + arg + " doesn't exist.\n",
				Hint: "uptables has no ipset support yet"}
		}
		m.Name, m.Flags, m.Invert = arg, extra[0], invert
		return &xt.ParamError{Msg: "set match: ipset matching is not supported by uptables"}
	case setPacketsEq, setPacketsLt, setPacketsGt, setBytesEq, setBytesLt, setBytesGt:
		if _, err := parseUintOpt("set", opt, arg, 0, 1<<64-1); err != nil {
			return err
		}
	}
	return nil
}

// Final implements xt.Match.
func (m *Set) Final(*xt.ParseContext) error {
	if m.seen&(1<<setMatchSet) == 0 {
		return xt.Errorf("You must specify `--match-set' with proper arguments")
	}
	return setOpts.fcheck("set", m.seen)
}

// Save implements xt.Match.
func (m *Set) Save(b *strings.Builder) {
	saveNot(b, m.Invert)
	b.WriteString(" --match-set " + m.Name + " " + m.Flags)
}

// List implements xt.Match.
func (m *Set) List(b *strings.Builder, _ bool) {
	b.WriteString(" match-set")
	saveNot(b, m.Invert)
	b.WriteString(" " + m.Name + " " + m.Flags)
}

// Build implements xt.MatchBuilder by refusing: uptables has no ipset
// implementation, so there is no set to test --match-set against.
func (m *Set) Build(*xt.Env) (xt.PacketMatcher, error) {
	return nil, errors.New("set: --match-set needs ipset, which uptables does not implement")
}
