package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

var snatOpts = []optDef{
	{name: "to-source", arg: xt.RequiredArg, mand: true},
	{name: "random"},
	{name: "random-fully"},
	{name: "persistent"},
}

// SNAT is `-j SNAT` (§9.11): rewrite the source of a new connection to
// Range; nat table, POSTROUTING and INPUT only.
type SNAT struct{ natTarget }

var (
	_ xt.Target  = (*SNAT)(nil)
	_ xt.Checker = (*SNAT)(nil)
)

func newSNAT() xt.Target {
	return &SNAT{natTarget{name: "SNAT", toOpt: "to-source",
		allowed: xt.MaskOf(xt.PostRouting, xt.LocalIn), opts: tracker{target: "SNAT", defs: snatOpts}}}
}

// Parse reads one SNAT option.
func (s *SNAT) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	return s.parse(ctx, opt, invert, arg)
}

// Final requires --to-source.
func (s *SNAT) Final(*xt.ParseContext) error { return s.opts.final() }

// Save prints --to-source RANGE [--random] [--random-fully] [--persistent].
func (s *SNAT) Save(b *strings.Builder) { s.save(b) }

// List prints "to:RANGE [random] [random-fully] [persistent]".
func (s *SNAT) List(b *strings.Builder, _ bool) { s.list(b) }

// Check: nat table, POSTROUTING/INPUT.
func (s *SNAT) Check(ctx *xt.CheckContext) error { return s.check(ctx) }

func registerSNAT(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "SNAT", Family: xt.IPv4,
		Options: options(snatOpts, xt.Option{Name: "to", Arg: xt.RequiredArg}), New: newSNAT})
}
