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
	// Warn receives the warnings iptables-restore prints on stderr for
	// a file it accepts (NFLOG's --nflog-range ...), in file order; when the
	// file fails they are part of the error's text instead. May be nil.
	Warn func(msg string)
	// Test is --test: the file is parsed but never committed, so what the
	// kernel would refuse at commit time (a jump to a missing chain, -N of
	// an existing chain, a bad policy, rules the kernel rejects) is not
	// reported. The result is the rule set the file would have produced.
	Test bool
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
	op    string // the netlink operation named in a kernel error; "" = RULE_APPEND
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
	var warns []string
	rs, err := restoreLines(base, work, reg, lines, o, parallel, &warns)
	if err != nil {
		if len(warns) > 0 && IsCommandError(err) {
			// iptables-restore printed them line by line before it failed
			e := *AsError(err, "", "")
			e.Before = strings.Join(warns, "\n") + "\n" + e.Before
			err = &e
		}
		return nil, withCRLFHint(err, lines)
	}
	if o.Warn != nil {
		for _, w := range warns {
			o.Warn(w)
		}
	}
	return rs, nil
}

func restoreLines(base, work *ruleset.Ruleset, reg *xt.Registry, lines []string, o RestoreOptions, parallel bool, warns *[]string) (*ruleset.Ruleset, error) {
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
		// prep is the first operation that fails only when the table is
		// committed, so that parse errors on later lines are reported
		// first: iptables-nft finds these while it prepares the batch, in
		// line order (measured): a jump to a missing chain (reported at the
		// COMMIT line, prepIsJump), -N of an existing chain, -D of a
		// missing rule, a rule for a missing chain, a bad policy.
		prep       *Error
		prepIsJump bool
		flushed    = map[string]bool{}
		cache      = newRuleCache()
		chains     chainIndex
		wordBuf    []string
	)
	for _, line := range lines {
		lineNo++
		// iptables-restore tells lines apart by their first byte (fgets'
		// buffer[0]); a line with leading blanks is a rule line, so
		// " COMMIT" or "\t:INPUT" are bad arguments, not what they look like.
		if line == "" || line[0] == '#' {
			continue
		}
		if !inTable {
			if line[0] == '*' {
				name, _ := restoreToken(line[1:])
				if name == "" {
					return nil, &Error{Kind: KindParam, Line: lineNo,
						Msg: "iptables-restore: line " + strconv.Itoa(lineNo) + " table name invalid"}
				}
				if _, ok := ruleset.BuiltinHooks(name); !ok {
					return nil, &Error{Kind: KindParam, Line: lineNo,
						Msg: "iptables-restore: line " + strconv.Itoa(lineNo) + " table name '" + name + "' invalid"}
				}
				table, inTable = name, true
				if !o.NoFlush && !flushed[name] {
					// nft: flushing deletes the table; the first chain or
					// rule line creates it again (an empty "*filter" /
					// "COMMIT" leaves no filter table behind).
					dropTable(work, name)
					flushed[name] = true
				}
				continue
			}
			return nil, &Error{Kind: KindPlain, Line: lineNo}
		}
		if line == "COMMIT" {
			// iptables-restore reports a jump to a chain that did not
			// exist when the rule was read at the COMMIT line (even if the
			// chain is declared later in the same table).
			if o.Test {
				prep = nil
			}
			if prep != nil {
				if prepIsJump {
					prep.Line = lineNo
				}
				return nil, prep
			}
			inTable = false
			continue
		}
		work.EnsureTable(table)
		if line[0] == ':' {
			chains.reset()
			if err := restoreChain(work.Table(table), line[1:], lineNo, o.Counters); err != nil {
				if err.Kind != KindPlain {
					return nil, err
				}
				if prep == nil {
					prep = err
				}
			}
			continue
		}
		var counters *ruleset.Counters
		text, c, err := ruleText(line, lineNo, o.Counters)
		if err != nil {
			return nil, err
		}
		if o.Counters && c != nil {
			counters = c
		}
		var lc lineCmd
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
			*warns = append(*warns, lc.tmpl.cmd.Warnings...)
		} else {
			*warns = append(*warns, lc.cmd.Warnings...)
		}
		if lc.tmpl != nil {
			// a template hit: one rule appended to the template's chain
			r := lc.rule
			if err := ruleBuildError(r); err != nil {
				e := *AsError(err, "", "")
				e.Line = lineNo
				return nil, &e
			}
			if counters != nil {
				r.Counters = *counters
			}
			t := work.Table(table)
			ch := chains.get(t, lc.tmpl.cmd.Chain)
			if ch == nil {
				if prep == nil {
					prep = noChain()
					prep.Line = lineNo
				}
				continue
			}
			ch.Rules = append(ch.Rules, r)
			pending = append(pending, pendingRule{line: lineNo, table: table, chain: ch.Name, rule: r})
			if (r.Kind == ruleset.TargetJump || r.Kind == ruleset.TargetGoto) && prep == nil && chains.get(t, r.Chain) == nil {
				prep, prepIsJump = chainMissing(r.Chain), true
			}
			continue
		}
		cmd := lc.cmd
		if c != nil && o.Counters && !cmd.Ignore && cmd.Cmd&(CmdAppend|CmdInsert|CmdReplace) == 0 {
			// the counters become "--set-counters P B" in the command's
			// argv, which only -A, -I and -R take
			return nil, paramLine("Illegal option `-c' with this command", lineNo)
		}
		if cmd.Cmd&(CmdAppend|CmdInsert|CmdReplace|CmdDelete|CmdCheck) != 0 {
			for _, r := range cmd.Rules {
				if err := ruleBuildError(r); err != nil {
					e := *AsError(err, "", "")
					e.Line = lineNo
					return nil, &e
				}
			}
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
			ch := chains.get(t, cmd.Chain)
			if ch == nil {
				if prep == nil {
					prep = noChain()
					prep.Line = lineNo
				}
				continue
			}
			ch.Rules = append(ch.Rules, cmd.Rules...)
			for _, r := range cmd.Rules {
				p := pendingRule{line: lineNo, table: table, chain: cmd.Chain, rule: r}
				pending = append(pending, p)
				if (r.Kind == ruleset.TargetJump || r.Kind == ruleset.TargetGoto) && prep == nil && chains.get(t, r.Chain) == nil {
					prep, prepIsJump = chainMissing(r.Chain), true
				}
			}
			continue
		}
		if cmd.Ignore || cmd.Cmd&(CmdList|CmdListRules|CmdHelp|CmdVersion|CmdCheck) != 0 {
			continue // iptables-restore ignores output-only commands' output
		}
		chains.reset()
		op := ""
		switch cmd.Cmd {
		case CmdInsert:
			// as Execute: an insert at the end of a non-empty chain is
			// sent as an append
			if t := work.Table(table); t != nil {
				if ch := t.Chain(cmd.Chain); ch == nil || len(ch.Rules) == 0 || cmd.RuleNum-1 < len(ch.Rules) {
					op = "RULE_INSERT"
				}
			}
		case CmdReplace:
			op = "RULE_REPLACE"
		}
		if cmd.Cmd&(CmdInsert|CmdReplace|CmdDelete) != 0 {
			if t := work.Table(table); t != nil {
				missing := ""
				for _, r := range cmd.Rules {
					if (r.Kind == ruleset.TargetJump || r.Kind == ruleset.TargetGoto) && t.Chain(r.Chain) == nil {
						missing = r.Chain
						break
					}
				}
				if missing != "" {
					if prep == nil {
						prep, prepIsJump = chainMissing(missing), true
					}
					continue
				}
			}
		}
		if err := applyOpt(work, cmd, false); err != nil {
			e := *AsError(err, "", "")
			e.Line = lineNo
			if e.Kind != KindPlain && e.Kind != KindKernel {
				return nil, &e
			}
			if prep == nil {
				prep = &e
			}
			continue
		}
		for _, r := range cmd.Rules {
			pending = append(pending, pendingRule{line: lineNo, table: table, chain: cmd.Chain, rule: r, op: op})
		}
	}
	if inTable {
		return nil, &Error{Kind: KindRaw, Code: 1, Msg: "COMMIT expected at line " + strconv.Itoa(lineNo+1)}
	}
	if o.Test {
		return work, nil
	}
	if err := validateRestore(base, work, pending); err != nil {
		return nil, err
	}
	return work, nil
}

// maxRestoreParam bounds one word of a rule line (iptables-restore's
// 1024-byte parameter buffer): a word of 1024 bytes or more is "Parameter
// too long!".
const maxRestoreParam = 1024

func checkRestoreParams(words []string) error {
	for _, w := range words {
		if len(w) >= maxRestoreParam {
			return paramf("Parameter too long!")
		}
	}
	return nil
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

// ruleText splits an optional "[pkts:bytes]" prefix from a rule line the
// way iptables-restore does: the rule starts after the first ']'; the
// counters are the strtok(":") and strtok("]") tokens after the '[' (the
// NULs strtok writes can cut the rule text short: "[1]:2 -A INPUT" leaves
// no command). With --counters they are read as `--set-counters P B`
// would be (sscanf %llu, so "0x10" is 0 and "-1" wraps).
func ruleText(line string, lineNo int, counters bool) (text string, c *ruleset.Counters, err error) {
	if line[0] != '[' {
		return line, nil, nil
	}
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return "", nil, &Error{Kind: KindParam, Line: lineNo, Msg: "Bad line " + strconv.Itoa(lineNo) + ": need ]"}
	}
	cut := len(line) // where the first NUL written by strtok past end lies
	i := 1
	for i < len(line) && line[i] == ':' {
		i++
	}
	if i == len(line) {
		return "", nil, &Error{Kind: KindParam, Line: lineNo, Msg: "Bad line " + strconv.Itoa(lineNo) + ": need :"}
	}
	j := strings.IndexByte(line[i:], ':')
	if j < 0 {
		return "", nil, &Error{Kind: KindParam, Line: lineNo, Msg: "Bad line " + strconv.Itoa(lineNo) + ": need ]"}
	}
	pcnt := line[i : i+j]
	if i+j > end {
		cut = min(cut, i+j)
	}
	k := i + j + 1
	for k < len(line) && line[k] == ']' {
		k++
	}
	if k == len(line) {
		return "", nil, &Error{Kind: KindParam, Line: lineNo, Msg: "Bad line " + strconv.Itoa(lineNo) + ": need ]"}
	}
	bcnt := line[k:]
	if m := strings.IndexByte(bcnt, ']'); m >= 0 {
		bcnt = bcnt[:m]
		if k+m > end {
			cut = min(cut, k+m)
		}
	}
	text = ""
	if end+1 < cut {
		text = line[end+1 : cut]
	}
	if !counters {
		return text, nil, nil
	}
	if bcnt == "" || bcnt[0] != '-' && bcnt[0] != '!' {
		pk, ok := scanULL(pcnt)
		if !ok {
			return "", nil, paramLine("-c packet counter not numeric", lineNo)
		}
		by, ok := scanULL(bcnt)
		if !ok {
			return "", nil, paramLine("-c byte counter not numeric", lineNo)
		}
		return text, &ruleset.Counters{Packets: pk, Bytes: by}, nil
	}
	return "", nil, paramLine("-c requires packet and byte counter", lineNo)
}

func paramLine(msg string, line int) *Error { return &Error{Kind: KindParam, Line: line, Msg: msg} }

// restoreToken returns the first strtok(" \t\n") token of s and the rest.
func restoreToken(s string) (tok, rest string) {
	s = strings.TrimLeft(s, " \t\n")
	i := strings.IndexAny(s, " \t\n")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i+1:]
}

// dropTable removes a table from rs (what flushing it does with nft).
func dropTable(rs *ruleset.Ruleset, name string) {
	for i, t := range rs.Tables {
		if t.Name == name {
			rs.Tables = append(rs.Tables[:i:i], rs.Tables[i+1:]...)
			return
		}
	}
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
		if line == "" || line[0] == '#' {
			continue
		}
		if !inTable {
			if line[0] == '*' {
				inTable = true
				table, _ = restoreToken(line[1:])
			}
			continue
		}
		if line == "COMMIT" {
			inTable = false
			continue
		}
		if line[0] == ':' {
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
				text, _, err := ruleText(lines[i], i+1, false)
				if err != nil {
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

// restoreChain handles ":NAME POLICY [p:b]" as iptables-restore does:
// strtok(" \t\n") tokens; policy counters only with --counters and only
// for a policy other than "-", read as sscanf("[%llu:%llu]") reads them
// (trailing bytes ignored, "[1:2" is enough).
func restoreChain(t *ruleset.Table, rest string, line int, counters bool) *Error {
	name, rest := restoreToken(rest)
	if name == "" {
		return &Error{Kind: KindParam, Line: line, Msg: "iptables-restore: line " + strconv.Itoa(line) + " chain name invalid"}
	}
	if len(name) >= 29 {
		return &Error{Kind: KindParam, Line: line, Msg: "chain name `" + name + "' too long (must be under 29 chars)"}
	}
	ch := t.Chain(name)
	if ch == nil {
		// a new user chain: the checks of -N come before the policy word
		// (measured: ":-" is "not allowed to start with `-'"), but only
		// the standard targets clash (":LOG - [0:0]" is accepted)
		switch _, std := ruleset.IsStandardTarget(name); {
		case name[0] == '-' || name[0] == '!':
			return &Error{Kind: KindParam, Line: line, Msg: "chain name not allowed to start with `" + name[:1] + "'"}
		case std:
			return &Error{Kind: KindParam, Line: line, Msg: "chain name may not clash with target name"}
		case hasCSpace(name):
			return &Error{Kind: KindParam, Line: line, Msg: "Invalid chain name `" + name + "'"}
		}
	}
	policy, rest := restoreToken(rest)
	if policy == "" {
		return &Error{Kind: KindParam, Line: line, Msg: "iptables-restore: line " + strconv.Itoa(line) + " policy invalid"}
	}
	if ch != nil && ch.BuiltIn {
		// a built-in chain's counters are read with --counters even
		// when the policy is "-"; a bad policy fails at commit time
		var cnt ruleset.Counters
		if counters {
			ctrs, _ := restoreToken(rest)
			c, ok := scanBracketCounters(ctrs)
			if !ok {
				return &Error{Kind: KindParam, Line: line, Msg: "invalid policy counters for chain '" + name + "'"}
			}
			cnt = c
		}
		if policy != "-" {
			v, std := ruleset.IsStandardTarget(policy)
			if !std || (v != ruleset.Accept && v != ruleset.Drop) {
				return &Error{Kind: KindPlain, Line: line, Msg: "Bad policy name."}
			}
			ch.Policy = v
			ch.Counters = cnt
		}
		return nil
	}
	if ch != nil {
		ch.Rules = nil // redeclaring a user chain flushes it
		return nil
	}
	t.Chains = append(t.Chains, &ruleset.Chain{Name: name})
	return nil
}

// scanBracketCounters is sscanf(s, "[%llu:%llu]") == 2.
func scanBracketCounters(s string) (ruleset.Counters, bool) {
	if s == "" || s[0] != '[' {
		return ruleset.Counters{}, false
	}
	p, n := scanULLPrefix(s[1:])
	if n == 0 || 1+n >= len(s) || s[1+n] != ':' {
		return ruleset.Counters{}, false
	}
	b, m := scanULLPrefix(s[2+n:])
	if m == 0 {
		return ruleset.Counters{}, false
	}
	return ruleset.Counters{Packets: p, Bytes: b}, true
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
			op := p.op
			if op == "" {
				op = "RULE_APPEND"
			}
			e := AsError(err, op, p.chain)
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
