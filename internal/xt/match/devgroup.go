package match

import (
	"errors"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// devgroup (xt_devgroup): --src-group / --dst-group value[/mask] match the
// device group of the input / output interface: (group & mask) == value.
// Names come from iproute2's group table; uptables carries Debian's default
// file (only "default" = 0) instead of reading /etc/iproute2/group, so that
// a rule means the same on every host. The kernel allows --src-group only
// where there is an input device and --dst-group only where there is an
// output device. The runtime needs the interfaces' group numbers.

const (
	devgSrc = iota
	devgDst
)

var devgroupOpts = optTable{
	{name: "src-group", id: devgSrc, arg: xt.RequiredArg, flags: optInvert},
	{name: "dst-group", id: devgDst, arg: xt.RequiredArg, flags: optInvert},
}

// devGroupNames is /etc/iproute2/group as shipped by Debian's iproute2.
var devGroupNames = []struct {
	name string
	id   uint32
}{{"default", 0}}

// DevGroup is a configured devgroup match.
type DevGroup struct {
	seen              uint32
	HasSrc, HasDst    bool
	SrcGroup, SrcMask uint32
	DstGroup, DstMask uint32
	InvSrc, InvDst    bool
}

var (
	_ xt.Match        = (*DevGroup)(nil)
	_ xt.Checker      = (*DevGroup)(nil)
	_ xt.MatchBuilder = (*DevGroup)(nil)
)

func newDevGroupSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "devgroup", Options: devgroupOpts.options(), New: func() xt.Match { return &DevGroup{} }}
}

// Parse implements xt.Match.
func (m *DevGroup) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	e, err := devgroupOpts.begin("devgroup", &m.seen, opt, invert)
	if err != nil {
		return err
	}
	v, mask, ok := parseGroupValue(arg)
	if !ok {
		return xt.Errorf("devgroup: could not map name %s to an integer value for option \"--%s\".\n", arg, opt)
	}
	if e.id == devgSrc {
		m.HasSrc, m.SrcGroup, m.SrcMask, m.InvSrc = true, v, mask, invert
	} else {
		m.HasDst, m.DstGroup, m.DstMask, m.InvDst = true, v, mask, invert
	}
	return nil
}

// parseGroupValue is xtables_parse_val_mask with a name table: a number with
// optional /mask, or (when that does not parse completely) a group name.
func parseGroupValue(s string) (val, mask uint32, ok bool) {
	if v, m, _, good := xt.ParseMarkMask(s); good {
		return v, m, true
	}
	for _, g := range devGroupNames {
		if g.name == s {
			return g.id, 0xffffffff, true
		}
	}
	return 0, 0, false
}

func groupString(val, mask uint32, names bool) string {
	if names && mask == 0xffffffff {
		for _, g := range devGroupNames {
			if g.id == val {
				return g.name
			}
		}
	}
	return markString(val, mask)
}

// Final implements xt.Match.
func (m *DevGroup) Final(*xt.ParseContext) error {
	if !m.HasSrc && !m.HasDst {
		return xt.Errorf("devgroup match: You must specify either '--src-group' or '--dst-group'")
	}
	return devgroupOpts.fcheck("devgroup", m.seen)
}

// Save implements xt.Match.
func (m *DevGroup) Save(b *strings.Builder) {
	if m.HasSrc {
		saveNot(b, m.InvSrc)
		b.WriteString(" --src-group " + groupString(m.SrcGroup, m.SrcMask, true))
	}
	if m.HasDst {
		saveNot(b, m.InvDst)
		b.WriteString(" --dst-group " + groupString(m.DstGroup, m.DstMask, true))
	}
}

// List implements xt.Match.
func (m *DevGroup) List(b *strings.Builder, numeric bool) {
	if m.HasSrc {
		saveNot(b, m.InvSrc)
		b.WriteString(" src-group " + groupString(m.SrcGroup, m.SrcMask, !numeric))
	}
	if m.HasDst {
		saveNot(b, m.InvDst)
		b.WriteString(" dst-group " + groupString(m.DstGroup, m.DstMask, !numeric))
	}
}

// Check implements xt.Checker.
func (m *DevGroup) Check(ctx *xt.CheckContext) error {
	if m.HasSrc && !ctx.Hooks.Only(hooksWithIn) {
		return xt.EINVAL("devgroup: --src-group only valid in PREROUTING, INPUT and FORWARD")
	}
	if m.HasDst && !ctx.Hooks.Only(hooksWithOut) {
		return xt.EINVAL("devgroup: --dst-group only valid in FORWARD, OUTPUT and POSTROUTING")
	}
	return nil
}

// MatchGroups is the test for a packet whose input and output devices are
// in the given groups.
func (m *DevGroup) MatchGroups(in, out uint32) bool {
	if m.HasSrc && (in&m.SrcMask == m.SrcGroup) == m.InvSrc {
		return false
	}
	if m.HasDst && (out&m.DstMask == m.DstGroup) == m.InvDst {
		return false
	}
	return true
}

// Build implements xt.MatchBuilder by refusing: the test needs the device
// group number of the packet's interfaces (`ip link set DEV group N`), which
// uptables' data planes do not carry; assuming the default group 0 would
// make `--src-group`/`--dst-group` rules silently wrong on hosts that use
// groups.
func (m *DevGroup) Build(*xt.Env) (xt.PacketMatcher, error) {
	return nil, errors.New("devgroup: --src-group/--dst-group need the interfaces' device groups, which uptables does not know")
}
