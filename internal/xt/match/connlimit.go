package match

import (
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// Connlimit is the connlimit match (xt_connlimit): it counts the
// connections that passed this rule, grouped by the source (or destination)
// address masked to PrefixLen bits, and matches when the count is above
// Limit (Above) or at most Limit (!Above). `! --connlimit-above N` is the
// same rule as `--connlimit-upto N`, and iptables prints it so.
type Connlimit struct {
	Limit     uint32
	Above     bool
	PrefixLen int  // 0..32 (IPv4) or 0..128 (IPv6); default the full length
	Daddr     bool // group by destination address instead of source

	family xt.Family
	flags  uint32
}

const (
	clOptUpto = iota
	clOptAbove
	clOptMask
	clOptSaddr
	clOptDaddr
)

var psConnlimitOpts = &psTable{ext: "connlimit", entries: []psOpt{
	{name: "connlimit-upto", id: clOptUpto, arg: xt.RequiredArg, invert: true, excl: 1 << clOptAbove},
	{name: "connlimit-above", id: clOptAbove, arg: xt.RequiredArg, invert: true, excl: 1 << clOptUpto},
	{name: "connlimit-mask", id: clOptMask, arg: xt.RequiredArg},
	{name: "connlimit-saddr", id: clOptSaddr, arg: xt.NoArg, excl: 1 << clOptDaddr},
	{name: "connlimit-daddr", id: clOptDaddr, arg: xt.NoArg, excl: 1 << clOptSaddr},
}}

var _ xt.Match = (*Connlimit)(nil)

func newConnlimitSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name:    "connlimit",
		Options: psConnlimitOpts.options(),
		New:     func() xt.Match { return &Connlimit{PrefixLen: -1} },
	}
}

// Parse implements xt.Match.
func (m *Connlimit) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := psConnlimitOpts.begin(m.flags, opt, invert)
	if err != nil {
		return err
	}
	m.family = ctx.Family
	switch e.id {
	case clOptUpto, clOptAbove:
		v, err := psConnlimitOpts.parseUintOpt(e, arg, 0, 0xFFFFFFFF)
		if err != nil {
			return err
		}
		m.Limit = uint32(v)
		m.Above = (e.id == clOptAbove) != invert
	case clOptMask:
		n, ok := psPlenMask(ctx.Family, arg)
		if !ok {
			return xt.Errorf("connlimit: bad value for option \"--connlimit-mask\", neither a valid network mask nor valid CIDR (0-%d).\n", psFamilyBits(ctx.Family))
		}
		m.PrefixLen = n
	case clOptSaddr:
		m.Daddr = false
	case clOptDaddr:
		m.Daddr = true
	}
	m.flags |= 1 << e.id
	return nil
}

// Final implements xt.Match.
func (m *Connlimit) Final(ctx *xt.ParseContext) error {
	m.family = ctx.Family
	if m.flags&(1<<clOptUpto|1<<clOptAbove) == 0 {
		return xt.Errorf("You must specify \"--connlimit-above\" or \"--connlimit-upto\".")
	}
	if m.PrefixLen < 0 {
		m.PrefixLen = psFamilyBits(ctx.Family)
	}
	return psConnlimitOpts.fcheck(m.flags)
}

// Save implements xt.Match: always limit, mask and side.
func (m *Connlimit) Save(b *strings.Builder) {
	if m.Above {
		b.WriteString(" --connlimit-above ")
	} else {
		b.WriteString(" --connlimit-upto ")
	}
	b.WriteString(strconv.FormatUint(uint64(m.Limit), 10))
	b.WriteString(" --connlimit-mask ")
	b.WriteString(strconv.Itoa(m.PrefixLen))
	if m.Daddr {
		b.WriteString(" --connlimit-daddr")
	} else {
		b.WriteString(" --connlimit-saddr")
	}
}

// List implements xt.Match ("#conn src/32 > 20", "#conn dst/24 <= 5").
func (m *Connlimit) List(b *strings.Builder, numeric bool) {
	b.WriteString(" #conn ")
	if m.Daddr {
		b.WriteString("dst/")
	} else {
		b.WriteString("src/")
	}
	b.WriteString(strconv.Itoa(m.PrefixLen))
	if m.Above {
		b.WriteString(" > ")
	} else {
		b.WriteString(" <= ")
	}
	b.WriteString(strconv.FormatUint(uint64(m.Limit), 10))
}
