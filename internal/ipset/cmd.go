package ipset

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Version is the ipset release whose texts Exec reproduces.
const Version = "v7.17"

// env are the global options of one ipset invocation.
type env struct {
	exist, quiet, sorted bool
	output               string // "", "plain", "save"
	terse, names         bool   // -t, -n
}

var commands = map[string]string{
	"create": "create", "n": "create", "-N": "create", "-n": "create", "new": "create",
	"add": "add", "-A": "add", "del": "del", "-D": "del", "test": "test", "-T": "test",
	"destroy": "destroy", "x": "destroy", "-X": "destroy", "flush": "flush", "-F": "flush",
	"rename": "rename", "e": "rename", "-E": "rename", "swap": "swap", "w": "swap", "-W": "swap",
	"list": "list", "-L": "list", "save": "save", "-S": "save", "restore": "restore", "-R": "restore",
	"version": "version", "-v": "version", "-V": "version",
}

func usage(msg string) error { return &Error{Msg: msg, Code: 2} }

// Exec runs one ipset command line (without the leading "ipset") against
// ss, as the ipset tool does against the kernel: out receives what ipset
// prints on stdout, in reads restore input. now is the clock for timeouts.
// Exec is not atomic across a restore or a range add (the kernel is not
// either); the CLI runs it on a Clone to get all-or-nothing files.
func (ss *Sets) Exec(args []string, in io.Reader, out io.Writer, now int64) error {
	var e env
	var rest []string
	for _, a := range args {
		switch a {
		case "-!", "-exist":
			e.exist = true
		case "-q", "-quiet":
			e.quiet = true
		case "-s", "-sorted":
			e.sorted = true
		case "-t", "-terse":
			e.terse = true
		case "-n", "-name":
			e.names = true
		default:
			rest = append(rest, a)
		}
	}
	for i := 0; i+1 < len(rest); i++ {
		if rest[i] == "-o" || rest[i] == "-output" {
			e.output = rest[i+1]
			if e.output != "plain" && e.output != "save" {
				return usage("Syntax error: Unknown output mode '" + e.output + "'")
			}
			rest = append(rest[:i:i], rest[i+2:]...)
			break
		}
	}
	if len(rest) == 0 {
		return usage("No command specified.")
	}
	return ss.run(&e, rest, in, out, now, 0)
}

func (ss *Sets) run(e *env, args []string, in io.Reader, out io.Writer, now int64, line int) error {
	cmd, ok := commands[args[0]]
	if !ok {
		return usage("No command specified: unknown argument " + args[0])
	}
	args = args[1:]
	need := func(n int, what string) error {
		if len(args) < n {
			return usage("Missing mandatory argument: " + what)
		}
		return nil
	}
	switch cmd {
	case "version":
		io.WriteString(out, "ipset "+Version+", protocol version: 7\n")
		return nil
	case "create":
		if err := need(2, "typename"); err != nil {
			if len(args) == 0 {
				return usage("Missing setname")
			}
			return err
		}
		if err := validName(args[0]); err != nil {
			return err
		}
		t, o, err := parseCreate(args[1], args[2:])
		if err != nil {
			return err
		}
		return ss.Create(args[0], t, o, e.exist)
	case "add", "del", "test":
		if len(args) == 0 {
			return usage("Missing setname")
		}
		if len(args) < 2 {
			return usage("Missing mandatory argument: element")
		}
		s, ok := ss.Get(args[0])
		if !ok {
			return errf(errNoSet)
		}
		keys, err := s.ParseElem(args[1])
		if err != nil {
			return err
		}
		f, err := s.parseAddFlags(cmd, args[2:])
		if err != nil {
			return err
		}
		f.Exist = e.exist
		switch cmd {
		case "add":
			return s.Add(keys, f, now)
		case "del":
			return s.Del(keys, e.exist, now)
		}
		if s.Test(keys, now) {
			if !e.quiet {
				return &Error{Msg: "Warning: " + args[1] + " is in set " + args[0] + ".", Code: 0}
			}
			return nil
		}
		if e.quiet {
			return &Error{Code: 1}
		}
		return &Error{Msg: args[1] + " is NOT in set " + args[0] + ".", Code: 1}
	case "destroy", "flush":
		name := ""
		if len(args) > 0 {
			name = args[0]
		}
		if cmd == "destroy" {
			return ss.Destroy(name)
		}
		if name == "" {
			for _, n := range ss.Names() {
				s, _ := ss.Get(n)
				s.Flush()
			}
			return nil
		}
		s, ok := ss.Get(name)
		if !ok {
			return errf(errNoSet)
		}
		s.Flush()
		return nil
	case "rename", "swap":
		if len(args) < 2 {
			if len(args) == 0 {
				return usage("Missing setname")
			}
			return usage("Missing mandatory argument: new-setname")
		}
		if cmd == "rename" {
			if err := validName(args[1]); err != nil {
				return err
			}
			return ss.Rename(args[0], args[1])
		}
		return ss.Swap(args[0], args[1])
	case "list", "save":
		mode := e.output
		if mode == "" {
			mode = map[string]string{"list": "plain", "save": "save"}[cmd]
		}
		names := ss.Names()
		if len(args) > 0 {
			if _, ok := ss.Get(args[0]); !ok {
				return errf(errNoSet)
			}
			names = []string{args[0]}
		}
		var b strings.Builder
		for i, n := range names {
			switch {
			case e.names:
				b.WriteString(n + "\n")
			case mode == "save":
				ss.writeSave(&b, n, now)
			default:
				if i > 0 {
					b.WriteByte('\n')
				}
				ss.writeList(&b, n, now, e.terse)
			}
		}
		_, err := io.WriteString(out, b.String())
		return err
	case "restore":
		if line > 0 {
			return usage("Restore command is allowed only in non-interactive mode")
		}
		return ss.restore(e, in, out, now)
	}
	return usage("No command specified: unknown argument " + args[0])
}

// restore runs the lines of in as ipset restore does: "COMMIT" and
// comments are skipped, an error stops it with "Error in line N: ".
func (ss *Sets) restore(e *env, in io.Reader, out io.Writer, now int64) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l == "COMMIT" {
			continue
		}
		words, err := splitLine(l)
		if err != nil {
			return &Error{Msg: err.Error(), Code: 1, Line: n}
		}
		if err := ss.run(e, words, nil, out, now, n); err != nil {
			if pe, ok := err.(*Error); ok {
				if pe.Code == 0 {
					continue
				}
				if pe.Code == 1 {
					pe.Line = n
				}
				return pe
			}
			return err
		}
	}
	return sc.Err()
}

// splitLine splits a restore line into words, honouring double quotes
// (comments).
func splitLine(l string) ([]string, error) {
	var out []string
	var b strings.Builder
	inq, have := false, false
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case c == '"':
			inq, have = !inq, true
		case (c == ' ' || c == '\t') && !inq:
			if have {
				out = append(out, b.String())
				b.Reset()
				have = false
			}
		default:
			b.WriteByte(c)
			have = true
		}
	}
	if inq {
		return nil, syntaxf("unbalanced quotes")
	}
	if have {
		out = append(out, b.String())
	}
	return out, nil
}

func parseUint(opt, s string, max uint64) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, syntaxf("cannot parse '" + s + "' as a " + opt + " value")
	}
	if n > max {
		return 0, syntaxf("'" + s + "' is out of range 0-" + strconv.FormatUint(max, 10))
	}
	return n, nil
}

// timeoutMax is the largest timeout in seconds (ipset: UINT_MAX/1000).
const timeoutMax = 2147483

func parseCreate(typ string, args []string) (Type, CreateOptions, error) {
	t, ok := TypeByName(typ)
	if !ok {
		return 0, CreateOptions{}, syntaxf("typename '" + typ + "' is unknown")
	}
	o := CreateOptions{HashSize: 1024, MaxElem: 65536}
	hasRange := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		arg := func() (string, error) {
			if i+1 >= len(args) {
				return "", usage("Missing mandatory argument of option `" + a + "'")
			}
			i++
			return args[i], nil
		}
		switch {
		case a == "family" && t != BitmapPort:
			v, err := arg()
			if err != nil {
				return 0, o, err
			}
			if v != "inet" && v != "ipv4" {
				if v == "inet6" || v == "ipv6" {
					return 0, o, &Error{Msg: "family " + v + ": uptables' ipset supports only family inet", Code: 1}
				}
				return 0, o, syntaxf("unknown family '" + v + "'")
			}
		case (a == "hashsize" || a == "maxelem" || a == "bucketsize") && t != BitmapPort:
			v, err := arg()
			if err != nil {
				return 0, o, err
			}
			n, err := parseUint(a, v, 1<<32-1)
			if err != nil {
				return 0, o, err
			}
			switch a {
			case "hashsize":
				h := uint32(64)
				for uint64(h) < n && h < 1<<31 {
					h <<= 1
				}
				o.HashSize = h
			case "maxelem":
				o.MaxElem = uint32(n)
			}
		case a == "initval" && t != BitmapPort:
			v, err := arg()
			if err != nil {
				return 0, o, err
			}
			n, err := strconv.ParseUint(v, 0, 32)
			if err != nil {
				return 0, o, syntaxf("cannot parse '" + v + "' as a initval value")
			}
			o.Initval = uint32(n)
		case a == "timeout":
			v, err := arg()
			if err != nil {
				return 0, o, err
			}
			n, err := parseUint(a, v, timeoutMax)
			if err != nil {
				return 0, o, err
			}
			o.HasTimeout, o.Timeout = true, uint32(n)
		case a == "counters":
			o.Counters = true
		case a == "comment":
			o.Comment = true
		case a == "range" && t == BitmapPort:
			v, err := arg()
			if err != nil {
				return 0, o, err
			}
			pp, err := parsePortPart(v, t)
			if err != nil {
				return 0, o, err
			}
			o.PortFrom, o.PortTo, hasRange = pp.from, pp.to, true
		case a == "netmask" || a == "skbinfo" || a == "forceadd" || a == "markmask" || a == "-timeout":
			return 0, o, &Error{Msg: "create option `" + a + "' is not supported by uptables' ipset", Code: 1}
		default:
			return 0, o, usage("Unknown argument: `" + a + "'")
		}
	}
	if t == BitmapPort && !hasRange {
		return 0, o, usage("Missing mandatory argument of option `range'")
	}
	return t, o, nil
}

func (s *Set) parseAddFlags(cmd string, args []string) (AddFlags, error) {
	var f AddFlags
	for i := 0; i < len(args); i++ {
		a := args[i]
		arg := func() (string, error) {
			if i+1 >= len(args) {
				return "", usage("Missing mandatory argument of option `" + a + "'")
			}
			i++
			return args[i], nil
		}
		if cmd != "add" && a != "nomatch" {
			return f, usage("Unknown argument: `" + a + "'")
		}
		switch a {
		case "timeout":
			v, err := arg()
			if err != nil {
				return f, err
			}
			n, err := parseUint(a, v, timeoutMax)
			if err != nil {
				return f, err
			}
			if !s.opts.HasTimeout {
				return f, errf("Timeout cannot be used: set was created without timeout support")
			}
			f.HasTimeout, f.Timeout = true, uint32(n)
		case "packets", "bytes":
			v, err := arg()
			if err != nil {
				return f, err
			}
			n, err := parseUint(a, v, 1<<64-1)
			if err != nil {
				return f, err
			}
			if !s.opts.Counters {
				return f, errf("Packet/byte counters cannot be used: set was created without counter support")
			}
			if a == "packets" {
				f.HasPackets, f.Packets = true, n
			} else {
				f.HasBytes, f.Bytes = true, n
			}
		case "comment":
			v, err := arg()
			if err != nil {
				return f, err
			}
			if strings.Contains(v, "\"") {
				return f, syntaxf("\" character is not permitted in comments")
			}
			if !s.opts.Comment {
				return f, errf("Comment cannot be used: set was created without comment support")
			}
			f.HasComment, f.Comment = true, v
		case "nomatch":
			if !s.typ.hasNet() {
				return f, usage("Unknown argument: `nomatch'")
			}
			f.NoMatch = cmd == "add"
		default:
			return f, usage("Unknown argument: `" + a + "'")
		}
	}
	return f, nil
}

// writeHeader prints the create options as `ipset save` and the Header:
// line do.
func (s *Set) writeHeader(b *strings.Builder) {
	o := s.opts
	if s.typ == BitmapPort {
		b.WriteString("range " + strconv.Itoa(int(o.PortFrom)) + "-" + strconv.Itoa(int(o.PortTo)))
	} else {
		b.WriteString("family inet hashsize " + strconv.FormatUint(uint64(o.HashSize), 10) +
			" maxelem " + strconv.FormatUint(uint64(o.MaxElem), 10))
	}
	if o.HasTimeout {
		b.WriteString(" timeout " + strconv.FormatUint(uint64(o.Timeout), 10))
	}
	if o.Counters {
		b.WriteString(" counters")
	}
	if o.Comment {
		b.WriteString(" comment")
	}
	if s.typ != BitmapPort {
		b.WriteString(" bucketsize 12 initval 0x")
		h := strconv.FormatUint(uint64(o.Initval), 16)
		b.WriteString(strings.Repeat("0", 8-len(h)) + h)
	}
}

func (s *Set) writeElem(b *strings.Builder, el *Element) {
	s.FormatKey(b, el.Key)
	if s.opts.HasTimeout {
		b.WriteString(" timeout ")
		if el.Permanent {
			b.WriteString("0")
		} else {
			b.WriteString(strconv.FormatUint(uint64(el.Timeout), 10))
		}
	}
	if el.NoMatch {
		b.WriteString(" nomatch")
	}
	if s.opts.Counters {
		b.WriteString(" packets " + strconv.FormatUint(el.Packets, 10) + " bytes " + strconv.FormatUint(el.Bytes, 10))
	}
	if s.opts.Comment && el.Comment != "" {
		b.WriteString(" comment \"" + el.Comment + "\"")
	}
}

func (ss *Sets) writeSave(b *strings.Builder, name string, now int64) {
	r, ok := ss.Ref(name)
	if !ok {
		return
	}
	s := r.Set()
	b.WriteString("create " + name + " " + s.typ.String() + " ")
	s.writeHeader(b)
	b.WriteByte('\n')
	els := s.Elements(now)
	for i := range els {
		b.WriteString("add " + name + " ")
		s.writeElem(b, &els[i])
		b.WriteByte('\n')
	}
}

func (ss *Sets) writeList(b *strings.Builder, name string, now int64, terse bool) {
	r, ok := ss.Ref(name)
	if !ok {
		return
	}
	s := r.Set()
	els := s.Elements(now)
	b.WriteString("Name: " + name + "\nType: " + s.typ.String() + "\nRevision: " + strconv.Itoa(revisions[s.typ]) + "\nHeader: ")
	s.writeHeader(b)
	b.WriteString("\nSize in memory: " + strconv.Itoa(s.MemSize()) + "\nReferences: " + strconv.Itoa(int(r.refs.Load())) +
		"\nNumber of entries: " + strconv.Itoa(len(els)) + "\n")
	if terse {
		return
	}
	b.WriteString("Members:\n")
	for i := range els {
		s.writeElem(b, &els[i])
		b.WriteByte('\n')
	}
}

// Report turns Exec's error into what ipset prints on stderr and its exit
// status: "ipset v7.17: MSG" (with "Error in line N: " during restore),
// the "Try `ipset help'" line for command-line errors, and the bare
// warning of a successful test.
func Report(err error) (stderr string, code int) {
	if err == nil {
		return "", 0
	}
	e, ok := err.(*Error)
	if !ok {
		return "ipset " + Version + ": " + err.Error() + "\n", 1
	}
	if e.Msg == "" {
		return "", e.Code
	}
	if e.Code == 0 || strings.HasSuffix(e.Msg, " is NOT in set "+lastWord(e.Msg)) {
		return e.Msg + "\n", e.Code
	}
	var b strings.Builder
	b.WriteString("ipset " + Version + ": ")
	if e.Line > 0 {
		b.WriteString("Error in line " + strconv.Itoa(e.Line) + ": ")
	}
	b.WriteString(e.Msg + "\n")
	if e.Code == 2 {
		b.WriteString("Try `ipset help' for more information.\n")
	}
	return b.String(), e.Code
}

func lastWord(s string) string {
	if i := strings.LastIndexByte(s, ' '); i >= 0 {
		return s[i+1:]
	}
	return s
}
