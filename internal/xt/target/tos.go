package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// tosNames are the symbolic --set-tos values (RFC 1349 TOS bits); they set
// the value under mask 0x3f, clearing the 4 TOS bits and the MBZ bit but
// keeping the precedence.
var tosNames = [...]struct {
	name  string
	value uint8
}{
	{"Minimize-Delay", 0x10}, {"Maximize-Throughput", 0x08}, {"Maximize-Reliability", 0x04},
	{"Minimize-Cost", 0x02}, {"Normal-Service", 0x00},
}

var tosOps = []string{"set-tos", "and-tos", "or-tos", "xor-tos"}

var tosOpts = []optDef{
	{name: "set-tos", arg: xt.RequiredArg, excl: tosOps},
	{name: "and-tos", arg: xt.RequiredArg, excl: tosOps},
	{name: "or-tos", arg: xt.RequiredArg, excl: tosOps},
	{name: "xor-tos", arg: xt.RequiredArg, excl: tosOps},
}

// TOS is `-j TOS` (revision 1): new TOS = (old AND NOT Mask) XOR Value;
// mangle table only. Every input form is stored this way.
type TOS struct {
	Value uint8
	Mask  uint8
	opts  tracker
}

var (
	_ xt.Target  = (*TOS)(nil)
	_ xt.Checker = (*TOS)(nil)
)

func newTOS() xt.Target { return &TOS{opts: tracker{target: "TOS", defs: tosOpts}} }

// parseTOSValue parses "value[/mask]" (8 bits each, mask default 0xff) or a
// symbolic name (case-insensitive, mask 0x3f), with iptables' errors.
func parseTOSValue(s string) (value, mask uint8, err error) {
	v, rest, ok := xt.ParseUintPrefix(s)
	if ok && v <= 0xff {
		if rest == "" {
			return uint8(v), 0xff, nil
		}
		if rest[0] == '/' {
			if m, ok := xt.ParseUint(rest[1:], 0, 0xff); ok {
				return uint8(v), uint8(m), nil
			}
		}
		return 0, 0, xt.Errorf("Illegal value: \"%s\"", s)
	}
	for _, n := range tosNames {
		if strings.EqualFold(n.name, s) {
			return n.value, 0x3f, nil
		}
	}
	return 0, 0, xt.Errorf("Symbolic name \"%s\" is unknown", s)
}

// Parse reads one of the four operations.
func (t *TOS) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if err := t.opts.mark(opt, invert); err != nil {
		return err
	}
	if opt == "set-tos" {
		v, m, err := parseTOSValue(arg)
		if err != nil {
			return err
		}
		t.Value, t.Mask = v, m
		return nil
	}
	v, err := parseRange("TOS", opt, arg, 0, 255)
	if err != nil {
		return err
	}
	bits := uint8(v)
	switch opt {
	case "and-tos":
		t.Value, t.Mask = 0, ^bits
	case "or-tos":
		t.Value, t.Mask = bits, bits
	default:
		t.Value, t.Mask = bits, 0
	}
	return nil
}

// Final requires an operation.
func (t *TOS) Final(*xt.ParseContext) error {
	if t.opts.seen == 0 {
		return xt.Errorf("TOS: An action is required")
	}
	return t.opts.final()
}

// Save prints --set-tos 0xVV/0xMM.
func (t *TOS) Save(b *strings.Builder) {
	b.WriteString(" --set-tos ")
	hex8(b, t.Value)
	b.WriteByte('/')
	hex8(b, t.Mask)
}

// List prints "TOS set 0xVV/0xMM" with -n; without -n iptables names the
// operation: a symbolic value under mask 0x3f ("  TOS setMinimize-Delay",
// two spaces and no space before the name, as iptables prints it), then
// and / or / xor, else the numeric form.
func (t *TOS) List(b *strings.Builder, numeric bool) {
	if !numeric {
		if t.Mask == 0x3f {
			for _, n := range tosNames {
				if n.value == t.Value {
					b.WriteString("  TOS set")
					b.WriteString(n.name)
					return
				}
			}
		}
		switch {
		case t.Value == 0:
			b.WriteString(" TOS and ")
			hex8(b, ^t.Mask)
			return
		case t.Value == t.Mask:
			b.WriteString(" TOS or ")
			hex8(b, t.Value)
			return
		case t.Mask == 0:
			b.WriteString(" TOS xor ")
			hex8(b, t.Value)
			return
		}
	}
	b.WriteString(" TOS set ")
	hex8(b, t.Value)
	b.WriteByte('/')
	hex8(b, t.Mask)
}

// Apply returns the new TOS byte.
func (t *TOS) Apply(old uint8) uint8 { return old&^t.Mask ^ t.Value }

// Check: mangle table only.
func (t *TOS) Check(ctx *xt.CheckContext) error { return checkTable(ctx, "TOS", "mangle") }

func registerTOS(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "TOS", Options: options(tosOpts), New: newTOS})
}
