package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// ConnmarkMode is what CONNMARK does with the marks.
type ConnmarkMode uint8

const (
	// ConnmarkSet: ct.mark = (ct.mark AND NOT CTMask) XOR Value.
	ConnmarkSet ConnmarkMode = iota + 1
	// ConnmarkSave: ct.mark = (ct.mark AND NOT CTMask) XOR (skb.mark AND NFMask), shifted.
	ConnmarkSave
	// ConnmarkRestore: skb.mark = (skb.mark AND NOT NFMask) XOR (ct.mark AND CTMask), shifted.
	ConnmarkRestore
)

var connmarkOps = []string{"set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark", "save-mark", "restore-mark"}

// connmarkOpts follows libxt_CONNMARK's revision-2 option table order.
var connmarkOpts = []optDef{
	{name: "set-xmark", arg: xt.RequiredArg, excl: connmarkOps},
	{name: "set-mark", arg: xt.RequiredArg, excl: connmarkOps},
	{name: "and-mark", arg: xt.RequiredArg, excl: connmarkOps},
	{name: "or-mark", arg: xt.RequiredArg, excl: connmarkOps},
	{name: "xor-mark", arg: xt.RequiredArg, excl: connmarkOps},
	{name: "save-mark", excl: connmarkOps},
	{name: "restore-mark", excl: connmarkOps},
	{name: "left-shift-mark", arg: xt.RequiredArg},
	{name: "right-shift-mark", arg: xt.RequiredArg},
	{name: "ctmask", arg: xt.RequiredArg, excl: []string{"mask"}},
	{name: "nfmask", arg: xt.RequiredArg, excl: []string{"mask"}},
	{name: "mask", arg: xt.RequiredArg, excl: []string{"ctmask", "nfmask"}},
}

// Connmark is `-j CONNMARK` (revision 2, §9.9). Without a conntrack entry
// the runtime does nothing. Shift is applied after masking, to the right
// when ShiftRight; the kernel refuses more than 31 bits.
type Connmark struct {
	Mode       ConnmarkMode
	Value      uint32 // ConnmarkSet
	CTMask     uint32
	NFMask     uint32
	ShiftBits  uint8
	ShiftRight bool
	opts       tracker
}

var (
	_ xt.Target  = (*Connmark)(nil)
	_ xt.Checker = (*Connmark)(nil)
)

func newConnmark() xt.Target {
	return &Connmark{CTMask: 0xffffffff, NFMask: 0xffffffff, opts: tracker{target: "CONNMARK", defs: connmarkOpts}}
}

// Parse reads one CONNMARK option. As in iptables, each option updates the
// masks when it is read, so the last word wins (`--mask 3 --set-mark 1`
// keeps set-mark's mask).
func (c *Connmark) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if err := c.opts.mark(opt, invert); err != nil {
		return err
	}
	switch opt {
	case "save-mark":
		c.Mode = ConnmarkSave
	case "restore-mark":
		c.Mode = ConnmarkRestore
	case "left-shift-mark", "right-shift-mark":
		v, err := parseRange("CONNMARK", opt, arg, 0, 32)
		if err != nil {
			return err
		}
		c.ShiftBits, c.ShiftRight = uint8(v), opt == "right-shift-mark"
	case "ctmask", "nfmask", "mask":
		v, err := parseRange("CONNMARK", opt, arg, 0, 0xffffffff)
		if err != nil {
			return err
		}
		if opt != "nfmask" {
			c.CTMask = uint32(v)
		}
		if opt != "ctmask" {
			c.NFMask = uint32(v)
		}
	default:
		v, m, err := parseXMark("CONNMARK", opt, arg)
		if err != nil {
			return err
		}
		c.Mode, c.Value, c.CTMask = ConnmarkSet, v, m
	}
	return nil
}

// Final requires an operation.
func (c *Connmark) Final(*xt.ParseContext) error {
	if c.Mode == 0 {
		return xt.Errorf("CONNMARK target: No operation specified")
	}
	return c.opts.final()
}

func (c *Connmark) shift(b *strings.Builder, dash string) {
	if c.ShiftBits == 0 {
		return
	}
	if c.ShiftRight {
		b.WriteString(" " + dash + "right-shift-mark ")
	} else {
		b.WriteString(" " + dash + "left-shift-mark ")
	}
	writeUint(b, uint64(c.ShiftBits))
}

// Save prints --set-xmark V/M, or the save/restore form with both masks.
func (c *Connmark) Save(b *strings.Builder) {
	switch c.Mode {
	case ConnmarkSet:
		b.WriteString(" --set-xmark ")
		hex32(b, c.Value)
		b.WriteByte('/')
		hex32(b, c.CTMask)
	case ConnmarkSave, ConnmarkRestore:
		if c.Mode == ConnmarkSave {
			b.WriteString(" --save-mark --nfmask ")
		} else {
			b.WriteString(" --restore-mark --nfmask ")
		}
		hex32(b, c.NFMask)
		b.WriteString(" --ctmask ")
		hex32(b, c.CTMask)
	}
	c.shift(b, "--")
}

// List prints "CONNMARK set ..." / "CONNMARK save [mask ...]" /
// "CONNMARK restore [mask ...]" as iptables -L does.
func (c *Connmark) List(b *strings.Builder, _ bool) {
	b.WriteString(" CONNMARK")
	switch c.Mode {
	case ConnmarkSet:
		listXMark(b, c.Value, c.CTMask)
	case ConnmarkSave, ConnmarkRestore:
		first, firstMask, second, secondMask := " nfmask ", c.NFMask, " ctmask ~", c.CTMask
		if c.Mode == ConnmarkSave {
			b.WriteString(" save")
		} else {
			b.WriteString(" restore")
			first, firstMask, second, secondMask = " ctmask ", c.CTMask, " nfmask ~", c.NFMask
		}
		switch {
		case c.NFMask == 0xffffffff && c.CTMask == 0xffffffff:
		case c.NFMask == c.CTMask:
			b.WriteString(" mask ")
			hex32(b, c.NFMask)
		default:
			b.WriteString(first)
			hex32(b, firstMask)
			b.WriteString(second)
			hex32(b, secondMask)
		}
	}
	c.shift(b, "")
}

// Check mirrors xt_connmark's checkentry: at most 31 shift bits. CONNMARK
// is allowed in every table.
func (c *Connmark) Check(*xt.CheckContext) error {
	if c.ShiftBits > 31 {
		return xt.EINVAL("xt_CONNMARK: shift_bits %d out of range", c.ShiftBits)
	}
	return nil
}

func registerConnmark(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "CONNMARK", Options: options(connmarkOpts), New: newConnmark})
}
