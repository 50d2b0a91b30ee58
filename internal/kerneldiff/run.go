package kerneldiff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/netfilter"
)

// Scenario is one differential experiment: a ruleset for the kernel under
// test, the listeners it serves, the traffic the client (then the server)
// sends, and what to compare beyond the counters and LOG lines every
// scenario compares. Text fields may use the placeholders of the
// scenario's topology (Topology.Expand, or RouterTopology.Expand when
// Router is set).
type Scenario struct {
	Name string
	// Covers says which seed rules (S01..S41, P01, X..) and edge cases it
	// exercises.
	Covers string
	// Rules is the ruleset in iptables-save format: the server's, or the
	// router's when Router is set.
	Rules  string
	Listen Listen
	// Client runs in the client namespace; Server afterwards in the server
	// namespace (server-initiated traffic).
	Client []Step
	Server []Step
	// Recent lists the xt_recent lists to compare.
	Recent []string
	// ExtraLocal are more addresses the server owns as far as the replay
	// is concerned (multicast groups it has joined). Two-namespace
	// topology only.
	ExtraLocal []string

	// Router runs the scenario on the router topology (router.go): three
	// namespaces, the ruleset on the router, its connection table and the
	// packets it sends on each device compared as well.
	Router bool
	// RouterListen is served in the router's namespace (REDIRECT to a
	// local port): the router then talks itself, and its own packets,
	// recognised in the egress captures, run through OUTPUT in the
	// replay. Router topology only.
	RouterListen Listen

	// Sets is `ipset restore` input: restored into the kernel's namespace
	// before the ruleset and into the replay's sets, whose timeouts count
	// from the capture's first packet (as `uptables replay --ipsets`
	// does). The rules are parsed against them on both sides.
	Sets string
	// Views are more pieces of state compared after the traffic (the
	// connection table, set members; see View).
	Views []View
}

// A View is one more piece of state compared after the traffic, beyond
// the counters, LOG lines and recent lists every scenario compares: each
// side is read as text, normalised into lines and compared.
type View struct {
	// Name titles the view in the diff and keys the Views maps of the
	// outcome; unique within a run.
	Name string
	// Kernel reads the view from the kernel's side once the captures have
	// stopped, before the namespaces are deleted. Views are read before
	// iptables-save: the state they show (timeouts) keeps ageing.
	Kernel func(ctx context.Context, k *KernelEnv) (string, error)
	// Uptables reads the view from the replay's state after its last
	// packet.
	Uptables func(u *ReplayEnd) (string, error)
	// Normalise turns either side's text into the lines compared (sorted,
	// volatile fields dropped); nil splits the text into its lines.
	Normalise func(string) []string
	// Compare reports how the two sides' lines differ, "" when they
	// agree; nil is an exact line diff (diffLines) titled Name.
	Compare func(kernel, upt []string) string
}

// KernelEnv is what a View reads the kernel's side from.
type KernelEnv struct {
	// NS is the namespace whose kernel holds the ruleset.
	NS string
	// Captures are the run's capture files by name (server.pcap;
	// wan-in.pcap, lan-out.pcap ... on the router).
	Captures map[string]string
}

// Run runs a command in the kernel's namespace and returns its standard
// output (tools such as conntrack print a summary on standard error).
func (k *KernelEnv) Run(ctx context.Context, args ...string) (string, error) {
	return nsStdout(ctx, k.NS, args...)
}

// ReplayEnd is the replay's state after its last packet, what a View
// reads uptables' side from.
type ReplayEnd struct {
	Engine *netfilter.Engine
	// Sets are the replay's ipsets (nil without Scenario.Sets).
	Sets *ipset.Sets
	// FirstNS and LastNS are the first and last replayed packets' times.
	FirstNS, LastNS int64
	// Egress are, per router device, the packets uptables sent (router
	// topology; fmtPacket lines in the order sent).
	Egress map[string][]string
}

// Outcome is the result of one scenario run.
type Outcome struct {
	Kernel   KernelResult
	Uptables *UptablesResult
	// Diff is empty when uptables agreed with the kernel everywhere.
	Diff string
	// Traffic is the helpers' report (connection outcomes), for context.
	Traffic string
	// Rules is the ruleset as run (placeholders expanded).
	Rules string
	// Capture is the first capture file (the server veth's on the
	// two-namespace topology); Captures are all of them by name.
	Capture  string
	Captures map[string]string
	Duration time.Duration
}

// topology is what the runner needs of a network layout: Topology (two
// namespaces, the ruleset on the server) and RouterTopology (three, the
// ruleset on the router in the middle).
type topology interface {
	Expand(s string) string
	Setup(ctx context.Context) (cleanup func(), err error)
	// kernelNS is the namespace whose kernel holds the ruleset.
	kernelNS() string
	// clientNS and serverNS run the Client and Server traffic scripts.
	clientNS() string
	serverNS() string
	// offload are the devices whose TX checksum offload goes off.
	offload() []nsDev
	// listeners are the namespaces that serve sc's listeners.
	listeners(sc *Scenario) []nsListen
	// captures are the tcpdumps of a run.
	captures() []captureSpec
	// logIfaces are the interfaces whose LOG lines are the scenario's.
	logIfaces() []string
	// load parses and loads the ruleset (and the sets, their timeouts
	// from now) in a fresh uptables engine.
	load(rules, sets string, now int64) (*netfilter.Engine, *ipset.Sets, error)
	// replay runs the captures through uptables as the kernelNS saw them.
	// A result with an error means the recent lists could not be read.
	replay(sc *Scenario, rules, sets string, caps map[string]string) (*UptablesResult, *ReplayEnd, error)
	// views are the comparisons the topology always makes.
	views() []View
}

// nsDev is a device in a namespace.
type nsDev struct{ ns, dev string }

// nsListen is a namespace and the listeners it serves.
type nsListen struct {
	ns string
	l  Listen
}

func (l Listen) empty() bool { return len(l.TCP)+len(l.UDP)+len(l.HalfOpen) == 0 }

// topology returns the scenario's topology of index idx.
func (sc *Scenario) topology(idx, pid int, dir string) topology {
	if sc.Router {
		return NewRouterTopology(idx, pid, dir)
	}
	t := NewTopology(idx, pid, dir)
	t.ExtraLocal = sc.ExtraLocal
	return t
}

// expandSteps replaces placeholders in every address field.
func expandSteps(t interface{ Expand(string) string }, steps []Step) ([]Step, error) {
	js, err := json.Marshal(steps)
	if err != nil {
		return nil, err
	}
	var out []Step
	if err := json.Unmarshal([]byte(t.Expand(string(js))), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// CheckUptables parses and loads the ruleset in uptables only, so that a
// scenario uptables cannot run fails before the kernel part.
func CheckUptables(rules string) error {
	_, err := LoadUptables(rules)
	return err
}

// parallel runs f(0..n-1) at once (each is a process start or a wait,
// slow under -race on a loaded machine) and joins their errors.
func parallel(n int, f func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// splitLines splits text into its lines, none for empty text.
func splitLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Run performs the scenario in namespaces of index idx: self is the helper
// binary (the test binary), dir a scratch directory. It needs root. The
// namespaces are deleted before it returns, on every path. See doc.go for
// the steps and what is compared.
func (sc *Scenario) Run(ctx context.Context, idx int, self, dir string) (out *Outcome, err error) {
	start := time.Now()
	t := sc.topology(idx, os.Getpid(), dir)
	rules, sets := t.Expand(sc.Rules), t.Expand(sc.Sets)
	if sets != "" {
		if _, err := exec.LookPath("ipset"); err != nil {
			return nil, errors.New("needs ipset (apt-get install -y ipset)")
		}
	}
	if _, _, err := t.load(rules, sets, 0); err != nil {
		return nil, err
	}
	views := append(t.views(), sc.Views...)
	client, err := expandSteps(t, sc.Client)
	if err != nil {
		return nil, err
	}
	server, err := expandSteps(t, sc.Server)
	if err != nil {
		return nil, err
	}
	rulesPath, err := scratch(dir, "rules.txt", rules)
	if err != nil {
		return nil, err
	}
	cleanup, err := t.Setup(ctx)
	defer cleanup()
	if err != nil {
		return nil, fmt.Errorf("namespace setup: %w", err)
	}
	devs := t.offload()
	if err := parallel(len(devs), func(i int) error {
		_, err := runScript(ctx, devs[i].ns, self, helperInput{TxCsumOff: devs[i].dev})
		return err
	}); err != nil {
		return nil, err
	}
	if sets != "" {
		setsPath, err := scratch(dir, "sets.txt", sets)
		if err != nil {
			return nil, err
		}
		if _, err := nsRun(ctx, t.kernelNS(), "ipset", "restore", "-file", setsPath); err != nil {
			return nil, fmt.Errorf("kernel refused the sets: %w", err)
		}
	}
	if _, err := nsRun(ctx, t.kernelNS(), "iptables-restore", rulesPath); err != nil {
		return nil, fmt.Errorf("kernel refused the ruleset: %w", err)
	}
	out = &Outcome{Rules: rules, Captures: map[string]string{}}
	for _, l := range t.listeners(sc) {
		if l.l.empty() {
			continue
		}
		ll := l.l
		h, err := startHelper(l.ns, self, "server", helperInput{Listen: &ll})
		if err != nil {
			return nil, fmt.Errorf("listener helper in %s: %w", l.ns, err)
		}
		defer h.stop()
		if !h.out.wait(readyTimeout) {
			return nil, fmt.Errorf("listener helper in %s not ready within %v: %s", l.ns, readyTimeout, h.out.text())
		}
	}
	km, err := openKmsg()
	if err != nil {
		return nil, err
	}
	defer km.close()

	specs := t.captures()
	for _, s := range specs {
		out.Captures[s.name] = filepath.Join(dir, s.name)
	}
	out.Capture = out.Captures[specs[0].name]
	caps := make([]*capture, len(specs))
	defer func() {
		for _, c := range caps {
			if c != nil {
				_ = c.stop()
			}
		}
	}()
	if err := parallel(len(specs), func(i int) (err error) {
		caps[i], err = startCapture(specs[i], out.Captures[specs[i].name])
		return err
	}); err != nil {
		return out, err
	}
	for _, s := range []struct {
		role, ns string
		steps    []Step
	}{{"client", t.clientNS(), client}, {"server", t.serverNS(), server}} {
		if len(s.steps) == 0 {
			continue
		}
		rep, err := runScript(ctx, s.ns, self, helperInput{Steps: s.steps})
		out.Traffic += s.role + ":\n" + rep
		if err != nil {
			return out, err
		}
	}
	time.Sleep(settleDelay)
	running := caps
	caps = nil
	if err := parallel(len(running), func(i int) error { return running[i].stop() }); err != nil {
		return out, err
	}

	// The kernel's view: the extra views first (their state keeps ageing).
	k := &out.Kernel
	kenv := &KernelEnv{NS: t.kernelNS(), Captures: out.Captures}
	k.Views = map[string][]string{}
	for _, v := range views {
		s, err := v.Kernel(ctx, kenv)
		if err != nil {
			return out, fmt.Errorf("%s (kernel): %w", v.Name, err)
		}
		k.Views[v.Name] = v.normalise(s)
	}
	if k.Save, err = nsRun(ctx, t.kernelNS(), "iptables-save", "-c"); err != nil {
		return out, err
	}
	k.Recent = map[string]string{}
	for _, name := range sc.Recent {
		s, err := nsRun(ctx, t.kernelNS(), "cat", "/proc/net/xt_recent/"+name)
		if err != nil {
			return out, err
		}
		k.Recent[name] = s
	}
	lines, err := km.lines()
	if err != nil {
		return out, err
	}
	k.Log = logLinesFor(lines, t.logIfaces()...)

	// uptables' view of the same packets.
	upt, end, rerr := t.replay(sc, rules, sets, out.Captures)
	out.Uptables = upt
	if upt == nil {
		return out, rerr
	}
	upt.Views = map[string][]string{}
	for _, v := range views {
		s, err := v.Uptables(end)
		if err != nil {
			return out, fmt.Errorf("%s (uptables): %w", v.Name, err)
		}
		upt.Views[v.Name] = v.normalise(s)
	}

	var diff strings.Builder
	diff.WriteString(CompareSave(k.Save, upt.Save))
	diff.WriteString(CompareDiag(k.Log, upt.Log))
	diff.WriteString(CompareLog(k.Log, upt.Log))
	if n := km.lostRecords(); n > 0 && diff.Len() > 0 {
		fmt.Fprintf(&diff, "(the kernel log overran %d times while it was followed: some kernel LOG lines are missing)\n", n)
	}
	for _, v := range views {
		diff.WriteString(v.compare(k.Views[v.Name], upt.Views[v.Name]))
	}
	if rerr != nil {
		fmt.Fprintf(&diff, "recent lists: %v\n", rerr)
	} else {
		for _, name := range sc.Recent {
			diff.WriteString(CompareRecent(name, k.Recent[name], upt.Recent[name]))
		}
	}
	out.Diff = diff.String()
	out.Duration = time.Since(start)
	return out, nil
}

func (v *View) normalise(s string) []string {
	if v.Normalise == nil {
		return splitLines(s)
	}
	return v.Normalise(s)
}

func (v *View) compare(kernel, upt []string) string {
	if v.Compare == nil {
		return diffLines(v.Name, kernel, upt)
	}
	return v.Compare(kernel, upt)
}
