package target

import (
	"bufio"
	"errors"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

// This file replays the rows of the shared golden corpus that end in one of
// this package's targets through the xt.Target API alone: a tiny stand-in
// for the grammar (only -p and -j matter here; everything before -j is
// taken over verbatim), so the targets can be checked before the real
// grammar exists and independently of it.

const conformanceDir = "/work/shared/conformance/"

var goldenFiles = map[string]bool{
	"libipt_DNAT.t": true, "libipt_LOG.t": true, "libipt_MASQUERADE.t": true, "libipt_REJECT.t": true,
	"libipt_SNAT.t": true, "libipt_TTL.t": true, "libxt_CONNMARK.t": true, "libxt_CT.t": true,
	"libxt_MARK.t": true, "libxt_NFLOG.t": true, "libxt_NFQUEUE.t": true, "libxt_NOTRACK.t": true,
	"libxt_REDIRECT.t": true, "libxt_TCPMSS.t": true, "libxt_TRACE.t": true,
}

type goldenRow struct {
	id, table, chain, rule string
	exit                   string
	out                    string // canonical rule or stderr
	warn                   string
}

func unescapeTSV(s string) string {
	r := strings.NewReplacer(`\\`, `\`, `\t`, "\t", `\n`, "\n", `\r`, "\r")
	return r.Replace(s)
}

func readGolden(t *testing.T) []goldenRow {
	t.Helper()
	var rows []goldenRow
	f, err := os.Open(conformanceDir + "golden-iptables-1.8.9.tsv")
	if err != nil {
		t.Skip("golden corpus not available:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) < 13 || !goldenFiles[c[0]] {
			continue
		}
		rows = append(rows, goldenRow{id: c[0] + ":" + c[8], table: c[1], chain: c[2], rule: unescapeTSV(c[3]),
			exit: c[6], out: unescapeTSV(c[7]), warn: unescapeTSV(c[12])})
	}
	sf, err := os.Open(conformanceDir + "seed-golden-iptables-1.8.9.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	sc = bufio.NewScanner(sf)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) < 9 {
			continue
		}
		cmd := unescapeTSV(c[3])
		j := strings.Index(cmd, " -j ")
		if j < 0 {
			continue
		}
		name := strings.Fields(cmd[j+4:])[0]
		if _, ok := testRegistry().Target(name); !ok {
			continue
		}
		// drop "-t T -A CHAIN" / "-I CHAIN"
		w := shellWords(t, cmd)
		var keep []string
		for i := 0; i < len(w); i++ {
			switch w[i] {
			case "-t", "-A", "-I":
				i++
				continue
			}
			keep = append(keep, w[i])
		}
		rows = append(rows, goldenRow{id: c[0], table: c[1], chain: c[2], rule: strings.Join(quoteAll(keep), " "),
			exit: c[5], out: unescapeTSV(c[6]), warn: unescapeTSV(c[8])})
	}
	return rows
}

func quoteAll(w []string) []string {
	out := make([]string, len(w))
	for i, s := range w {
		out[i] = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return out
}

// shellWords splits like bash for the quoting the corpus uses.
func shellWords(t *testing.T, s string) []string {
	var out []string
	var cur strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\'':
			in = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				t.Fatalf("unterminated quote in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			in = true
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
		case c == '\\' && i+1 < len(s):
			in = true
			i++
			cur.WriteByte(s[i])
		default:
			in = true
			cur.WriteByte(c)
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

func testRegistry() *xt.Registry {
	r := xt.NewRegistry()
	Register(r)
	return r
}

// result is what the stand-in grammar produced for a rule.
type result struct {
	exit  string
	out   string
	warns []string
	tg    xt.Target // the configured target when exit is "0"
}

// runRule parses the words after -j the way getopt_long does (long
// options, unique prefixes, required arguments taken verbatim), runs
// Final, Save and Check, and returns what iptables would have printed.
func runRule(t *testing.T, reg *xt.Registry, table, chain string, words []string) result {
	ctx := &xt.ParseContext{Family: xt.IPv4, Table: table, Chain: chain}
	var pre []string
	j := -1
	for i := 0; i < len(words); i++ {
		if words[i] == "-j" {
			j = i
			break
		}
		pre = append(pre, words[i])
		if words[i] == "-p" && i+1 < len(words) {
			p, err := xt.ParseProtocol(words[i+1])
			if err != nil {
				t.Fatal(err)
			}
			ctx.Proto = p
			ctx.InvProto = i > 0 && words[i-1] == "!"
		}
	}
	if j < 0 || j+1 >= len(words) {
		t.Fatalf("no -j in %q", words)
	}
	spec, ok := reg.Target(words[j+1])
	if !ok {
		t.Fatalf("target %s not registered", words[j+1])
	}
	tg := spec.New()
	fail := func(err error) result {
		var pe *xt.ParamError
		if !errors.As(err, &pe) {
			t.Fatalf("parse error of wrong type %T: %v", err, err)
		}
		var w []string
		if wr, ok := tg.(Warner); ok {
			w = wr.Warnings()
		}
		msg := pe.Msg
		if !pe.NoPrefix {
			msg = "iptables v1.8.9 (nf_tables): " + msg
		}
		out := strings.Join(append(append([]string{}, w...), msg), "\n")
		return result{exit: "2", out: out + "\nTry `iptables -h' or 'iptables --help' for more information."}
	}
	rest := words[j+2:]
	for i := 0; i < len(rest); i++ {
		wd := rest[i]
		if !strings.HasPrefix(wd, "--") {
			return fail(xt.BadArgument(wd))
		}
		name := wd[2:]
		var opt *xt.Option
		for k := range spec.Options {
			o := &spec.Options[k]
			if o.Name == name {
				opt = o
				break
			}
			if strings.HasPrefix(o.Name, name) && opt == nil {
				opt = o
			}
		}
		if opt == nil {
			return fail(xt.Errorf("unknown option \"%s\"", wd))
		}
		arg := ""
		if opt.Arg == xt.RequiredArg {
			if i+1 >= len(rest) {
				return fail(xt.Errorf("option \"--%s\" requires an argument", opt.Name))
			}
			i++
			arg = rest[i]
		}
		if err := tg.Parse(ctx, opt.Name, false, arg, nil); err != nil {
			return fail(err)
		}
	}
	if err := tg.Final(ctx); err != nil {
		return fail(err)
	}
	var warns []string
	if wr, ok := tg.(Warner); ok {
		warns = wr.Warnings()
	}
	if ck, ok := tg.(xt.Checker); ok {
		h, _ := xt.HookByChain(chain)
		err := ck.Check(&xt.CheckContext{Family: xt.IPv4, Table: table, Hooks: xt.MaskOf(h), Proto: ctx.Proto, InvProto: ctx.InvProto})
		if err != nil {
			var ke *xt.KernelError
			if !errors.As(err, &ke) {
				t.Fatalf("check error of wrong type %T", err)
			}
			msg := ke.Errno.Error()
			msg = strings.ToUpper(msg[:1]) + msg[1:]
			return result{exit: "4", out: "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (" + msg + "): rule in chain " + chain}
		}
	}
	var b strings.Builder
	b.WriteString("-j ")
	b.WriteString(spec.Name)
	tg.Save(&b)
	return result{exit: "0", out: strings.Join(pre, " ") + "\x00" + b.String(), warns: warns, tg: tg}
}

func TestGoldenRows(t *testing.T) {
	reg := testRegistry()
	rows := readGolden(t)
	perFile := map[string][2]int{}
	for _, r := range rows {
		file, _, isT := strings.Cut(r.id, ":")
		if !isT {
			file = "seed-golden"
		}
		got := runRule(t, reg, r.table, r.chain, shellWords(t, r.rule))
		ok := got.exit == r.exit
		if ok && got.exit == "0" {
			_, save, _ := strings.Cut(got.out, "\x00")
			ok = strings.HasSuffix(r.out, save) && strings.Join(got.warns, "\n") == r.warn
			got.out = save
		} else if ok {
			ok = got.out == r.out
		}
		c := perFile[file]
		c[1]++
		if ok {
			c[0]++
		} else {
			t.Errorf("%s %s %s %q:\n got  %s %q (warn %q)\n want %s %q (warn %q)", r.id, r.table, r.chain, r.rule, got.exit, got.out, got.warns, r.exit, r.out, r.warn)
		}
		perFile[file] = c
	}
	files := make([]string, 0, len(perFile))
	for f := range perFile {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		t.Logf("%-22s %d/%d", f, perFile[f][0], perFile[f][1])
	}
}

// TestProbes replays testdata/probes.tsv, the real iptables' answers
// (exit code, -S, -L, -L -n, stderr) to several hundred target rules
// beyond the shared corpus; gen-probes.sh regenerates it.
func TestProbes(t *testing.T) {
	reg := testRegistry()
	f, err := os.Open("testdata/probes.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n, pass := 0, 0
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 8 {
			t.Fatalf("bad line %q", sc.Text())
		}
		for i := range c {
			c[i] = unescapeTSV(c[i])
		}
		table, chain, rule, exit, save, list, listN, stderr := c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
		n++
		got := runRule(t, reg, table, chain, shellWords(t, rule))
		var problems []string
		if got.exit != exit {
			problems = append(problems, "exit "+got.exit+" want "+exit+" ("+got.out+" / "+stderr+")")
		} else if exit == "0" {
			_, s, _ := strings.Cut(got.out, "\x00")
			if !strings.HasSuffix(save, s) {
				problems = append(problems, "save "+s+" want "+save)
			}
			var l, ln strings.Builder
			got.tg.List(&l, false)
			got.tg.List(&ln, true)
			if l.String() != list {
				problems = append(problems, "list "+strconv.Quote(l.String())+" want "+strconv.Quote(list))
			}
			if ln.String() != listN {
				problems = append(problems, "list -n "+strconv.Quote(ln.String())+" want "+strconv.Quote(listN))
			}
			if w := strings.Join(got.warns, "\n"); w != stderr {
				problems = append(problems, "warnings "+strconv.Quote(w)+" want "+strconv.Quote(stderr))
			}
		} else if got.out != stderr {
			problems = append(problems, "error "+strconv.Quote(got.out)+" want "+strconv.Quote(stderr))
		}
		if len(problems) > 0 {
			t.Errorf("%s %s %s:\n  %s", table, chain, rule, strings.Join(problems, "\n  "))
		} else {
			pass++
		}
	}
	t.Logf("probes: %d/%d", pass, n)
}
