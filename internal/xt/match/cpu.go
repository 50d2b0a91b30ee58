package match

import (
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// cpu (xt_cpu): --cpu N matches packets processed on CPU N. uptables has no
// notion of the processing CPU, so there is no packet test; the runtime must
// decide which CPU number a worker stands for.

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
