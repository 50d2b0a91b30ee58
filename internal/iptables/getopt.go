package iptables

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// longOpt is one entry of the option table getopt_long searches: the
// built-in options first, then the options of every loaded extension, the
// most recently loaded first (libxtables' xtables_merge_options order). That
// order is what makes an option go to the newest extension that knows it.
type longOpt struct {
	name  string
	arg   xt.ArgKind
	short byte     // built-in option letter, 0 for extension options
	ext   *extInst // owning extension instance
	idx   int      // index in the extension's option list
}

// builtinOptTable holds iptables 1.8.9's own long options. It is never
// modified (read-only table, like the protocol and service tables).
var builtinOptTable = [...]longOpt{
	{name: "append", arg: xt.RequiredArg, short: 'A'},
	{name: "delete", arg: xt.RequiredArg, short: 'D'},
	{name: "check", arg: xt.RequiredArg, short: 'C'},
	{name: "insert", arg: xt.RequiredArg, short: 'I'},
	{name: "replace", arg: xt.RequiredArg, short: 'R'},
	{name: "list", arg: xt.OptionalArg, short: 'L'},
	{name: "list-rules", arg: xt.OptionalArg, short: 'S'},
	{name: "flush", arg: xt.OptionalArg, short: 'F'},
	{name: "zero", arg: xt.OptionalArg, short: 'Z'},
	{name: "new-chain", arg: xt.RequiredArg, short: 'N'},
	{name: "delete-chain", arg: xt.OptionalArg, short: 'X'},
	{name: "rename-chain", arg: xt.RequiredArg, short: 'E'},
	{name: "policy", arg: xt.RequiredArg, short: 'P'},
	{name: "source", arg: xt.RequiredArg, short: 's'},
	{name: "destination", arg: xt.RequiredArg, short: 'd'},
	{name: "src", arg: xt.RequiredArg, short: 's'},
	{name: "dst", arg: xt.RequiredArg, short: 'd'},
	{name: "protocol", arg: xt.RequiredArg, short: 'p'},
	{name: "in-interface", arg: xt.RequiredArg, short: 'i'},
	{name: "jump", arg: xt.RequiredArg, short: 'j'},
	{name: "table", arg: xt.RequiredArg, short: 't'},
	{name: "match", arg: xt.RequiredArg, short: 'm'},
	{name: "numeric", arg: xt.NoArg, short: 'n'},
	{name: "out-interface", arg: xt.RequiredArg, short: 'o'},
	{name: "verbose", arg: xt.NoArg, short: 'v'},
	{name: "wait", arg: xt.OptionalArg, short: 'w'},
	{name: "wait-interval", arg: xt.OptionalArg, short: 'W'},
	{name: "exact", arg: xt.NoArg, short: 'x'},
	{name: "fragments", arg: xt.NoArg, short: 'f'},
	{name: "version", arg: xt.NoArg, short: 'V'},
	{name: "help", arg: xt.OptionalArg, short: 'h'},
	{name: "line-numbers", arg: xt.NoArg, short: '0'},
	{name: "modprobe", arg: xt.RequiredArg, short: 'M'},
	{name: "set-counters", arg: xt.RequiredArg, short: 'c'},
	{name: "goto", arg: xt.RequiredArg, short: 'g'},
	{name: "ipv4", arg: xt.NoArg, short: '4'},
	{name: "ipv6", arg: xt.NoArg, short: '6'},
}

// shortOpts is iptables' getopt option string without the leading "-:".
// 0 = no argument, 1 = required, 2 = optional (attached only).
var shortOptKinds = [256]uint8{
	'A': 1, 'C': 1, 'D': 1, 'R': 1, 'I': 1, 'L': 2, 'S': 2, 'M': 1, 'F': 2,
	'Z': 2, 'N': 1, 'X': 2, 'E': 1, 'P': 1, 'V': 0, 'h': 2, 'o': 1, 'p': 1,
	's': 1, 'd': 1, 'j': 1, 'i': 1, 'f': 0, 'b': 0, 'v': 0, 'w': 2, 'W': 2,
	'n': 0, 't': 1, 'm': 1, 'x': 0, 'c': 1, 'g': 1, '4': 0, '6': 0,
}

func isShortOpt(c byte) bool {
	return strings.IndexByte("ACDRILSMFZNXEPVhopsdjifbvwWntmxcg46", c) >= 0
}

// getopt reproduces glibc getopt_long in RETURN_IN_ORDER mode ("-" first
// in the option string) with ":" (no messages, ':' for a missing argument).
type getopt struct {
	// before is argv[optind-1] before the first word: the program name,
	// or in iptables-restore the table name (its argv is "PROG -t TABLE
	// WORDS...").
	before string
	// bangs are the indexes of the "!" words read so far: iptables
	// blanks such a word in argv (optarg[0] = '\0'), so a later message
	// naming argv[optind-1] prints "".
	bangs  []int
	args   []string
	optind int
	next   string // rest of a short option cluster
}

// result kinds
const (
	gotEnd     = iota
	gotNonOpt  // a word that is not an option (optarg)
	gotOpt     // a known option (opt, optarg, hasArg)
	gotUnknown // '?': unknown or ambiguous option, or argument to a NoArg option
	gotMissing // ':': required argument missing
)

type gotResult struct {
	kind   int
	opt    *longOpt
	short  byte
	arg    string
	hasArg bool
	argPos int    // index of the argument's own word, 0 when attached or absent
	word   string // argv[optind-1] after the option was read
}

// optTable is the merged option table without materialising it: the
// built-in options, then the extensions' options newest first.
type optTable struct {
	exts []*extInst
}

// each calls f for every option in getopt_long search order until f
// returns false.
func (t optTable) each(f func(o longOpt) bool) {
	for i := range builtinOptTable {
		if !f(builtinOptTable[i]) {
			return
		}
	}
	for i := len(t.exts) - 1; i >= 0; i-- {
		e := t.exts[i]
		for j, o := range e.options() {
			if !f(longOpt{name: o.Name, arg: o.Arg, ext: e, idx: j}) {
				return
			}
		}
	}
}

func (g *getopt) nextOpt(opts optTable) gotResult {
	if g.next != "" {
		return g.short(opts)
	}
	if g.optind >= len(g.args) {
		return gotResult{kind: gotEnd}
	}
	w := g.args[g.optind]
	if w == "--" {
		g.optind++
		// RETURN_IN_ORDER: the remaining words are left for the caller.
		return gotResult{kind: gotEnd}
	}
	if len(w) < 2 || w[0] != '-' {
		g.optind++
		return gotResult{kind: gotNonOpt, arg: w, word: w}
	}
	if strings.HasPrefix(w, "--") {
		return g.long(opts, w)
	}
	// glibc leaves optind on a short option cluster until its last
	// character is read: argv[optind-1] in a message about a character in
	// the middle of "-xyz" is the word before it.
	g.next = w[1:]
	return g.short(opts)
}

func (g *getopt) long(opts optTable, w string) gotResult {
	g.optind++
	body := w[2:]
	name, val, hasEq := strings.Cut(body, "=")
	var fv longOpt
	have, ambig := false, false
	opts.each(func(o longOpt) bool {
		if !strings.HasPrefix(o.name, name) {
			return true
		}
		if len(o.name) == len(name) {
			fv, have, ambig = o, true, false
			return false
		}
		if !have {
			fv, have = o, true
		} else if sameExtOption(fv, o) {
			// The same option of another instance of the same extension
			// (`-m tcp -m tcp --dpo 22`): iptables takes it (measured), for
			// the instance an exact name would reach.
		} else if fv.arg != o.arg || fv.ext != o.ext || fv.short != o.short || (fv.ext != nil && fv.idx != o.idx) {
			ambig = true
		}
		return true
	})
	found := &fv
	if !have || ambig {
		return gotResult{kind: gotUnknown, word: w}
	}
	r := gotResult{kind: gotOpt, opt: found, short: found.short}
	switch found.arg {
	case xt.NoArg:
		if hasEq {
			return gotResult{kind: gotUnknown, word: w}
		}
	case xt.RequiredArg:
		if hasEq {
			r.arg, r.hasArg = val, true
		} else if g.optind < len(g.args) {
			r.arg, r.hasArg, r.argPos = g.args[g.optind], true, g.optind
			g.optind++
		} else {
			return gotResult{kind: gotMissing, word: w}
		}
	case xt.OptionalArg:
		if hasEq {
			r.arg, r.hasArg = val, true
		}
	}
	r.word = g.args[g.optind-1]
	return r
}

func (g *getopt) short(opts optTable) gotResult {
	c := g.next[0]
	g.next = g.next[1:]
	if g.next == "" {
		g.optind++
	}
	if !isShortOpt(c) {
		// the rest of the cluster stays for the next call, as in glibc
		return gotResult{kind: gotUnknown, word: g.prev(), short: c}
	}
	var lo *longOpt
	for i := range builtinOptTable {
		if builtinOptTable[i].short == c {
			lo = &builtinOptTable[i]
			break
		}
	}
	r := gotResult{kind: gotOpt, opt: lo, short: c}
	switch shortOptKinds[c] {
	case 1:
		if g.next != "" {
			r.arg, r.hasArg = g.next, true
			g.next = ""
			g.optind++
		} else if g.optind < len(g.args) {
			r.arg, r.hasArg, r.argPos = g.args[g.optind], true, g.optind
			g.optind++
		} else {
			return gotResult{kind: gotMissing, word: g.prev(), short: c}
		}
	case 2:
		if g.next != "" {
			r.arg, r.hasArg = g.next, true
			g.next = ""
			g.optind++
		}
	}
	r.word = g.prev()
	return r
}

// prev is argv[optind-1]; before the first word that is the program name.
func (g *getopt) prev() string {
	if g.optind == 0 {
		if g.before != "" {
			return g.before
		}
		return "iptables"
	}
	for _, i := range g.bangs {
		if i == g.optind-1 {
			return ""
		}
	}
	return g.args[g.optind-1]
}

// hasArg is iptables' xs_has_arg: the next word exists and does not start
// with '-' or '!' (an empty word counts as an argument, as in C).
func (g *getopt) hasArg() bool {
	if g.next != "" || g.optind >= len(g.args) {
		return false
	}
	w := g.args[g.optind]
	return w == "" || (w[0] != '-' && w[0] != '!')
}

// sameExtOption reports whether a and b are one option of two instances
// of the same extension.
func sameExtOption(a, b longOpt) bool {
	return a.ext != nil && b.ext != nil && a.name == b.name && a.idx == b.idx &&
		a.ext.mspec == b.ext.mspec && a.ext.tspec == b.ext.tspec
}
