package match

import (
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// cpu (xt_cpu): --cpu N matches packets processed on CPU N. In uptables the
// data plane's worker index (Ctx.CPU) stands for the CPU number.

var cpuOpts = optTable{
	{name: "cpu", id: 0, arg: xt.RequiredArg, flags: optMand | optInvert},
}

// CPU is a configured cpu match.
type CPU struct {
	seen   uint32
	CPU    uint32
	Invert bool
}

var _ xt.Match = (*CPU)(nil)
var _ xt.PacketMatcher = (*CPU)(nil)

func newCPUSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "cpu", Options: cpuOpts.options(), New: func() xt.Match { return &CPU{} }}
}

// Parse implements xt.Match.
func (m *CPU) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if _, err := cpuOpts.begin("cpu", &m.seen, opt, invert); err != nil {
		return err
	}
	v, err := parseUintOpt("cpu", opt, arg, 0, 0xffffffff)
	if err != nil {
		return err
	}
	m.CPU, m.Invert = uint32(v), invert
	return nil
}

// Final implements xt.Match.
func (m *CPU) Final(*xt.ParseContext) error { return cpuOpts.fcheck("cpu", m.seen) }

// Save implements xt.Match.
func (m *CPU) Save(b *strings.Builder) {
	saveNot(b, m.Invert)
	b.WriteString(" --cpu " + strconv.FormatUint(uint64(m.CPU), 10))
}

// List implements xt.Match.
func (m *CPU) List(b *strings.Builder, _ bool) {
	b.WriteString(" cpu")
	saveNot(b, m.Invert)
	b.WriteString(" " + strconv.FormatUint(uint64(m.CPU), 10))
}

// Matches implements xt.PacketMatcher (cpu_mt): the worker index the data
// plane put in Ctx.CPU stands for the kernel's processing CPU, so a rule set
// that spreads work with `--cpu N` (one rule per CPU, e.g. to NFQUEUE or
// REDIRECT per worker) behaves as on an N-CPU machine; with a single worker
// every packet is on CPU 0.
func (m *CPU) Matches(c *xt.Ctx) bool {
	return (c.CPU >= 0 && uint64(c.CPU) == uint64(m.CPU)) != m.Invert
}
