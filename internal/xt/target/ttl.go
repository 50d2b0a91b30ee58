package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// TTLMode is the TTL target's operation (IPT_TTL_SET/INC/DEC).
type TTLMode uint8

const (
	TTLSet TTLMode = iota + 1
	TTLInc         // capped at 255
	TTLDec         // floored at 0
)

var ttlModes = []string{"ttl-set", "ttl-dec", "ttl-inc"}

var ttlOpts = []optDef{
	{name: "ttl-set", arg: xt.RequiredArg, excl: ttlModes},
	{name: "ttl-dec", arg: xt.RequiredArg, excl: ttlModes},
	{name: "ttl-inc", arg: xt.RequiredArg, excl: ttlModes},
}

// TTL is `-j TTL` (§9.5): rewrite the IPv4 TTL and fix the header
// checksum; mangle table only.
type TTL struct {
	Mode  TTLMode
	Value uint8
	opts  tracker
}

var (
	_ xt.Target  = (*TTL)(nil)
	_ xt.Checker = (*TTL)(nil)
)

func newTTL() xt.Target { return &TTL{opts: tracker{target: "TTL", defs: ttlOpts}} }

// Parse reads --ttl-set (0-255), --ttl-dec or --ttl-inc (1-255).
func (t *TTL) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if err := t.opts.mark(opt, invert); err != nil {
		return err
	}
	min := uint64(1)
	mode := TTLDec
	switch opt {
	case "ttl-set":
		min, mode = 0, TTLSet
	case "ttl-inc":
		mode = TTLInc
	}
	v, err := parseRange("TTL", opt, arg, min, 255)
	if err != nil {
		return err
	}
	t.Mode, t.Value = mode, uint8(v)
	return nil
}

// Final requires one operation.
func (t *TTL) Final(*xt.ParseContext) error {
	if t.Mode == 0 {
		return xt.Errorf("TTL: You must specify an action")
	}
	return t.opts.final()
}

// Save prints the one operation.
func (t *TTL) Save(b *strings.Builder) {
	b.WriteString(" --")
	b.WriteString(t.opName())
	b.WriteByte(' ')
	writeUint(b, uint64(t.Value))
}

func (t *TTL) opName() string {
	switch t.Mode {
	case TTLSet:
		return "ttl-set"
	case TTLInc:
		return "ttl-inc"
	}
	return "ttl-dec"
}

// List prints "TTL set to N" / "TTL increment by N" / "TTL decrement by N".
func (t *TTL) List(b *strings.Builder, _ bool) {
	switch t.Mode {
	case TTLSet:
		b.WriteString(" TTL set to ")
	case TTLInc:
		b.WriteString(" TTL increment by ")
	default:
		b.WriteString(" TTL decrement by ")
	}
	writeUint(b, uint64(t.Value))
}

// Apply returns the new TTL.
func (t *TTL) Apply(old uint8) uint8 {
	switch t.Mode {
	case TTLSet:
		return t.Value
	case TTLInc:
		if int(old)+int(t.Value) > 255 {
			return 255
		}
		return old + t.Value
	}
	if old < t.Value {
		return 0
	}
	return old - t.Value
}

// Check: mangle table only.
func (t *TTL) Check(ctx *xt.CheckContext) error { return checkTable(ctx, "TTL", "mangle") }

func registerTTL(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "TTL", Family: xt.IPv4, Options: options(ttlOpts), New: newTTL})
}
