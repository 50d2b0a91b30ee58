package kerneldiff

import (
	"bytes"
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
)

// The router topology (FORWARD, NAT): three namespaces per scenario,
//
//	client kdrC<N>-<pid>  ==veth==  router kdrR<N>-<pid>  ==veth==  server kdrS<N>-<pid>
//	10.232.N.2 (+.3-.6)   WAN 10.232.N.1 | LAN 10.233.N.1        10.233.N.2 (+.3)
//
// The client and the server route everything through the router, which
// forwards (net.ipv4.ip_forward=1, ICMP redirects off so that hairpin
// traffic does not make it talk) and holds the ruleset. Every veth runs
// with TX checksum offload off, so every captured packet carries complete
// checksums (see setTxChecksum): the router's egress is compared byte for
// byte. tcpdump runs four times in the router namespace, ingress and
// egress (-Q in / -Q out) of each of its two interfaces.

// RouterTopology names one router scenario's namespaces, interfaces and
// addresses. Names carry the scenario index and the test process's pid.
type RouterTopology struct {
	ClientNS, RouterNS, ServerNS string
	// ClientIf and ServerIf are the end hosts' devices; WanIf (towards the
	// client) and LanIf (towards the server) the router's.
	ClientIf, WanIf, LanIf, ServerIf string
	Client                           string   // 10.232.N.2
	Extra                            []string // more client addresses, 10.232.N.3-6
	Wan                              string   // router, client side ("public" address), 10.232.N.1
	Lan                              string   // router, server side, 10.233.N.1
	Server                           string   // 10.233.N.2
	Server3                          string   // a second server address, 10.233.N.3 (hairpin source)
	Dir                              string
}

// routerNet are the second octets of the client (WAN) and server (LAN)
// networks: 10.232.N.0/24 and 10.233.N.0/24.
const (
	routerWanNet = 232
	routerLanNet = 233
)

// NewRouterTopology names the namespaces and addresses of router scenario
// index n (1..249).
func NewRouterTopology(n, pid int, dir string) RouterTopology {
	p := pid % 100000
	t := RouterTopology{
		ClientNS: fmt.Sprintf("kdrC%d-%d", n, p),
		RouterNS: fmt.Sprintf("kdrR%d-%d", n, p),
		ServerNS: fmt.Sprintf("kdrS%d-%d", n, p),
		ClientIf: fmt.Sprintf("krc%dp%d", n, p),
		WanIf:    fmt.Sprintf("krw%dp%d", n, p),
		LanIf:    fmt.Sprintf("krl%dp%d", n, p),
		ServerIf: fmt.Sprintf("krs%dp%d", n, p),
		Client:   fmt.Sprintf("10.%d.%d.2", routerWanNet, n),
		Wan:      fmt.Sprintf("10.%d.%d.1", routerWanNet, n),
		Lan:      fmt.Sprintf("10.%d.%d.1", routerLanNet, n),
		Server:   fmt.Sprintf("10.%d.%d.2", routerLanNet, n),
		Server3:  fmt.Sprintf("10.%d.%d.3", routerLanNet, n),
		Dir:      dir,
	}
	for i := 3; i <= 6; i++ {
		t.Extra = append(t.Extra, fmt.Sprintf("10.%d.%d.%d", routerWanNet, n, i))
	}
	return t
}

// Expand replaces the placeholders of a router scenario's text: {C} and
// {C3}..{C6} client addresses, {RW} the router's WAN (public) address,
// {RL} its LAN address, {S} and {S3} the server's, {WNET}/{LNET} the two
// /24 network addresses, {WIF}/{LIF} the router's devices.
func (t RouterTopology) Expand(s string) string {
	pairs := []string{"{C}", t.Client, "{RW}", t.Wan, "{RL}", t.Lan, "{S}", t.Server, "{S3}", t.Server3,
		"{WIF}", t.WanIf, "{LIF}", t.LanIf,
		"{WNET}", strings.TrimSuffix(t.Wan, ".1") + ".0", "{LNET}", strings.TrimSuffix(t.Lan, ".1") + ".0"}
	for i, a := range t.Extra {
		pairs = append(pairs, fmt.Sprintf("{C%d}", i+3), a)
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// Setup creates the three namespaces, the two veth pairs, addresses and
// routes, and switches forwarding on in the router. The returned cleanup
// deletes the namespaces (the veths go with them); it is safe after a
// partial setup.
func (t RouterTopology) Setup(ctx context.Context) (cleanup func(), err error) {
	all := []string{t.ClientNS, t.RouterNS, t.ServerNS}
	cleanup = func() {
		for _, ns := range all {
			_, _ = run(context.Background(), "ip", "netns", "del", ns)
		}
	}
	var steps [][]string
	for _, ns := range all {
		steps = append(steps, []string{"ip", "netns", "add", ns})
	}
	for _, ns := range all {
		steps = append(steps, []string{"ip", "netns", "exec", ns, "sysctl", "-qw",
			"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"})
	}
	steps = append(steps,
		[]string{"ip", "netns", "exec", t.RouterNS, "sysctl", "-qw", "net.ipv4.ip_forward=1",
			"net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0"},
		[]string{"ip", "link", "add", t.WanIf, "netns", t.RouterNS, "type", "veth", "peer", "name", t.ClientIf, "netns", t.ClientNS},
		[]string{"ip", "link", "add", t.LanIf, "netns", t.RouterNS, "type", "veth", "peer", "name", t.ServerIf, "netns", t.ServerNS},
		[]string{"ip", "-n", t.RouterNS, "addr", "add", t.Wan + "/24", "dev", t.WanIf},
		[]string{"ip", "-n", t.RouterNS, "addr", "add", t.Lan + "/24", "dev", t.LanIf},
		[]string{"ip", "-n", t.ClientNS, "addr", "add", t.Client + "/24", "dev", t.ClientIf},
		[]string{"ip", "-n", t.ServerNS, "addr", "add", t.Server + "/24", "dev", t.ServerIf},
		[]string{"ip", "-n", t.ServerNS, "addr", "add", t.Server3 + "/24", "dev", t.ServerIf},
	)
	for _, a := range t.Extra {
		steps = append(steps, []string{"ip", "-n", t.ClientNS, "addr", "add", a + "/24", "dev", t.ClientIf})
	}
	for _, ns := range all {
		steps = append(steps, []string{"ip", "-n", ns, "link", "set", "lo", "up"})
	}
	steps = append(steps,
		[]string{"ip", "-n", t.RouterNS, "link", "set", t.WanIf, "up"},
		[]string{"ip", "-n", t.RouterNS, "link", "set", t.LanIf, "up"},
		[]string{"ip", "-n", t.ClientNS, "link", "set", t.ClientIf, "up"},
		[]string{"ip", "-n", t.ServerNS, "link", "set", t.ServerIf, "up"},
		[]string{"ip", "-n", t.ClientNS, "route", "add", "default", "via", t.Wan},
		[]string{"ip", "-n", t.ServerNS, "route", "add", "default", "via", t.Lan},
	)
	for _, s := range steps {
		if _, err := run(ctx, s[0], s[1:]...); err != nil {
			return cleanup, err
		}
	}
	return cleanup, nil
}

// RouterScenario is one differential experiment on the router topology:
// the router's ruleset, the listeners of the server (and of the router,
// for REDIRECT), the traffic the client then the server send, and the
// recent lists to compare. Text fields may use RouterTopology placeholders.
type RouterScenario struct {
	Name   string
	Covers string
	// Rules is the router's ruleset in iptables-save format.
	Rules string
	// Listen is served in the server namespace, RouterListen in the
	// router's (REDIRECT to a local port): with RouterListen the router
	// talks itself, and its own packets, recognised in the egress
	// captures, run through OUTPUT in the replay.
	Listen       Listen
	RouterListen Listen
	Client       []Step
	Server       []Step
	Recent       []string
}

// RouterKernel is what the router's kernel reported.
type RouterKernel struct {
	Save      string
	Recent    map[string]string
	Log       []string
	Conntrack []string            // conntrack -L, normalised (see normConntrack)
	Egress    map[string][]string // per router device, the packets it sent (see fmtPacket)
}

// RouterOutcome is the result of one router scenario.
type RouterOutcome struct {
	Kernel   RouterKernel
	Uptables *RouterUptables
	Diff     string
	Traffic  string
	Duration time.Duration
}

// routerCaps are the four captures' file names: device role and direction.
var routerCaps = []struct{ name, ifc, dir string }{
	{"wan-in.pcap", "wan", "in"}, {"lan-in.pcap", "lan", "in"},
	{"wan-out.pcap", "wan", "out"}, {"lan-out.pcap", "lan", "out"},
}

// startIfCapture starts tcpdump on one device of ns in one direction
// (nanosecond timestamps, so that the merge of the captures keeps the
// kernel's order) and waits until it is capturing.
func startIfCapture(ns, dev, dir, path string) (*capture, error) {
	cmd := exec.Command("ip", "netns", "exec", ns, "tcpdump", "-i", dev, "-Q", dir, "-n", "-U",
		"--immediate-mode", "--time-stamp-precision=nano", "-s", "0", "-w", path)
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
		return nil, fmt.Errorf("tcpdump on %s (%s) did not start capturing within %v: %s", dev, dir, readyTimeout, c.errw.text())
	}
	return c, nil
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

// expandRouterSteps replaces placeholders in every address field.
func expandRouterSteps(t RouterTopology, steps []Step) ([]Step, error) {
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

// Run performs the scenario in namespaces of index idx (root only): self
// is the helper binary, dir a scratch directory. The namespaces are
// deleted before it returns, on every path.
func (sc *RouterScenario) Run(ctx context.Context, idx int, self, dir string) (out *RouterOutcome, err error) {
	start := time.Now()
	t := NewRouterTopology(idx, os.Getpid(), dir)
	rules := t.Expand(sc.Rules)
	if _, err := loadRouter(rules, t); err != nil {
		return nil, err
	}
	client, err := expandRouterSteps(t, sc.Client)
	if err != nil {
		return nil, err
	}
	server, err := expandRouterSteps(t, sc.Server)
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
	// The four helpers switching TX checksum offload off run at once
	// (each is a process start, slow under -race on a loaded machine).
	devs := []struct{ ns, dev string }{{t.ClientNS, t.ClientIf}, {t.ServerNS, t.ServerIf}, {t.RouterNS, t.WanIf}, {t.RouterNS, t.LanIf}}
	errs := make([]error, len(devs))
	var wg sync.WaitGroup
	for i, x := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = runScript(ctx, x.ns, self, helperInput{TxCsumOff: x.dev})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if _, err := nsRun(ctx, t.RouterNS, "iptables-restore", rulesPath); err != nil {
		return nil, fmt.Errorf("kernel refused the ruleset: %w", err)
	}
	out = &RouterOutcome{}
	for _, l := range []struct {
		ns string
		l  Listen
	}{{t.ServerNS, sc.Listen}, {t.RouterNS, sc.RouterListen}} {
		if len(l.l.TCP)+len(l.l.UDP)+len(l.l.HalfOpen) == 0 {
			continue
		}
		ll := l.l
		h, err := startHelper(l.ns, self, "server", helperInput{Listen: &ll})
		if err != nil {
			return nil, fmt.Errorf("listener helper: %w", err)
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
	var caps []*capture
	defer func() {
		for _, c := range caps {
			_ = c.stop()
		}
	}()
	// The four captures start at once; each is waited for until it
	// reports that it is capturing.
	paths := map[string]string{}
	started := make([]*capture, len(routerCaps))
	cerrs := make([]error, len(routerCaps))
	for i, rc := range routerCaps {
		dev := t.WanIf
		if rc.ifc == "lan" {
			dev = t.LanIf
		}
		p := filepath.Join(dir, rc.name)
		paths[rc.name] = p
		wg.Add(1)
		go func() {
			defer wg.Done()
			started[i], cerrs[i] = startIfCapture(t.RouterNS, dev, rc.dir, p)
		}()
	}
	wg.Wait()
	for _, c := range started {
		if c != nil {
			caps = append(caps, c)
		}
	}
	if err := errors.Join(cerrs...); err != nil {
		return out, err
	}
	if len(client) > 0 {
		rep, err := runScript(ctx, t.ClientNS, self, helperInput{Steps: client})
		out.Traffic += "client:\n" + rep
		if err != nil {
			return out, err
		}
	}
	if len(server) > 0 {
		rep, err := runScript(ctx, t.ServerNS, self, helperInput{Steps: server})
		out.Traffic += "server:\n" + rep
		if err != nil {
			return out, err
		}
	}
	time.Sleep(settleDelay)
	serrs := make([]error, len(caps))
	for i, c := range caps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			serrs[i] = c.stop()
		}()
	}
	wg.Wait()
	caps = nil
	if err := errors.Join(serrs...); err != nil {
		return out, err
	}

	// The kernel's view.
	k := &out.Kernel
	if k.Save, err = nsRun(ctx, t.RouterNS, "iptables-save", "-c"); err != nil {
		return out, err
	}
	ctl, err := nsStdout(ctx, t.RouterNS, "conntrack", "-L")
	if err != nil {
		return out, err
	}
	k.Conntrack = normConntrack(strings.Split(ctl, "\n"))
	k.Recent = map[string]string{}
	for _, name := range sc.Recent {
		s, err := nsRun(ctx, t.RouterNS, "cat", "/proc/net/xt_recent/"+name)
		if err != nil {
			return out, err
		}
		k.Recent[name] = s
	}
	lines, err := km.lines()
	if err != nil {
		return out, err
	}
	k.Log = logLinesFor(lines, t.WanIf, t.LanIf)
	k.Egress = map[string][]string{}
	for _, dev := range []struct{ role, name string }{{"wan", t.WanIf}, {"lan", t.LanIf}} {
		frames, err := readCapture(paths[dev.role+"-out.pcap"], dev.name)
		if err != nil {
			return out, err
		}
		for _, f := range frames {
			if f.ip != nil {
				k.Egress[dev.name] = append(k.Egress[dev.name], fmtPacket(f.ip))
			}
		}
	}

	// uptables as the router, on the packets the router received.
	var ingress []frame
	for _, dev := range []struct{ role, name string }{{"wan", t.WanIf}, {"lan", t.LanIf}} {
		frames, err := readCapture(paths[dev.role+"-in.pcap"], dev.name)
		if err != nil {
			return out, err
		}
		ingress = append(ingress, frames...)
	}
	var egress []frame
	if len(sc.RouterListen.TCP)+len(sc.RouterListen.UDP)+len(sc.RouterListen.HalfOpen) > 0 {
		for _, dev := range []struct{ role, name string }{{"wan", t.WanIf}, {"lan", t.LanIf}} {
			frames, err := readCapture(paths[dev.role+"-out.pcap"], dev.name)
			if err != nil {
				return out, err
			}
			egress = append(egress, frames...)
		}
	}
	upt, rerr := ReplayRouter(rules, t, ingress, egress, sc.Recent)
	out.Uptables = upt
	if upt == nil {
		return out, rerr
	}
	var diff strings.Builder
	diff.WriteString(CompareSave(k.Save, upt.Save))
	diff.WriteString(CompareLog(k.Log, upt.Log))
	diff.WriteString(diffLines("conntrack -L (timeouts dropped, sorted)", k.Conntrack, upt.Conntrack))
	for _, dev := range []string{t.WanIf, t.LanIf} {
		diff.WriteString(diffLines("packets sent on "+dev+" (by flow)", flowOrder(k.Egress[dev]), flowOrder(upt.Egress[dev])))
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
