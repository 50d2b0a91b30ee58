package iptables_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
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

// The conformance corpus: every test line of the iptables 1.8.9 .t files
// and the seed rules, with what the real iptables 1.8.9 (nf_tables) did.
// Copied from /work/shared/conformance (see README.md there for columns).
const (
	goldenTSV  = "testdata/conformance/golden-iptables-1.8.9.tsv"
	seedTSV    = "testdata/conformance/seed-golden-iptables-1.8.9.tsv"
	listingTxt = "testdata/conformance/listing-formats.txt"
)

// unescapeTSV undoes the corpus cell escaping (\\ \t \n \r).
func unescapeTSV(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 't':
				b.WriteByte('\t')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func readTSV(t testing.TB, path string) []map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	head := strings.Split(lines[0], "\t")
	var rows []map[string]string
	for _, l := range lines[1:] {
		cells := strings.Split(l, "\t")
		row := map[string]string{}
		for i, h := range head {
			if i >= len(cells) {
				continue
			}
			// The command columns are stored raw (the generator escaped
			// only its outputs: X31 has `'back\slash'` verbatim).
			if h == "input_rule" || h == "command" {
				row[h] = cells[i]
			} else {
				row[h] = unescapeTSV(cells[i])
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// confCase is one corpus row prepared for the offline CLI path.
type confCase struct {
	group    string // .t file or seed class
	id       string
	table    string
	chain    string
	args     []string
	wantCode int
	want     string // canonical rule lines (without "-A CHAIN ") or the error text
}

type confResult struct {
	pass      bool
	exactText bool // refused rows: iptables' text reproduced exactly
	gotCode   int
	got       string
}

// runCase runs one row as `iptables ARGS` against an empty rule set, then
// `iptables -t TABLE -S CHAIN`, through the code path of the offline CLI.
func runCase(reg *xt.Registry, c confCase) (res confResult) {
	defer func() {
		if p := recover(); p != nil {
			res = confResult{gotCode: -1, got: fmt.Sprintf("PANIC: %v", p)}
		}
	}()
	rs := ruleset.New(xt.IPv4)
	var out bytes.Buffer
	r, _, err := iptables.Run(rs, reg, c.args, &out)
	if err != nil {
		e := iptables.AsError(err, "", "")
		res.gotCode = e.ExitCode()
		res.got = e.Text("iptables")
		if c.wantCode != 0 {
			res.pass = true
			res.exactText = res.got == c.want && res.gotCode == c.wantCode
		}
		return res
	}
	out.Reset()
	if _, _, err := iptables.Run(r.Ruleset, reg, []string{"-t", c.table, "-S", c.chain}, &out); err != nil {
		res.gotCode = -1
		res.got = "listing failed: " + err.Error()
		return res
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if strings.HasPrefix(c.want, "-P ") {
			if strings.HasPrefix(l, "-P "+c.chain+" ") {
				lines = append(lines, l)
			}
			continue
		}
		if rest, ok := strings.CutPrefix(l, "-A "+c.chain); ok {
			lines = append(lines, strings.TrimPrefix(rest, " "))
		}
	}
	res.got = strings.Join(lines, "\n")
	res.pass = c.wantCode == 0 && res.got == c.want
	return res
}

func loadCases(t testing.TB) []confCase {
	var cases []confCase
	for _, row := range readTSV(t, goldenTSV) {
		words, err := iptables.SplitShell(row["input_rule"])
		if err != nil {
			t.Fatalf("%s:%s: %v", row["file"], row["t_lineno"], err)
		}
		code, _ := strconv.Atoi(row["real_exit_code"])
		cases = append(cases, confCase{
			group: row["file"], id: row["file"] + ":" + row["t_lineno"],
			table: row["table"], chain: row["chain"],
			args:     append([]string{"-t", row["table"], "-A", row["chain"]}, words...),
			wantCode: code, want: row["real_canonical_or_error"],
		})
	}
	for _, row := range readTSV(t, seedTSV) {
		words, err := iptables.SplitShell(row["command"])
		if err != nil {
			t.Fatalf("%s: %v", row["seed_id"], err)
		}
		code, _ := strconv.Atoi(row["real_exit_code"])
		cases = append(cases, confCase{
			group: "seed-" + row["seed_id"][:1], id: row["seed_id"],
			table: row["table"], chain: row["chain"], args: words,
			wantCode: code, want: row["real_canonical_or_error"],
		})
	}
	return cases
}

// extensionsLanded reports how many of the corpus' extensions are
// registered; the 98% threshold is only enforced once all are.
func extensionsLanded(reg *xt.Registry) (have, total int, missing []string) {
	ms := []string{"tcp", "udp", "icmp", "state", "conntrack", "connlimit", "recent", "limit", "hashlimit",
		"length", "ttl", "multiport", "iprange", "mark", "connmark", "comment", "tos", "dscp", "addrtype",
		"pkttype", "mac", "time", "statistic", "string", "set", "owner", "quota", "u32", "helper", "cpu",
		"physdev", "socket", "devgroup"}
	ts := []string{"REJECT", "LOG", "NFLOG", "MARK", "CONNMARK", "NOTRACK", "CT", "TTL", "TCPMSS", "DSCP",
		"TOS", "DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NFQUEUE", "TRACE"}
	for _, m := range ms {
		if _, ok := reg.Match(m); ok {
			have++
		} else {
			missing = append(missing, "-m "+m)
		}
	}
	for _, n := range ts {
		if _, ok := reg.Target(n); ok {
			have++
		} else {
			missing = append(missing, "-j "+n)
		}
	}
	return have, len(ms) + len(ts), missing
}

// TestConformance runs every corpus row through the offline CLI path and
// reports pass counts per .t file. Run it with
//
//	go test ./internal/iptables -run Conformance -v
//
// to see the table and every failing row.
func TestConformance(t *testing.T) {
	reg := builtin.Registry()
	cases := loadCases(t)
	type stat struct{ rows, pass, okRows, okPass, failRows, failPass, exact int }
	stats := map[string]*stat{}
	var groups []string
	total, passed := 0, 0
	var seedFailures []string
	var failures []string
	for _, c := range cases {
		st := stats[c.group]
		if st == nil {
			st = &stat{}
			stats[c.group] = st
			groups = append(groups, c.group)
		}
		r := runCase(reg, c)
		st.rows++
		total++
		if c.wantCode == 0 {
			st.okRows++
		} else {
			st.failRows++
		}
		if r.pass {
			st.pass++
			passed++
			if c.wantCode == 0 {
				st.okPass++
			} else {
				st.failPass++
				if r.exactText {
					st.exact++
				}
			}
			continue
		}
		msg := fmt.Sprintf("%-22s iptables %s\n    want (exit %d): %s\n    got  (exit %d): %s",
			c.id, quoteArgs(c.args), c.wantCode, strings.ReplaceAll(c.want, "\n", "⏎"), r.gotCode, strings.ReplaceAll(r.got, "\n", "⏎"))
		failures = append(failures, msg)
		if strings.HasPrefix(c.id, "S") {
			seedFailures = append(seedFailures, c.id)
		}
	}
	sort.Strings(groups)
	var tb strings.Builder
	fmt.Fprintf(&tb, "\n%-22s %5s %5s %9s %11s %11s\n", "file", "rows", "pass", "accepted", "refused", "exact-error")
	exactAll, refusedAll := 0, 0
	for _, g := range groups {
		st := stats[g]
		mark := ""
		if st.pass < st.rows {
			mark = "  <--"
		}
		fmt.Fprintf(&tb, "%-22s %5d %5d %4d/%-4d %5d/%-5d %5d/%-5d%s\n", g, st.rows, st.pass,
			st.okPass, st.okRows, st.failPass, st.failRows, st.exact, st.failRows, mark)
		exactAll += st.exact
		refusedAll += st.failRows
	}
	pct := 100 * float64(passed) / float64(total)
	fmt.Fprintf(&tb, "TOTAL %d/%d rows pass (%.1f%%); refused rows with iptables' exact error text: %d/%d\n",
		passed, total, pct, exactAll, refusedAll)
	t.Log(tb.String())
	for _, f := range failures {
		t.Log("FAIL " + f)
	}
	have, all, missing := extensionsLanded(reg)
	if have < all {
		t.Logf("THRESHOLD NOT ENFORCED: only %d of %d corpus extensions are registered in builtin.Registry() (missing: %s). "+
			"Once all are registered this test fails below 98%% or on any failing S* seed row.",
			have, all, strings.Join(missing, " "))
		return
	}
	if pct < 98 {
		t.Errorf("conformance %.1f%% < 98%%", pct)
	}
	if len(seedFailures) > 0 {
		t.Errorf("seed rows failing: %s", strings.Join(seedFailures, " "))
	}
}

// listingBlock is one "===== $ command" block of listing-formats.txt.
type listingBlock struct {
	cmd  string
	want string
}

func readListing(t *testing.T) (setup [][]string, blocks []listingBlock) {
	f, err := os.Open(listingTxt)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	section := 0
	var cur *listingBlock
	var body []string
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "##### ") {
			section++
			if section > 1 { // the legacy backend's part
				break
			}
			continue
		}
		if cur == nil && strings.HasPrefix(l, "$ iptables ") {
			words, err := iptables.SplitShell(strings.TrimPrefix(l, "$ iptables "))
			if err != nil {
				t.Fatal(err)
			}
			setup = append(setup, words)
			continue
		}
		if strings.HasPrefix(l, "===== $ ") {
			c := strings.TrimPrefix(l, "===== $ ")
			c = strings.TrimSuffix(c, "   (exit code follows output)")
			cur = &listingBlock{cmd: c}
			body = nil
			continue
		}
		if cur != nil && strings.HasPrefix(l, "----- exit code: ") {
			cur.want = strings.Join(body, "\n")
			if len(body) > 0 {
				cur.want += "\n"
			}
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		if cur != nil {
			body = append(body, l)
		}
	}
	return setup, blocks
}

// TestListingFormats rebuilds the listing-formats.txt rule set with the
// same commands and checks every listing byte for byte (date lines are
// taken from the expected text, as the date is injected).
func TestListingFormats(t *testing.T) {
	reg := builtin.Registry()
	setup, blocks := readListing(t)
	if len(blocks) < 10 {
		t.Fatalf("only %d listing blocks read", len(blocks))
	}
	rs := ruleset.New(xt.IPv4)
	var setupErr error
	for _, args := range setup {
		res, _, err := iptables.Run(rs, reg, args, &bytes.Buffer{})
		if err != nil {
			setupErr = fmt.Errorf("setup `iptables %s`: %v", strings.Join(args, " "), err)
			break
		}
		rs = res.Ruleset
	}
	for _, b := range blocks {
		t.Run(strings.ReplaceAll(b.cmd, " ", "_"), func(t *testing.T) {
			if setupErr != nil {
				t.Skipf("rule set could not be built (extensions missing?): %v", setupErr)
			}
			var out bytes.Buffer
			if rest, ok := strings.CutPrefix(b.cmd, "iptables-save"); ok {
				o := iptables.SaveOptions{Counters: strings.Contains(rest, "-c")}
				if i := strings.Index(b.want, " on "); i >= 0 {
					line := b.want[i+4 : i+4+strings.IndexByte(b.want[i+4:], '\n')]
					o.Now, _ = parseCTime(line)
				}
				if err := iptables.WriteSave(&out, rs, o); err != nil {
					t.Fatal(err)
				}
			} else {
				args, err := iptables.SplitShell(strings.TrimPrefix(b.cmd, "iptables "))
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := iptables.Run(rs, reg, args, &out); err != nil {
					t.Fatalf("%s: %v", b.cmd, err)
				}
			}
			if got := out.String(); got != b.want {
				t.Errorf("%s: output differs\n%s", b.cmd, lineDiff(b.want, got))
			}
		})
	}
}

func lineDiff(want, got string) string {
	wl := strings.Split(want, "\n")
	gl := strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			fmt.Fprintf(&b, "line %d\n  want %q\n  got  %q\n", i+1, w, g)
		}
	}
	return b.String()
}

func parseCTime(s string) (time.Time, error) {
	return time.Parse("Mon Jan _2 15:04:05 2006", s)
}

// TestConformanceErrorTexts lists refused rows whose error text differs
// from iptables' (a statistic, not a failure: run with -v).
func TestConformanceErrorTexts(t *testing.T) {
	reg := builtin.Registry()
	for _, c := range loadCases(t) {
		if c.wantCode == 0 {
			continue
		}
		r := runCase(reg, c)
		if r.pass && !r.exactText && !strings.Contains(r.got, "Couldn't load") {
			t.Logf("%-22s %s\n    want (exit %d): %q\n    got  (exit %d): %q", c.id, quoteArgs(c.args), c.wantCode, c.want, r.gotCode, r.got)
		}
	}
}

// quoteArgs shows words as a shell would need them.
func quoteArgs(args []string) string {
	var out []string
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'\\$`!*?;&|<>()") && a != "!" {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

// TestConformanceNewerTFiles runs the v1.8.11 .t lines, as recorded with
// the real 1.8.9, as a report only (-v): more probes of the same
// extensions, not part of the acceptance threshold.
func TestConformanceNewerTFiles(t *testing.T) {
	reg := builtin.Registry()
	pass, total := 0, 0
	for _, row := range readTSV(t, "testdata/conformance/golden-iptables-1.8.9-vs-t-files-1.8.11.tsv") {
		words, err := iptables.SplitShell(row["input_rule"])
		if err != nil {
			continue
		}
		code, _ := strconv.Atoi(row["real_exit_code"])
		c := confCase{group: row["file"], id: row["file"] + ":" + row["t_lineno"], table: row["table"], chain: row["chain"],
			args: append([]string{"-t", row["table"], "-A", row["chain"]}, words...), wantCode: code, want: row["real_canonical_or_error"]}
		total++
		if r := runCase(reg, c); r.pass {
			pass++
		} else {
			t.Logf("differs %-24s %s\n    want (exit %d): %q\n    got  (exit %d): %q", c.id, quoteArgs(c.args), c.wantCode, c.want, r.gotCode, r.got)
		}
	}
	t.Logf("v1.8.11 .t lines against real 1.8.9: %d/%d pass", pass, total)
}
