// Package ruleset is the rule model: tables, chains and rules as values,
// independent of how they were written (command line, save file) and of how
// they run (the engine compiles them). A Ruleset is treated as immutable once
// built: a command produces a new Ruleset, and the engine swaps it in
// atomically, so a failed command or load changes nothing.
package ruleset

import (
	"net/netip"

	"github.com/uptables/uptables/internal/xt"
)

// Verdict is a standard target or policy.
type Verdict uint8

const (
	VerdictNone Verdict = iota // no target: the rule only counts
	Accept
	Drop
	Return
	Queue // legacy QUEUE; refused by nft, kept for error reporting
)

// String returns the iptables spelling.
func (v Verdict) String() string {
	switch v {
	case Accept:
		return "ACCEPT"
	case Drop:
		return "DROP"
	case Return:
		return "RETURN"
	case Queue:
		return "QUEUE"
	}
	return ""
}

// Counters are a packet and byte count, as `[p:b]` in save files.
type Counters struct {
	Packets uint64
	Bytes   uint64
}

// TargetKind says what a rule does when all its matches pass.
type TargetKind uint8

const (
	TargetNone    TargetKind = iota // no -j: counters only
	TargetVerdict                   // ACCEPT, DROP, RETURN
	TargetJump                      // -j userchain
	TargetGoto                      // -g userchain
	TargetExt                       // an extension target (REJECT, LOG, ...)
)

// MatchEntry is one `-m NAME` block of a rule.
type MatchEntry struct {
	Spec  *xt.MatchSpec
	Match xt.Match
}

// Rule is one rule: the generic IP part, the matches, and the target.
type Rule struct {
	// Src and Dst: address and mask. The address is already masked, as the
	// kernel stores it (`-s 10.1.2.3/8` is 10.0.0.0/8). An invalid Addr means
	// "any". Masks may be non-contiguous when given in dotted form.
	Src, SrcMask netip.Addr
	Dst, DstMask netip.Addr
	InvSrc       bool
	InvDst       bool

	InIface, OutIface string // "" = any; trailing '+' = prefix match
	InvIn, InvOut     bool

	Proto    uint8 // 0 = any
	InvProto bool

	Frag    bool // -f given
	InvFrag bool

	Matches []MatchEntry

	Kind    TargetKind
	Verdict Verdict        // for TargetVerdict
	Chain   string         // for TargetJump / TargetGoto
	Target  xt.Target      // for TargetExt
	TSpec   *xt.TargetSpec // for TargetExt

	Counters Counters
}

// Chain is a built-in or user-defined chain.
type Chain struct {
	Name    string
	BuiltIn bool
	Hook    xt.Hook // for built-in chains
	Policy  Verdict // Accept or Drop for built-in chains
	// Counters are the policy counters of a built-in chain.
	Counters Counters
	Rules    []*Rule
}

// Table is one of raw, mangle, nat, filter (and security).
type Table struct {
	Name   string
	Chains []*Chain // built-in chains first in hook order, then user chains
}

// Ruleset is all tables of one family.
type Ruleset struct {
	Family xt.Family
	Tables []*Table // in iptables-nft save order: mangle, raw, filter, nat (those present)
}
