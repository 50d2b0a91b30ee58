package iptables_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// The grammar differential test: command lines and iptables-restore files
// made by mutating the conformance corpus (dropped, repeated and swapped
// words, values at their bounds and in odd spellings, `!` in odd places,
// abbreviated and misspelt options, options of one extension after
// another's -m ...) go through the real iptables 1.8.9 inside a throw-away
// network namespace and through the offline CLI path (iptables.Run,
// iptables.Restore on a fresh rule set); exit status, stdout, stderr and
// the resulting iptables-save -c must be identical.
//
// It needs root, iptables, iptables-restore, iptables-save, nft and ip.
// UPTABLES_GRAMMAR_N sets the number of command lines (default 1500; the
// restore files are a fifth of it), UPTABLES_GRAMMAR_SEED the seed (default
// 1), UPTABLES_GRAMMAR_OUT a file that receives every divergence.

// kernelShell is one bash process inside a network namespace made for the
// test; commands go to its stdin and their results come back through files
// in dir, so any output bytes survive.
type kernelShell struct {
	ns, dir string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string
	stderr  bytes.Buffer
}

func startKernelShell(t *testing.T) *kernelShell {
	t.Helper()
	ns := fmt.Sprintf("upt-grammar-%d", os.Getpid())
	_ = exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create network namespace: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	k := &kernelShell{ns: ns, dir: t.TempDir(), lines: make(chan string, 16)}
	k.cmd = exec.Command("ip", "netns", "exec", ns, "bash")
	k.cmd.Env = append(os.Environ(), "LC_ALL=C")
	var err error
	if k.stdin, err = k.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := k.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	k.cmd.Stderr = &k.stderr
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			k.lines <- sc.Text()
		}
		close(k.lines)
	}()
	t.Cleanup(func() {
		k.stdin.Close()
		done := make(chan struct{})
		go func() { _ = k.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = k.cmd.Process.Kill()
			<-done
		}
	})
	return k
}

// shellQuote quotes one word for bash (no word here contains NUL).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// exec runs one command line (already quoted) with stdout and stderr to
// files and returns its exit status, stdout and stderr.
func (k *kernelShell) exec(t *testing.T, line string) (int, string, string) {
	t.Helper()
	o, e := filepath.Join(k.dir, "o"), filepath.Join(k.dir, "e")
	if _, err := fmt.Fprintf(k.stdin, "%s >%s 2>%s\necho \"__rc=$?\"\n", line, o, e); err != nil {
		t.Fatalf("kernel shell: %v (%s)", err, k.stderr.String())
	}
	select {
	case l, ok := <-k.lines:
		if !ok || !strings.HasPrefix(l, "__rc=") {
			t.Fatalf("kernel shell: unexpected %q (%s)", l, k.stderr.String())
		}
		rc, _ := strconv.Atoi(l[5:])
		ob, _ := os.ReadFile(o)
		eb, _ := os.ReadFile(e)
		return rc, string(ob), string(eb)
	case <-time.After(30 * time.Second):
		t.Fatalf("kernel shell: no answer in 30 s to %q", line)
	}
	return 0, "", ""
}

// saveAndReset returns iptables-save -c without its comment lines and
// empties the namespace (nft flush ruleset) when anything is in it.
func (k *kernelShell) saveAndReset(t *testing.T) string {
	rc, out, errs := k.exec(t, "iptables-save -c")
	if rc != 0 {
		t.Fatalf("iptables-save: rc %d %s", rc, errs)
	}
	out = stripSaveComments(out)
	if out != "" {
		if rc, _, errs := k.exec(t, "nft flush ruleset"); rc != 0 {
			t.Fatalf("nft flush ruleset: rc %d %s", rc, errs)
		}
	}
	return out
}

func stripSaveComments(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if !strings.HasPrefix(l, "# ") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// outcome is what one tool did with one input.
type outcome struct {
	rc             int
	stdout, stderr string
	save           string // iptables-save -c afterwards (no comments)
	saved          bool   // save was taken
}

func (o outcome) String() string {
	s := fmt.Sprintf("rc %d stdout %q stderr %q", o.rc, o.stdout, o.stderr)
	if o.saved {
		s += fmt.Sprintf(" save %q", o.save)
	}
	return s
}

// uptablesRun is `iptables ARGS` through the offline CLI path.
func uptablesRun(reg *xt.Registry, args []string) (o outcome) {
	defer func() {
		if p := recover(); p != nil {
			o = outcome{rc: -1, stderr: fmt.Sprintf("PANIC: %v", p)}
		}
	}()
	rs := ruleset.New(xt.IPv4)
	var out bytes.Buffer
	res, warns, err := iptables.Run(rs, reg, args, &out)
	var stderr strings.Builder
	for _, w := range warns {
		stderr.WriteString(w + "\n")
	}
	after := rs
	if err != nil {
		e := iptables.AsError(err, "", "")
		o.rc = e.ExitCode()
		stderr.WriteString(e.Text("iptables") + "\n")
	} else {
		after = res.Ruleset
	}
	o.stdout, o.stderr = out.String(), stderr.String()
	var sb bytes.Buffer
	if err := iptables.WriteSave(&sb, after, iptables.SaveOptions{Counters: true, Now: time.Unix(0, 0)}); err != nil {
		o.rc, o.stderr = -1, "save: "+err.Error()
	}
	o.save, o.saved = stripSaveComments(sb.String()), true
	return o
}

// uptablesRestore is `iptables-restore FLAGS < input` on a fresh system.
func uptablesRestore(reg *xt.Registry, flags []string, input string) (o outcome) {
	defer func() {
		if p := recover(); p != nil {
			o = outcome{rc: -1, stderr: fmt.Sprintf("PANIC: %v", p)}
		}
	}()
	var opts iptables.RestoreOptions
	test := false
	for _, f := range flags {
		switch f {
		case "--noflush", "-n":
			opts.NoFlush = true
		case "--counters", "-c":
			opts.Counters = true
		case "--test", "-t":
			test, opts.Test = true, true
		}
	}
	var warns strings.Builder
	opts.Warn = func(w string) { warns.WriteString(w + "\n") }
	rs, err := iptables.Restore(ruleset.New(xt.IPv4), reg, strings.NewReader(input), opts)
	if err != nil {
		e := iptables.AsError(err, "", "")
		o.rc, o.stderr = e.ExitCode(), e.Text("iptables-restore")+"\n"
		return o
	}
	o.stderr = warns.String()
	if test {
		rs = ruleset.New(xt.IPv4)
	}
	var sb bytes.Buffer
	if err := iptables.WriteSave(&sb, rs, iptables.SaveOptions{Counters: true, Now: time.Unix(0, 0)}); err != nil {
		o.rc, o.stderr = -1, "save: "+err.Error()
	}
	o.save, o.saved = stripSaveComments(sb.String()), true
	return o
}

// allowedDifference returns why a divergence is a documented, deliberate
// difference (README "Where uptables differs from iptables on purpose"),
// or "" when it is a bug.
func allowedDifference(args []string, k, u outcome) string {
	joined := " " + strings.Join(args, " ") + " "
	// No DNS, ever: iptables resolves names through /etc/hosts even in a
	// namespace without network (localhost, the machine's name); uptables
	// refuses every host name.
	if k.rc == 0 && u.rc == 2 && (strings.Contains(u.stderr, "host/network `") && strings.Contains(u.stderr, "' not found") ||
		strings.Contains(u.stderr, "getaddrinfo: Name or service not known")) {
		return "host names are never resolved"
	}
	// For a name that could be a host name getaddrinfo asks DNS, which
	// fails in the namespace ("Temporary failure in name resolution");
	// uptables answers as for any name it cannot resolve.
	if strings.Replace(k.stderr, "getaddrinfo: Temporary failure in name resolution", "getaddrinfo: Name or service not known", 1) == u.stderr && k.rc == u.rc {
		return "host names are never resolved"
	}
	// -E on a built-in chain is refused on purpose: iptables-nft renames
	// it and leaves a table it can no longer list.
	if u.rc == 1 && strings.Contains(u.stderr, "No chain/target/match by that name.") && k.rc == 0 {
		for _, w := range args {
			if w == "-E" || strings.HasPrefix(w, "--re") && strings.HasPrefix("--rename-chain", w) {
				return "-E on a built-in chain is refused"
			}
		}
	}
	// -E to a name -N would refuse (blanks, empty) is refused on
	// purpose: iptables 1.8.9 renames and then cannot restore its own
	// save output.
	if k.rc == 0 && u.rc == 2 && strings.Contains(u.stderr, "Invalid chain name `") {
		for _, w := range args {
			if w == "-E" || strings.HasPrefix(w, "--re") && strings.HasPrefix("--rename-chain", w) {
				return "-E to a name -N refuses"
			}
		}
	}
	// -v -v is accepted as -v; iptables-nft dumps nft bytecode as well.
	if k.rc == 0 && u.rc == 0 && strings.Count(joined, " -v ")+strings.Count(joined, " --verbose ") >= 2 ||
		strings.Contains(joined, "vv") && k.rc == 0 && u.rc == 0 && k.stdout != u.stdout {
		return "-v -v is -v"
	}
	return ""
}

// allowedRestoreDifference is allowedDifference for iptables-restore.
func allowedRestoreDifference(k, u outcome) string {
	if k.rc == 0 && (strings.Contains(u.stderr, "host/network `") || strings.Contains(u.stderr, "getaddrinfo: Name or service not known")) {
		return "host names are never resolved"
	}
	if strings.Replace(k.stderr, "getaddrinfo: Temporary failure in name resolution", "getaddrinfo: Name or service not known", 1) == u.stderr && k.rc == u.rc {
		return "host names are never resolved"
	}
	return ""
}

// grammarGen makes the mutated inputs. Everything comes from rng, so a
// seed always gives the same inputs.
type grammarGen struct {
	rng   *rand.Rand
	bases [][]string // full commands: -t T -A C words...
	rules []genRule  // corpus rules for restore files
	opts  [][]string // "--opt value" pairs seen in the corpus, for transplanting
	exts  []string   // -m names
	tgts  []string   // -j names
}

type genRule struct {
	table, chain string
	words        []string
}

func newGrammarGen(t *testing.T, seed uint64) *grammarGen {
	g := &grammarGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	extSeen, tgtSeen := map[string]bool{}, map[string]bool{}
	add := func(table, chain string, words []string, full []string) {
		g.bases = append(g.bases, full)
		g.rules = append(g.rules, genRule{table, chain, words})
		for i, w := range words {
			if strings.HasPrefix(w, "--") && i+1 < len(words) && !strings.HasPrefix(words[i+1], "-") {
				g.opts = append(g.opts, []string{w, words[i+1]})
			} else if strings.HasPrefix(w, "--") {
				g.opts = append(g.opts, []string{w})
			}
			if (w == "-m" || w == "-j") && i+1 < len(words) {
				n := words[i+1]
				if w == "-m" && !extSeen[n] {
					extSeen[n] = true
					g.exts = append(g.exts, n)
				}
				if w == "-j" && !tgtSeen[n] {
					tgtSeen[n] = true
					g.tgts = append(g.tgts, n)
				}
			}
		}
	}
	for _, row := range readTSV(t, goldenTSV) {
		words, err := iptables.SplitShell(row["input_rule"])
		if err != nil {
			continue
		}
		add(row["table"], row["chain"], words, append([]string{"-t", row["table"], "-A", row["chain"]}, words...))
	}
	for _, row := range readTSV(t, seedTSV) {
		words, err := iptables.SplitShell(row["command"])
		if err != nil || len(words) < 2 {
			continue
		}
		rule := words[2:]
		if words[0] == "-I" && len(words) > 2 {
			if _, err := strconv.Atoi(words[2]); err == nil {
				rule = words[3:]
			}
		}
		add(row["table"], row["chain"], rule, append([]string{"-t", row["table"]}, words...))
	}
	return g
}

func (g *grammarGen) pick(list []string) string { return list[g.rng.IntN(len(list))] }

var oddValues = []string{
	"", " ", "0", "-0", "+0", "1", "-1", "+1", "00", "007", "08", "0x10", "0X1f", "0x", "0b1", "1e3", "1.5", ".5",
	"255", "256", "65535", "65536", "2147483647", "2147483648", "4294967295", "4294967296", "-4294967295",
	"18446744073709551615", "18446744073709551616", "99999999999999999999999", " 5", "5 ", "5\t", "\t5", "5\n",
	"\r", "a\rb", "a b", "x", "X", "all", "ALL", "none", "!", "!5", "--", "-", ",", ",,", "1,", ",1", "1,,2",
	":", "1:", ":1", "1:2:3", "2:1", "0:0", "1-2", "/", "/0", "/32", "/33", "1.2.3.4/", "1.2.3.4/33",
	"1.2.3.4/255.255.0.255", "1.2.3.4/-1", "1.2.3.4/+8", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.02.03.04",
	"0x7f.1", "127.1", "1.2.3.4-1.2.3.5", "1.2.3.5-1.2.3.4", "::1", "ü", "ΑΒΓ", "٣", "１", "eth0", "eth+",
	"lo", "+", "abcdefghijklmno", "abcdefghijklmnop", "a/b", "1s", "1/sec", "1/s", "1/second", "1/min",
	"1/hour", "1/day", "0/sec", "1000001/sec", "10/minute", "5/Second", "1kb/s", "1mb/s", "1/se",
	"tcp", "TCP", "udp", "icmp", "6", "17", "all", "0x06", "ah", "sctp", "ipv6-icmp", "ssh", "http", "www",
	"ssh:http", "echo-request", "8/0", "255/255", "any", "NEW", "new", "NEW,ESTABLISHED", "INVALID,", "SYN",
	"syn", "ALL", "NONE", "SYN,ACK", "FIN,SYN,RST,ACK", "accept", "ACCEPT", "DROP", "RETURN",
	strings.Repeat("a", 29), strings.Repeat("a", 30), strings.Repeat("a", 31), strings.Repeat("a", 32),
	strings.Repeat("x", 255), strings.Repeat("x", 256), strings.Repeat("9", 40), strings.Repeat("y", 5000),
	"\"quoted\"", "'single'", "back\\slash", "dollar$x", "a;b", "#hash", "%s%n", "\x01", "\x7f", "\xff",
}

// numericForms returns odd spellings of a numeric value.
func numericForms(v string) []string {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return nil
	}
	return []string{
		strconv.FormatUint(n+1, 10), strconv.FormatInt(int64(n)-1, 10), "0x" + strconv.FormatUint(n, 16),
		"0" + strconv.FormatUint(n, 8), "+" + v, "-" + v, "0" + v, " " + v, v + " ", v + "x", v + ".0",
		strconv.FormatUint(n*1000, 10), strconv.FormatUint(n<<32, 10), v + "," + v, v + ":" + v,
	}
}

// valueMutation returns a replacement for the value w.
func (g *grammarGen) valueMutation(w string) string {
	if forms := numericForms(w); forms != nil && g.rng.IntN(2) == 0 {
		return g.pick(forms)
	}
	switch g.rng.IntN(10) {
	case 0:
		return strings.ToUpper(w)
	case 1:
		return strings.ToLower(w)
	case 2:
		if len(w) > 1 {
			return w[:g.rng.IntN(len(w))]
		}
	case 3:
		return w + g.pick([]string{",", ":", "/", "!", " ", "0", "+", "-", "/24", ":1"})
	case 4:
		if i := strings.IndexAny(w, "0123456789"); i >= 0 {
			j := i
			for j < len(w) && w[j] >= '0' && w[j] <= '9' {
				j++
			}
			return w[:i] + g.pick([]string{"0", "00", "-1", "256", "65536", "4294967296", "0x1", "+1", ""}) + w[j:]
		}
	}
	return g.pick(oddValues)
}

// optionMutation returns a respelling of the option word w ("--foo").
func (g *grammarGen) optionMutation(w string) string {
	switch g.rng.IntN(9) {
	case 0, 1, 2: // getopt_long prefix
		if strings.HasPrefix(w, "--") && len(w) > 3 {
			return w[:3+g.rng.IntN(len(w)-3)]
		}
	case 3:
		return strings.ToUpper(w)
	case 4:
		if strings.HasPrefix(w, "--") {
			return g.pick([]string{"–", "—", "-", "---", "−"}) + w[2:]
		}
		return "-" + w
	case 5:
		return w + g.pick([]string{"=", "=1", "s", "-", "x", " "})
	case 6:
		if strings.HasPrefix(w, "--") {
			return w[1:]
		}
	case 7:
		if len(w) == 2 {
			return w + g.pick([]string{"1", "x", "!", "n"})
		}
	}
	return w + "-x"
}

func isOption(w string) bool {
	if len(w) < 2 || w[0] != '-' {
		return false
	}
	_, err := strconv.Atoi(w)
	return err != nil
}

// mutateWords applies one to three random mutations to words.
func (g *grammarGen) mutateWords(words []string) []string {
	w := append([]string(nil), words...)
	n := 1 + g.rng.IntN(2)
	for range n {
		if len(w) == 0 {
			w = append(w, g.pick(oddValues))
			continue
		}
		i := g.rng.IntN(len(w))
		switch g.rng.IntN(15) {
		case 0: // drop a word
			w = append(w[:i], w[i+1:]...)
		case 1: // repeat a word, or an option with its value
			end := i + 1
			if isOption(w[i]) && i+1 < len(w) && !isOption(w[i+1]) {
				end = i + 2
			}
			dup := append([]string(nil), w[i:end]...)
			j := g.rng.IntN(len(w) + 1)
			w = append(w[:j], append(dup, w[j:]...)...)
		case 2: // swap neighbours
			if i+1 < len(w) {
				w[i], w[i+1] = w[i+1], w[i]
			}
		case 3, 4, 5: // a value at its bounds or oddly spelt
			j := i
			for k := 0; k < len(w); k++ {
				if !isOption(w[(i+k)%len(w)]) {
					j = (i + k) % len(w)
					break
				}
			}
			w[j] = g.valueMutation(w[j])
		case 6, 7: // a respelt option
			j := i
			for k := 0; k < len(w); k++ {
				if isOption(w[(i+k)%len(w)]) {
					j = (i + k) % len(w)
					break
				}
			}
			w[j] = g.optionMutation(w[j])
		case 8: // ! somewhere
			w = append(w[:i], append([]string{"!"}, w[i:]...)...)
		case 9: // --opt=value
			if strings.HasPrefix(w[i], "--") && i+1 < len(w) {
				w[i] = w[i] + "=" + w[i+1]
				w = append(w[:i+1], w[i+2:]...)
			}
		case 10: // an option of another rule
			o := g.opts[g.rng.IntN(len(g.opts))]
			w = append(w[:i], append(append([]string(nil), o...), w[i:]...)...)
		case 11: // another -m
			ins := []string{"-m", g.pick(g.exts)}
			if g.rng.IntN(4) == 0 {
				ins = []string{"-m", g.valueMutation(g.pick(g.exts))}
			}
			w = append(w[:i], append(ins, w[i:]...)...)
		case 12: // another target
			t := g.pick(g.tgts)
			if g.rng.IntN(3) == 0 {
				t = g.valueMutation(t)
			}
			w = append(w, g.pick([]string{"-j", "-g", "--jump", "--goto"}), t)
		case 13: // a value glued to its option (-p6, --dport=22)
			if isOption(w[i]) && len(w[i]) == 2 && i+1 < len(w) {
				w[i] += w[i+1]
				w = append(w[:i+1], w[i+2:]...)
			}
		case 14: // blank inside a word
			w[i] = g.pick([]string{" ", "\t", "\r", "\n"}) + w[i]
		}
	}
	return w
}

// commandForms turns a corpus command into another command: most stay
// -A; some use the other commands with their odd arguments.
func (g *grammarGen) commandForms(base []string) []string {
	table, chain, rule := base[1], base[3], base[4:]
	if base[2] != "-A" && base[2] != "-I" {
		return base
	}
	if base[2] == "-I" && len(rule) > 0 {
		if _, err := strconv.Atoi(rule[0]); err == nil {
			rule = rule[1:]
		}
	}
	t := []string{"-t", table}
	if g.rng.IntN(8) == 0 {
		t = []string{g.pick([]string{"-t", "--table", "--t", "-t" + table}), g.pick([]string{table, "NAT", "nat", "mangle", "raw", "security", "broute", "", "filter "})}
		if strings.HasPrefix(t[0], "-t") && len(t[0]) > 2 {
			t = t[:1]
		}
	}
	num := func() string {
		return g.pick([]string{"0", "1", "2", "-1", "+1", "0x1", "01", "4294967296", "", "x", "1 "})
	}
	name := func() string {
		return g.pick([]string{chain, "INPUT", "foo", "FOO", "-foo", "!foo", "a b", "a\rb", "a\tb", "",
			strings.Repeat("c", 28), strings.Repeat("c", 29), strings.Repeat("c", 30), "ACCEPT", "RETURN", "DROP",
			"QUEUE", "NFQUEUE", "LOG", "ü", "a!b", "x=y", "0", "9"})
	}
	var cmd []string
	switch g.rng.IntN(16) {
	case 0:
		cmd = []string{"-I", chain}
		if g.rng.IntN(2) == 0 {
			cmd = append(cmd, num())
		}
		cmd = append(cmd, rule...)
	case 1:
		cmd = append([]string{g.pick([]string{"-D", "-C"}), chain}, rule...)
	case 2:
		cmd = []string{g.pick([]string{"-D", "-R"}), chain, num()}
		if g.rng.IntN(2) == 0 {
			cmd = append(cmd, rule...)
		}
	case 3:
		cmd = []string{g.pick([]string{"-N", "-X", "-F", "-Z", "--new-chain", "--new", "--delete-chain"}), name()}
	case 4:
		cmd = []string{g.pick([]string{"-E", "--rename-chain"}), name(), name()}
	case 5:
		cmd = []string{g.pick([]string{"-P", "--policy"}), name(), g.pick([]string{"ACCEPT", "DROP", "accept", "RETURN", "QUEUE", "", "DROP "})}
		if g.rng.IntN(3) == 0 {
			cmd = append(cmd, rule...)
		}
	case 6:
		cmd = []string{g.pick([]string{"-L", "-S", "--list", "--list-rules", "-nL", "-Ln", "-vS", "-L -n", "-F", "-Z"}), name()}
		if strings.Contains(cmd[0], " ") {
			cmd = append(strings.Fields(cmd[0]), cmd[1:]...)
		}
		if g.rng.IntN(2) == 0 {
			cmd = append(cmd, g.pick([]string{"1", "0", "-1", "x", "-n", "-v", "-x", "--line-numbers", "-c", "-w", "-W", "1 2"}))
		}
		if g.rng.IntN(3) == 0 {
			cmd = append(cmd, rule...)
		}
	case 7:
		cmd = append(append([]string{"-A", chain}, rule...), g.pick([]string{"-c", "--set-counters"}), num(), num())
	case 8:
		cmd = append([]string{"-A", chain}, rule...)
		cmd = append(cmd, g.pick([]string{"-A", "-I", "-D", "-L", "-n", "-v", "-4", "-6", "-f", "! -f", "-w", "-w 1", "-W 1", "-x", "--line-numbers", "-h", "-V"}))
		if strings.Contains(cmd[len(cmd)-1], " ") {
			last := cmd[len(cmd)-1]
			cmd = append(cmd[:len(cmd)-1], strings.Fields(last)...)
		}
	default:
		cmd = append([]string{"-A", chain}, rule...)
	}
	return append(t, cmd...)
}

// command returns the next command line.
func (g *grammarGen) command() []string {
	for {
		base := g.bases[g.rng.IntN(len(g.bases))]
		args := g.commandForms(base)
		if g.rng.IntN(4) != 0 {
			args = append(args[:2:2], g.mutateWords(args[2:])...)
		}
		if g.rng.IntN(12) == 0 {
			args = g.mutateWords(args)
		}
		if safeCommand(args) {
			return args
		}
	}
}

// safeCommand keeps out what must not run on this machine: --modprobe
// (iptables would execute the named program) and NUL bytes (not
// representable in argv).
func safeCommand(args []string) bool {
	for _, a := range args {
		if strings.ContainsRune(a, 0) {
			return false
		}
		if a == "-M" || strings.HasPrefix(a, "-M") && !strings.HasPrefix(a, "--") ||
			strings.HasPrefix(a, "--mo") || a == "--m" || strings.HasPrefix(a, "-") && strings.Contains(a, "M") && !strings.HasPrefix(a, "--") {
			return false
		}
	}
	return true
}

// restoreFile returns iptables-restore flags and an input file built from
// one to three corpus rules of one table, mutated word- and line-wise.
func (g *grammarGen) restoreFile() ([]string, string) {
	first := g.rules[g.rng.IntN(len(g.rules))]
	var rules []genRule
	rules = append(rules, first)
	for range g.rng.IntN(3) {
		r := g.rules[g.rng.IntN(len(g.rules))]
		if r.table == first.table {
			rules = append(rules, r)
		}
	}
	var lines []string
	lines = append(lines, "*"+first.table)
	chains := map[string]bool{}
	for _, r := range rules {
		if !chains[r.chain] {
			chains[r.chain] = true
			lines = append(lines, ":"+r.chain+" "+g.pick([]string{"ACCEPT", "ACCEPT", "DROP"})+" [0:0]")
		}
	}
	if g.rng.IntN(4) == 0 {
		lines = append(lines, ":"+g.pick([]string{"foo", "foo bar", "-", "FOO", strings.Repeat("c", 29), strings.Repeat("c", 30), "INPUT"})+" "+
			g.pick([]string{"-", "-", "ACCEPT", "", "- [0:0]", "- [1:2]", "-  [0:0]", "- [a:b]", "- [0:0] x", "- [-1:0]", "- [18446744073709551616:0]"}))
	}
	for _, r := range rules {
		words := r.words
		if g.rng.IntN(5) != 0 {
			words = g.mutateWords(words)
		}
		var b strings.Builder
		if g.rng.IntN(8) == 0 {
			b.WriteString(g.pick([]string{"[1:2] ", "[0:0] ", "[1:2]", "[a:b] ", "[1:] ", "[-1:5] ", "[18446744073709551615:1] ", "[1:2]  "}))
		}
		b.WriteString(g.pick([]string{"-A", "-A", "-A", "-A", "-I", "--append", "-D", "-N", "-R"}) + " " + r.chain)
		for _, w := range words {
			b.WriteByte(' ')
			switch {
			case w == "":
				b.WriteString(`""`)
			case strings.ContainsAny(w, " \t\"'\\") && g.rng.IntN(3) != 0:
				q := `"` + strings.ReplaceAll(strings.ReplaceAll(w, `\`, `\\`), `"`, `\"`) + `"`
				if g.rng.IntN(3) == 0 {
					q = "'" + w + "'"
				}
				b.WriteString(q)
			default:
				b.WriteString(w)
			}
		}
		lines = append(lines, b.String())
	}
	lines = append(lines, "COMMIT")
	// line-level mutations
	for range g.rng.IntN(3) {
		i := g.rng.IntN(len(lines))
		switch g.rng.IntN(10) {
		case 0:
			lines[i] = g.pick([]string{" ", "\t", "  "}) + lines[i]
		case 1:
			lines[i] += g.pick([]string{" ", "\t", "\r", " #c", " # c"})
		case 2:
			lines = append(lines[:i], lines[i+1:]...)
		case 3:
			lines = append(lines[:i], append([]string{lines[i]}, lines[i:]...)...)
		case 4:
			lines = append(lines[:i], append([]string{g.pick([]string{"", "#", "# comment", " ", "\t#x", "\r"})}, lines[i:]...)...)
		case 5:
			lines[i] = strings.ToLower(lines[i])
		case 6:
			lines[i] = strings.ReplaceAll(lines[i], " ", g.pick([]string{"  ", "\t", " \t"}))
		case 7:
			lines = append(lines, g.pick([]string{"*nat", "*filter", "COMMIT", "*mangle\nCOMMIT", "*bogus\nCOMMIT", "* filter", "*", "COMMIT x", "commit"}))
		case 8:
			lines[0] = g.pick([]string{"*FILTER", "*filter ", "*filter x", "*raw", "*security", "*nat", "*mangle", "*broute"})
		case 9:
			lines[i] = strings.Join(g.mutateWords(strings.Fields(lines[i])), " ")
		}
	}
	input := strings.Join(lines, "\n") + "\n"
	if g.rng.IntN(20) == 0 {
		input = strings.TrimSuffix(input, "\n")
	}
	var flags []string
	switch g.rng.IntN(8) {
	case 0:
		flags = []string{"--counters"}
	case 1:
		flags = []string{"--noflush"}
	case 2:
		flags = []string{"--test"}
	case 3:
		flags = []string{"-c"}
	}
	return flags, input
}

// divergences collects what differed, for the test log and, with
// UPTABLES_GRAMMAR_OUT, a file.
type divergences struct {
	list    []string
	allowed map[string]int
}

func (d *divergences) add(what string, k, u outcome) {
	d.list = append(d.list, fmt.Sprintf("%s\n  iptables: %s\n  uptables: %s", what, k, u))
}

func quoteCommand(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

// TestKernelGrammar is the differential test described at the top of the
// file. Every divergence that is not in the allow-list fails the test.
func TestKernelGrammar(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs the real iptables in a network namespace")
	}
	for _, b := range []string{"iptables", "iptables-restore", "iptables-save", "nft", "ip", "bash"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (apt-get install -y iptables nftables iproute2)", b)
		}
	}
	if v, _ := exec.Command("iptables", "-V").Output(); !strings.Contains(string(v), "v1.8.9 (nf_tables)") {
		t.Skipf("the oracle is iptables v1.8.9 (nf_tables), this machine has %q", strings.TrimSpace(string(v)))
	}
	n := envInt("UPTABLES_GRAMMAR_N", 1500)
	nRestore := envInt("UPTABLES_GRAMMAR_RESTORE_N", n/5)
	seed := uint64(envInt("UPTABLES_GRAMMAR_SEED", 1))
	reg := builtin.Registry()
	k := startKernelShell(t)
	g := newGrammarGen(t, seed)
	d := &divergences{allowed: map[string]int{}}
	start := time.Now()
	accepted := 0
	for range n {
		args := g.command()
		var ko outcome
		ko.rc, ko.stdout, ko.stderr = k.exec(t, "iptables "+quoteCommand(args)+" </dev/null")
		if ko.rc != 2 {
			// parameter problems (exit 2) never reach the kernel
			ko.save, ko.saved = k.saveAndReset(t), true
		}
		if ko.rc == 0 {
			accepted++
		}
		uo := uptablesRun(reg, args)
		if ko.rc == uo.rc && ko.stdout == uo.stdout && ko.stderr == uo.stderr && (!ko.saved || ko.save == uo.save) {
			continue
		}
		if why := allowedDifference(args, ko, uo); why != "" {
			d.allowed[why]++
			continue
		}
		d.add("iptables "+quoteCommand(args), ko, uo)
	}
	cmdTime := time.Since(start)
	restoreAccepted := 0
	in := filepath.Join(k.dir, "in")
	for range nRestore {
		flags, input := g.restoreFile()
		if err := os.WriteFile(in, []byte(input), 0o600); err != nil {
			t.Fatal(err)
		}
		var ko outcome
		ko.rc, ko.stdout, ko.stderr = k.exec(t, "iptables-restore "+strings.Join(flags, " ")+" <"+in)
		save := k.saveAndReset(t)
		if ko.rc == 0 {
			// on failure iptables-restore (nf_tables) may have committed
			// the tables before the bad one; uptables commits none
			// (README), so only a success's result is compared.
			ko.save, ko.saved = save, true
			restoreAccepted++
		}
		uo := uptablesRestore(reg, flags, input)
		if ko.rc == uo.rc && ko.stdout == uo.stdout && ko.stderr == uo.stderr && (!ko.saved || ko.save == uo.save) {
			continue
		}
		if why := allowedRestoreDifference(ko, uo); why != "" {
			d.allowed[why]++
			continue
		}
		d.add(fmt.Sprintf("iptables-restore %s <<'EOF'\n%sEOF", strings.Join(flags, " "), input), ko, uo)
	}
	t.Logf("seed %d: %d commands (%d accepted by iptables) in %v, %d restore files (%d accepted) in %v; %d divergences",
		seed, n, accepted, cmdTime.Round(time.Millisecond), nRestore, restoreAccepted,
		(time.Since(start) - cmdTime).Round(time.Millisecond), len(d.list))
	var reasons []string
	for r, c := range d.allowed {
		reasons = append(reasons, fmt.Sprintf("%s: %d", r, c))
	}
	sort.Strings(reasons)
	if len(reasons) > 0 {
		t.Logf("allow-listed differences: %s", strings.Join(reasons, "; "))
	}
	if p := os.Getenv("UPTABLES_GRAMMAR_OUT"); p != "" {
		if err := os.WriteFile(p, []byte(strings.Join(d.list, "\n\n")+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
	for i, s := range d.list {
		if i == 40 {
			t.Errorf("... and %d more divergences (UPTABLES_GRAMMAR_OUT=FILE writes them all)", len(d.list)-i)
			break
		}
		t.Errorf("divergence: %s", s)
	}
}
