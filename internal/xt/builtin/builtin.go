// Package builtin assembles the registry of every extension uptables knows.
package builtin

import (
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/match"
	"github.com/uptables/uptables/internal/xt/target"
)

// Registry returns a new registry with all matches and targets.
func Registry() *xt.Registry {
	r := xt.NewRegistry()
	match.Register(r)
	target.Register(r)
	return r
}
