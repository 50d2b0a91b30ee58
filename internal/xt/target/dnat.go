package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

var dnatOpts = []optDef{
	{name: "to-destination", arg: xt.RequiredArg, mand: true},
	{name: "random"},
	{name: "persistent"},
}

// DNAT is `-j DNAT` (§9.11): rewrite the destination of a new connection
// to Range; nat table, PREROUTING and OUTPUT only. `--to` is accepted (a
// getopt abbreviation) and printed as --to-destination.
type DNAT struct{ natTarget }

var (
	_ xt.Target  = (*DNAT)(nil)
	_ xt.Checker = (*DNAT)(nil)
)

func newDNAT() xt.Target {
	return &DNAT{natTarget{name: "DNAT", toOpt: "to-destination", keepBase: true,
		allowed: xt.MaskOf(xt.PreRouting, xt.LocalOut), opts: tracker{target: "DNAT", defs: dnatOpts}}}
}

// Parse reads one DNAT option.
func (d *DNAT) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	return d.parse(ctx, opt, invert, arg)
}

// Final requires --to-destination.
func (d *DNAT) Final(*xt.ParseContext) error { return d.opts.final() }

// Save prints --to-destination RANGE [--random] [--persistent].
func (d *DNAT) Save(b *strings.Builder) { d.save(b) }

// List prints "to:RANGE [random] [persistent]".
func (d *DNAT) List(b *strings.Builder, _ bool) { d.list(b) }

// Check: nat table, PREROUTING/OUTPUT.
func (d *DNAT) Check(ctx *xt.CheckContext) error { return d.check(ctx) }

func registerDNAT(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "DNAT", Family: xt.IPv4,
		Options: options(dnatOpts, xt.Option{Name: "to", Arg: xt.RequiredArg}), New: newDNAT})
}
