package target

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/uptables/uptables/internal/xt"
)

// This file holds what several targets share: the option bookkeeping of
// libxtables (each option at most once, mutually exclusive options, options
// that need another one, mandatory options) with its exact error texts, and
// the kernel-side table/hook refusals.

// optDef describes one option of a target the way libxtables' option table
// does. The order of a target's optDefs is the order iptables checks
// combinations in, which decides which pair an error names.
type optDef struct {
	name  string
	arg   xt.ArgKind
	excl  []string // options that may not be combined with this one
	also  []string // options this one needs
	mand  bool     // must be given
	multi bool     // may be given more than once
}

// tracker records which options a target instance has seen.
type tracker struct {
	target string
	defs   []optDef
	seen   uint32
}

func (t *tracker) index(name string) int {
	for i := range t.defs {
		if t.defs[i].name == name {
			return i
		}
	}
	return -1
}

// mark notes that opt was given; no target option can be negated. A second occurrence of a single-use option
// is iptables' `X: option "--o" can only be used once.` (with the empty line).
func (t *tracker) mark(opt string, invert bool) error {
	i := t.index(opt)
	if i < 0 {
		return xt.Errorf("unknown option \"--%s\"", opt)
	}
	if invert {
		return xt.Errorf("%s: option \"--%s\" cannot be inverted.\n", t.target, opt)
	}
	if t.seen&(1<<i) != 0 && !t.defs[i].multi {
		return errOnce(t.target, opt)
	}
	t.seen |= 1 << i
	return nil
}

// has reports whether opt was given.
func (t *tracker) has(opt string) bool {
	i := t.index(opt)
	return i >= 0 && t.seen&(1<<i) != 0
}

// final runs libxtables' end-of-command-line checks in option table order:
// mandatory options, exclusions, then requirements.
func (t *tracker) final() error {
	for i, d := range t.defs {
		if t.seen&(1<<i) == 0 {
			if d.mand {
				return xt.Errorf("%s: option \"--%s\" must be specified\n", t.target, d.name)
			}
			continue
		}
		for _, e := range d.excl {
			if e != d.name && t.has(e) {
				return xt.Errorf("%s: option \"--%s\" cannot be used together with \"--%s\".\n", t.target, d.name, e)
			}
		}
		for _, a := range d.also {
			if !t.has(a) {
				return xt.Errorf("%s: option \"--%s\" also requires \"--%s\".\n", t.target, d.name, a)
			}
		}
	}
	return nil
}

// options converts the definitions to the registry's option list.
func options(defs []optDef, aliases ...xt.Option) []xt.Option {
	out := make([]xt.Option, 0, len(defs)+len(aliases))
	for _, d := range defs {
		out = append(out, xt.Option{Name: d.name, Arg: d.arg})
	}
	return append(out, aliases...)
}

func errOnce(target, opt string) error {
	return xt.Errorf("%s: option \"--%s\" can only be used once.\n", target, opt)
}

// errRange is libxtables' message for a number outside its option's range.
func errRange(target, opt string, min, max uint64) error {
	return xt.Errorf("%s: bad value for option \"--%s\", or out of range (%d-%d).\n", target, opt, min, max)
}

// parseRange parses a number option of a libxtables range type.
func parseRange(target, opt, arg string, min, max uint64) (uint64, error) {
	v, ok := xt.ParseUint(arg, min, max)
	if !ok {
		return 0, errRange(target, opt, min, max)
	}
	return v, nil
}

// hookList prints a hook mask as the kernel's dmesg does ("PREROUTING/OUTPUT").
func hookList(m xt.HookMask) string {
	var parts []string
	for h := xt.Hook(0); h < xt.NumHooks; h++ {
		if m.Has(h) {
			parts = append(parts, h.String())
		}
	}
	return strings.Join(parts, "/")
}

// checkTable is x_tables' table restriction of a target (xt_check_target).
func checkTable(ctx *xt.CheckContext, target, table string) error {
	if ctx.Table != table {
		return xt.EINVAL("x_tables: ip_tables: %s target: only valid in %s table, not %s", target, table, ctx.Table)
	}
	return nil
}

// checkHooks is x_tables' hook restriction of a target. An empty mask (a
// chain no built-in chain reaches) passes, as in the kernel.
func checkHooks(ctx *xt.CheckContext, target string, allowed xt.HookMask) error {
	if !ctx.Hooks.Only(allowed) {
		return xt.EINVAL("x_tables: ip_tables: %s target: used from hooks %s, but only usable from %s",
			target, hookList(ctx.Hooks), hookList(allowed))
	}
	return nil
}

// kernelErr returns a refusal with an errno other than EINVAL.
func kernelErr(errno syscall.Errno, format string, a ...any) error {
	return &xt.KernelError{Errno: errno, Why: fmt.Sprintf(format, a...)}
}

// hex32 prints "0x%x".
func hex32(b *strings.Builder, v uint32) {
	b.WriteString("0x")
	b.WriteString(strconv.FormatUint(uint64(v), 16))
}

// hex8 prints "0x%02x".
func hex8(b *strings.Builder, v uint8) {
	const digits = "0123456789abcdef"
	b.WriteString("0x")
	b.WriteByte(digits[v>>4])
	b.WriteByte(digits[v&0xf])
}

func writeUint(b *strings.Builder, v uint64) {
	b.WriteString(strconv.FormatUint(v, 10))
}

// Warner is implemented by targets whose parsing printed a warning that
// iptables writes to stderr while still accepting the rule (NFLOG's
// --nflog-range, REJECT's echo-reply). The grammar prints them in order,
// before any error of the same command.
type Warner interface {
	Warnings() []string
}

// ListNamer is implemented by targets that the target column of
// `iptables -L` names differently from -j (NOTRACK is listed as CT).
type ListNamer interface {
	ListName() string
}
