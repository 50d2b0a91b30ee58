package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

var redirectOpts = []optDef{
	{name: "to-ports", arg: xt.RequiredArg},
	{name: "random"},
}

// Redirect is `-j REDIRECT` (§9.11): DNAT to the incoming interface's
// primary address (127.0.0.1 from OUTPUT), optionally to a port range;
// nat PREROUTING and OUTPUT only.
type Redirect struct {
	Ports  NATRange // only the port fields are used
	Random bool
	opts   tracker
}

var (
	_ xt.Target  = (*Redirect)(nil)
	_ xt.Checker = (*Redirect)(nil)
)

func newRedirect() xt.Target { return &Redirect{opts: tracker{target: "REDIRECT", defs: redirectOpts}} }

// Parse reads one REDIRECT option. A shifted port map ("A-B/C") is
// refused, as iptables 1.8.9 does.
func (r *Redirect) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if opt == "to" {
		opt = "to-ports"
	}
	if err := r.opts.mark(opt, invert); err != nil {
		return err
	}
	if opt == "random" {
		r.Random = true
		return nil
	}
	if err := parseToPorts(ctx, arg, &r.Ports); err != nil {
		return err
	}
	return nil
}

// Final refuses a shifted port map ("A-B/base"), which iptables does in
// its final check: errors of later options and of the matches come first
// (measured).
func (r *Redirect) Final(*xt.ParseContext) error {
	if err := r.opts.final(); err != nil {
		return err
	}
	if r.Ports.HasBase {
		return xt.Errorf("Shifted portmap ranges not supported with this kernel")
	}
	return nil
}

// Save prints [--to-ports P[-P]] [--random].
func (r *Redirect) Save(b *strings.Builder) {
	if r.Ports.HasPorts {
		b.WriteString(" --to-ports ")
		r.Ports.writePorts(b)
	}
	if r.Random {
		b.WriteString(" --random")
	}
}

// List prints "[redir ports P[-P]] [random]".
func (r *Redirect) List(b *strings.Builder, _ bool) {
	if r.Ports.HasPorts {
		b.WriteString(" redir ports ")
		r.Ports.writePorts(b)
	}
	if r.Random {
		b.WriteString(" random")
	}
}

// Check: nat table, PREROUTING/OUTPUT.
func (r *Redirect) Check(ctx *xt.CheckContext) error {
	if err := checkTable(ctx, "REDIRECT", "nat"); err != nil {
		return err
	}
	return checkHooks(ctx, "REDIRECT", xt.MaskOf(xt.PreRouting, xt.LocalOut))
}

func registerRedirect(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "REDIRECT",
		Options: options(redirectOpts, xt.Option{Name: "to", Arg: xt.RequiredArg}), New: newRedirect})
}
