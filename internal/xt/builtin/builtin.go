// Package builtin assembles the registry of every extension uptables knows.
package builtin

import (
	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/ruleset"
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

// RegistryWithSets returns a registry whose -m set and -j SET know the sets
// of sets (iptables checks that a set exists when it parses a rule). The
// engine that runs the rules must have the same *ipset.Sets pinned under
// match.NamedSetsKind/NamedSetsName (see PinSets).
func RegistryWithSets(sets *ipset.Sets) *xt.Registry {
	r := xt.NewRegistry()
	var lookup match.SetLookup
	if sets != nil {
		lookup = sets.Exists
	}
	match.RegisterWithSets(r, lookup)
	target.RegisterWithSets(r, lookup)
	return r
}

// Pinner is what PinSets needs of an engine (netfilter.Engine.Pin).
type Pinner interface {
	Pin(kind, name string, v any) error
}

// PinSets makes sets the engine's ipsets for -m set and -j SET.
func PinSets(e Pinner, sets *ipset.Sets) error {
	return e.Pin(match.NamedSetsKind, match.NamedSetsName, sets)
}

// SetReferences counts, per set name, the references the rules of rs hold
// as the kernel counts them: one per -m set --match-set, one per
// -j SET --add-set and one per --del-set. The owner of the rules gives it
// to ipset.Sets.SetReferences after each load, so that `ipset list` shows
// "References:" and `ipset destroy` refuses a set in use.
func SetReferences(rs *ruleset.Ruleset) map[string]int {
	out := map[string]int{}
	if rs == nil {
		return out
	}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				for _, m := range r.Matches {
					if s, ok := m.Match.(*match.Set); ok && s.Name != "" {
						out[s.Name]++
					}
				}
				if st, ok := r.Target.(*target.SetTarget); ok {
					if st.AddName != "" {
						out[st.AddName]++
					}
					if st.DelName != "" {
						out[st.DelName]++
					}
				}
			}
		}
	}
	return out
}
