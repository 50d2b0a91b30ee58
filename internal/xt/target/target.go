// Package target holds the target extensions (`-j NAME`), one file per
// extension named after it. The standard verdicts (ACCEPT, DROP, RETURN) and
// jumps are part of the rule model, not extensions.
package target

import "github.com/uptables/uptables/internal/xt"

// Register adds every target extension to r.
func Register(r *xt.Registry) {
	registerAll(r)
}
