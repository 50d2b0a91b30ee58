package match

import (
	"errors"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// physdev (xt_physdev): matches the bridge ports of bridged packets:
// --physdev-in/-out NAME[+] (a trailing "+" matches a prefix),
// --physdev-is-in/-is-out (the packet entered/leaves through a bridge port),
// --physdev-is-bridged (it is being bridged). The kernel refuses
// --physdev-out and --physdev-is-out in OUTPUT unless --physdev-is-bridged
// is given and not inverted. The runtime needs bridge port information,
// which uptables' data planes do not have.

const (
	physIn = iota
	physOut
	physIsIn
	physIsOut
	physIsBridged
)

const ifNameMax = 15

var physdevOpts = optTable{
	{name: "physdev-in", id: physIn, arg: xt.RequiredArg, flags: optInvert},
	{name: "physdev-out", id: physOut, arg: xt.RequiredArg, flags: optInvert},
	{name: "physdev-is-in", id: physIsIn, arg: xt.NoArg, flags: optInvert},
	{name: "physdev-is-out", id: physIsOut, arg: xt.NoArg, flags: optInvert},
	{name: "physdev-is-bridged", id: physIsBridged, arg: xt.NoArg, flags: optInvert},
}

// Physdev is a configured physdev match. Bits of Given and Invert are
// indexed by the option (in, out, is-in, is-out, is-bridged).
type Physdev struct {
	Given  uint8
	Invert uint8
	In     string
	Out    string
}

var (
	_ xt.Match        = (*Physdev)(nil)
	_ xt.Checker      = (*Physdev)(nil)
	_ xt.MatchBuilder = (*Physdev)(nil)
)

func newPhysdevSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "physdev", Options: physdevOpts.options(), New: func() xt.Match { return &Physdev{} }}
}

// Parse implements xt.Match.
func (m *Physdev) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	seen := uint32(m.Given)
	e, err := physdevOpts.begin("physdev", &seen, opt, invert)
	if err != nil {
		return err
	}
	switch e.id {
	case physIn, physOut:
		if len(arg) > ifNameMax {
			return xt.Errorf("interface name `%s' must be shorter than IFNAMSIZ (%d)", arg, ifNameMax)
		}
		if e.id == physIn {
			m.In = arg
		} else {
			m.Out = arg
		}
	}
	m.Given = uint8(seen)
	if invert {
		m.Invert |= 1 << e.id
	}
	return nil
}

// Final implements xt.Match.
func (m *Physdev) Final(*xt.ParseContext) error {
	if m.Given == 0 {
		return xt.Errorf("PHYSDEV: no physdev option specified")
	}
	return physdevOpts.fcheck("physdev", uint32(m.Given))
}

func (m *Physdev) opts(b *strings.Builder) {
	item := func(id uint, text string) {
		if m.Given&(1<<id) == 0 {
			return
		}
		saveNot(b, m.Invert&(1<<id) != 0)
		b.WriteString(text)
	}
	item(physIsIn, " --physdev-is-in")
	item(physIn, " --physdev-in "+m.In)
	item(physIsOut, " --physdev-is-out")
	item(physOut, " --physdev-out "+m.Out)
	item(physIsBridged, " --physdev-is-bridged")
}

// Save implements xt.Match. Names are printed as given, unquoted.
func (m *Physdev) Save(b *strings.Builder) { m.opts(b) }

// List implements xt.Match.
func (m *Physdev) List(b *strings.Builder, _ bool) {
	b.WriteString(" PHYSDEV match")
	m.opts(b)
}

// Check implements xt.Checker.
func (m *Physdev) Check(ctx *xt.CheckContext) error {
	out := m.Given&(1<<physOut|1<<physIsOut) != 0
	bridged := m.Given&(1<<physIsBridged) != 0 && m.Invert&(1<<physIsBridged) == 0
	if out && !bridged && ctx.Hooks.Has(xt.LocalOut) {
		return xt.EINVAL("physdev: --physdev-out and --physdev-is-out only supported in the FORWARD and POSTROUTING chains with bridged traffic")
	}
	return nil
}

// Build implements xt.MatchBuilder by refusing: the match tests the bridge
// ports a bridged packet entered or leaves by (br_netfilter's information),
// and uptables' packets carry no bridge information, so it cannot tell a
// bridged packet from a routed one.
func (m *Physdev) Build(*xt.Env) (xt.PacketMatcher, error) {
	return nil, errors.New("physdev: --physdev-in/--physdev-out/--physdev-is-in/--physdev-is-out/--physdev-is-bridged need bridge port information (br_netfilter), which uptables packets do not carry")
}
