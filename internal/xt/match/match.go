// Package match holds the match extensions (`-m NAME`), one file per
// extension named after it. Each file defines the extension's options,
// validation, canonical printing and (with the engine) its packet test.
package match

import "github.com/uptables/uptables/internal/xt"

// Register adds every match extension to r; -m set sees no ipset.
func Register(r *xt.Registry) { RegisterWithSets(r, nil) }

// RegisterWithSets adds every match extension to r; -m set checks set
// names with sets (nil: no set exists, iptables' answer on a host without
// ipsets).
func RegisterWithSets(r *xt.Registry, sets SetLookup) {
	registerProtoAndState(r)
	registerOthers(r, sets)
}
