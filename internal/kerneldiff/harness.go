package kerneldiff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/uptables/uptables/internal/dataplane/replay"
	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
	"github.com/uptables/uptables/internal/xt/match"
)

// Bounds of the harness (2-core CI machine: generous but finite).
const (
	cmdTimeout     = 20 * time.Second // any ip/iptables/sysctl call
	readyTimeout   = 5 * time.Second  // server helper and tcpdump start
	scriptTimeout  = 60 * time.Second // one traffic script
	settleDelay    = 400 * time.Millisecond
	tcpdumpStop    = 5 * time.Second
	maxKmsgRecords = 100000
)

// Topology names and addresses one scenario's pair of namespaces. Names
// carry the scenario index and the test process's pid, so concurrent runs
// and other suites on the machine never collide.
type Topology struct {
	ServerNS, ClientNS string
	ServerIf, ClientIf string
	Server             string   // 10.231.N.1
	Client             string   // 10.231.N.2
	Extra              []string // more client addresses 10.231.N.3...
	Dir                string   // scratch directory (capture, rules)
	ExtraLocal         []string // more addresses the replay treats as local
}

// NewTopology names the namespaces and addresses of scenario index n
// (0..249).
func NewTopology(n, pid int, dir string) Topology {
	p := pid % 100000
	t := Topology{
		ServerNS: fmt.Sprintf("kdS%d-%d", n, p),
		ClientNS: fmt.Sprintf("kdC%d-%d", n, p),
		ServerIf: fmt.Sprintf("kds%dp%d", n, p),
		ClientIf: fmt.Sprintf("kdc%dp%d", n, p),
		Server:   fmt.Sprintf("10.231.%d.1", n),
		Client:   fmt.Sprintf("10.231.%d.2", n),
		Dir:      dir,
	}
	for i := 3; i <= 12; i++ {
		t.Extra = append(t.Extra, fmt.Sprintf("10.231.%d.%d", n, i))
	}
	return t
}

// Expand replaces the placeholders of a scenario's text: {S} server
// address, {C} client address, {C3}..{C12} extra client addresses, {NET}
// the /24 (10.231.N.0), {SIF} and {CIF} the interface names.
func (t Topology) Expand(s string) string {
	pairs := []string{"{S}", t.Server, "{C}", t.Client, "{SIF}", t.ServerIf, "{CIF}", t.ClientIf,
		"{NET}", strings.TrimSuffix(t.Server, ".1") + ".0"}
	for i := len(t.Extra) - 1; i >= 0; i-- { // {C12} before {C1...}
		pairs = append(pairs, fmt.Sprintf("{C%d}", i+3), t.Extra[i])
	}
	// Longest placeholders first so {C1x} is not eaten by a shorter one.
	r := strings.NewReplacer(pairs...)
	return r.Replace(s)
}

// run executes a command with a bound and returns its combined output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// nsRun runs a command inside a namespace.
func nsRun(ctx context.Context, ns string, args ...string) (string, error) {
	return run(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// nsStdout runs a command inside a namespace and returns its standard
// output only (conntrack writes its summary line on standard error).
func nsStdout(ctx context.Context, ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(errb.Bytes()))
	}
	return out.String(), nil
}

// The two-namespace topology as the runner drives it: the ruleset, the
// listeners and the capture on the server, the client's veth without TX
// checksum offload.
func (t Topology) kernelNS() string    { return t.ServerNS }
func (t Topology) clientNS() string    { return t.ClientNS }
func (t Topology) serverNS() string    { return t.ServerNS }
func (t Topology) offload() []nsDev    { return []nsDev{{t.ClientNS, t.ClientIf}} }
func (t Topology) logIfaces() []string { return []string{t.ServerIf} }
func (t Topology) views() []View       { return nil }
func (t Topology) listeners(sc *Scenario) []nsListen {
	return []nsListen{{t.ServerNS, sc.Listen}}
}

// A snap length of 0 (262144) makes libpcap's ring hold only a few frames
// of its 2 MiB buffer in immediate mode, so bursts were lost on a busy
// machine; 2048 bytes hold any frame of the veth (MTU 1500) and -B gives
// the ring room for thousands.
func (t Topology) captures() []captureSpec {
	return []captureSpec{{name: "server.pcap", ns: t.ServerNS, dev: t.ServerIf, args: []string{"-s", "2048", "-B", "16384"}}}
}

func (t Topology) load(rules, sets string, now int64) (*netfilter.Engine, *ipset.Sets, error) {
	return loadEngine(rules, sets, now, netfilter.Config{Seed: 1})
}

func (t Topology) replay(sc *Scenario, rules, sets string, caps map[string]string) (*UptablesResult, *ReplayEnd, error) {
	return Replay(rules, sets, t, caps["server.pcap"], sc.Recent)
}

// Setup creates the namespaces, the veth pair and the addresses. The
// returned cleanup deletes both namespaces (the veth pair goes with them);
// it is safe to call after a partial setup.
func (t Topology) Setup(ctx context.Context) (cleanup func(), err error) {
	cleanup = func() {
		for _, ns := range []string{t.ServerNS, t.ClientNS} {
			_, _ = run(context.Background(), "ip", "netns", "del", ns)
		}
	}
	steps := [][]string{
		{"ip", "netns", "add", t.ServerNS},
		{"ip", "netns", "add", t.ClientNS},
	}
	// IPv6 off before the devices arrive: no router solicitations or MLD
	// in the capture (they would be skipped anyway, but keep it quiet).
	for _, ns := range []string{t.ServerNS, t.ClientNS} {
		steps = append(steps, []string{"ip", "netns", "exec", ns, "sysctl", "-qw",
			"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"})
	}
	steps = append(steps,
		[]string{"ip", "link", "add", t.ServerIf, "netns", t.ServerNS, "type", "veth", "peer", "name", t.ClientIf, "netns", t.ClientNS},
		[]string{"ip", "-n", t.ServerNS, "addr", "add", t.Server + "/24", "dev", t.ServerIf},
		[]string{"ip", "-n", t.ClientNS, "addr", "add", t.Client + "/24", "dev", t.ClientIf},
	)
	for _, a := range t.Extra {
		steps = append(steps, []string{"ip", "-n", t.ClientNS, "addr", "add", a + "/24", "dev", t.ClientIf})
	}
	steps = append(steps,
		[]string{"ip", "-n", t.ServerNS, "link", "set", "lo", "up"},
		[]string{"ip", "-n", t.ClientNS, "link", "set", "lo", "up"},
		[]string{"ip", "-n", t.ServerNS, "link", "set", t.ServerIf, "up"},
		[]string{"ip", "-n", t.ClientNS, "link", "set", t.ClientIf, "up"},
		// Multicast probes (S36) need a route on the client.
		[]string{"ip", "-n", t.ClientNS, "route", "add", "224.0.0.0/4", "dev", t.ClientIf},
	)
	for _, s := range steps {
		if _, err := run(ctx, s[0], s[1:]...); err != nil {
			return cleanup, err
		}
	}
	return cleanup, nil
}

// KernelResult is what the real kernel reported for a scenario.
type KernelResult struct {
	Save   string            // iptables-save -c of the kernel's namespace
	Recent map[string]string // /proc/net/xt_recent/NAME
	Log    []string          // LOG lines of the scenario's interfaces
	Views  map[string][]string
}

// UptablesResult is what the replay of the captures produced.
type UptablesResult struct {
	Save   string
	Recent map[string]string
	Log    []string
	Views  map[string][]string
	// Stats are the replay's (two-namespace topology).
	Stats replay.Stats
	// Router topology: ingress packets run through the engine, egress
	// packets run as the router's own (OUTPUT), ingress frames that are
	// not IPv4 (ARP).
	Packets, Local, Skipped int
}

// Replayed is the number of captured packets run through the engine.
func (u *UptablesResult) Replayed() int {
	return int(u.Stats.Processed) + u.Packets
}

// helperProc is a running helper (server listeners).
type helperProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *lineWaiter
}

// startHelper starts the helper binary in ns with in on its standard input.
// keepOpen leaves standard input open (the server serves until it closes).
func startHelper(ns, self, role string, in helperInput) (*helperProc, error) {
	js, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", ns, self)
	cmd.Env = append(os.Environ(), HelperEnv+"="+role)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &helperProc{cmd: cmd, stdin: stdin, out: newLineWaiter(stdout, "ready")}
	if _, err := stdin.Write(append(js, '\n')); err != nil {
		h.stop()
		return nil, err
	}
	return h, nil
}

// stop closes the helper's input and waits for it (killing it by its own
// pid after a bound).
func (h *helperProc) stop() {
	_ = h.stdin.Close()
	done := make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		_ = h.cmd.Process.Kill()
		<-done
	}
}

// runScript runs a traffic script in ns and returns the helper's report.
func runScript(ctx context.Context, ns, self string, in helperInput) (string, error) {
	js, err := json.Marshal(in)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, self)
	cmd.Env = append(os.Environ(), HelperEnv+"=client")
	cmd.Stdin = bytes.NewReader(js)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("traffic script in %s: %v: %s", ns, err, out)
	}
	return string(out), nil
}

// capture is a running tcpdump.
type capture struct {
	cmd  *exec.Cmd
	path string
	errw *lineWaiter
}

// captureSpec is one tcpdump of a run: the file name, the device and its
// namespace, and the options beyond the common ones.
type captureSpec struct {
	name, ns, dev string
	args          []string
}

// startCapture starts tcpdump and waits until it reports that it is
// capturing. `ip netns exec` execs tcpdump in place, so the pid we hold is
// tcpdump's own.
func startCapture(s captureSpec, path string) (*capture, error) {
	args := append([]string{"netns", "exec", s.ns, "tcpdump", "-i", s.dev, "-n", "-U", "--immediate-mode"}, s.args...)
	cmd := exec.Command("ip", append(args, "-w", path)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("tcpdump: %w", err)
	}
	c := &capture{cmd: cmd, path: path, errw: newLineWaiter(stderr, "listening on")}
	if !c.errw.wait(readyTimeout) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("tcpdump on %s %v did not start capturing within %v: %s", s.dev, s.args, readyTimeout, c.errw.text())
	}
	return c, nil
}

// stop ends tcpdump with SIGINT (it flushes and closes the file), killing
// it after a bound. A capture that lost frames ("N packets dropped by
// kernel" with N > 0) is an error: the replay would see fewer packets than
// the kernel did.
func (c *capture) stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(tcpdumpStop):
		_ = c.cmd.Process.Kill()
		<-done
		return fmt.Errorf("tcpdump did not stop within %v", tcpdumpStop)
	}
	// tcpdump prints its statistics as it exits; the reader may still be
	// on its way to them.
	for i := 0; i < 20; i++ {
		for _, l := range strings.Split(c.errw.text(), "\n") {
			if n, ok := strings.CutSuffix(strings.TrimSpace(l), " packets dropped by kernel"); ok {
				if n != "0" {
					return fmt.Errorf("tcpdump lost frames: %s", strings.TrimSpace(l))
				}
				return nil
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	return nil
}

// unescapeKmsg undoes /dev/kmsg's \xNN escaping of unprintable bytes.
func unescapeKmsg(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// logLinesFor keeps the LOG lines that name one of the interfaces (the
// scenario's own: other tests on the machine may log at the same time).
func logLinesFor(lines []string, ifaces ...string) []string {
	var out []string
	for _, l := range lines {
		for _, ifc := range ifaces {
			if strings.Contains(l, "IN="+ifc+" ") || strings.Contains(l, "OUT="+ifc+" ") {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// LoadUptables parses rules with uptables' iptables-restore and loads them
// into a fresh engine (seed 1, so runs are reproducible).
func LoadUptables(rules string) (*netfilter.Engine, error) {
	eng, _, err := loadEngine(rules, "", 0, netfilter.Config{Seed: 1})
	return eng, err
}

// loadEngine restores sets (`ipset restore` input, their timeouts counting
// from now) when given, parses rules against them with uptables'
// iptables-restore and loads them into a fresh engine of cfg, the sets
// pinned, as `uptables replay --ipsets` does.
func loadEngine(rules, setsText string, now int64, cfg netfilter.Config) (*netfilter.Engine, *ipset.Sets, error) {
	reg := builtin.Registry()
	var sets *ipset.Sets
	if setsText != "" {
		sets = ipset.New(nil)
		if err := sets.Exec([]string{"restore"}, strings.NewReader(setsText), &bytes.Buffer{}, now); err != nil {
			msg, _ := ipset.Report(err)
			return nil, nil, fmt.Errorf("uptables cannot restore the sets: %s", strings.TrimSpace(msg))
		}
		reg = builtin.RegistryWithSets(sets)
	}
	rs, err := iptables.Restore(ruleset.New(xt.IPv4), reg, strings.NewReader(rules), iptables.RestoreOptions{Counters: true})
	if err != nil {
		var ie *iptables.Error
		if errors.As(err, &ie) {
			return nil, nil, fmt.Errorf("uptables cannot parse the ruleset: %s", ie.Text("iptables-restore"))
		}
		return nil, nil, fmt.Errorf("uptables cannot parse the ruleset: %w", err)
	}
	eng := netfilter.New(cfg)
	if sets != nil {
		if err := builtin.PinSets(eng, sets); err != nil {
			return nil, nil, err
		}
	}
	if err := eng.Load(rs); err != nil {
		return nil, nil, fmt.Errorf("uptables cannot load the ruleset: %w", err)
	}
	if sets != nil {
		sets.SetReferences(builtin.SetReferences(rs))
	}
	return eng, sets, nil
}

// Replay runs the capture through uptables as the server would see it
// (the sets, when given, loaded at the capture's first packet) and returns
// the same three views the kernel gives, and the replay's end state. A
// result with an error means a recent list could not be read.
func Replay(rules, sets string, t Topology, capPath string, recent []string) (*UptablesResult, *ReplayEnd, error) {
	var first int64
	if sets != "" {
		var err error
		if first, err = firstPacketNS(capPath); err != nil {
			return nil, nil, err
		}
	}
	eng, ss, err := t.load(rules, sets, first)
	if err != nil {
		return nil, nil, err
	}
	local := []netip.Prefix{netip.MustParsePrefix(t.Server + "/32")}
	for _, a := range t.ExtraLocal {
		p, err := replay.ParsePrefix(a)
		if err != nil {
			return nil, nil, err
		}
		local = append(local, p)
	}
	var logBuf bytes.Buffer
	// The server's sockets belong to the test binary, which runs as root:
	// its packets carry UID 0 / GID 0 (LOG --log-uid).
	r := replay.New(eng, replay.Config{Local: local, InIface: t.ServerIf, OutIface: t.ServerIf, Log: &logBuf,
		LocalOwner: &replay.Owner{UID: 0, GID: 0}})
	if err := r.ReplayFile(capPath); err != nil {
		return nil, nil, err
	}
	if err := r.Flush(); err != nil {
		return nil, nil, err
	}
	res := &UptablesResult{Stats: r.Stats(), Recent: map[string]string{}}
	end := &ReplayEnd{Engine: eng, Sets: ss, FirstNS: r.FirstTimeNS(), LastNS: r.LastTimeNS()}
	var save bytes.Buffer
	if err := iptables.WriteSave(&save, eng.Ruleset(), iptables.SaveOptions{Counters: true, Now: time.Unix(0, r.LastTimeNS()).UTC()}); err != nil {
		return nil, nil, err
	}
	res.Save = save.String()
	res.Log = splitLines(logBuf.String())
	return res, end, recentLists(res, eng, recent, r.FirstTimeNS())
}

// recentLists fills res.Recent with the xt_recent lists named, as
// /proc/net/xt_recent/NAME prints them with jiffies counted from bootNS.
func recentLists(res *UptablesResult, eng *netfilter.Engine, names []string, bootNS int64) error {
	for _, name := range names {
		l, ok := match.RecentListByName(eng.Named(), name)
		if !ok {
			return fmt.Errorf("uptables has no recent list %q", name)
		}
		var b bytes.Buffer
		if err := replay.WriteRecentProc(&b, l.Entries(nil), replay.Jiffies{BootNS: bootNS}); err != nil {
			return err
		}
		res.Recent[name] = b.String()
	}
	return nil
}

// SaveTables splits iptables-save output into tables: name -> the lines
// (chains with policy counters, rules with counters, COMMIT), comments and
// blank lines dropped.
func SaveTables(s string) (order []string, tables map[string][]string) {
	tables = map[string][]string{}
	cur := ""
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "*") {
			cur = l[1:]
			order = append(order, cur)
			continue
		}
		tables[cur] = append(tables[cur], l)
	}
	return order, tables
}

// CompareSave compares two iptables-save -c outputs table by table, line
// by line (rule text, packet and byte counters of every rule and policy).
// It returns a readable diff, "" when they agree.
func CompareSave(kernel, upt string) string {
	korder, kt := SaveTables(kernel)
	uorder, ut := SaveTables(upt)
	var b strings.Builder
	seen := map[string]bool{}
	for _, name := range korder {
		seen[name] = true
		u, ok := ut[name]
		if !ok {
			fmt.Fprintf(&b, "table %s: the kernel has it, uptables does not\n", name)
			continue
		}
		b.WriteString(diffLines("table "+name, kt[name], u))
	}
	for _, name := range uorder {
		if !seen[name] {
			fmt.Fprintf(&b, "table %s: uptables has it, the kernel does not\n", name)
		}
	}
	return b.String()
}

// diffLines is a line diff (longest common subsequence) of the part
// between the common prefix and suffix: lines only the kernel has are
// shown "- ", lines only uptables has "+ ", common lines inside the
// differing region "  ". Inputs beyond maxDiffCells fall back to pairing
// lines by position.
func diffLines(title string, k, u []string) string {
	i := 0
	for i < len(k) && i < len(u) && k[i] == u[i] {
		i++
	}
	jk, ju := len(k), len(u)
	for jk > i && ju > i && k[jk-1] == u[ju-1] {
		jk--
		ju--
	}
	if i == jk && i == ju {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (- kernel, + uptables):\n", title)
	a, c := k[i:jk], u[i:ju]
	if (len(a)+1)*(len(c)+1) > maxDiffCells {
		for x := 0; x < len(a) || x < len(c); x++ {
			if x < len(a) {
				fmt.Fprintf(&b, "  - %q\n", a[x])
			}
			if x < len(c) {
				fmt.Fprintf(&b, "  + %q\n", c[x])
			}
		}
		return b.String()
	}
	// lcs[x][y] = length of the LCS of a[x:] and c[y:].
	w := len(c) + 1
	lcs := make([]int, (len(a)+1)*w)
	for x := len(a) - 1; x >= 0; x-- {
		for y := len(c) - 1; y >= 0; y-- {
			if a[x] == c[y] {
				lcs[x*w+y] = lcs[(x+1)*w+y+1] + 1
			} else {
				lcs[x*w+y] = max(lcs[(x+1)*w+y], lcs[x*w+y+1])
			}
		}
	}
	x, y := 0, 0
	for x < len(a) || y < len(c) {
		switch {
		case x < len(a) && y < len(c) && a[x] == c[y]:
			fmt.Fprintf(&b, "    %q\n", a[x])
			x++
			y++
		case y == len(c) || (x < len(a) && lcs[(x+1)*w+y] >= lcs[x*w+y+1]):
			fmt.Fprintf(&b, "  - %q\n", a[x])
			x++
		default:
			fmt.Fprintf(&b, "  + %q\n", c[y])
			y++
		}
	}
	return b.String()
}

// maxDiffCells bounds the LCS table of diffLines (memory and time).
const maxDiffCells = 1 << 22

// CompareLog compares LOG lines byte for byte. No normalisation is
// applied: tcpdump captures the veth's Ethernet header, which is the MAC=
// field the kernel prints. The order must be the same within each flow
// direction (source, destination, protocol, ports), not across them:
// packets of different flows sent from different CPUs (a test's own
// sockets beside its packet-socket sender) can reach the kernel's log in
// another order than the capture shows them, so only their interleaving
// may differ; every line and each flow's sequence must agree.
func CompareLog(kernel, upt []string) string {
	d := diffLines("LOG lines", kernel, upt)
	if d == "" || !sameFlowSequences(kernel, upt) {
		return d
	}
	return ""
}

// sameFlowSequences reports whether k and u hold the same lines in the
// same order per flow direction (logFlowKey).
func sameFlowSequences(k, u []string) bool {
	if len(k) != len(u) {
		return false
	}
	group := func(lines []string) map[string][]string {
		m := map[string][]string{}
		for _, l := range lines {
			key := logFlowKey(l)
			m[key] = append(m[key], l)
		}
		return m
	}
	gk, gu := group(k), group(u)
	if len(gk) != len(gu) {
		return false
	}
	for key, lk := range gk {
		lu := gu[key]
		if len(lu) != len(lk) {
			return false
		}
		for i := range lk {
			if lk[i] != lu[i] {
				return false
			}
		}
	}
	return true
}

// logFlowKey is a LOG line's flow direction: its SRC=, DST=, PROTO=, SPT=
// and DPT= fields (fragments and ICMP have no ports).
func logFlowKey(line string) string {
	var key strings.Builder
	for _, f := range strings.Fields(line) {
		for _, p := range [...]string{"SRC=", "DST=", "PROTO=", "SPT=", "DPT="} {
			if strings.HasPrefix(f, p) {
				key.WriteString(f)
				key.WriteByte(' ')
			}
		}
	}
	return key.String()
}

// RecentLine is one parsed line of /proc/net/xt_recent/NAME.
type RecentLine struct {
	Addr     string
	TTL      int
	LastSeen uint64
	Index    int
	Stamps   []uint64
}

// ParseRecent parses /proc/net/xt_recent/NAME text.
func ParseRecent(s string) ([]RecentLine, error) {
	var out []RecentLine
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var e RecentLine
		f := strings.Fields(strings.ReplaceAll(l, ",", " "))
		if len(f) < 7 || !strings.HasPrefix(f[0], "src=") || f[1] != "ttl:" || f[3] != "last_seen:" || f[5] != "oldest_pkt:" {
			return nil, fmt.Errorf("bad xt_recent line %q", l)
		}
		e.Addr = strings.TrimPrefix(f[0], "src=")
		var err error
		if e.TTL, err = strconv.Atoi(f[2]); err != nil {
			return nil, fmt.Errorf("bad ttl in %q", l)
		}
		if e.LastSeen, err = strconv.ParseUint(f[4], 10, 64); err != nil {
			return nil, fmt.Errorf("bad last_seen in %q", l)
		}
		if e.Index, err = strconv.Atoi(f[6]); err != nil {
			return nil, fmt.Errorf("bad oldest_pkt in %q", l)
		}
		for _, x := range f[7:] {
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("bad stamp in %q", l)
			}
			e.Stamps = append(e.Stamps, v)
		}
		out = append(out, e)
	}
	return out, nil
}

// RecentToleranceJiffies is how far apart a kernel stamp and the replay's
// stamp of the same packet may be: the kernel stamps when it processes the
// packet, the replay uses tcpdump's timestamp, and both are truncated to
// 4 ms jiffies; 100 ms (25 jiffies) covers scheduling on a loaded 2-core
// machine while still telling consecutive packets of the scenarios apart
// (they are at least 250 ms apart where it matters).
const RecentToleranceJiffies = 25

// CompareRecent compares two xt_recent listings: the same addresses (the
// kernel prints entries in hash-bucket order, whose seed is random, so
// entries are matched by address), and per address the same ttl, ring
// index and number of stamps, with every stamp and last_seen equal within
// RecentToleranceJiffies after both sides are shifted so that their
// earliest stamp is 0 (the kernel's jiffies count from its boot, the
// replay's from the first captured packet).
func CompareRecent(name, kernel, upt string) string {
	k, err := ParseRecent(kernel)
	if err != nil {
		return fmt.Sprintf("recent %s: kernel: %v\n", name, err)
	}
	u, err := ParseRecent(upt)
	if err != nil {
		return fmt.Sprintf("recent %s: uptables: %v\n", name, err)
	}
	kb, ub := minStamp(k), minStamp(u)
	km, um := map[string]RecentLine{}, map[string]RecentLine{}
	var addrs []string
	for _, e := range k {
		km[e.Addr] = e
		addrs = append(addrs, e.Addr)
	}
	for _, e := range u {
		um[e.Addr] = e
		if _, ok := km[e.Addr]; !ok {
			addrs = append(addrs, e.Addr)
		}
	}
	sort.Strings(addrs)
	var b strings.Builder
	for _, a := range addrs {
		ke, kok := km[a]
		ue, uok := um[a]
		switch {
		case !kok:
			fmt.Fprintf(&b, "recent %s: %s only in uptables: %s\n", name, a, fmtRecent(ue, ub))
			continue
		case !uok:
			fmt.Fprintf(&b, "recent %s: %s only in the kernel: %s\n", name, a, fmtRecent(ke, kb))
			continue
		}
		bad := ke.TTL != ue.TTL || ke.Index != ue.Index || len(ke.Stamps) != len(ue.Stamps) ||
			!near(ke.LastSeen-kb, ue.LastSeen-ub)
		for i := 0; !bad && i < len(ke.Stamps); i++ {
			bad = !near(ke.Stamps[i]-kb, ue.Stamps[i]-ub)
		}
		if bad {
			fmt.Fprintf(&b, "recent %s: %s differs (jiffies relative to each side's earliest stamp):\n  - kernel:   %s\n  + uptables: %s\n",
				name, a, fmtRecent(ke, kb), fmtRecent(ue, ub))
		}
	}
	return b.String()
}

func near(a, b uint64) bool {
	d := int64(a) - int64(b)
	return d >= -RecentToleranceJiffies && d <= RecentToleranceJiffies
}

func minStamp(es []RecentLine) uint64 {
	var m uint64
	first := true
	for _, e := range es {
		for _, s := range e.Stamps {
			if first || s < m {
				m, first = s, false
			}
		}
	}
	return m
}

func fmtRecent(e RecentLine, base uint64) string {
	var st []string
	for _, s := range e.Stamps {
		st = append(st, strconv.FormatInt(int64(s-base), 10))
	}
	return fmt.Sprintf("ttl %d last_seen %d oldest_pkt %d stamps [%s]", e.TTL, int64(e.LastSeen-base), e.Index, strings.Join(st, " "))
}

// scratch writes a file in dir.
func scratch(dir, name, content string) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(content), 0o644)
}
