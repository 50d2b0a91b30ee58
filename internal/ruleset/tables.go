package ruleset

import (
	"github.com/uptables/uptables/internal/xt"
)

// TableOrder is the order in which iptables-nft 1.8.9 prints tables in
// iptables-save output (it walks its own table list, not the kernel's).
func TableOrder() []string {
	return []string{"mangle", "security", "raw", "filter", "nat"}
}

// BuiltinHooks returns the built-in chains of a table, in the order iptables
// lists them, or ok=false when the table does not exist (iptables: "table
// 'foo' does not exist").
func BuiltinHooks(table string) (hooks []xt.Hook, ok bool) {
	switch table {
	case "raw":
		return []xt.Hook{xt.PreRouting, xt.LocalOut}, true
	case "mangle":
		return []xt.Hook{xt.PreRouting, xt.LocalIn, xt.Forward, xt.LocalOut, xt.PostRouting}, true
	case "nat":
		return []xt.Hook{xt.PreRouting, xt.LocalIn, xt.LocalOut, xt.PostRouting}, true
	case "filter", "security":
		return []xt.Hook{xt.LocalIn, xt.Forward, xt.LocalOut}, true
	}
	return nil, false
}

// New returns an empty rule set without tables. With iptables-nft a table
// only exists once a command modified it; listing a missing table shows its
// built-in chains empty with policy ACCEPT (see Ruleset.View).
func New(f xt.Family) *Ruleset {
	return &Ruleset{Family: f}
}

// NewTable returns a table with its built-in chains, empty, policy ACCEPT.
func NewTable(name string) (*Table, bool) {
	hooks, ok := BuiltinHooks(name)
	if !ok {
		return nil, false
	}
	t := &Table{Name: name}
	for _, h := range hooks {
		t.Chains = append(t.Chains, &Chain{Name: h.String(), BuiltIn: true, Hook: h, Policy: Accept})
	}
	return t, true
}

// Table returns the named table or nil when it does not exist (yet).
func (rs *Ruleset) Table(name string) *Table {
	for _, t := range rs.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// View returns the table for reading: the existing one or, for a valid
// table name that was never created, a fresh empty one (not added to rs).
func (rs *Ruleset) View(name string) (*Table, bool) {
	if t := rs.Table(name); t != nil {
		return t, true
	}
	return NewTable(name)
}

// Chain returns the named chain or nil.
func (t *Table) Chain(name string) *Chain {
	for _, c := range t.Chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// References counts the rules of the table that jump or go to the chain, as
// `iptables -L` prints in "(N references)".
func (t *Table) References(name string) int {
	n := 0
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			if (r.Kind == TargetJump || r.Kind == TargetGoto) && r.Chain == name {
				n++
			}
		}
	}
	return n
}

// Clone returns a copy of the rule set whose tables, chains and rule slices
// may be changed without affecting rs. Rules themselves are shared: they are
// immutable values; a command that changes one (counters) replaces it.
func (rs *Ruleset) Clone() *Ruleset {
	n := &Ruleset{Family: rs.Family, Tables: make([]*Table, len(rs.Tables))}
	for i, t := range rs.Tables {
		n.Tables[i] = t.Clone()
	}
	return n
}

// Clone copies the table, its chains and their rule slices.
func (t *Table) Clone() *Table {
	nt := &Table{Name: t.Name, Chains: make([]*Chain, len(t.Chains))}
	for i, c := range t.Chains {
		cc := *c
		cc.Rules = append([]*Rule(nil), c.Rules...)
		nt.Chains[i] = &cc
	}
	return nt
}

// EnsureTable returns the named table, creating it (in save order) when it
// does not exist; ok is false for an unknown table name.
func (rs *Ruleset) EnsureTable(name string) (*Table, bool) {
	if t := rs.Table(name); t != nil {
		return t, true
	}
	t, ok := NewTable(name)
	if !ok {
		return nil, false
	}
	rs.Tables = append(rs.Tables, t)
	rs.sortTables()
	return t, true
}

func (rs *Ruleset) sortTables() {
	order := TableOrder()
	pos := func(n string) int {
		for i, o := range order {
			if o == n {
				return i
			}
		}
		return len(order)
	}
	// insertion sort: at most five tables
	for i := 1; i < len(rs.Tables); i++ {
		for j := i; j > 0 && pos(rs.Tables[j].Name) < pos(rs.Tables[j-1].Name); j-- {
			rs.Tables[j], rs.Tables[j-1] = rs.Tables[j-1], rs.Tables[j]
		}
	}
}

// IsStandardTarget reports whether name is one of the verdicts iptables
// treats as built-in targets (a chain may not be named like them).
func IsStandardTarget(name string) (Verdict, bool) {
	switch name {
	case "ACCEPT":
		return Accept, true
	case "DROP":
		return Drop, true
	case "RETURN":
		return Return, true
	case "QUEUE":
		return Queue, true
	}
	return VerdictNone, false
}
