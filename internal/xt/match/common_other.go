package match

import (
	"fmt"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// This file holds what the "other" matches (iprange, mark, time, u32, ...)
// share: a small model of libxtables' option table (the x6 option API), so
// that every extension reports the generic option errors with iptables'
// exact words and in iptables' order.
//
// iptables checks three things while it reads an option (in this order):
// "!" before an option that cannot be inverted, a repeated option that is not
// XTOPT_MULTI, and then the value. After the command line it runs the
// extension's own final check first and the generic one (mandatory options,
// exclusions, "also requires") second.

// optFlag describes an option of an optTable.
type optFlag uint8

const (
	optMand   optFlag = 1 << iota // XTOPT_MAND: must be given
	optInvert                     // XTOPT_INVERT: "!" allowed
	optMulti                      // XTOPT_MULTI: may repeat
)

// optEntry is one long option. Aliases share an id; the first entry with an
// id is the one named in error messages.
type optEntry struct {
	name  string
	id    uint
	arg   xt.ArgKind
	extra int
	flags optFlag
	excl  uint32 // ids (as bits) that may not be combined with this one
	also  uint32 // ids (as bits) this one needs
}

// optTable is an extension's option list, in iptables' table order (which is
// the order of the final checks).
type optTable []optEntry

// options returns the xt.Option list for a MatchSpec.
func (t optTable) options() []xt.Option {
	o := make([]xt.Option, 0, len(t))
	for _, e := range t {
		o = append(o, xt.Option{Name: e.name, Arg: e.arg, Extra: e.extra})
	}
	return o
}

func (t optTable) byName(name string) *optEntry {
	for i := range t {
		if t[i].name == name {
			return &t[i]
		}
	}
	return nil
}

func (t optTable) byID(id uint) *optEntry {
	for i := range t {
		if t[i].id == id {
			return &t[i]
		}
	}
	return nil
}

// begin runs the parse-time generic checks for opt and records it in seen.
// It returns the entry (never nil for an option the grammar accepted).
func (t optTable) begin(ext string, seen *uint32, opt string, invert bool) (*optEntry, error) {
	e := t.byName(opt)
	if e == nil {
		return nil, xt.Errorf("unknown option \"--%s\"", opt)
	}
	if invert && e.flags&optInvert == 0 {
		return nil, xt.Errorf("%s: option \"--%s\" cannot be inverted.\n", ext, e.name)
	}
	if e.flags&optMulti == 0 && *seen&(1<<e.id) != 0 {
		return nil, xt.Errorf("%s: option \"--%s\" can only be used once.\n", ext, e.name)
	}
	*seen |= 1 << e.id
	return e, nil
}

// fcheck is libxtables' generic final check.
func (t optTable) fcheck(ext string, seen uint32) error {
	for _, e := range t {
		if t.byID(e.id).name != e.name {
			continue // an alias: checked under its main name
		}
		if e.flags&optMand != 0 && seen&(1<<e.id) == 0 {
			return xt.Errorf("%s: option \"--%s\" must be specified\n", ext, e.name)
		}
		if seen&(1<<e.id) == 0 {
			continue
		}
		for i := uint(0); i < 32; i++ {
			if i == e.id {
				continue
			}
			o := t.byID(i)
			if o == nil {
				continue
			}
			if e.excl&(1<<i) != 0 && seen&(1<<i) != 0 {
				return xt.Errorf("%s: option \"--%s\" cannot be used together with \"--%s\".\n", ext, e.name, o.name)
			}
			if e.also&(1<<i) != 0 && seen&(1<<i) == 0 {
				return xt.Errorf("%s: option \"--%s\" also requires \"--%s\".\n", ext, e.name, o.name)
			}
		}
	}
	return nil
}

// errBadUint is the XTTYPE_UINT* error.
func errBadUint(ext, opt string, min, max uint64) error {
	return xt.Errorf("%s: bad value for option \"--%s\", or out of range (%d-%d).\n", ext, opt, min, max)
}

// errBadValue is xtables_param_act(XTF_BAD_VALUE): no trailing empty line.
func errBadValue(ext, opt, val string) error {
	return xt.Errorf("%s: Bad value for \"--%s\" option: \"%s\"", ext, opt, val)
}

// parseUintOpt parses an XTTYPE_UINT* option value in [min, max].
func parseUintOpt(ext, opt, arg string, min, max uint64) (uint64, error) {
	v, ok := xt.ParseUint(arg, min, max)
	if !ok || strings.HasPrefix(strings.TrimLeft(arg, " \t"), "-") {
		return 0, errBadUint(ext, opt, min, max)
	}
	return v, nil
}

// parseMarkOpt parses an XTTYPE_MARKMASK32 value "value[/mask]" with
// libxtables' two error texts. A missing mask is all ones.
func parseMarkOpt(ext, opt, arg string) (val, mask uint32, err error) {
	bad := xt.Errorf("%s: bad integer value for option \"--%s\", or out of range.\n", ext, opt)
	v, rest, ok := xt.ParseUintPrefix(arg)
	if !ok || v > 0xffffffff {
		return 0, 0, bad
	}
	m := uint64(0xffffffff)
	if strings.HasPrefix(rest, "/") {
		m, rest, ok = xt.ParseUintPrefix(rest[1:])
		if !ok || m > 0xffffffff {
			return 0, 0, bad
		}
	}
	if rest != "" {
		return 0, 0, xt.Errorf("%s: trailing garbage after value for option \"--%s\".\n", ext, opt)
	}
	return uint32(v), uint32(m), nil
}

// markString prints value[/mask] as iptables' print_mark/xtables_print_mark_mask:
// hex, the mask left out when it is all ones.
func markString(val, mask uint32) string {
	if mask == 0xffffffff {
		return fmt.Sprintf("0x%x", val)
	}
	return fmt.Sprintf("0x%x/0x%x", val, mask)
}

// saveNot writes " !" when inv, for Save output (" ! --opt").
func saveNot(b *strings.Builder, inv bool) {
	if inv {
		b.WriteString(" !")
	}
}

// Hook sets the kernel uses for "has an input device" and "has an output
// device" (devgroup, addrtype, mac).
const (
	hooksWithIn  = xt.HookMask(1<<xt.PreRouting | 1<<xt.LocalIn | 1<<xt.Forward)
	hooksWithOut = xt.HookMask(1<<xt.Forward | 1<<xt.LocalOut | 1<<xt.PostRouting)
)
