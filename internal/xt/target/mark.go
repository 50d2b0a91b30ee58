package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

var markOpts = []optDef{
	{name: "set-xmark", arg: xt.RequiredArg, excl: []string{"set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark"}},
	{name: "set-mark", arg: xt.RequiredArg, excl: []string{"set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark"}},
	{name: "and-mark", arg: xt.RequiredArg, excl: []string{"set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark"}},
	{name: "or-mark", arg: xt.RequiredArg, excl: []string{"set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark"}},
	{name: "xor-mark", arg: xt.RequiredArg, excl: []string{"set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark"}},
}

// Mark is `-j MARK` (revision 2): new mark = (old AND NOT Mask) XOR Value.
// Every input form (--set-mark, --and-mark, ...) is stored in this one
// form, which is also how iptables prints it (§9.8).
type Mark struct {
	Value uint32
	Mask  uint32
	opts  tracker
}

var _ xt.Target = (*Mark)(nil)

func newMark() xt.Target { return &Mark{opts: tracker{target: "MARK", defs: markOpts}} }

// parseXMark turns one of the five mark operations into value/mask, with
// libxtables' errors. It is shared by MARK and CONNMARK.
func parseXMark(target, opt, arg string) (value, mask uint32, err error) {
	switch opt {
	case "set-xmark", "set-mark":
		// libxtables' markmask type: a number that does not parse is a
		// "bad integer value", one followed by anything but "/mask" is
		// "trailing garbage" (measured: "127.1", "1x", "1/2/3")
		bad := xt.Errorf("%s: bad integer value for option \"--%s\", or out of range.\n", target, opt)
		v64, rest, ok := xt.ParseUintPrefix(arg)
		if !ok || v64 > 0xffffffff {
			return 0, 0, bad
		}
		m64 := uint64(0xffffffff)
		if strings.HasPrefix(rest, "/") {
			if m64, rest, ok = xt.ParseUintPrefix(rest[1:]); !ok || m64 > 0xffffffff {
				return 0, 0, bad
			}
		}
		if rest != "" {
			return 0, 0, xt.Errorf("%s: trailing garbage after value for option \"--%s\".\n", target, opt)
		}
		v, m := uint32(v64), uint32(m64)
		if opt == "set-mark" {
			m |= v
		}
		return v, m, nil
	}
	v, err := parseRange(target, opt, arg, 0, 0xffffffff)
	if err != nil {
		return 0, 0, err
	}
	bits := uint32(v)
	switch opt {
	case "and-mark":
		return 0, ^bits, nil
	case "or-mark":
		return bits, bits, nil
	}
	return bits, 0, nil // xor-mark
}

// Parse reads one MARK option.
func (t *Mark) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if err := t.opts.mark(opt, invert); err != nil {
		return err
	}
	v, m, err := parseXMark("MARK", opt, arg)
	if err != nil {
		return err
	}
	t.Value, t.Mask = v, m
	return nil
}

// Final requires one operation.
func (t *Mark) Final(*xt.ParseContext) error {
	if t.opts.seen == 0 {
		return xt.Errorf("MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required")
	}
	return t.opts.final()
}

// Save prints the canonical --set-xmark VALUE/MASK.
func (t *Mark) Save(b *strings.Builder) {
	b.WriteString(" --set-xmark ")
	hex32(b, t.Value)
	b.WriteByte('/')
	hex32(b, t.Mask)
}

// listXMark prints the operation the way iptables -L names it: and, or,
// xor, set or xset, tested in that order.
func listXMark(b *strings.Builder, value, mask uint32) {
	switch {
	case value == 0:
		b.WriteString(" and ")
		hex32(b, ^mask)
	case value == mask:
		b.WriteString(" or ")
		hex32(b, value)
	case mask == 0:
		b.WriteString(" xor ")
		hex32(b, value)
	case mask == 0xffffffff:
		b.WriteString(" set ")
		hex32(b, value)
	default:
		b.WriteString(" xset ")
		hex32(b, value)
		b.WriteByte('/')
		hex32(b, mask)
	}
}

// List prints "MARK and|or|xor|set|xset ...".
func (t *Mark) List(b *strings.Builder, _ bool) {
	b.WriteString(" MARK")
	listXMark(b, t.Value, t.Mask)
}

// Apply returns the new packet mark.
func (t *Mark) Apply(old uint32) uint32 { return old&^t.Mask ^ t.Value }

func registerMark(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "MARK", Options: options(markOpts), New: newMark})
}
