package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// seedRules are the blog posts' defences: an SSH recent list, connlimit on
// HTTP, a hashlimit on 8080, a blocked address, a user chain.
const seedRules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:BLOCK - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -m state --state NEW -m recent --set --name SSH --mask 255.255.255.255 --rsource
-A INPUT -p tcp -m tcp --dport 22 -m state --state NEW -m recent --update --seconds 60 --hitcount 4 --name SSH --mask 255.255.255.255 --rsource -j DROP
-A INPUT -p tcp -m tcp --dport 80 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with tcp-reset
-A INPUT -p tcp -m tcp --dport 8080 -m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name HL -j ACCEPT
-A INPUT -s 10.9.9.9/32 -j BLOCK
-A BLOCK -j DROP
COMMIT
`

type fixture struct {
	t     *testing.T
	eng   *netfilter.Engine
	rules *Rules
	srv   *Server
	cl    *Client
	file  string
	now   atomic.Int64
	wk    *netfilter.Worker
}

type discard struct{}

func (discard) Reply(*xt.Ctx, []byte)      {}
func (discard) Log(*xt.Ctx, uint8, []byte) {}

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.Local)

// newFixture runs a control server over a real engine loaded from text,
// with a clock the test moves; it checks at cleanup that the server left
// no goroutine behind.
func newFixture(t *testing.T, text string) *fixture {
	t.Helper()
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	f := &fixture{t: t, file: filepath.Join(dir, "rules.v4")}
	f.now.Store(t0.UnixNano())
	if err := os.WriteFile(f.file, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	f.eng = netfilter.New(netfilter.Config{Seed: 1})
	now := func() time.Time { return time.Unix(0, f.now.Load()) }
	f.rules = NewRules(RulesConfig{Engine: f.eng, Registry: builtin.Registry(), File: f.file, Now: now})
	rs, err := ReadSaveFile(f.file, builtin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.rules.Load(rs); err != nil {
		t.Fatal(err)
	}
	f.srv, err = Listen(Config{Path: filepath.Join(dir, "run", DefaultSocket), Rules: f.rules, Mode: "proxy", Now: now,
		Started: t0, BootNS: t0.Add(-time.Hour).UnixNano()})
	if err != nil {
		t.Fatal(err)
	}
	f.cl = NewClient(f.srv.Addr())
	f.wk = f.eng.NewWorker(discard{})
	t.Cleanup(func() {
		f.srv.Close()
		f.cl.hc.CloseIdleConnections()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutines: %d before, %d after Close\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
	return f
}

func (f *fixture) advance(d time.Duration) { f.now.Add(int64(d)) }

// packet runs one packet through the engine on path at the fixture's clock.
func (f *fixture) packet(path netfilter.Path, b []byte) xt.Verdict {
	f.t.Helper()
	p := &packet.Packet{}
	if st := p.Decode(b); st != packet.OK {
		f.t.Fatalf("decode: %v", st)
	}
	if path == netfilter.PathInput {
		p.InIface = "eth0"
	} else {
		p.OutIface = "eth0"
	}
	p.TimeNS = f.now.Load()
	return f.wk.Process(path, p).Verdict
}

// connect sends a client's SYN and, when it is accepted, the server's
// SYN/ACK and the client's ACK: an established connection.
func (f *fixture) connect(src string, sport uint16, dst string, dport uint16) bool {
	v := f.packet(netfilter.PathInput, packettest.TCP(packettest.TCPOpts{Src: src, Dst: dst, SrcPort: sport, DstPort: dport, Flags: packettest.SYN, Seq: 100, Window: 1000}))
	if v != xt.VerdictAccept {
		return false
	}
	f.packet(netfilter.PathOutput, packettest.TCP(packettest.TCPOpts{Src: dst, Dst: src, SrcPort: dport, DstPort: sport, Flags: packettest.SYN | packettest.ACK, Seq: 500, Ack: 101, Window: 1000}))
	f.packet(netfilter.PathInput, packettest.TCP(packettest.TCPOpts{Src: src, Dst: dst, SrcPort: sport, DstPort: dport, Flags: packettest.ACK, Seq: 101, Ack: 501, Window: 1000}))
	return true
}

func (f *fixture) exec(cmd string, args ...string) Reply {
	f.t.Helper()
	rep, err := f.cl.Exec(context.Background(), cmd, args)
	if err != nil {
		f.t.Fatalf("%s %v: %v", cmd, args, err)
	}
	return rep
}

// traffic gives every rule some counts.
func (f *fixture) traffic() {
	for i := 0; i < 3; i++ {
		f.connect("10.0.0.1", uint16(40000+i), "10.0.0.2", 80)
	}
	f.connect("10.0.0.3", 41000, "10.0.0.2", 80)
	f.connect("10.0.0.4", 42000, "10.0.0.2", 22)
	for i := 0; i < 7; i++ {
		f.packet(netfilter.PathInput, packettest.UDP(packettest.UDPOpts{Src: "10.0.0.5", Dst: "10.0.0.2", SrcPort: 5000, DstPort: 8080, Payload: []byte("x")}))
		f.packet(netfilter.PathInput, packettest.TCP(packettest.TCPOpts{Src: "10.0.0.5", Dst: "10.0.0.2", SrcPort: 5000, DstPort: 8080, Flags: packettest.SYN}))
	}
	f.packet(netfilter.PathInput, packettest.TCP(packettest.TCPOpts{Src: "10.9.9.9", Dst: "10.0.0.2", SrcPort: 1, DstPort: 443, Flags: packettest.SYN}))
	f.advance(time.Second)
}

// offline runs args as `uptables --ruleset FILE` does on a file holding
// rs saved with counters: restore with -c, execute.
func offline(t *testing.T, rs *ruleset.Ruleset, args []string) (string, string, int) {
	t.Helper()
	var save bytes.Buffer
	if err := iptables.WriteSave(&save, rs, iptables.SaveOptions{Counters: true, Now: t0}); err != nil {
		t.Fatal(err)
	}
	reg := builtin.Registry()
	back, err := iptables.Restore(ruleset.New(xt.IPv4), reg, &save, iptables.RestoreOptions{Counters: true})
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cmd, err := iptables.ParseCommand(reg, xt.IPv4, args, iptables.ParseOptions{})
	if err != nil {
		rc := reportIptables(&errb, err)
		return "", errb.String(), rc
	}
	if _, err := iptables.Execute(back, cmd, &out); err != nil {
		rc := reportIptables(&errb, err)
		return out.String(), errb.String(), rc
	}
	return out.String(), errb.String(), 0
}

// Listings through the daemon are byte for byte the offline CLI's for the
// same rule set and counters.
func TestListingsMatchOfflineCLI(t *testing.T) {
	f := newFixture(t, seedRules)
	f.traffic()
	live := f.rules.Ruleset()
	nonzero := false
	for _, ch := range live.Table("filter").Chains {
		for _, r := range ch.Rules {
			nonzero = nonzero || r.Counters.Packets > 0
		}
	}
	if !nonzero {
		t.Fatal("the traffic counted nothing")
	}
	for _, args := range [][]string{
		{"-L"}, {"-L", "-n"}, {"-L", "-n", "-v"}, {"-L", "-n", "-v", "-x"}, {"-L", "-n", "-v", "-x", "--line-numbers"},
		{"-L", "INPUT", "-n", "-v"}, {"-L", "INPUT", "3", "-n", "-v"}, {"-S"}, {"-S", "-v"}, {"-S", "INPUT", "2"},
		{"-t", "nat", "-L", "-n"}, {"-L", "NOPE"}, {"-C", "INPUT", "-s", "10.9.9.9", "-j", "BLOCK"},
		{"-C", "INPUT", "-s", "10.9.9.8", "-j", "BLOCK"}, {"-L", "-t", "bogus"}, {"-L", "--bogus"},
	} {
		want, wantErr, wantRC := offline(t, live, args)
		rep := f.exec("iptables", args...)
		if rep.Stdout != want || rep.Stderr != wantErr || rep.Exit != wantRC {
			t.Errorf("%v:\n got %d %q %q\nwant %d %q %q", args, rep.Exit, rep.Stdout, rep.Stderr, wantRC, want, wantErr)
		}
	}
	var save bytes.Buffer
	if err := iptables.WriteSave(&save, live, iptables.SaveOptions{Counters: true, Now: time.Unix(0, f.now.Load())}); err != nil {
		t.Fatal(err)
	}
	if rep := f.exec("save", "-c"); rep.Stdout != save.String() || rep.Exit != 0 {
		t.Errorf("save -c:\n%s\nwant\n%s", rep.Stdout, save.String())
	}
	if rep := f.exec("save", "-t", "nope"); rep.Exit != 1 || !strings.Contains(rep.Stderr, "table 'nope' does not exist") {
		t.Errorf("save -t nope: %+v", rep)
	}
}

func fileText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func saveText(t *testing.T, rs *ruleset.Ruleset) string {
	t.Helper()
	var b bytes.Buffer
	if err := iptables.WriteSave(&b, rs, iptables.SaveOptions{Counters: true, Now: t0}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A change is applied to the engine and to the rules file; a failing one
// changes neither.
func TestModificationsAtomic(t *testing.T) {
	f := newFixture(t, seedRules)
	f.traffic()
	rep := f.exec("iptables", "-I", "INPUT", "-s", "10.7.7.7", "-j", "DROP")
	if rep.Exit != 0 || !strings.Contains(rep.Stderr, "saved to "+f.file) {
		t.Fatalf("-I: %+v", rep)
	}
	if v := f.packet(netfilter.PathInput, packettest.UDP(packettest.UDPOpts{Src: "10.7.7.7", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2})); v != xt.VerdictDrop {
		t.Errorf("10.7.7.7 after -I DROP: verdict %v", v)
	}
	if !strings.Contains(fileText(t, f.file), "-A INPUT -s 10.7.7.7/32 -j DROP\n") {
		t.Errorf("rules file lacks the new rule:\n%s", fileText(t, f.file))
	}
	// The file loads back as the daemon's next start would.
	if _, err := ReadSaveFile(f.file, builtin.Registry()); err != nil {
		t.Fatal(err)
	}
	// Counters of the other rules survived the change.
	if r := f.rules.Ruleset().Table("filter").Chain("INPUT").Rules[3]; r.Counters.Packets == 0 {
		t.Errorf("connlimit rule lost its counters: %+v", r.Counters)
	}

	for _, tc := range []struct {
		args []string
		rc   int
		msg  string
	}{
		{[]string{"-A", "INPUT", "-m", "nosuchmatch", "-j", "DROP"}, 2, "Couldn't load match `nosuchmatch'"},
		{[]string{"-D", "INPUT", "99"}, 1, "Index of deletion too big"},
		{[]string{"-X", "BLOCK"}, 4, "CHAIN_DEL failed (Device or resource busy)"},
		{[]string{"-A", "INPUT", "-j", "NOCHAIN"}, 2, ""},
		// Accepted by the grammar, refused by the engine at load.
		{[]string{"-A", "INPUT", "-m", "hashlimit", "--hashlimit-name", "R", "--hashlimit-rate-match", "--hashlimit-upto", "1/sec", "-j", "ACCEPT"}, 1, "nothing changed"},
	} {
		beforeRS := saveText(t, f.rules.Ruleset())
		beforeFile := fileText(t, f.file)
		rep := f.exec("iptables", tc.args...)
		if rep.Exit != tc.rc || !strings.Contains(rep.Stderr, tc.msg) {
			t.Errorf("%v: %+v, want exit %d with %q", tc.args, rep, tc.rc, tc.msg)
		}
		if got := saveText(t, f.rules.Ruleset()); got != beforeRS {
			t.Errorf("%v changed the engine:\n%s", tc.args, got)
		}
		if got := fileText(t, f.file); got != beforeFile {
			t.Errorf("%v changed the file:\n%s", tc.args, got)
		}
	}
	if s := f.rules.Stats(); s.Loads != 2 || s.Failures != 1 {
		t.Errorf("load stats %+v, want 2 loads 1 failure", s)
	}
}

// -Z and -c set the counters, as in the kernel: listings and the engine
// (and so the metrics, which Prometheus sees as a counter reset) agree.
func TestZeroAndSetCounters(t *testing.T) {
	f := newFixture(t, seedRules)
	f.traffic()
	block := func(rs *ruleset.Ruleset) ruleset.Counters { return rs.Table("filter").Chain("BLOCK").Rules[0].Counters }
	if c := block(f.rules.Ruleset()); c.Packets != 1 {
		t.Fatalf("BLOCK rule before -Z: %+v", c)
	}
	rep := f.exec("iptables", "-L", "BLOCK", "-n", "-v", "-x", "-Z")
	if rep.Exit != 0 || !strings.Contains(rep.Stdout, "\n       1       40 DROP ") {
		t.Fatalf("-L -Z shows the counts before zeroing: %+v", rep)
	}
	if c := block(f.rules.Ruleset()); c.Packets != 0 || c.Bytes != 0 {
		t.Errorf("after -Z: %+v", c)
	}
	if c := block(f.eng.Ruleset()); c.Packets != 0 {
		t.Errorf("the engine's counter after -Z: %+v", c)
	}
	f.packet(netfilter.PathInput, packettest.TCP(packettest.TCPOpts{Src: "10.9.9.9", Dst: "10.0.0.2", SrcPort: 2, DstPort: 443, Flags: packettest.SYN}))
	if c := block(f.rules.Ruleset()); c.Packets != 1 || c.Bytes != 40 {
		t.Errorf("after -Z and one packet: %+v", c)
	}
	// A SIGHUP-style reload keeps what listings show.
	if err := f.rules.Reload(); err != nil {
		t.Fatal(err)
	}
	if c := block(f.rules.Ruleset()); c.Packets != 1 {
		t.Errorf("after reload: %+v", c)
	}
	// -R with -c sets the counters of the replaced rule.
	if rep := f.exec("iptables", "-R", "BLOCK", "1", "-c", "7", "700", "-j", "DROP"); rep.Exit != 0 {
		t.Fatalf("-R -c: %+v", rep)
	}
	if c := block(f.rules.Ruleset()); c.Packets != 7 || c.Bytes != 700 {
		t.Errorf("after -R -c 7 700: %+v", c)
	}
	f.exec("iptables", "-Z")
	for _, ch := range f.rules.Ruleset().Table("filter").Chains {
		for i, r := range ch.Rules {
			if r.Counters != (ruleset.Counters{}) {
				t.Errorf("after -Z: %s rule %d %+v", ch.Name, i+1, r.Counters)
			}
		}
		if ch.BuiltIn && ch.Counters != (ruleset.Counters{}) {
			t.Errorf("after -Z: %s policy %+v", ch.Name, ch.Counters)
		}
	}
}

func TestRecent(t *testing.T) {
	f := newFixture(t, seedRules)
	// Four new SSH connections one second apart: the fourth hits
	// --hitcount 4 and is dropped, and --update adds its stamp again.
	for i := 0; i < 4; i++ {
		ok := f.connect("10.0.0.1", uint16(50000+i), "10.0.0.2", 22)
		if ok != (i < 3) {
			t.Fatalf("SSH connection %d accepted=%v", i+1, ok)
		}
		f.advance(time.Second)
	}
	f.connect("10.0.0.6", 50000, "10.0.0.2", 22)
	rep := f.exec("recent", "SSH")
	if rep.Exit != 0 {
		t.Fatalf("%+v", rep)
	}
	// The 4th newest of the stamps t0, t0+1, t0+2, t0+3, t0+3 is t0+1: the
	// address is blocked until t0+61s; now is t0+4s.
	until := t0.Add(61 * time.Second).Format("2006-01-02 15:04:05")
	for _, want := range []string{
		"recent list SSH: 2 entries\n",
		"  10.0.0.1                                  64     5  " + t0.Add(3*time.Second).Format("2006-01-02 15:04:05") + " (1s ago)\n",
		"      blocked by filter INPUT #2 (-j DROP) until " + until + " (in 57s)\n",
		"  10.0.0.6                                  64     1  ",
	} {
		if !strings.Contains(rep.Stdout, want) {
			t.Errorf("recent SSH lacks %q:\n%s", want, rep.Stdout)
		}
	}
	if strings.Count(rep.Stdout, "blocked by") != 1 {
		t.Errorf("only 10.0.0.1 is blocked:\n%s", rep.Stdout)
	}
	// /proc format: jiffies from the boot time (t0 - 1h).
	rep = f.exec("recent", "--proc", "SSH")
	j := func(d time.Duration) string {
		return fmt.Sprint(uint64(1<<32) - 300*250 + uint64((time.Hour+d)/(4*time.Millisecond)))
	}
	want := "src=10.0.0.1 ttl: 64 last_seen: " + j(3*time.Second) + " oldest_pkt: 5 " + j(0) + ", " + j(time.Second) + ", " + j(2*time.Second) + ", " + j(3*time.Second) + ", " + j(3*time.Second) + "\n"
	if !strings.Contains(rep.Stdout, want) {
		t.Errorf("--proc:\n%s\nwant line\n%s", rep.Stdout, want)
	}
	// Writes: add, remove, flush.
	if rep := f.exec("recent", "SSH", "+10.0.0.7"); rep.Exit != 0 {
		t.Fatalf("+: %+v", rep)
	}
	if rep := f.exec("recent", "SSH", "-10.0.0.1"); rep.Exit != 0 {
		t.Fatalf("-: %+v", rep)
	}
	rep = f.exec("recent")
	if !strings.Contains(rep.Stdout, "  10.0.0.7 ") || strings.Contains(rep.Stdout, "10.0.0.1 ") || !strings.Contains(rep.Stdout, "2 entries") {
		t.Errorf("after +10.0.0.7 -10.0.0.1:\n%s", rep.Stdout)
	}
	// 10.0.0.1 may connect again.
	if !f.connect("10.0.0.1", 50010, "10.0.0.2", 22) {
		t.Error("10.0.0.1 still blocked after its removal")
	}
	if rep := f.exec("recent", "SSH", "/"); rep.Exit != 0 {
		t.Fatalf("/: %+v", rep)
	}
	if rep := f.exec("recent", "SSH"); rep.Stdout != "recent list SSH: 0 entries\n" {
		t.Errorf("after flush: %q", rep.Stdout)
	}
	for _, tc := range []struct {
		args []string
		rc   int
		msg  string
	}{
		{[]string{"SSH", "10.0.0.1"}, 1, "Invalid argument"},
		{[]string{"NOPE"}, 1, `no recent list named "NOPE" (lists: SSH)`},
		{[]string{"--bogus"}, 2, "unknown option"},
		{[]string{"SSH", "+1.2.3.4", "extra"}, 2, "usage"},
	} {
		if rep := f.exec("recent", tc.args...); rep.Exit != tc.rc || !strings.Contains(rep.Stderr, tc.msg) {
			t.Errorf("recent %v: %+v, want %d %q", tc.args, rep, tc.rc, tc.msg)
		}
	}
}

// The "blocked until" heuristic, case by case.
func TestRecentUntil(t *testing.T) {
	s := int64(time.Second)
	e := func(stamps ...int64) *statestore.RecentEntry { return &statestore.RecentEntry{StampsNS: stamps} }
	for _, tc := range []struct {
		name          string
		seconds, hits uint32
		e             *statestore.RecentEntry
		now           int64
		match         bool
		until         int64 // 0 = while listed
	}{
		{"listed, no window", 0, 0, e(10 * s), 100 * s, true, 0},
		{"hitcount reached, no window", 0, 3, e(1*s, 2*s, 3*s), 100 * s, true, 0},
		{"hitcount not reached", 0, 3, e(1*s, 2*s), 100 * s, false, 0},
		{"window: last stamp + seconds", 60, 0, e(10*s, 50*s), 70 * s, true, 110 * s},
		{"window passed", 60, 0, e(10 * s), 71 * s, false, 0},
		{"window edge counts", 60, 0, e(10 * s), 70 * s, true, 70 * s},
		{"hits in window", 60, 2, e(10*s, 20*s, 30*s), 40 * s, true, 80 * s},
		{"hits partly expired", 60, 3, e(10*s, 20*s, 30*s), 75 * s, false, 0},
	} {
		r := recentRule{seconds: tc.seconds, hits: tc.hits}
		ok, until := recentUntil(tc.e, r, tc.now)
		var u int64
		if !until.IsZero() {
			u = until.UnixNano()
		}
		if ok != tc.match || u != tc.until {
			t.Errorf("%s: got %v %d, want %v %d", tc.name, ok, u, tc.match, tc.until)
		}
	}
}

func TestConntrack(t *testing.T) {
	f := newFixture(t, seedRules)
	f.traffic()
	ct := f.eng.ConntrackTable()
	if ct == nil {
		t.Fatal("conntrack off")
	}
	rep := f.exec("conntrack", "-L")
	n := ct.Count()
	if rep.Exit != 0 || rep.Stderr != fmt.Sprintf("conntrack v1.4.7 (conntrack-tools): %d flow entries have been shown.\n", n) {
		t.Fatalf("-L: %+v (count %d)", rep, n)
	}
	if got := strings.Count(rep.Stdout, "\n"); got != n {
		t.Errorf("-L printed %d lines for %d entries", got, n)
	}
	line := regexp.MustCompile(`(?m)^tcp      6 431999 ESTABLISHED src=10\.0\.0\.3 dst=10\.0\.0\.2 sport=41000 dport=80 src=10\.0\.0\.2 dst=10\.0\.0\.3 sport=80 dport=41000 \[ASSURED\] mark=0 use=1$`)
	if !line.MatchString(rep.Stdout) {
		t.Errorf("-L lacks 10.0.0.3's connection:\n%s", rep.Stdout)
	}
	rep = f.exec("conntrack", "-L", "-p", "tcp", "--dport", "80")
	if rep.Stderr != "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.\n" {
		t.Errorf("-L -p tcp --dport 80: %+v", rep)
	}
	rep = f.exec("conntrack", "-L", "-s", "10.0.0.1")
	if strings.Count(rep.Stdout, "src=10.0.0.1 ") != 2 {
		t.Errorf("-L -s 10.0.0.1: %+v", rep)
	}
	if rep := f.exec("conntrack", "-C"); rep.Stdout != fmt.Sprintf("%d\n", n) {
		t.Errorf("-C: %+v", rep)
	}
	rep = f.exec("conntrack", "-D", "-s", "10.0.0.3")
	if rep.Exit != 0 || !line.MatchString(rep.Stdout) || rep.Stderr != "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n" {
		t.Errorf("-D -s 10.0.0.3: %+v", rep)
	}
	if ct.Count() != n-1 {
		t.Errorf("count after -D: %d, want %d", ct.Count(), n-1)
	}
	if rep := f.exec("conntrack", "-D", "-s", "10.0.0.3"); rep.Exit != 1 || !strings.Contains(rep.Stderr, " 0 flow entries have been deleted.") {
		t.Errorf("-D of nothing: %+v", rep)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-L", "--dport", "80"}, "unknown option `--dport'"},
		{[]string{"-C", "-s", "1.2.3.4"}, "Illegal option `--src' with this command"},
		{[]string{"-L", "-D"}, "Invalid commands combination"},
		{[]string{"-L", "-s", "foo"}, "Invalid IP address `foo'"},
		{[]string{"-L", "-p", "tcp", "--state", "FOO"}, "unknown TCP state `FOO'"},
		{[]string{"-L", "-s"}, "option `-s' requires an argument"},
		{[]string{"-L", "-p", "foo"}, "`foo' unsupported protocol"},
		{nil, "no command specified (-L, -D, -F or -C)"},
	} {
		rep := f.exec("conntrack", tc.args...)
		want := "conntrack v1.4.7 (conntrack-tools): " + tc.msg + "\nTry `conntrack -h' or 'conntrack --help' for more information.\n"
		if rep.Exit != 2 || rep.Stderr != want {
			t.Errorf("%v: %+v\nwant %q", tc.args, rep, want)
		}
	}
	if rep := f.exec("conntrack", "-F"); rep.Exit != 0 || ct.Count() != 0 || !strings.Contains(rep.Stderr, "connection tracking table has been emptied.") {
		t.Errorf("-F: %+v, count %d", rep, ct.Count())
	}
}

func TestConnlimit(t *testing.T) {
	f := newFixture(t, seedRules)
	f.traffic() // 10.0.0.1: 3 tries, the third refused (above 2); 10.0.0.3: 1
	rep := f.exec("connlimit")
	want := "filter INPUT #3: -A INPUT -p tcp -m tcp --dport 80 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with tcp-reset\n" +
		"  ADDRESS               CONNS  NEXT NEW CONNECTION\n" +
		"  10.0.0.1/32               2  3 > 2: rule matches (-j REJECT)\n" +
		"  10.0.0.3/32               1  2 <= 2: rule does not match\n"
	if rep.Exit != 0 || rep.Stdout != want {
		t.Errorf("connlimit:\n%s\nwant\n%s", rep.Stdout, want)
	}
	// A connection that closes stops counting (TIME_WAIT/CLOSE).
	f.packet(netfilter.PathInput, packettest.TCP(packettest.TCPOpts{Src: "10.0.0.3", Dst: "10.0.0.2", SrcPort: 41000, DstPort: 80, Flags: packettest.RST | packettest.ACK, Seq: 101, Ack: 501}))
	rep = f.exec("connlimit")
	if strings.Contains(rep.Stdout, "10.0.0.3/32") {
		t.Errorf("after RST 10.0.0.3 still counted:\n%s", rep.Stdout)
	}
	// The engine agrees: 10.0.0.1's next connection is refused, 10.0.0.3's accepted.
	if f.connect("10.0.0.1", 40100, "10.0.0.2", 80) {
		t.Error("10.0.0.1's third connection accepted")
	}
	if !f.connect("10.0.0.3", 41100, "10.0.0.2", 80) {
		t.Error("10.0.0.3's connection refused")
	}
}

func TestHashlimitAndStatus(t *testing.T) {
	f := newFixture(t, seedRules)
	f.traffic()
	rep := f.exec("hashlimit", "HL")
	if !regexp.MustCompile(`^\d+ 10\.0\.0\.5:0->0\.0\.0\.0:0 \d+ \d+ \d+\n$`).MatchString(rep.Stdout) || rep.Exit != 0 {
		t.Errorf("hashlimit HL: %+v", rep)
	}
	if rep := f.exec("hashlimit"); !strings.HasPrefix(rep.Stdout, "# HL (1 entry)\n") {
		t.Errorf("hashlimit: %+v", rep)
	}
	if rep := f.exec("hashlimit", "NOPE"); rep.Exit != 1 || !strings.Contains(rep.Stderr, "(tables: HL)") {
		t.Errorf("hashlimit NOPE: %+v", rep)
	}
	rep = f.exec("status")
	for _, want := range []string{"uptables daemon: mode proxy, pid ", ", up 1s (since ", "rules file: " + f.file,
		"rule-set loads: 1, failed: 0, last load: ", "ruleset: 6 rules (filter 6)", "conntrack: 6 entries, max ",
		"recent lists: SSH 1", "hashlimit tables: HL 1"} {
		if !strings.Contains(rep.Stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, rep.Stdout)
		}
	}
	if rep := f.exec("bogus"); rep.Exit != 2 {
		t.Errorf("unknown command: %+v", rep)
	}
}

// The socket: mode 0600, one daemon per path, stale sockets replaced,
// removed at Close, a clear error when nothing listens.
func TestSocket(t *testing.T) {
	f := newFixture(t, seedRules)
	st, err := os.Stat(f.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v", st.Mode())
	}
	if _, err := Listen(Config{Path: f.srv.Addr(), Rules: f.rules}); err == nil || !strings.Contains(err.Error(), "another uptables daemon") {
		t.Errorf("second Listen: %v", err)
	}
	if err := f.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.srv.Addr()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	_, err = f.cl.Exec(context.Background(), "status", nil)
	if !errors.Is(err, ErrNotRunning) {
		t.Errorf("Exec with no daemon: %v", err)
	}
	// A dead daemon's socket file is replaced.
	path := filepath.Join(t.TempDir(), "dead.sock")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := Listen(Config{Path: path, Rules: f.rules})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if rep, err := NewClient(path).Exec(context.Background(), "status", nil); err != nil || rep.Exit != 0 {
		t.Errorf("after replacing a stale socket: %v %+v", err, rep)
	}
}
