// Package match holds the match extensions (`-m NAME`), one file per
// extension named after it. Each file defines the extension's options,
// validation, canonical printing and (with the engine) its packet test.
package match

import "github.com/uptables/uptables/internal/xt"

// Register adds every match extension to r.
func Register(r *xt.Registry) {
	registerProtoAndState(r)
	registerOthers(r)
}
