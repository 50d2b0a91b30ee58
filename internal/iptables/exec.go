package iptables

import (
	"io"
	"strings"
	"syscall"

	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// Result is what a command produced besides the new rule set.
type Result struct {
	// Ruleset is the rule set after the command: the input itself when
	// nothing changed, otherwise a new value (the input is never modified).
	Ruleset *ruleset.Ruleset
	Changed bool
}

// Execute runs a parsed command against rs as iptables-nft runs it against
// the kernel: listings are written to out, modifications produce a new
// rule set which is validated as the kernel would (a refusal leaves rs as
// it was). Errors are *Error values.
func Execute(rs *ruleset.Ruleset, cmd *Command, out io.Writer) (Result, error) {
	res := Result{Ruleset: rs}
	if cmd.Cmd&CmdVersion != 0 {
		v := "iptables " + Version + "\n"
		if cmd.VersionInv {
			v = "Not 1.8.9 (nf_tables) ;-)\n"
		}
		_, err := io.WriteString(out, v)
		return res, err
	}
	if cmd.Cmd&CmdHelp != 0 {
		_, err := io.WriteString(out, helpText(cmd.HelpExts))
		return res, err
	}
	if _, ok := ruleset.BuiltinHooks(cmd.Table); !ok {
		return res, &Error{Kind: KindFatal, Code: 3, Msg: "table '" + cmd.Table + "' does not exist\nPerhaps iptables or your kernel needs to be upgraded."}
	}
	if cmd.Cmd&(CmdList|CmdListRules) != 0 {
		t, _ := rs.View(cmd.Table)
		if (cmd.Chain != "" || cmd.ChainGiven) && t.Chain(cmd.Chain) == nil {
			return res, &Error{Kind: KindFatal, Code: 1, Msg: "chain `" + cmd.Chain + "' in table `" + cmd.Table + "' is incompatible, use 'nft' tool."}
		}
		var err error
		if cmd.Cmd&CmdList != 0 {
			err = WriteList(out, t, ListOptions{Chain: cmd.Chain, RuleNum: cmd.RuleNum, Numeric: cmd.Numeric,
				Verbose: cmd.Verbose > 0, Exact: cmd.Exact, LineNumbers: cmd.LineNumbers})
		} else {
			err = WriteListRules(out, t, cmd.Chain, cmd.RuleNum, cmd.Verbose > 0)
		}
		if err != nil {
			return res, err
		}
		if cmd.Cmd&(CmdZero|CmdZeroNum) == 0 {
			return res, nil
		}
	}
	if cmd.Cmd&(CmdAppend|CmdInsert|CmdReplace|CmdDelete|CmdCheck) != 0 {
		// iptables-nft looks the chain of -j/-g up in its cache while it
		// parses, before the command's own chain (measured: "-A nope -j
		// nope" is "Chain 'nope' does not exist", -g CT too)
		t, _ := rs.View(cmd.Table)
		for _, r := range cmd.Rules {
			if (r.Kind == ruleset.TargetJump || r.Kind == ruleset.TargetGoto) && t.Chain(r.Chain) == nil {
				return res, chainMissing(r.Chain)
			}
		}
	}
	if cmd.Verbose > 0 && cmd.Cmd&(CmdAppend|CmdInsert|CmdReplace|CmdDelete|CmdCheck) != 0 {
		// -v shows each rule before the kernel sees it (so also when
		// the chain then turns out to be missing)
		var b strings.Builder
		for _, r := range cmd.Rules {
			writeRuleLine(&b, r)
		}
		if _, err := io.WriteString(out, b.String()); err != nil {
			return res, err
		}
	}
	if cmd.Cmd&(CmdAppend|CmdInsert|CmdReplace|CmdDelete|CmdCheck) != 0 {
		for _, r := range cmd.Rules {
			if err := ruleBuildError(r); err != nil {
				return res, err
			}
		}
	}
	if cmd.Cmd == CmdCheck {
		t, _ := rs.View(cmd.Table)
		c := t.Chain(cmd.Chain)
		if c == nil {
			// nft looks the rule up without looking for the chain first
			return res, plain("Bad rule (does a matching rule exist in that chain?).")
		}
		for _, r := range cmd.Rules {
			if findRule(c, r) < 0 {
				return res, plain("Bad rule (does a matching rule exist in that chain?).")
			}
		}
		return res, nil
	}
	n := rs.Clone()
	if err := apply(n, cmd); err != nil {
		return res, err
	}
	return Result{Ruleset: n, Changed: true}, nil
}

// ruleBuildError is what iptables-nft reports while it turns a parsed rule
// into nft expressions, after all the checks of the command line: a
// native tcp/udp match on a rule without its -p (xt.Match values that
// implement ProtoError).
func ruleBuildError(r *ruleset.Rule) error {
	for _, m := range r.Matches {
		if pe, ok := m.Match.(interface{ ProtoError() error }); ok {
			if err := pe.ProtoError(); err != nil {
				return AsError(err, "", "")
			}
		}
	}
	return nil
}

func findRule(c *ruleset.Chain, r *ruleset.Rule) int {
	k := ruleKey(r)
	for i, x := range c.Rules {
		if ruleKey(x) == k {
			return i
		}
	}
	return -1
}

func noChain() *Error { return plain("No chain/target/match by that name.") }

// apply changes n (a private clone) according to cmd and validates it.
func apply(n *ruleset.Ruleset, cmd *Command) error {
	return applyOpt(n, cmd, true)
}

// applyOpt is apply; validate=false leaves rule validation to the caller
// (iptables-restore validates the whole file in file order at the end).
func applyOpt(n *ruleset.Ruleset, cmd *Command, validate bool) error {
	c := cmd.Cmd &^ (CmdList | CmdListRules)
	if cmd.ChainGiven && cmd.Chain == "" {
		// an empty chain name names no chain ("-F ''" is not "-F")
		if c == CmdZeroNum {
			return plain("Bad rule (does a matching rule exist in that chain?).")
		}
		if c&(CmdFlush|CmdZero|CmdDeleteChain) != 0 {
			return noChain()
		}
	}
	switch c {
	case CmdDelete, CmdZeroNum:
		if n.Table(cmd.Table) == nil {
			return plain("Bad rule (does a matching rule exist in that chain?).")
		}
	case CmdDeleteNum, CmdReplace:
		// nft: these never create the table; on a table that does not
		// exist yet every chain is missing.
		if n.Table(cmd.Table) == nil {
			return noChain()
		}
	case CmdDeleteChain, CmdZero, CmdFlush:
		// -F, -X and -Z on every chain of a table that does not exist
		// do nothing and do not create it; -X/-Z CHAIN find no chain
		// (-F CHAIN does create the table, as nft does).
		if n.Table(cmd.Table) == nil {
			if cmd.Chain == "" {
				return nil
			}
			if c != CmdFlush {
				return noChain()
			}
		}
	case CmdRenameChain:
		// the new name is looked up first: "-E nope INPUT" is "File
		// exists." even before the table exists
		if _, ok := ruleset.BuiltinHooks(cmd.Table); ok && n.Table(cmd.Table) == nil {
			if fresh, _ := ruleset.NewTable(cmd.Table); fresh.Chain(cmd.NewName) != nil {
				return plain("File exists.")
			}
			return noChain()
		}
	}
	t, _ := n.EnsureTable(cmd.Table)
	switch c {
	case CmdAppend, CmdInsert, CmdReplace:
		ch := t.Chain(cmd.Chain)
		if ch == nil {
			return noChain()
		}
		for _, r := range cmd.Rules {
			if (r.Kind == ruleset.TargetJump || r.Kind == ruleset.TargetGoto) && t.Chain(r.Chain) == nil {
				return chainMissing(r.Chain)
			}
		}
		op := "RULE_APPEND"
		switch c {
		case CmdAppend:
			ch.Rules = append(ch.Rules, cmd.Rules...)
		case CmdInsert:
			pos := cmd.RuleNum - 1
			if pos > len(ch.Rules) {
				return plain("Index of insertion too big.")
			}
			if pos < len(ch.Rules) || len(ch.Rules) == 0 {
				op = "RULE_INSERT"
			}
			for _, r := range cmd.Rules {
				ch.Rules = append(ch.Rules, nil)
				copy(ch.Rules[pos+1:], ch.Rules[pos:])
				ch.Rules[pos] = r
			}
		case CmdReplace:
			op = "RULE_REPLACE"
			if cmd.RuleNum > len(ch.Rules) {
				return plain("Index of replacement too big.")
			}
			if len(cmd.Rules) != 1 {
				return paramf("Replacement rule does not specify a unique address")
			}
			ch.Rules[cmd.RuleNum-1] = cmd.Rules[0]
		}
		if !validate {
			return nil
		}
		if err := ruleset.Validate(n); err != nil {
			return AsError(err, op, cmd.Chain)
		}
	case CmdDelete:
		ch := t.Chain(cmd.Chain)
		if ch == nil {
			return plain("Bad rule (does a matching rule exist in that chain?).")
		}
		for _, r := range cmd.Rules {
			i := findRule(ch, r)
			if i < 0 {
				return plain("Bad rule (does a matching rule exist in that chain?).")
			}
			ch.Rules = append(ch.Rules[:i], ch.Rules[i+1:]...)
		}
	case CmdDeleteNum:
		ch := t.Chain(cmd.Chain)
		if ch == nil {
			return noChain()
		}
		if cmd.RuleNum > len(ch.Rules) {
			return plain("Index of deletion too big.")
		}
		ch.Rules = append(ch.Rules[:cmd.RuleNum-1], ch.Rules[cmd.RuleNum:]...)
	case CmdFlush:
		for _, ch := range t.Chains {
			if cmd.Chain == "" || ch.Name == cmd.Chain {
				ch.Rules = nil
			}
		}
		if cmd.Chain != "" && t.Chain(cmd.Chain) == nil {
			return noChain()
		}
	case CmdZero, CmdZeroNum:
		if cmd.Chain != "" && t.Chain(cmd.Chain) == nil {
			if c == CmdZeroNum {
				return plain("Bad rule (does a matching rule exist in that chain?).")
			}
			return noChain()
		}
		for _, ch := range t.Chains {
			if cmd.Chain != "" && ch.Name != cmd.Chain {
				continue
			}
			if c == CmdZero {
				ch.Counters = ruleset.Counters{}
			}
			for i, r := range ch.Rules {
				if c == CmdZeroNum && i != cmd.RuleNum-1 {
					continue
				}
				cp := *r
				cp.Counters = ruleset.Counters{}
				ch.Rules[i] = &cp
			}
		}
	case CmdNewChain:
		if t.Chain(cmd.Chain) != nil {
			return plain("Chain already exists.")
		}
		t.Chains = append(t.Chains, &ruleset.Chain{Name: cmd.Chain})
	case CmdDeleteChain:
		return deleteChain(t, cmd.Chain)
	case CmdRenameChain:
		if t.Chain(cmd.NewName) != nil {
			return plain("File exists.")
		}
		ch := t.Chain(cmd.Chain)
		if ch == nil || ch.BuiltIn {
			return noChain()
		}
		if len(cmd.NewName) >= 29 {
			return paramf("chain name `" + cmd.NewName + "' too long (must be under 29 chars)")
		}
		if hasCSpace(cmd.NewName) || cmd.NewName == "" {
			// iptables 1.8.9 renames to such a name, and its own
			// iptables-save output then no longer restores; uptables keeps
			// every rule set it holds restorable (documented difference).
			e := paramf("Invalid chain name `" + cmd.NewName + "'")
			e.Hint = "iptables 1.8.9 accepts this rename, but the saved rule set could not be restored; uptables refuses names that -N refuses"
			return e
		}
		old := ch.Name
		ch.Name = cmd.NewName
		for _, x := range t.Chains {
			for i, r := range x.Rules {
				if (r.Kind == ruleset.TargetJump || r.Kind == ruleset.TargetGoto) && r.Chain == old {
					cp := *r
					cp.Chain = cmd.NewName
					x.Rules[i] = &cp
				}
			}
		}
	case CmdSetPolicy:
		// the policy is checked before the chain (measured: "-P FOO
		// QUEUE" is "Bad policy name.")
		v, std := ruleset.IsStandardTarget(cmd.Policy)
		if !std || (v != ruleset.Accept && v != ruleset.Drop) {
			e := plain("Bad policy name.")
			e.Dmesg = true
			e.Hint = "a built-in chain's policy is ACCEPT or DROP"
			return e
		}
		ch := t.Chain(cmd.Chain)
		if ch == nil || !ch.BuiltIn {
			return plain("Bad built-in chain name.")
		}
		ch.Policy = v // nft ignores -c with -P
	default:
		return paramf("no command specified")
	}
	return nil
}

func chainMissing(name string) *Error {
	e := paramf("Chain '" + name + "' does not exist")
	e.Hint = "-j NAME is a target extension or a chain created with -N; no such target is registered and no such chain exists"
	return e
}

func deleteChain(t *ruleset.Table, name string) error {
	busy := func(n string) error {
		return &Error{Kind: KindKernel, Op: "CHAIN_DEL", Object: "chain " + n, Errno: syscall.EBUSY}
	}
	if name != "" {
		ch := t.Chain(name)
		if ch == nil {
			return noChain()
		}
		if ch.BuiltIn || t.References(name) > 0 {
			return busy(name)
		}
		for i, x := range t.Chains {
			if x == ch {
				t.Chains = append(t.Chains[:i:i], t.Chains[i+1:]...)
				break
			}
		}
		return nil
	}
	// -X without a chain: delete every user chain; one still referenced
	// from a chain that stays (a built-in chain) makes the batch fail.
	for _, ch := range t.Chains {
		if !ch.BuiltIn {
			continue
		}
		for _, r := range ch.Rules {
			if r.Kind == ruleset.TargetJump || r.Kind == ruleset.TargetGoto {
				return busy(r.Chain)
			}
		}
	}
	var keep []*ruleset.Chain
	for _, ch := range t.Chains {
		if ch.BuiltIn {
			keep = append(keep, ch)
		}
	}
	t.Chains = keep
	return nil
}

// Run parses args and executes them against rs: the whole of one
// `iptables ARGS` invocation. Warnings iptables prints without failing
// are returned separately.
func Run(rs *ruleset.Ruleset, reg *xt.Registry, args []string, out io.Writer) (Result, []string, error) {
	cmd, err := ParseCommand(reg, rs.Family, args, ParseOptions{})
	if err != nil {
		return Result{Ruleset: rs}, nil, err
	}
	res, err := Execute(rs, cmd, out)
	return res, cmd.Warnings, err
}
