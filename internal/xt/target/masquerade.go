package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

var masqOpts = []optDef{
	{name: "to-ports", arg: xt.RequiredArg},
	{name: "random"},
	{name: "random-fully"},
}

// Masquerade is `-j MASQUERADE` (§9.11): SNAT to the outgoing interface's
// preferred address, optionally into a port range; nat POSTROUTING only.
type Masquerade struct {
	Ports NATRange // only the port fields are used
	natFlags
	opts tracker
}

var (
	_ xt.Target  = (*Masquerade)(nil)
	_ xt.Checker = (*Masquerade)(nil)
)

func newMasquerade() xt.Target {
	return &Masquerade{opts: tracker{target: "MASQUERADE", defs: masqOpts}}
}

// parseToPorts is --to-ports of MASQUERADE and REDIRECT.
func parseToPorts(ctx *xt.ParseContext, arg string, r *NATRange) error {
	if ctx == nil || !natPortProtoOK(ctx.Proto) {
		return errNATNeedProto
	}
	return parseNATPorts(arg, r, false, "Invalid port:port syntax - use dash")
}

// Parse reads one MASQUERADE option.
func (m *Masquerade) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if opt == "to" {
		opt = "to-ports"
	}
	if err := m.opts.mark(opt, invert); err != nil {
		return err
	}
	switch opt {
	case "random":
		m.Random = true
	case "random-fully":
		m.RandomFully = true
	default:
		return parseToPorts(ctx, arg, &m.Ports)
	}
	return nil
}

// Final has no combination to check.
func (m *Masquerade) Final(*xt.ParseContext) error { return m.opts.final() }

// Save prints [--to-ports P[-P]] [--random] [--random-fully].
func (m *Masquerade) Save(b *strings.Builder) {
	if m.Ports.HasPorts {
		b.WriteString(" --to-ports ")
		m.Ports.writePorts(b)
	}
	m.write(b, "--")
}

// List prints "[masq ports: P[-P]] [random] [random-fully]".
func (m *Masquerade) List(b *strings.Builder, _ bool) {
	if m.Ports.HasPorts {
		b.WriteString(" masq ports: ")
		m.Ports.writePorts(b)
	}
	m.write(b, "")
}

// Check: nat table, POSTROUTING only.
func (m *Masquerade) Check(ctx *xt.CheckContext) error {
	if err := checkTable(ctx, "MASQUERADE", "nat"); err != nil {
		return err
	}
	return checkHooks(ctx, "MASQUERADE", xt.MaskOf(xt.PostRouting))
}

func registerMasquerade(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "MASQUERADE",
		Options: options(masqOpts, xt.Option{Name: "to", Arg: xt.RequiredArg}), New: newMasquerade})
}
