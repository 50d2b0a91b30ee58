package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// Trace is `-j TRACE` (§9.14): mark the packet so every rule it meets is
// reported. iptables-nft turns it into `meta nftrace set 1`, which is
// allowed in every table, so there is no Check.
type Trace struct{}

var _ xt.Target = Trace{}

// Parse refuses every option.
func (Trace) Parse(_ *xt.ParseContext, opt string, _ bool, _ string, _ []string) error {
	return xt.Errorf("unknown option \"--%s\"", opt)
}

// Final has nothing to check.
func (Trace) Final(*xt.ParseContext) error { return nil }

// Save prints nothing after -j TRACE.
func (Trace) Save(*strings.Builder) {}

// List prints nothing either.
func (Trace) List(*strings.Builder, bool) {}

func registerTrace(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "TRACE", New: func() xt.Target { return Trace{} }})
}
