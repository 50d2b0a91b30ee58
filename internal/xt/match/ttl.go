package match

import (
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// TTLMode is the comparison of the ttl match (the kernel's IPT_TTL_*).
type TTLMode uint8

const (
	TTLEq TTLMode = iota // TTL == Value
	TTLNe                // TTL != Value (`! --ttl-eq`)
	TTLLt                // TTL < Value
	TTLGt                // TTL > Value
)

// TTL is the ttl match (ipt_ttl, IPv4 only): compares the IP TTL.
type TTL struct {
	Mode  TTLMode
	Value uint8

	flags uint32
}

const (
	ttlOptEq = iota
	ttlOptLt
	ttlOptGt
)

const ttlAny = 1<<ttlOptEq | 1<<ttlOptLt | 1<<ttlOptGt

var psTTLOpts = &psTable{ext: "ttl", entries: []psOpt{
	{name: "ttl-eq", id: ttlOptEq, arg: xt.RequiredArg, invert: true},
	{name: "ttl-lt", id: ttlOptLt, arg: xt.RequiredArg, excl: ttlAny},
	{name: "ttl-gt", id: ttlOptGt, arg: xt.RequiredArg, excl: ttlAny},
	{name: "ttl", id: ttlOptEq, arg: xt.RequiredArg, invert: true},
}}

var _ xt.Match = (*TTL)(nil)
var _ xt.PacketMatcher = (*TTL)(nil)

func newTTLSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name:    "ttl",
		Family:  xt.IPv4,
		Options: psTTLOpts.options(),
		New:     func() xt.Match { return &TTL{} },
	}
}

// Parse implements xt.Match.
func (m *TTL) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := psTTLOpts.begin(m.flags, opt, invert)
	if err != nil {
		return err
	}
	v, err := psTTLOpts.parseUintOpt(e, arg, 0, 255)
	if err != nil {
		return err
	}
	m.Value = uint8(v)
	switch e.id {
	case ttlOptEq:
		m.Mode = TTLEq
		if invert {
			m.Mode = TTLNe
		}
	case ttlOptLt:
		m.Mode = TTLLt
	case ttlOptGt:
		m.Mode = TTLGt
	}
	m.flags |= 1 << e.id
	return nil
}

// Final implements xt.Match.
func (m *TTL) Final(ctx *xt.ParseContext) error {
	if m.flags == 0 {
		return xt.Errorf("TTL match: You must specify one of `--ttl-eq', `--ttl-lt', `--ttl-gt")
	}
	return psTTLOpts.fcheck(m.flags)
}

// Save implements xt.Match (`--ttl N` prints as `--ttl-eq N`).
func (m *TTL) Save(b *strings.Builder) {
	switch m.Mode {
	case TTLEq:
		b.WriteString(" --ttl-eq ")
	case TTLNe:
		b.WriteString(" ! --ttl-eq ")
	case TTLLt:
		b.WriteString(" --ttl-lt ")
	case TTLGt:
		b.WriteString(" --ttl-gt ")
	}
	b.WriteString(strconv.Itoa(int(m.Value)))
}

// List implements xt.Match ("TTL match TTL == 5").
func (m *TTL) List(b *strings.Builder, numeric bool) {
	b.WriteString(" TTL match TTL ")
	b.WriteString([...]string{"==", "!=", "<", ">"}[m.Mode])
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(int(m.Value)))
}

// Matches implements xt.PacketMatcher (ipt_ttl): strict comparisons.
func (m *TTL) Matches(c *xt.Ctx) bool {
	t := c.P.TTL
	switch m.Mode {
	case TTLNe:
		return t != m.Value
	case TTLLt:
		return t < m.Value
	case TTLGt:
		return t > m.Value
	}
	return t == m.Value
}
