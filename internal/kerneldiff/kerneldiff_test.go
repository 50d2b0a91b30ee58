package kerneldiff

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	if code, ok := runHelperFromEnv(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestKernelDiff runs every scenario against the real kernel and against
// uptables' replay of the capture, and fails on any difference in
// counters, recent lists or LOG lines.
func TestKernelDiff(t *testing.T) {
	runSuite(t, suite{name: "kernel differential suite", index: func(i int) int { return i + 1 }}, Scenarios())
}

// leftover matches a placeholder that Expand did not replace.
var leftover = regexp.MustCompile(`\{[A-Z][A-Z0-9]*\}`)

// checkSuiteText checks a suite's scenarios without the kernel: unique
// names, every placeholder expanded in the rules, the sets and the steps
// (addresses, crafted packets' addresses), the crafted packets buildable.
// It returns the covers and the expanded rules of all scenarios.
func checkSuiteText(t *testing.T, scs []Scenario, min int, topo interface{ Expand(string) string }) (covers, all string) {
	t.Helper()
	if len(scs) < min {
		t.Errorf("%d scenarios, want at least %d", len(scs), min)
	}
	names := map[string]bool{}
	for _, sc := range scs {
		if names[sc.Name] {
			t.Errorf("duplicate scenario %q", sc.Name)
		}
		names[sc.Name] = true
		covers += sc.Covers + "\n"
		r := topo.Expand(sc.Rules)
		all += r
		for _, text := range []string{r, topo.Expand(sc.Sets)} {
			if p := leftover.FindString(text); p != "" {
				t.Errorf("%s: placeholder %s left in:\n%s", sc.Name, p, text)
			}
		}
		steps, err := expandSteps(topo, append(append([]Step{}, sc.Client...), sc.Server...))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			text := s.Src + s.Dst
			if s.Pkt != nil {
				text += s.Pkt.Src + s.Pkt.Dst
				if _, err := s.Pkt.Fragments(1); err != nil {
					t.Errorf("%s: %v", sc.Name, err)
				}
			}
			if strings.Contains(text, "{") {
				t.Errorf("%s: placeholder left in step %+v", sc.Name, s)
			}
		}
	}
	return covers, all
}

// TestScenarioSuite checks the suite itself without the kernel: enough
// scenarios, unique names, every seed rule the issue lists covered,
// placeholders all expanded.
func TestScenarioSuite(t *testing.T) {
	topo := NewTopology(7, 4242, t.TempDir())
	covers, _ := checkSuiteText(t, Scenarios(), 30, topo)
	for _, seed := range []string{"S01", "S02", "S03", "S08", "S09", "S10", "S11", "S12", "S13", "S14", "S15", "S16", "S17", "S18",
		"S19", "S20", "S21", "S23", "S28", "S29", "S30", "S31", "S32", "S33", "S34", "S35", "S36", "S37", "S38", "S39", "S40", "P01"} {
		if !strings.Contains(covers, seed) {
			t.Errorf("no scenario covers seed rule %s", seed)
		}
	}
	for _, sc := range append(ConntrackScenarios(), IpsetScenarios()...) {
		if sc.Router || len(sc.Views) == 0 {
			t.Errorf("%s: want a two-namespace scenario with views", sc.Name)
		}
		if _, _, err := topo.load(topo.Expand(sc.Rules), topo.Expand(sc.Sets), 0); err != nil {
			t.Errorf("%s: %v", sc.Name, err)
		}
	}
	checkSuiteText(t, append(ConntrackScenarios(), IpsetScenarios()...), 3, topo)
}

// TestViewDefaults: a View without Normalise compares the text's lines,
// without Compare an exact line diff titled by its name.
func TestViewDefaults(t *testing.T) {
	v := View{Name: "things"}
	if got := v.normalise(""); got != nil {
		t.Errorf("empty text normalised to %q, want no lines", got)
	}
	k, u := v.normalise("a\nb\n"), v.normalise("a\nc")
	if d := v.compare(k, k); d != "" {
		t.Errorf("equal lines differ:\n%s", d)
	}
	if d := v.compare(k, u); !strings.HasPrefix(d, "things (- kernel, + uptables)") || !strings.Contains(d, `- "b"`) || !strings.Contains(d, `+ "c"`) {
		t.Errorf("difference not shown:\n%s", d)
	}
	sets := SetView("knock")
	if d := sets.compare(sets.normalise("add knock 10.0.0.1 timeout 9\n"), nil); !strings.Contains(d, "ipset knock: kernel only: 10.0.0.1 timeout 9") {
		t.Errorf("set view: %q", d)
	}
	if _, err := sets.Uptables(&ReplayEnd{}); err == nil {
		t.Error("set view read a replay without sets")
	}
}

// TestExpand: both topologies' placeholders, and interface names within
// IFNAMSIZ-1 for the largest index and pid.
func TestExpand(t *testing.T) {
	two, router := NewTopology(3, 123456, ""), NewRouterTopology(3, 123456, "")
	for _, c := range []struct {
		topo     interface{ Expand(string) string }
		in, want string
	}{
		{two, "-s {C}/32 -d {S} {C3}-{C12} -i {SIF} {NET}/24 {CIF}",
			"-s 10.231.3.2/32 -d 10.231.3.1 10.231.3.3-10.231.3.12 -i kds3p23456 10.231.3.0/24 kdc3p23456"},
		{router, "{C} {C6} {RW} {RL} {S} {S3} {WNET}/24 {LNET}/24 {WIF} {LIF}",
			"10.232.3.2 10.232.3.6 10.232.3.1 10.233.3.1 10.233.3.2 10.233.3.3 10.232.3.0/24 10.233.3.0/24 krw3p23456 krl3p23456"},
	} {
		if got := c.topo.Expand(c.in); got != c.want {
			t.Errorf("Expand = %q, want %q", got, c.want)
		}
	}
	two, router = NewTopology(249, 99999, ""), NewRouterTopology(249, 99999, "")
	for _, n := range []string{two.ServerIf, two.ClientIf, router.ClientIf, router.WanIf, router.LanIf, router.ServerIf} {
		if len(n) > 15 {
			t.Errorf("interface name %q longer than IFNAMSIZ-1", n)
		}
	}
}

func TestCompareSave(t *testing.T) {
	kernel := `# Generated by iptables-save v1.8.9 (nf_tables) on Sat Nov 21 07:23:31 2026
*filter
:INPUT DROP [3:180]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [5:300]
[2:120] -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
# Completed on Sat Nov 21 07:23:31 2026
`
	same := strings.ReplaceAll(kernel, "07:23:31", "08:00:00")
	if d := CompareSave(kernel, same); d != "" {
		t.Errorf("equal counters reported as different:\n%s", d)
	}
	bytesOff := strings.Replace(kernel, "[2:120]", "[2:121]", 1)
	d := CompareSave(kernel, bytesOff)
	if !strings.Contains(d, `- "[2:120] -A INPUT`) || !strings.Contains(d, `+ "[2:121] -A INPUT`) {
		t.Errorf("byte counter difference not shown:\n%s", d)
	}
	policy := strings.Replace(kernel, ":INPUT DROP [3:180]", ":INPUT DROP [4:240]", 1)
	if d := CompareSave(kernel, policy); !strings.Contains(d, ":INPUT DROP [4:240]") {
		t.Errorf("policy counter difference not shown:\n%s", d)
	}
	extra := kernel + "*mangle\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"
	if d := CompareSave(kernel, extra); !strings.Contains(d, "table mangle: uptables has it") {
		t.Errorf("extra table not reported:\n%s", d)
	}
	if d := CompareSave(extra, kernel); !strings.Contains(d, "table mangle: the kernel has it") {
		t.Errorf("missing table not reported:\n%s", d)
	}
}

func TestCompareRecent(t *testing.T) {
	kernel := "src=10.231.1.2 ttl: 64 last_seen: 4295000100 oldest_pkt: 3 4295000000, 4295000050, 4295000100\n" +
		"src=10.231.1.3 ttl: 64 last_seen: 4295000200 oldest_pkt: 1 4295000200\n"
	// The replay counts from the first packet: same relative times, a few
	// jiffies of capture/processing skew, other entry order.
	upt := "src=10.231.1.3 ttl: 64 last_seen: 4294967596 oldest_pkt: 1 4294967596\n" +
		"src=10.231.1.2 ttl: 64 last_seen: 4294967498 oldest_pkt: 3 4294967396, 4294967447, 4294967498\n"
	if d := CompareRecent("T", kernel, upt); d != "" {
		t.Errorf("agreeing lists reported as different:\n%s", d)
	}
	cases := map[string]string{
		"missing stamp": strings.Replace(upt, "oldest_pkt: 3 4294967396, 4294967447, 4294967498", "oldest_pkt: 3 4294967396, 4294967447", 1),
		"ttl":           strings.Replace(upt, "10.231.1.3 ttl: 64", "10.231.1.3 ttl: 63", 1),
		"late stamp":    strings.Replace(upt, "4294967447,", "4294967496,", 1),
		"index":         strings.Replace(upt, "oldest_pkt: 1", "oldest_pkt: 0", 1),
		"extra address": upt + "src=10.231.1.4 ttl: 64 last_seen: 4294967596 oldest_pkt: 1 4294967596\n",
	}
	for name, u := range cases {
		if d := CompareRecent("T", kernel, u); d == "" {
			t.Errorf("%s: difference not detected", name)
		}
	}
	if d := CompareRecent("T", kernel, "garbage"); !strings.Contains(d, "bad xt_recent line") {
		t.Errorf("unparsable list not reported: %q", d)
	}
}

func TestCompareLog(t *testing.T) {
	a := []string{"X: IN=kds1 OUT= SRC=1.2.3.4 ", "Y: IN=kds1 OUT= SRC=1.2.3.5 "}
	if d := CompareLog(a, a); d != "" {
		t.Errorf("equal logs differ: %s", d)
	}
	if d := CompareLog(a, a[:1]); !strings.Contains(d, "Y: IN=kds1") {
		t.Errorf("missing line not shown: %s", d)
	}
	ins := []string{a[0], "Z: extra ", a[1]}
	if d := CompareLog(a, ins); !strings.Contains(d, `  + "Z: extra "`) || strings.Contains(d, `- "Y:`) {
		t.Errorf("an inserted line should show as one + line:\n%s", d)
	}
	b := []string{a[0], "Y: IN=kds1 OUT= SRC=1.2.3.5"}
	if d := CompareLog(a, b); d == "" {
		t.Error("trailing space difference not detected (lines must be byte-exact)")
	}
}

func TestLogLinesFor(t *testing.T) {
	lines := []string{
		"INVALIDIN=kds1p9 OUT= MAC=aa SRC=1.1.1.1 ",
		"OUT: IN= OUT=kds1p9 SRC=1.1.1.1 ",
		"other: IN=kds1p99 OUT= SRC=1.1.1.1 ",
		"usb 1-1: new device",
	}
	got := logLinesFor(lines, "kds1p9")
	if len(got) != 2 || got[0] != lines[0] || got[1] != lines[1] {
		t.Errorf("logLinesFor = %q", got)
	}
	if got := unescapeKmsg(`A\x20B\x5c`); got != `A B\` {
		t.Errorf("unescapeKmsg = %q", got)
	}
}

func TestPktBuild(t *testing.T) {
	p := Pkt{Src: "10.0.0.2", Dst: "10.0.0.1", Proto: 6, SPort: 1, DPort: 2, Flags: "SA", Seq: 7, TTL: 9, IPOpts: []byte{1, 1, 1, 0}}
	b, err := p.Build(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 44 || b[0] != 0x46 || b[8] != 9 || b[9] != 6 || b[24+13] != 0x12 {
		t.Errorf("bad packet % x", b)
	}
	if checksum(b[:24], 0) != 0 {
		t.Error("IP header checksum does not verify")
	}
	if l4Checksum(mustAddr("10.0.0.2"), mustAddr("10.0.0.1"), 6, b[24:]) != 0 {
		t.Error("TCP checksum does not verify")
	}
	echo := Pkt{Src: "10.0.0.2", Dst: "10.0.0.1", Proto: 1, Type: 8, Len: 128}
	if b, _ := echo.Build(3); len(b) != 128 || checksum(b[20:], 0) != 0 || b[27] != 3 {
		t.Errorf("echo of IP length 128: len %d", len(b))
	}
	u := Pkt{Src: "10.0.0.2", Dst: "10.0.0.1", Proto: 17, SPort: 5, DPort: 6, Payload: 40, Frags: []int{16, 32}}
	fr, err := u.Fragments(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(fr) != 3 {
		t.Fatalf("%d fragments, want 3", len(fr))
	}
	wantOff := []uint16{0x2000, 0x2002, 0x0004}
	total := 0
	for i, f := range fr {
		off := uint16(f[6])<<8 | uint16(f[7])
		if off != wantOff[i] || checksum(f[:20], 0) != 0 || f[4] != fr[0][4] || f[5] != fr[0][5] {
			t.Errorf("fragment %d: off %#04x (want %#04x), header % x", i, off, wantOff[i], f[:20])
		}
		total += len(f) - 20
	}
	if total != 48 {
		t.Errorf("fragments carry %d L4 bytes, want 48", total)
	}
	if _, err := (&Pkt{Src: "10.0.0.2", Dst: "10.0.0.1", Proto: 17, Payload: 40, Frags: []int{12}}).Fragments(1); err == nil {
		t.Error("fragment offset 12 (not a multiple of 8) accepted")
	}
	if _, err := (&Pkt{Src: "x", Dst: "10.0.0.1"}).Build(1); err == nil {
		t.Error("bad source accepted")
	}
	if _, err := (&Pkt{Src: "10.0.0.2", Dst: "10.0.0.1", Proto: 6, Flags: "Q"}).Build(1); err == nil {
		t.Error("unknown TCP flag accepted")
	}
}

func TestHelperScriptErrors(t *testing.T) {
	var out, errb strings.Builder
	if code := HelperMain(strings.NewReader("not json"), &out, &errb); code != 2 {
		t.Errorf("bad input: exit %d, want 2", code)
	}
	errb.Reset()
	in := `{"steps":[{"op":"sleep","ms":1},{"op":"fly"}]}`
	if code := HelperMain(strings.NewReader(in), &out, &errb); code != 1 || !strings.Contains(errb.String(), `unknown op "fly"`) {
		t.Errorf("unknown op: exit %d, stderr %q", code, errb.String())
	}
	in = fmt.Sprintf(`{"steps":[{"op":"udp","dst":"127.0.0.1","dport":9,"count":%d}]}`, maxStepCount+1)
	if code := HelperMain(strings.NewReader(in), &out, &errb); code != 1 || !strings.Contains(errb.String(), "over the bound") {
		t.Errorf("unbounded count accepted: exit %d, stderr %q", code, errb.String())
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
