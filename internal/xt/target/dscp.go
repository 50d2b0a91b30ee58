package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

var dscpOpts = []optDef{
	{name: "set-dscp", arg: xt.RequiredArg, excl: []string{"set-dscp-class"}},
	{name: "set-dscp-class", arg: xt.RequiredArg, excl: []string{"set-dscp"}},
}

// DSCP is `-j DSCP`: set the 6-bit DiffServ code point (the upper six bits
// of the IPv4 TOS / IPv6 traffic class), keeping ECN; mangle table only.
type DSCP struct {
	Value uint8 // 0-63
	opts  tracker
}

var (
	_ xt.Target  = (*DSCP)(nil)
	_ xt.Checker = (*DSCP)(nil)
)

func newDSCP() xt.Target { return &DSCP{opts: tracker{target: "DSCP", defs: dscpOpts}} }

// Parse reads --set-dscp (0-63) or --set-dscp-class.
func (d *DSCP) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if err := d.opts.mark(opt, invert); err != nil {
		return err
	}
	if opt == "set-dscp-class" {
		v, ok := xt.ParseDSCPClass(arg)
		if !ok {
			return xt.Errorf("Invalid DSCP value `%s'", arg)
		}
		d.Value = v
		return nil
	}
	v, err := parseRange("DSCP", opt, arg, 0, 63)
	if err != nil {
		return err
	}
	d.Value = uint8(v)
	return nil
}

// Final requires a value.
func (d *DSCP) Final(*xt.ParseContext) error {
	if d.opts.seen == 0 {
		return xt.Errorf("DSCP target: Parameter --set-dscp is required")
	}
	return d.opts.final()
}

// Save prints --set-dscp 0xNN, whatever form was given.
func (d *DSCP) Save(b *strings.Builder) {
	b.WriteString(" --set-dscp ")
	hex8(b, d.Value)
}

// List prints "DSCP set 0xNN".
func (d *DSCP) List(b *strings.Builder, _ bool) {
	b.WriteString(" DSCP set ")
	hex8(b, d.Value)
}

// Check: mangle table only.
func (d *DSCP) Check(ctx *xt.CheckContext) error { return checkTable(ctx, "DSCP", "mangle") }

func registerDSCP(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "DSCP", Options: options(dscpOpts), New: newDSCP})
}
