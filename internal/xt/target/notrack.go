package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// NoTrack is `-j NOTRACK`, the old name of `-j CT --notrack`. It takes no
// options and prints as NOTRACK in -S (the -L target column says CT).
type NoTrack struct{}

var (
	_ xt.Target  = NoTrack{}
	_ xt.Checker = NoTrack{}
	_ ListNamer  = NoTrack{}
)

// Parse refuses every option.
func (NoTrack) Parse(_ *xt.ParseContext, opt string, _ bool, _ string, _ []string) error {
	return xt.Errorf("unknown option \"--%s\"", opt)
}

// Final has nothing to check.
func (NoTrack) Final(*xt.ParseContext) error { return nil }

// Save prints nothing after -j NOTRACK.
func (NoTrack) Save(*strings.Builder) {}

// List prints " NOTRACK".
func (NoTrack) List(b *strings.Builder, _ bool) { b.WriteString(" NOTRACK") }

// ListName is the -L target column: CT.
func (NoTrack) ListName() string { return "CT" }

// Check: raw table only, as CT.
func (NoTrack) Check(ctx *xt.CheckContext) error { return checkTable(ctx, "CT", "raw") }

func registerNoTrack(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "NOTRACK", New: func() xt.Target { return NoTrack{} }})
}
