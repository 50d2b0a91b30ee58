package iptables

import (
	"errors"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// Cmd is a set of iptables commands; only -L and -Z may be combined.
type Cmd uint32

const (
	CmdNone   Cmd = 0
	CmdInsert Cmd = 1 << (iota - 1)
	CmdDelete
	CmdDeleteNum
	CmdReplace
	CmdAppend
	CmdList
	CmdFlush
	CmdZero
	CmdNewChain
	CmdDeleteChain
	CmdSetPolicy
	CmdRenameChain
	CmdListRules
	CmdZeroNum
	CmdCheck
	CmdHelp
	CmdVersion
)

var cmdLetters = []struct {
	c Cmd
	l byte
}{
	{CmdInsert, 'I'}, {CmdDelete, 'D'}, {CmdDeleteNum, 'D'}, {CmdReplace, 'R'},
	{CmdAppend, 'A'}, {CmdList, 'L'}, {CmdFlush, 'F'}, {CmdZero, 'Z'},
	{CmdNewChain, 'N'}, {CmdDeleteChain, 'X'}, {CmdSetPolicy, 'P'},
	{CmdRenameChain, 'E'}, {CmdListRules, 'S'}, {CmdZeroNum, 'Z'}, {CmdCheck, 'C'},
	{CmdHelp, 'h'}, {CmdVersion, 'V'},
}

func cmdLetter(c Cmd) byte {
	for _, x := range cmdLetters {
		if c&x.c != 0 {
			return x.l
		}
	}
	return '?'
}

// Command is one parsed iptables command line.
type Command struct {
	Cmd   Cmd
	Table string
	Chain string // "" = all chains (-L, -S, -F, -Z, -X)
	// ChainGiven: -L/-S/-F/-Z/-X named a chain, possibly the empty word
	// (which names no chain: "-F ''" fails where "-F" flushes all).
	ChainGiven bool
	NewName    string // -E
	Policy     string // -P
	// RuleNum is the 1-based rule number of -I (default 1), -D/-R/-S/-L/-Z
	// with a number; 0 when none was given.
	RuleNum int
	// Rules are the rules of -A/-I/-D/-R/-C: one per combination of the
	// -s and -d addresses, in iptables' order.
	Rules []*ruleset.Rule

	Numeric, Exact, LineNumbers bool
	Verbose                     int
	// SetCounters is -c PKTS BYTES.
	SetCounters *ruleset.Counters
	// Warnings are messages iptables prints on stderr without failing.
	Warnings []string
	// HelpExts names the extensions loaded when -h was read, whose help
	// follows iptables' own ("t-LOG", then "m-NAME" in command-line order).
	HelpExts []string
	// VersionInv is "! -V", which iptables answers with a joke.
	VersionInv bool
	// Ignore: a -6 line of an iptables-restore file, which
	// iptables-restore skips.
	Ignore bool
}

// Modifies reports whether the command changes the rule set.
func (c *Command) Modifies() bool {
	return c.Cmd&^(CmdList|CmdListRules|CmdCheck|CmdHelp|CmdVersion) != 0
}

// ParseOptions adjusts the grammar for where the line comes from.
type ParseOptions struct {
	// Restore: the line is a command of an iptables-restore file (-t is
	// refused; the table comes from DefaultTable).
	Restore bool
	// DefaultTable is the table when -t is absent ("" = filter).
	DefaultTable string
}

// option bits, in the order of iptables' optflags table
const (
	optNumeric = 1 << iota
	optSource
	optDestination
	optProtocol
	optJump
	optVerbose
	optExpanded
	optViaIn
	optViaOut
	optLineNumbers
	optCounters
	optFragment
	numOpts = 12
)

const optLetters = "nsdpjvxio0cf"

// invertible options (iptables' inverse_for_options)
const optInvertible = optSource | optDestination | optProtocol | optViaIn | optViaOut | optFragment

// legal[cmd] lists per option: 'x' illegal, ' ' optional.
func cmdOptTable(c Cmd) string {
	switch c {
	case CmdInsert, CmdReplace, CmdAppend:
		return "x     x  x  "
	case CmdDelete, CmdCheck:
		return "x     x  xx "
	case CmdList:
		return " xxxx  xx xx"
	case CmdSetPolicy:
		return "xxxxx xxxx x"
	}
	return "xxxxx xxxxxx"
}

// extInst is one loaded extension (a -m block, the implicit protocol
// match, or the -j target) with the options given to it, kept so that the
// rule can be instantiated again (-s a,b makes several rules, each with its
// own extension instances, as the kernel has one per rule).
type extInst struct {
	mspec    *xt.MatchSpec
	tspec    *xt.TargetSpec
	match    xt.Match
	target   xt.Target
	opts     []givenOpt
	implicit bool
}

type givenOpt struct {
	name   string
	invert bool
	arg    string
	extra  []string
}

func (e *extInst) options() []xt.Option {
	if e.mspec != nil {
		return e.mspec.Options
	}
	return e.tspec.Options
}

func (e *extInst) parse(ctx *xt.ParseContext, o givenOpt) error {
	if e.match != nil {
		return e.match.Parse(ctx, o.name, o.invert, o.arg, o.extra)
	}
	return e.target.Parse(ctx, o.name, o.invert, o.arg, o.extra)
}

func (e *extInst) final(ctx *xt.ParseContext) error {
	if e.match != nil {
		return e.match.Final(ctx)
	}
	return e.target.Final(ctx)
}

// fresh returns a new instance of the same extension with the same options.
func (e *extInst) fresh(ctx *xt.ParseContext) (*extInst, error) {
	n := &extInst{mspec: e.mspec, tspec: e.tspec, opts: e.opts, implicit: e.implicit}
	if e.mspec != nil {
		n.match = e.mspec.New()
	} else {
		n.target = e.tspec.New()
	}
	for _, o := range e.opts {
		if err := n.parse(ctx, o); err != nil {
			return nil, err
		}
	}
	return n, n.final(ctx)
}

type parser struct {
	reg  *xt.Registry
	fam  xt.Family
	po   ParseOptions
	g    getopt
	cmd  *Command
	opts uint32
	inv  bool
	ctx  xt.ParseContext

	exts      []*extInst // every loaded extension, in load order
	matches   []*extInst // the matches, in command-line order
	target    *extInst
	protoUsed bool

	srcStr, dstStr   string
	invSrc, invDst   bool
	inIface, outFace string
	invIn, invOut    bool
	frag, invFrag    bool

	// srcPos/dstPos are the argv indexes of the -s/-d values when they
	// were separate words (-1: absent, -2: attached), for the restore cache.
	srcPos, dstPos int

	kind     ruleset.TargetKind
	verdict  ruleset.Verdict
	jumpTo   string
	tableSet bool

	// stop: -h, -V (and -6 in restore) end the parse where they stand,
	// as iptables exits there.
	stop               bool
	wait, waitInterval bool
}

// ParseCommand parses one iptables command line (without the program
// name) as iptables 1.8.9 does. The registry supplies the extensions.
// Errors are *Error values carrying iptables' text and exit status.
func ParseCommand(reg *xt.Registry, fam xt.Family, args []string, po ParseOptions) (*Command, error) {
	p, err := parse(reg, fam, args, po)
	if err != nil {
		return nil, err
	}
	return p.cmd, nil
}

func parse(reg *xt.Registry, fam xt.Family, args []string, po ParseOptions) (*parser, error) {
	p := &parser{reg: reg, fam: fam, po: po, g: getopt{args: args}, cmd: &Command{Table: "filter"}, srcPos: -1, dstPos: -1}
	if po.DefaultTable != "" {
		p.cmd.Table = po.DefaultTable
	}
	if po.Restore {
		p.g.before = p.cmd.Table
	}
	p.ctx.Family = fam
	if err := p.run(); err != nil {
		e := AsError(err, "", "")
		if len(p.cmd.Warnings) > 0 && e.Before == "" {
			// iptables printed them before it failed
			cp := *e
			cp.Before = strings.Join(p.cmd.Warnings, "\n") + "\n"
			e = &cp
		}
		return nil, e
	}
	return p, nil
}

func argPos(r gotResult) int {
	if r.argPos > 0 {
		return r.argPos
	}
	return -2
}

func (p *parser) setOption(bit uint32) error {
	i := 0
	for ; i < numOpts; i++ {
		if bit == 1<<i {
			break
		}
	}
	if p.opts&bit != 0 {
		return paramf("multiple -" + string(optLetters[i]) + " flags not allowed")
	}
	p.opts |= bit
	if p.inv && bit&optInvertible == 0 {
		return paramf("cannot have ! before -" + string(optLetters[i]))
	}
	return nil
}

func (p *parser) addCommand(c Cmd, others Cmd) error {
	if p.inv {
		return paramf("unexpected '!' flag")
	}
	if p.cmd.Cmd&^others != 0 {
		return paramf("Cannot use -" + string(cmdLetter(c)) + " with -" + string(cmdLetter(p.cmd.Cmd)))
	}
	p.cmd.Cmd |= c
	return nil
}

// ruleNumberArg takes the optional rule number that follows -D, -R, -I,
// -L, -S and -Z as a separate word (ok is false when there is none).
func (p *parser) ruleNumberArg() (n int, ok bool, err error) {
	if !p.g.hasArg() {
		return 0, false, nil
	}
	n, err = parseRuleNumber(p.g.args[p.g.optind])
	if err != nil {
		return 0, false, err
	}
	p.g.optind++
	return n, true, nil
}

func parseRuleNumber(s string) (int, error) {
	v, ok := xt.ParseUint(s, 1, 1<<31-1)
	if !ok {
		return 0, paramf("Invalid rule number `" + s + "'")
	}
	return int(v), nil
}

func (p *parser) run() error {
	for {
		r := p.g.nextOpt(optTable{exts: p.exts})
		switch r.kind {
		case gotEnd:
			if p.g.optind < len(p.g.args) {
				// words after "--", which ends getopt
				return paramf("unknown arguments found on commandline")
			}
			return p.finish()
		case gotMissing:
			return paramf("option \"" + r.word + "\" requires an argument")
		case gotNonOpt:
			if r.arg == "!" {
				if p.inv {
					return paramf("multiple consecutive ! not allowed")
				}
				p.inv = true
				p.g.bangs = append(p.g.bangs, p.g.optind-1)
				continue
			}
			return badArgument(p.g.args, p.g.optind-1)
		case gotUnknown:
			// iptables' command_default: load the protocol's match on
			// the first option nobody knows, then read the word again.
			// A short option's unknown character counts too; in the
			// middle of a cluster optind-- steps back to the word before
			// and getopt goes on with the cluster's next character.
			if p.ctx.Proto != 0 && !p.protoUsed {
				if spec, ok := p.reg.Match(xt.ProtoName(p.ctx.Proto)); ok && familyOK(spec.Family, p.fam) {
					p.protoUsed = true
					e := &extInst{mspec: spec, match: spec.New(), implicit: true}
					p.exts = append(p.exts, e)
					p.matches = append(p.matches, e)
					p.g.optind--
					continue
				}
			}
			return unknownOption(r.word)
		}
		if r.opt != nil && r.opt.ext != nil {
			if err := p.extOption(r); err != nil {
				return err
			}
			continue
		}
		if _, err := p.builtin(r); err != nil {
			return err
		}
		if p.stop {
			return nil
		}
		// every option uses up a '!' before it (measured: "! -w" is
		// accepted, as iptables clears the flag after each option)
		p.inv = false
	}
}

func familyOK(f, want xt.Family) bool { return f == 0 || f == want }

func unknownOption(word string) error {
	e := paramf("unknown option \"" + word + "\"")
	if h := dashHint(word); h != "" {
		e.Hint = h
	}
	return e
}

func badArgument(args []string, i int) error {
	w := args[i]
	e := &Error{Kind: KindParam, Msg: "Bad argument `" + w + "'", NoPrefix: true}
	if h := dashHint(w); h != "" {
		e.Hint = h
	} else if i >= 2 && args[i-1] == "!" && isNegatableFlag(args[i-2]) {
		e.Hint = "old-style negation `" + args[i-2] + " ! " + w + "' is not accepted; write `! " + args[i-2] + " " + w + "'"
	} else if i >= 1 && strings.HasPrefix(args[i-1], "--") && !strings.Contains(args[i-1], "=") {
		e.Hint = "`" + w + "' follows " + args[i-1] + ", which takes no (or no further) argument"
	} else if i == 0 && isBuiltinChainName(w) {
		e.Hint = "`" + w + "' is a chain name with no command before it; did you mean -A " + w + " (append) or -I " + w + " (insert)?"
	}
	return e
}

// isBuiltinChainName reports the names of the built-in chains, which a
// command line starting with one has most likely lost its -A or -I.
func isBuiltinChainName(w string) bool {
	switch w {
	case "INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING":
		return true
	}
	return false
}

func isNegatableFlag(w string) bool {
	switch w {
	case "-s", "-d", "-i", "-o", "-p", "--source", "--destination", "--src", "--dst",
		"--in-interface", "--out-interface", "--protocol":
		return true
	}
	return false
}

// dashHint recognises options typed with typographic dashes (pasted from
// web pages); iptables only says "Bad argument".
func dashHint(w string) string {
	for _, d := range []struct{ r, name string }{{"–", "an en dash"}, {"—", "an em dash"}, {"−", "a minus sign"}} {
		if strings.HasPrefix(w, d.r) {
			rest := strings.TrimLeft(w, "–—−-")
			sug := "--" + rest
			if len(rest) == 1 {
				sug = "-" + rest
			}
			return "‘" + w + "’ is " + d.name + "; did you mean " + sug + "?"
		}
	}
	return ""
}

func (p *parser) extOption(r gotResult) error {
	e := r.opt.ext
	spec := e.options()[r.opt.idx]
	o := givenOpt{name: spec.Name, invert: p.inv, arg: r.arg}
	if spec.Arg == xt.OptionalArg && !r.hasArg && p.g.next == "" && p.g.optind < len(p.g.args) {
		if w := p.g.args[p.g.optind]; !strings.HasPrefix(w, "-") {
			o.arg = w
			p.g.optind++
		}
	}
	for i := 0; i < spec.Extra && p.g.optind < len(p.g.args); i++ {
		w := p.g.args[p.g.optind]
		if strings.HasPrefix(w, "-") || w == "!" {
			break
		}
		o.extra = append(o.extra, w)
		p.g.optind++
	}
	p.inv = false
	e.opts = append(e.opts, o)
	if e.target == nil {
		return e.parse(&p.ctx, o)
	}
	// a target that warns while it parses (REJECT echo-reply; NFLOG
	// warns in its final check): iptables prints the warning right there,
	// before any later error of the command
	w, _ := e.target.(interface{ Warnings() []string })
	n := 0
	if w != nil {
		n = len(w.Warnings())
	}
	err := e.parse(&p.ctx, o)
	if w != nil {
		p.cmd.Warnings = append(p.cmd.Warnings, w.Warnings()[n:]...)
	}
	return err
}

// builtin handles iptables' own options; loaded reports that an extension
// was loaded (the option table changed).
func (p *parser) builtin(r gotResult) (loaded bool, err error) {
	c := r.short
	switch c {
	case 'A', 'C', 'D', 'R', 'I', 'N', 'X', 'E', 'P', 'L', 'S', 'F', 'Z':
		return false, p.command(c, r)
	case 'h':
		// iptables prints the help the moment it reads -h, whatever
		// came before or follows
		p.cmd.Cmd, p.stop = CmdHelp, true
		if p.target != nil {
			p.cmd.HelpExts = append(p.cmd.HelpExts, "t-"+p.target.tspec.Name)
		}
		for _, m := range p.matches {
			p.cmd.HelpExts = append(p.cmd.HelpExts, "m-"+m.mspec.Name)
		}
	case 'V':
		// the same for -V (and "! -V" is answered with a joke)
		p.cmd.Cmd, p.cmd.VersionInv, p.stop = CmdVersion, p.inv, true
	case 'p':
		if err := p.setOption(optProtocol); err != nil {
			return false, err
		}
		word := strings.ToLower(r.word)
		proto, err := xt.ParseProtocol(word)
		if err != nil {
			return false, AsError(err, "", "")
		}
		if proto == 0 && p.inv {
			return false, paramf("rule would never match protocol")
		}
		p.ctx.Proto, p.ctx.InvProto = proto, p.inv
	case 's':
		if err := p.setOption(optSource); err != nil {
			return false, err
		}
		p.srcStr, p.invSrc, p.srcPos = r.word, p.inv, argPos(r)
	case 'd':
		if err := p.setOption(optDestination); err != nil {
			return false, err
		}
		p.dstStr, p.invDst, p.dstPos = r.word, p.inv, argPos(r)
	case 'i', 'o':
		bit := uint32(optViaIn)
		if c == 'o' {
			bit = optViaOut
		}
		if err := p.setOption(bit); err != nil {
			return false, err
		}
		// iptables takes argv[optind-1], not optarg, for -i/-o (as for
		// -s/-d/-p/-j): "-ieth0" is the interface "-ieth0" (measured)
		if err := p.iface(r.word); err != nil {
			return false, err
		}
		name := r.word
		if name == "+" && !p.inv {
			// "+" matches every interface: nft adds no expression for it
			// and the rule lists without -i/-o
			name = ""
		}
		if c == 'i' {
			p.inIface, p.invIn = name, p.inv
		} else {
			p.outFace, p.invOut = name, p.inv
		}
	case 'f':
		if err := p.setOption(optFragment); err != nil {
			return false, err
		}
		p.frag, p.invFrag = true, p.inv
	case 'j', 'g':
		if err := p.setOption(optJump); err != nil {
			return false, err
		}
		// -j reads argv[optind-1] ("-jACCEPT" is the chain "-jACCEPT"),
		// -g its optarg ("--goto=FOO" is FOO), measured
		name := r.word
		if c == 'g' {
			name = r.arg
		}
		loaded, err = p.jump(name, c == 'g')
		if err != nil {
			return false, err
		}
	case 'm':
		if p.inv {
			return false, paramf("unexpected ! flag before --match")
		}
		if err := p.loadMatch(r.arg); err != nil {
			return false, err
		}
		loaded = true
	case 't':
		if p.inv {
			return false, paramf("unexpected ! flag before --table")
		}
		if p.po.Restore {
			return false, paramf("The -t option cannot be used in iptables-restore.\n")
		}
		p.cmd.Table = r.arg
		p.tableSet = true
	case 'v':
		if p.inv {
			return false, paramf("cannot have ! before -v")
		}
		p.opts |= optVerbose
		p.cmd.Verbose++
	case 'n':
		if err := p.setOption(optNumeric); err != nil {
			return false, err
		}
		p.cmd.Numeric = true
	case 'x':
		if err := p.setOption(optExpanded); err != nil {
			return false, err
		}
		p.cmd.Exact = true
	case '0':
		if err := p.setOption(optLineNumbers); err != nil {
			return false, err
		}
		p.cmd.LineNumbers = true
	case 'c':
		if err := p.setOption(optCounters); err != nil {
			return false, err
		}
		// 1.8.9 also takes "-c PKTS,BYTES" in one word
		pkw, b, comma := strings.Cut(r.arg, ",")
		if !comma {
			if !p.g.hasArg() {
				return false, paramf("-c requires packet and byte counter")
			}
			b = p.g.args[p.g.optind]
			p.g.optind++
		}
		pk, ok1 := scanULL(pkw)
		if !ok1 {
			return false, paramf("-c packet counter not numeric")
		}
		by, ok2 := scanULL(b)
		if !ok2 {
			return false, paramf("-c byte counter not numeric")
		}
		p.cmd.SetCounters = &ruleset.Counters{Packets: pk, Bytes: by}
	case 'w', 'W':
		return false, p.waitOption(c, r)
	case 'M', 'b', '4':
	case '6':
		if p.po.Restore {
			// "--ipv6 -6: Error (line is ignored by iptables-restore)"
			p.cmd.Ignore, p.stop = true, true
			return false, nil
		}
		// iptables-nft prints only the Try line
		return false, &Error{Kind: KindParam, NoPrefix: true}
	default:
		return false, unknownOption(r.word)
	}
	p.inv = false
	return loaded, nil
}

// scanULL is sscanf("%llu"): optional blanks and sign, then digits; the
// rest of the word is ignored; a minus wraps modulo 2^64.
func scanULL(s string) (uint64, bool) {
	v, n := scanULLPrefix(s)
	return v, n > 0
}

// scanULLPrefix is sscanf's %llu: blanks, an optional sign, decimal
// digits, as strtoull reads them (a value too large saturates at
// 2^64-1, a negative one wraps). It returns the value and how many bytes
// of s it used, 0 when there is no number.
func scanULLPrefix(s string) (uint64, int) {
	i := 0
	for i < len(s) && strings.IndexByte(" \t\n\v\f\r", s[i]) >= 0 {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	var v uint64
	start, over := i, false
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		d := uint64(s[i] - '0')
		if v > (math.MaxUint64-d)/10 {
			over = true
		}
		v = v*10 + d
		i++
	}
	if i == start {
		return 0, 0
	}
	if over {
		return math.MaxUint64, i
	}
	if neg {
		v = -v
	}
	return v, i
}

func (p *parser) command(c byte, r gotResult) error {
	cmd := p.cmd
	switch c {
	case 'A':
		if err := p.addCommand(CmdAppend, CmdNone); err != nil {
			return err
		}
		cmd.Chain = r.arg
	case 'C':
		if err := p.addCommand(CmdCheck, CmdNone); err != nil {
			return err
		}
		cmd.Chain = r.arg
	case 'D':
		if err := p.addCommand(CmdDelete, CmdNone); err != nil {
			return err
		}
		cmd.Chain = r.arg
		if n, ok, err := p.ruleNumberArg(); err != nil {
			return err
		} else if ok {
			cmd.RuleNum = n
			cmd.Cmd = cmd.Cmd&^CmdDelete | CmdDeleteNum
		}
	case 'R':
		if err := p.addCommand(CmdReplace, CmdNone); err != nil {
			return err
		}
		cmd.Chain = r.arg
		n, ok, err := p.ruleNumberArg()
		if err != nil {
			return err
		}
		if !ok {
			return paramf("-R requires a rule number")
		}
		cmd.RuleNum = n
	case 'I':
		if err := p.addCommand(CmdInsert, CmdNone); err != nil {
			return err
		}
		cmd.Chain = r.arg
		cmd.RuleNum = 1
		if n, ok, err := p.ruleNumberArg(); err != nil {
			return err
		} else if ok {
			cmd.RuleNum = n
		}
	case 'L', 'S':
		cc := CmdList
		if c == 'S' {
			cc = CmdListRules
		}
		if err := p.addCommand(cc, CmdZero|CmdZeroNum); err != nil {
			return err
		}
		p.optChain(r)
		if n, ok, err := p.ruleNumberArg(); err != nil {
			return err
		} else if ok {
			cmd.RuleNum = n
		}
	case 'F':
		if err := p.addCommand(CmdFlush, CmdNone); err != nil {
			return err
		}
		p.optChain(r)
	case 'Z':
		if err := p.addCommand(CmdZero, CmdList|CmdListRules); err != nil {
			return err
		}
		p.optChain(r)
		if n, ok, err := p.ruleNumberArg(); err != nil {
			return err
		} else if ok {
			cmd.RuleNum = n
			cmd.Cmd = cmd.Cmd&^CmdZero | CmdZeroNum
		}
	case 'N':
		// the name is checked before the command (measured: "! -N !x"
		// complains about the name, "! -N x" about the '!')
		if len(r.arg) >= 29 {
			return paramf("chain name `" + r.arg + "' too long (must be under 29 chars)")
		}
		if r.arg != "" && (r.arg[0] == '-' || r.arg[0] == '!') {
			return paramf("chain name not allowed to start with `" + r.arg[:1] + "'")
		}
		// iptables finds the empty name among the standard targets too.
		if _, std := ruleset.IsStandardTarget(r.arg); std || r.arg == "" {
			return paramf("chain name may not clash with target name")
		}
		if _, ok := p.reg.Target(r.arg); ok {
			return paramf("chain name may not clash with target name")
		}
		if hasCSpace(r.arg) {
			return paramf("Invalid chain name `" + r.arg + "'")
		}
		if err := p.addCommand(CmdNewChain, CmdNone); err != nil {
			return err
		}
		cmd.Chain = r.arg
	case 'X':
		if err := p.addCommand(CmdDeleteChain, CmdNone); err != nil {
			return err
		}
		p.optChain(r)
	case 'E':
		if err := p.addCommand(CmdRenameChain, CmdNone); err != nil {
			return err
		}
		cmd.Chain = r.arg
		if !p.g.hasArg() {
			return paramf("-E requires old-chain-name and new-chain-name")
		}
		cmd.NewName = p.g.args[p.g.optind]
		p.g.optind++
	case 'P':
		if err := p.addCommand(CmdSetPolicy, CmdNone); err != nil {
			return err
		}
		cmd.Chain = r.arg
		if !p.g.hasArg() {
			return paramf("-P requires a chain and a policy")
		}
		cmd.Policy = p.g.args[p.g.optind]
		p.g.optind++
	}
	p.inv = false
	return nil
}

func (p *parser) optChain(r gotResult) {
	if r.hasArg {
		p.cmd.Chain, p.cmd.ChainGiven = r.arg, true
	} else if p.g.hasArg() {
		p.cmd.Chain, p.cmd.ChainGiven = p.g.args[p.g.optind], true
		p.g.optind++
	}
}

// iface checks an interface name as xtables_parse_interface does.
func (p *parser) iface(name string) error {
	if name == "" {
		return paramf("Empty interface is likely to be undesired")
	}
	if len(name) > 15 {
		return paramf("interface name `" + name + "' must be shorter than IFNAMSIZ (15)")
	}
	if strings.ContainsAny(name, "/ ") {
		p.cmd.Warnings = append(p.cmd.Warnings, "Warning: weird character in interface `"+name+"' ('/' and ' ' are not allowed by the kernel).")
	}
	return nil
}

// knownNames are the extension names uptables is meant to provide; the
// registry is asked which of them exist to word the hints.
func (p *parser) loadMatch(name string) error {
	if len(name) >= 29 {
		// XT_EXTENSION_MAXNAMELEN, checked before any lookup
		return paramf("Invalid match name \"" + name + "\" (28 chars max)")
	}
	spec, ok := p.reg.Match(name)
	if !ok || !familyOK(spec.Family, p.fam) {
		if name == "icmpv6" || name == "ipv6-icmp" {
			// libxtables' alias: all three names load icmp6
			name = "icmp6"
		}
		e := paramf("Couldn't load match `" + name + "':No such file or directory\n")
		var have []string
		for _, n := range p.reg.MatchNames() {
			if spec, _ := p.reg.Match(n); familyOK(spec.Family, p.fam) {
				have = append(have, n)
			}
		}
		if lower := strings.ToLower(name); lower != name {
			if _, ok := p.reg.Match(lower); ok {
				e.Hint = "match names are case-sensitive; did you mean -m " + lower + "?"
				return e
			}
		}
		if len(have) > 0 {
			e.Hint = "known matches: " + strings.Join(have, " ")
		} else {
			e.Hint = "no match extensions are registered"
		}
		return e
	}
	e := &extInst{mspec: spec, match: spec.New()}
	p.exts = append(p.exts, e)
	p.matches = append(p.matches, e)
	return nil
}

// checkTargetName applies iptables' checks on the word after -j or -g
// before it looks the name up (measured with 1.8.9, -j and -g alike).
func checkTargetName(name string) error {
	switch {
	case name == "":
		return paramf("Invalid target name (too short)")
	case len(name) >= 29:
		return paramf("Invalid target name `" + name + "' (28 chars max)")
	case hasCSpace(name):
		return paramf("Invalid target name `" + name + "'")
	}
	return nil
}

// hasCSpace reports whether s holds a character C's isspace accepts:
// iptables refuses such target and chain names (a CR from a CRLF file
// included).
func hasCSpace(s string) bool { return strings.ContainsAny(s, " \t\n\v\f\r") }

func (p *parser) jump(name string, isGoto bool) (loaded bool, err error) {
	if err := checkTargetName(name); err != nil {
		return false, err
	}
	if isGoto {
		p.kind = ruleset.TargetGoto
		p.jumpTo = name
		return false, nil
	}
	if v, std := ruleset.IsStandardTarget(name); std {
		p.kind, p.verdict = ruleset.TargetVerdict, v
		return false, nil
	}
	if spec, ok := p.reg.Target(name); ok && familyOK(spec.Family, p.fam) {
		p.kind = ruleset.TargetExt
		e := &extInst{tspec: spec, target: spec.New()}
		p.exts = append(p.exts, e)
		p.target = e
		return true, nil
	}
	p.kind = ruleset.TargetJump
	p.jumpTo = name
	return false, nil
}

// waitOption handles -w [seconds] and -W [usecs]: the value is read with
// sscanf("%u") (so "1x" is 1); -W is deprecated and warns, and over
// 999999 usecs it fails.
func (p *parser) waitOption(c byte, r gotResult) error {
	if p.po.Restore {
		return paramf("You cannot use `-" + string(c) + "' from iptables-restore")
	}
	val, has := r.arg, r.hasArg
	if !has && p.g.hasArg() {
		val, has = p.g.args[p.g.optind], true
		p.g.optind++
	}
	if c == 'w' {
		p.wait = true
		if has {
			if _, ok := scanULL(val); !ok {
				return paramf("wait seconds not numeric")
			}
		}
		return nil
	}
	if !has {
		return paramf("wait interval value required")
	}
	v, ok := scanULL(val)
	if !ok {
		return paramf("wait interval not numeric")
	}
	if u := uint32(v); u > 999999 {
		return paramf("too long usec wait " + strconv.FormatUint(uint64(u), 10) + " > 999999 usec")
	}
	p.waitInterval = true
	p.cmd.Warnings = append(p.cmd.Warnings, "Ignoring deprecated --wait-interval option.")
	return nil
}

// finish runs iptables' checks after the option loop and builds the rules.
func (p *parser) finish() error {
	cmd := p.cmd
	if p.waitInterval && !p.wait {
		return paramf("--wait-interval only makes sense with --wait\n")
	}
	// measured order: the nat check, the extensions' final checks, "no
	// command specified", then a dangling '!'
	if cmd.Table == "nat" && (cmd.Policy == "DROP" || (p.kind == ruleset.TargetVerdict && p.verdict == ruleset.Drop) ||
		(p.kind == ruleset.TargetGoto && p.jumpTo == "DROP")) {
		e := paramf("\nThe \"nat\" table is not intended for filtering, the use of DROP is therefore inhibited.\n\n")
		e.Hint = "filter in the filter table (or mangle/raw); nat rules only choose address translations"
		return e
	}
	p.ctx.Table = cmd.Table
	p.ctx.Chain = cmd.Chain
	p.mergeProtoMatches()
	for _, m := range p.matches {
		if err := m.final(&p.ctx); err != nil {
			return AsError(err, "", "")
		}
	}
	if p.target != nil {
		w, _ := p.target.target.(interface{ Warnings() []string })
		n := 0
		if w != nil {
			n = len(w.Warnings())
		}
		err := p.target.final(&p.ctx)
		if w != nil {
			p.cmd.Warnings = append(p.cmd.Warnings, w.Warnings()[n:]...)
		}
		if err != nil {
			return AsError(err, "", "")
		}
	}
	if cmd.Cmd == CmdNone {
		e := paramf("no command specified")
		e.Hint = "add a command such as -A CHAIN (append), -I CHAIN (insert) or -L (list)"
		return e
	}
	if p.inv {
		return paramf("nothing appropriate following !")
	}
	// addresses are parsed after the command checks (measured: "-t
	// broute -delete-chain" is "no command specified", not a bad host)
	srcs, err := p.addrs(p.srcStr, p.opts&optSource != 0)
	if err != nil {
		return err
	}
	dsts, err := p.addrs(p.dstStr, p.opts&optDestination != 0)
	if err != nil {
		return err
	}
	if (len(srcs) > 1 || len(dsts) > 1) && (p.invSrc || p.invDst) {
		return paramf("! not allowed with multiple source or destination IP addresses")
	}
	if cmd.Cmd&(CmdHelp|CmdVersion) != 0 {
		return nil
	}
	for i := 0; i < numOpts; i++ {
		if p.opts&(1<<i) == 0 {
			continue
		}
		legal := false
		for _, x := range cmdLetters {
			if cmd.Cmd&x.c != 0 && cmdOptTable(x.c)[i] != 'x' {
				legal = true
			}
		}
		if !legal {
			return paramf("Illegal option `-" + string(optLetters[i]) + "' with this command")
		}
	}
	if len(cmd.Chain) >= 29 {
		return paramf("chain name `" + cmd.Chain + "' too long (must be under 29 chars)")
	}
	if cmd.Cmd&(CmdAppend|CmdDelete|CmdCheck|CmdInsert|CmdReplace) != 0 {
		if cmd.Chain == "PREROUTING" || cmd.Chain == "INPUT" {
			if p.opts&optViaOut != 0 {
				return paramf("Can't use -o with " + cmd.Chain + "\n")
			}
		}
		if cmd.Chain == "POSTROUTING" || cmd.Chain == "OUTPUT" {
			if p.opts&optViaIn != 0 {
				return paramf("Can't use -i with " + cmd.Chain + "\n")
			}
		}
		if cmd.Cmd == CmdReplace && len(srcs)*len(dsts) != 1 {
			// checked while parsing, before the chain is looked up
			return paramf("Replacement rule does not specify a unique address")
		}
		return p.buildRules(srcs, dsts)
	}
	return nil
}

// mergeProtoMatches folds repeated tcp/udp blocks into the first one, as
// iptables-nft does when it reads the rule back from the kernel (the ports
// and flags are native payload matches, collected into one tcp match; a
// later value of the same option replaces an earlier one).
func (p *parser) mergeProtoMatches() {
	for _, name := range []string{"tcp", "udp"} {
		var first *extInst
		var merged []givenOpt
		n := 0
		for _, m := range p.matches {
			if m.mspec.Name != name {
				continue
			}
			n++
			if first == nil {
				first = m
			}
			for _, o := range m.opts {
				replaced := false
				for i := range merged {
					if merged[i].name == o.name {
						merged[i] = o
						replaced = true
					}
				}
				if !replaced {
					merged = append(merged, o)
				}
			}
		}
		if n < 2 {
			continue
		}
		inst := &extInst{mspec: first.mspec, match: first.mspec.New(), implicit: first.implicit}
		ok := true
		for _, o := range merged {
			if inst.parse(&p.ctx, o) != nil {
				ok = false
				break
			}
		}
		if !ok {
			continue // keep them apart; Final/printing show each
		}
		inst.opts = merged
		var out []*extInst
		for _, m := range p.matches {
			if m.mspec.Name != name {
				out = append(out, m)
			} else if m == first {
				out = append(out, inst)
			}
		}
		p.matches = out
	}
}

type addrMask struct{ addr, mask netip.Addr }

// addrs parses a -s/-d value: a comma separated list of address[/mask].
func (p *parser) addrs(s string, given bool) ([]addrMask, error) {
	if !given {
		return []addrMask{{}}, nil
	}
	if strings.IndexByte(s, ',') < 0 {
		a, m, err := ParseAddrMask(p.fam, s)
		if err != nil {
			return nil, err
		}
		return []addrMask{{a, m}}, nil
	}
	var out []addrMask
	for _, item := range strings.Split(s, ",") {
		a, m, err := ParseAddrMask(p.fam, item)
		if err != nil {
			return nil, err
		}
		out = append(out, addrMask{a, m})
	}
	return out, nil
}

func (p *parser) buildRules(srcs, dsts []addrMask) error {
	return p.buildRulesInto(p.cmd, srcs, dsts, true)
}

// buildRulesInto appends to cmd one rule per address combination; the
// first may use the parsed extension instances (reuseFirst), every other
// rule gets fresh instances with the same options.
func (p *parser) buildRulesInto(cmd *Command, srcs, dsts []addrMask, reuseFirst bool) error {
	first := reuseFirst
	for _, s := range srcs {
		for _, d := range dsts {
			r := &ruleset.Rule{
				Src: s.addr, SrcMask: s.mask, InvSrc: p.invSrc,
				Dst: d.addr, DstMask: d.mask, InvDst: p.invDst,
				InIface: p.inIface, InvIn: p.invIn, OutIface: p.outFace, InvOut: p.invOut,
				Proto: p.ctx.Proto, InvProto: p.ctx.InvProto,
				Frag: p.frag, InvFrag: p.invFrag,
				Kind: p.kind, Verdict: p.verdict, Chain: p.jumpTo,
			}
			if cmd.SetCounters != nil {
				r.Counters = *cmd.SetCounters
			}
			for _, m := range p.matches {
				inst := m
				if !first {
					var err error
					if inst, err = m.fresh(&p.ctx); err != nil {
						return AsError(err, "", "")
					}
				}
				r.Matches = append(r.Matches, ruleset.MatchEntry{Spec: inst.mspec, Match: inst.match})
			}
			if p.target != nil {
				inst := p.target
				if !first {
					var err error
					if inst, err = p.target.fresh(&p.ctx); err != nil {
						return AsError(err, "", "")
					}
				}
				r.Target, r.TSpec = inst.target, inst.tspec
			}
			first = false
			cmd.Rules = append(cmd.Rules, r)
		}
	}
	return nil
}

// ParseAddrMask parses one address[/mask] as iptables 1.8.9 does
// (xtables_ipparse_multiple): a dotted address with up to four parts
// (missing parts are zero: "10.1" is 10.1.0.0), a prefix length or a dotted
// mask. Host names are refused without any lookup.
func ParseAddrMask(f xt.Family, s string) (addr, mask netip.Addr, err error) {
	addr, mask, err = xt.ParseAddrMask(f, s)
	var pe *xt.ParamError
	if err != nil && errors.As(err, &pe) {
		if strings.HasPrefix(pe.Msg, "host/network") {
			as := s
			if i := strings.LastIndexByte(s, '/'); i >= 0 {
				as = s[:i]
			}
			return addr, mask, hostNotFound(as)
		}
		return addr, mask, paramf(pe.Msg)
	}
	return addr, mask, err
}

func hostNotFound(s string) *Error {
	e := paramf("host/network `" + s + "' not found")
	if s != "" && s != "!" {
		e.Hint = "uptables never resolves host names in rules (no DNS); give a numeric address such as 192.0.2.1 or 10.0.0.0/8"
	}
	if s == "!" {
		e.Hint = "write the negation before the option: ! -s ADDRESS"
	}
	return e
}
