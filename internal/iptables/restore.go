package iptables

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// RestoreOptions are iptables-restore's flags.
type RestoreOptions struct {
	// NoFlush keeps the existing rules of the tables in the file
	// (--noflush); otherwise each "*table" starts from an empty table.
	NoFlush bool
	// Counters takes "[p:b]" rule and chain counters from the file (-c).
	Counters bool
}

// MaxRestoreLine bounds one line of a restore file (iptables-restore has a
// fixed 64 KiB buffer for a line as well).
const MaxRestoreLine = 1 << 20

// pendingRule is a rule added by the file, kept to validate in file order.
type pendingRule struct {
	line  int
	table string
	chain string
	rule  *ruleset.Rule
	op    string
}

// Restore reads an iptables-save file and applies it to base as
// iptables-restore (nf_tables) 1.8.9 would, returning the new rule set;
// base is not modified. The whole file is one transaction: any error
// (parse, missing COMMIT, kernel validation) returns an *Error naming the
// line and changes nothing. (The real tool commits table by table; uptables
// keeps "a file with one bad rule changes nothing" for the whole file.)
func Restore(base *ruleset.Ruleset, reg *xt.Registry, r io.Reader, o RestoreOptions) (*ruleset.Ruleset, error) {
	work := base.Clone()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), MaxRestoreLine)
	var (
		table   string
		inTable bool
		lineNo  int
		pending []pendingRule
		jumpErr *Error // a jump to a chain missing when its line was read
		flushed = map[string]bool{}
	)
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " \t")
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		if !inTable {
			if trimmed[0] == '*' {
				name := strings.TrimRight(trimmed[1:], " \t\r")
				if _, ok := ruleset.BuiltinHooks(name); !ok {
					return nil, &Error{Kind: KindParam, Line: lineNo,
						Msg: "iptables-restore: line " + strconv.Itoa(lineNo) + " table name '" + name + "' invalid"}
				}
				table, inTable = name, true
				if !o.NoFlush && !flushed[name] {
					fresh, _ := ruleset.NewTable(name)
					replaceTable(work, fresh)
					flushed[name] = true
				} else {
					work.EnsureTable(name)
				}
				continue
			}
			return nil, &Error{Kind: KindPlain, Line: lineNo}
		}
		if trimmed == "COMMIT" || strings.HasPrefix(trimmed, "COMMIT ") {
			// iptables-restore reports a jump to a chain that did not
			// exist when the rule was read at the COMMIT line (even if the
			// chain is declared later in the same table).
			if jumpErr != nil {
				jumpErr.Line = lineNo
				return nil, jumpErr
			}
			inTable = false
			continue
		}
		if trimmed[0] == ':' {
			if err := restoreChain(work.Table(table), trimmed[1:], lineNo, o.Counters); err != nil {
				return nil, err
			}
			continue
		}
		var counters *ruleset.Counters
		if trimmed[0] == '[' {
			end := strings.IndexByte(trimmed, ']')
			c, ok := parseBracketCounters(trimmed[:max(end+1, 0)])
			if end < 0 || !ok {
				return nil, &Error{Kind: KindParam, Line: lineNo, Msg: "Bad counter value `" + trimmed + "'"}
			}
			if o.Counters {
				counters = &c
			}
			trimmed = trimmed[end+1:]
		}
		// The real reader keeps the newline of the line it read, so an
		// unterminated quote swallows it into the last word.
		words, err := SplitRestore(trimmed + "\n")
		if err != nil {
			return nil, &Error{Kind: KindParam, Line: lineNo, Msg: "Unterminated quote"}
		}
		cmd, err := ParseCommand(reg, work.Family, words, ParseOptions{Restore: true, DefaultTable: table})
		if err != nil {
			e := *AsError(err, "", "")
			e.Line = lineNo
			return nil, &e
		}
		if counters != nil {
			for _, r := range cmd.Rules {
				r.Counters = *counters
			}
		}
		if cmd.Cmd == CmdAppend {
			// The fast path of big files: append now, validate later in
			// file order.
			t := work.Table(table)
			ch := t.Chain(cmd.Chain)
			if ch == nil {
				e := noChain()
				e.Line = lineNo
				return nil, e
			}
			ch.Rules = append(ch.Rules, cmd.Rules...)
			for _, r := range cmd.Rules {
				p := pendingRule{line: lineNo, table: table, chain: cmd.Chain, rule: r, op: "RULE_APPEND"}
				pending = append(pending, p)
				if (r.Kind == ruleset.TargetJump || r.Kind == ruleset.TargetGoto) && jumpErr == nil && t.Chain(r.Chain) == nil {
					jumpErr = chainMissing(r.Chain)
				}
			}
			continue
		}
		if cmd.Cmd&(CmdList|CmdListRules|CmdHelp|CmdVersion|CmdCheck) != 0 {
			continue // iptables-restore ignores output-only commands' output
		}
		if err := apply(work, cmd); err != nil {
			e := *AsError(err, "", "")
			e.Line = lineNo
			return nil, &e
		}
		for _, r := range cmd.Rules {
			pending = append(pending, pendingRule{line: lineNo, table: table, chain: cmd.Chain, rule: r, op: "RULE_APPEND"})
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &Error{Kind: KindPlain, Line: lineNo + 1, Msg: "line too long"}
		}
		return nil, err
	}
	if inTable {
		return nil, &Error{Kind: KindRaw, Code: 1, Msg: "COMMIT expected at line " + strconv.Itoa(lineNo+1)}
	}
	if err := validateRestore(work, pending); err != nil {
		return nil, err
	}
	return work, nil
}

func replaceTable(rs *ruleset.Ruleset, t *ruleset.Table) {
	for i, x := range rs.Tables {
		if x.Name == t.Name {
			rs.Tables[i] = t
			return
		}
	}
	rs.Tables = append(rs.Tables, t)
	rs.EnsureTable(t.Name) // re-sorts
}

// restoreChain handles ":NAME POLICY [p:b]".
func restoreChain(t *ruleset.Table, rest string, line int, counters bool) error {
	f := strings.Fields(rest)
	if len(f) == 0 {
		return &Error{Kind: KindPlain, Line: line}
	}
	name := f[0]
	if len(name) >= 29 {
		return &Error{Kind: KindParam, Line: line, Msg: "Invalid chain name `" + name + "' (28 chars max)"}
	}
	if len(f) < 2 {
		return &Error{Kind: KindParam, Line: line, Msg: "iptables-restore: line " + strconv.Itoa(line) + " policy invalid"}
	}
	var cnt ruleset.Counters
	if len(f) >= 3 && counters {
		c, ok := parseBracketCounters(f[2])
		if !ok {
			return &Error{Kind: KindParam, Line: line, Msg: "Bad counter value `" + f[2] + "'"}
		}
		cnt = c
	}
	ch := t.Chain(name)
	if ch != nil && ch.BuiltIn {
		if f[1] != "-" {
			v, std := ruleset.IsStandardTarget(f[1])
			if !std || (v != ruleset.Accept && v != ruleset.Drop) {
				return &Error{Kind: KindPlain, Line: line, Msg: "Bad policy name."}
			}
			ch.Policy = v
		}
		ch.Counters = cnt
		return nil
	}
	if ch != nil {
		ch.Rules = nil // redeclaring a user chain flushes it
		return nil
	}
	if _, std := ruleset.IsStandardTarget(name); std || strings.HasPrefix(name, "-") {
		return &Error{Kind: KindParam, Line: line, Msg: "Invalid chain name `" + name + "'"}
	}
	t.Chains = append(t.Chains, &ruleset.Chain{Name: name})
	return nil
}

// parseBracketCounters parses "[pkts:bytes]".
func parseBracketCounters(s string) (ruleset.Counters, bool) {
	if len(s) < 5 || s[0] != '[' || s[len(s)-1] != ']' {
		return ruleset.Counters{}, false
	}
	p, b, ok := strings.Cut(s[1:len(s)-1], ":")
	if !ok {
		return ruleset.Counters{}, false
	}
	pv, err1 := strconv.ParseUint(p, 10, 64)
	bv, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil {
		return ruleset.Counters{}, false
	}
	return ruleset.Counters{Packets: pv, Bytes: bv}, true
}

// validateRestore checks the result as the kernel checks the batch: rules
// that were already there first, then the file's rules in file order, so
// that an error names the line whose rule failed.
func validateRestore(work *ruleset.Ruleset, pending []pendingRule) error {
	isNew := make(map[*ruleset.Rule]bool, len(pending))
	for _, p := range pending {
		isNew[p.rule] = true
	}
	v, err := ruleset.NewValidator(&ruleset.Ruleset{Family: work.Family})
	if err != nil {
		return err
	}
	for _, t := range work.Tables {
		for _, c := range t.Chains {
			v.DeclareChain(t.Name, c)
		}
	}
	for _, t := range work.Tables {
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				if !isNew[r] {
					if err := v.Add(t.Name, c.Name, r); err != nil {
						return AsError(err, "RULE_APPEND", c.Name)
					}
				}
			}
		}
	}
	for _, p := range pending {
		if !stillPresent(work, p) {
			continue
		}
		if err := v.Add(p.table, p.chain, p.rule); err != nil {
			e := AsError(err, p.op, p.chain)
			e.Line = p.line
			return e
		}
	}
	return nil
}

func stillPresent(work *ruleset.Ruleset, p pendingRule) bool {
	t := work.Table(p.table)
	if t == nil {
		return false
	}
	return t.Chain(p.chain) != nil
}
