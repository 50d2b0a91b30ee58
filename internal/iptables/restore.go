package iptables

import (
	"io"
	"io/fs"
	"runtime"
	"strconv"
	"strings"
	"sync"

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
}

// Restore reads an iptables-save file and applies it to base as
// iptables-restore (nf_tables) 1.8.9 would, returning the new rule set;
// base is not modified. The whole file is one transaction: any error
// (parse, missing COMMIT, kernel validation) returns an *Error naming the
// line and changes nothing. (The real tool commits table by table; uptables
// keeps "a file with one bad rule changes nothing" for the whole file.)
func Restore(base *ruleset.Ruleset, reg *xt.Registry, r io.Reader, o RestoreOptions) (*ruleset.Ruleset, error) {
	return restore(base, reg, r, o, true)
}

// crlfHint is the advice added to an error on a line that ends with a
// carriage return. iptables-restore treats '\r' as an ordinary character
// (measured: "-A INPUT -j ACCEPT\r" fails with "Invalid target name
// `ACCEPT'", the CR invisible in the quote), so uptables reads such files
// exactly as it does and only explains the error.
const crlfHint = "the line ends with a carriage return (Windows CRLF line endings); convert the file with dos2unix or sed -i 's/\\r$//'"

// withCRLFHint adds crlfHint to a restore error whose line has a CR.
func withCRLFHint(err error, lines []string) error {
	e, ok := err.(*Error)
	if !ok || e.Hint != "" || e.Line < 1 || e.Line > len(lines) || !strings.Contains(lines[e.Line-1], "\r") {
		return err
	}
	e.Hint = crlfHint
	return e
}

func restore(base *ruleset.Ruleset, reg *xt.Registry, r io.Reader, o RestoreOptions, parallel bool) (*ruleset.Ruleset, error) {
	work := base.Clone()
	data, err := readAll(r)
	if err != nil {
		return nil, err
	}
	lines := splitLines(data)
	rs, err := restoreLines(base, work, reg, lines, o, parallel)
	if err != nil {
		return nil, withCRLFHint(err, lines)
	}
	return rs, nil
}

func restoreLines(base, work *ruleset.Ruleset, reg *xt.Registry, lines []string, o RestoreOptions, parallel bool) (*ruleset.Ruleset, error) {
	for i, l := range lines {
		if len(l) > MaxRestoreLine {
			return nil, &Error{Kind: KindPlain, Line: i + 1, Msg: "line too long"}
		}
	}
	var pre []preparsed
	if parallel {
		pre = preparse(lines, reg, work.Family)
	}
	var (
		table   string
		inTable bool
		lineNo  int
		pending = make([]pendingRule, 0, len(lines))
		jumpErr *Error // a jump to a chain missing when its line was read
		flushed = map[string]bool{}
		cache   = newRuleCache()
		chains  chainIndex
		wordBuf []string
	)
	for _, line := range lines {
		lineNo++
		trimmed := strings.TrimLeft(line, " \t")
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		if !inTable {
			if trimmed[0] == '*' {
				name := strings.TrimRight(trimmed[1:], " \t")
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
			chains.reset()
			if err := restoreChain(work.Table(table), trimmed[1:], lineNo, o.Counters); err != nil {
				return nil, err
			}
			continue
		}
		var counters *ruleset.Counters
		text, c, ok := ruleText(trimmed)
		if !ok {
			return nil, &Error{Kind: KindParam, Line: lineNo, Msg: "Bad counter value `" + trimmed + "'"}
		}
		if o.Counters && c != nil {
			counters = c
		}
		var lc lineCmd
		var err error
		if pre != nil && pre[lineNo-1].done && pre[lineNo-1].table == table {
			lc, err = pre[lineNo-1].lc, pre[lineNo-1].err
		} else {
			lc, wordBuf, err = cache.parseText(reg, work.Family, text, ParseOptions{Restore: true, DefaultTable: table}, wordBuf)
		}
		if err != nil {
			e := *AsError(err, "", "")
			e.Line = lineNo
			return nil, &e
		}
		if lc.tmpl != nil {
			// a template hit: one rule appended to the template's chain
			r := lc.rule
			if counters != nil {
				r.Counters = *counters
			}
			t := work.Table(table)
			ch := chains.get(t, lc.tmpl.cmd.Chain)
			if ch == nil {
				e := noChain()
				e.Line = lineNo
				return nil, e
			}
			ch.Rules = append(ch.Rules, r)
			pending = append(pending, pendingRule{line: lineNo, table: table, chain: ch.Name, rule: r})
			if (r.Kind == ruleset.TargetJump || r.Kind == ruleset.TargetGoto) && jumpErr == nil && chains.get(t, r.Chain) == nil {
				jumpErr = chainMissing(r.Chain)
			}
			continue
		}
		cmd := lc.cmd
		if counters != nil {
			for _, r := range cmd.Rules {
				r.Counters = *counters
			}
		}
		if cmd.Cmd == CmdAppend {
			// The fast path of big files: append now, validate later in
			// file order.
			t := work.Table(table)
			ch := chains.get(t, cmd.Chain)
			if ch == nil {
				e := noChain()
				e.Line = lineNo
				return nil, e
			}
			ch.Rules = append(ch.Rules, cmd.Rules...)
			for _, r := range cmd.Rules {
				p := pendingRule{line: lineNo, table: table, chain: cmd.Chain, rule: r}
				pending = append(pending, p)
				if (r.Kind == ruleset.TargetJump || r.Kind == ruleset.TargetGoto) && jumpErr == nil && chains.get(t, r.Chain) == nil {
					jumpErr = chainMissing(r.Chain)
				}
			}
			continue
		}
		if cmd.Cmd&(CmdList|CmdListRules|CmdHelp|CmdVersion|CmdCheck) != 0 {
			continue // iptables-restore ignores output-only commands' output
		}
		chains.reset()
		if err := applyOpt(work, cmd, false); err != nil {
			e := *AsError(err, "", "")
			e.Line = lineNo
			return nil, &e
		}
		for _, r := range cmd.Rules {
			pending = append(pending, pendingRule{line: lineNo, table: table, chain: cmd.Chain, rule: r})
		}
	}
	if inTable {
		return nil, &Error{Kind: KindRaw, Code: 1, Msg: "COMMIT expected at line " + strconv.Itoa(lineNo+1)}
	}
	if err := validateRestore(base, work, pending); err != nil {
		return nil, err
	}
	return work, nil
}

// chainIndex finds chains by name in O(1) while a big file is read; it is
// dropped whenever a line may add, remove or rename chains.
type chainIndex struct {
	t *ruleset.Table
	m map[string]*ruleset.Chain
}

func (x *chainIndex) reset() { x.t, x.m = nil, nil }

func (x *chainIndex) get(t *ruleset.Table, name string) *ruleset.Chain {
	if x.t != t {
		x.t = t
		x.m = make(map[string]*ruleset.Chain, len(t.Chains))
		for _, c := range t.Chains {
			x.m[c.Name] = c
		}
	}
	return x.m[name]
}

// readAll reads the whole input into one string, sized up front when the
// reader knows its length (files, in-memory readers).
func readAll(r io.Reader) (string, error) {
	var b strings.Builder
	switch x := r.(type) {
	case interface{ Len() int }:
		b.Grow(x.Len() + 1)
	case interface{ Stat() (fs.FileInfo, error) }:
		if st, err := x.Stat(); err == nil && st.Mode().IsRegular() {
			b.Grow(int(st.Size()) + 1)
		}
	}
	if _, err := io.Copy(&b, r); err != nil {
		return "", err
	}
	return b.String(), nil
}

// splitLines splits the input into lines without their "\n" (the pieces
// share the input's memory).
func splitLines(s string) []string {
	lines := make([]string, 0, strings.Count(s, "\n")+1)
	for s != "" {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			lines = append(lines, s)
			break
		}
		lines = append(lines, s[:i])
		s = s[i+1:]
	}
	return lines
}

// ruleText strips an optional "[pkts:bytes]" prefix; ok is false when the
// prefix is malformed.
func ruleText(trimmed string) (text string, c *ruleset.Counters, ok bool) {
	if trimmed[0] != '[' {
		return trimmed, nil, true
	}
	end := strings.IndexByte(trimmed, ']')
	if end < 0 {
		return "", nil, false
	}
	cnt, ok := parseBracketCounters(trimmed[:end+1])
	if !ok {
		return "", nil, false
	}
	return trimmed[end+1:], &cnt, true
}

// splitRuleWords splits a rule line; the real reader keeps the newline of
// the line it read, so an unterminated quote swallows it into the last word.
func splitRuleWords(text string, buf []string) (words, newBuf []string) {
	words, unterminated := splitRestore(text, buf[:0])
	if unterminated {
		words[len(words)-1] += "\n"
	}
	return words, words
}

// preparsed is the result of parsing one line ahead of time.
type preparsed struct {
	done  bool
	table string
	lc    lineCmd
	err   error
}

// preparseMin is the number of rule lines from which parsing is spread
// over the CPUs.
const preparseMin = 4096

// preparse parses the command lines of a big file in parallel: a line's
// command depends only on its words and its table, which a cheap
// sequential pass determines exactly as Restore's loop does. Restore then
// applies the results in file order, so errors and their lines are the
// same as with sequential parsing. Returns nil for small inputs.
func preparse(lines []string, reg *xt.Registry, fam xt.Family) []preparsed {
	workers := runtime.GOMAXPROCS(0)
	if workers < 2 || len(lines) < preparseMin {
		return nil
	}
	out := make([]preparsed, len(lines))
	var idx []int
	inTable, table := false, ""
	for i, line := range lines {
		t := strings.TrimLeft(line, " \t")
		if t == "" || t[0] == '#' {
			continue
		}
		if !inTable {
			if t[0] == '*' {
				inTable, table = true, strings.TrimRight(t[1:], " \t")
			}
			continue
		}
		if t == "COMMIT" || strings.HasPrefix(t, "COMMIT ") {
			inTable = false
			continue
		}
		if t[0] == ':' {
			continue
		}
		out[i].table = table
		idx = append(idx, i)
	}
	if len(idx) < preparseMin {
		return nil
	}
	var wg sync.WaitGroup
	chunk := (len(idx) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(idx))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func(part []int) {
			defer wg.Done()
			cache := newRuleCache()
			var buf []string
			for _, i := range part {
				text, _, ok := ruleText(strings.TrimLeft(lines[i], " \t"))
				if !ok {
					continue
				}
				lc, nb, err := cache.parseText(reg, fam, text, ParseOptions{Restore: true, DefaultTable: out[i].table}, buf)
				buf = nb
				out[i].lc, out[i].err, out[i].done = lc, err, true
			}
		}(idx[lo:hi])
	}
	wg.Wait()
	return out
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
	f := strings.FieldsFunc(rest, func(r rune) bool { return r < 0x80 && isRestoreBlank(byte(r)) })
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
	// The checks of -N, but only the standard targets clash here (measured:
	// ":LOG - [0:0]" is accepted, ":ACCEPT - [0:0]" is not).
	switch _, std := ruleset.IsStandardTarget(name); {
	case name[0] == '-' || name[0] == '!':
		return &Error{Kind: KindParam, Line: line, Msg: "chain name not allowed to start with `" + name[:1] + "'"}
	case std:
		return &Error{Kind: KindParam, Line: line, Msg: "chain name may not clash with target name"}
	case hasCSpace(name):
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
func validateRestore(base, work *ruleset.Ruleset, pending []pendingRule) error {
	// rules that were there before the file: those of base still present
	isOld := map[*ruleset.Rule]bool{}
	for _, t := range base.Tables {
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				isOld[r] = true
			}
		}
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
				if len(isOld) > 0 && isOld[r] {
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
			e := AsError(err, "RULE_APPEND", p.chain)
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
