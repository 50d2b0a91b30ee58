package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

var tcpmssOpts = []optDef{
	{name: "set-mss", arg: xt.RequiredArg},
	{name: "clamp-mss-to-pmtu"},
}

// TCPMSS is `-j TCPMSS` (§9.10): lower the MSS option of SYN segments to
// MSS, or with Clamp to the path MTU minus 40. The two options may both
// be given; the last one wins, as in iptables.
type TCPMSS struct {
	MSS   uint16
	Clamp bool
	opts  tracker
}

var (
	_ xt.Target  = (*TCPMSS)(nil)
	_ xt.Checker = (*TCPMSS)(nil)
)

func newTCPMSS() xt.Target { return &TCPMSS{opts: tracker{target: "TCPMSS", defs: tcpmssOpts}} }

// Parse reads --set-mss (0-65515: 65535 minus the 20-byte IPv4 header) or
// --clamp-mss-to-pmtu.
func (t *TCPMSS) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if err := t.opts.mark(opt, invert); err != nil {
		return err
	}
	if opt == "clamp-mss-to-pmtu" {
		t.Clamp = true
		return nil
	}
	v, err := parseRange("TCPMSS", opt, arg, 0, 65515)
	if err != nil {
		return err
	}
	t.MSS, t.Clamp = uint16(v), false
	return nil
}

// Final requires one of the options.
func (t *TCPMSS) Final(*xt.ParseContext) error {
	if t.opts.seen == 0 {
		return xt.Errorf("TCPMSS target: At least one parameter is required")
	}
	return t.opts.final()
}

// Save prints --clamp-mss-to-pmtu or --set-mss N.
func (t *TCPMSS) Save(b *strings.Builder) {
	if t.Clamp {
		b.WriteString(" --clamp-mss-to-pmtu")
		return
	}
	b.WriteString(" --set-mss ")
	writeUint(b, uint64(t.MSS))
}

// List prints "TCPMSS clamp to PMTU" or "TCPMSS set N".
func (t *TCPMSS) List(b *strings.Builder, _ bool) {
	if t.Clamp {
		b.WriteString(" TCPMSS clamp to PMTU")
		return
	}
	b.WriteString(" TCPMSS set ")
	writeUint(b, uint64(t.MSS))
}

// Check mirrors xt_TCPMSS's checkentry as reached through nft: -p tcp
// (not negated) in any table, clamping only from FORWARD, OUTPUT and
// POSTROUTING. The SYN-match requirement is skipped for nft rules.
func (t *TCPMSS) Check(ctx *xt.CheckContext) error {
	if ctx.Proto != 6 || ctx.InvProto {
		return xt.EINVAL("x_tables: ip_tables: TCPMSS target: only valid for protocol 6")
	}
	if t.Clamp && !ctx.Hooks.Only(xt.MaskOf(xt.Forward, xt.LocalOut, xt.PostRouting)) {
		return xt.EINVAL("xt_TCPMSS: path-MTU clamping only supported in FORWARD, OUTPUT and POSTROUTING hooks")
	}
	return nil
}

func registerTCPMSS(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "TCPMSS", Options: options(tcpmssOpts), New: newTCPMSS})
}
