// Package target holds the target extensions (`-j NAME`), one file per
// extension named after it. The standard verdicts (ACCEPT, DROP, RETURN) and
// jumps are part of the rule model, not extensions.
package target

import (
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/match"
)

// Register adds every target extension to r; SET sees no ipset.
func Register(r *xt.Registry) { RegisterWithSets(r, nil) }

// RegisterWithSets adds every target extension to r; SET checks set names
// with sets (nil: no set exists).
func RegisterWithSets(r *xt.Registry, sets match.SetLookup) {
	registerAll(r)
	registerSet(r, sets)
}
