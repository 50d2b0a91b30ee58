package kerneldiff

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/netfilter"
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

// The router topology as the runner drives it: the ruleset, the
// connection table and the four captures on the router; the client
// and server scripts in their namespaces; every veth without TX checksum
// offload; Listen served by the server, RouterListen by the router.
func (t RouterTopology) kernelNS() string    { return t.RouterNS }
func (t RouterTopology) clientNS() string    { return t.ClientNS }
func (t RouterTopology) serverNS() string    { return t.ServerNS }
func (t RouterTopology) logIfaces() []string { return []string{t.WanIf, t.LanIf} }
func (t RouterTopology) offload() []nsDev {
	return []nsDev{{t.ClientNS, t.ClientIf}, {t.ServerNS, t.ServerIf}, {t.RouterNS, t.WanIf}, {t.RouterNS, t.LanIf}}
}
func (t RouterTopology) listeners(sc *Scenario) []nsListen {
	return []nsListen{{t.ServerNS, sc.Listen}, {t.RouterNS, sc.RouterListen}}
}

// routerDevs are the router's two devices by role.
func (t RouterTopology) routerDevs() []struct{ role, name string } {
	return []struct{ role, name string }{{"wan", t.WanIf}, {"lan", t.LanIf}}
}

// captures are ingress and egress (-Q in / -Q out) of each router device,
// ROLE-DIR.pcap, with nanosecond timestamps so that the merge of the
// captures keeps the kernel's order.
func (t RouterTopology) captures() []captureSpec {
	var out []captureSpec
	for _, dir := range []string{"in", "out"} {
		for _, d := range t.routerDevs() {
			out = append(out, captureSpec{name: d.role + "-" + dir + ".pcap", ns: t.RouterNS, dev: d.name,
				args: []string{"-Q", dir, "--time-stamp-precision=nano", "-s", "0"}})
		}
	}
	return out
}

func (t RouterTopology) load(rules, sets string, now int64) (*netfilter.Engine, *ipset.Sets, error) {
	return loadEngine(rules, sets, now, routerConfig(t))
}

// replay runs the router's ingress captures through uptables as the
// router, and its egress captures too when the router talks itself
// (RouterListen).
func (t RouterTopology) replay(sc *Scenario, rules, sets string, caps map[string]string) (*UptablesResult, *ReplayEnd, error) {
	read := func(dir string) ([]frame, error) {
		var all []frame
		for _, d := range t.routerDevs() {
			frames, err := readCapture(caps[d.role+"-"+dir+".pcap"], d.name)
			if err != nil {
				return nil, err
			}
			all = append(all, frames...)
		}
		return all, nil
	}
	ingress, err := read("in")
	if err != nil {
		return nil, nil, err
	}
	var egress []frame
	if !sc.RouterListen.empty() {
		if egress, err = read("out"); err != nil {
			return nil, nil, err
		}
	}
	return ReplayRouter(rules, sets, t, ingress, egress, sc.Recent)
}

// views are what every router scenario compares beyond counters, LOG
// lines and recent lists: the connection table (conntrack -L, timeouts
// dropped: they depend on when each side is asked) and, per router
// device, the packets sent on it byte for byte, ordered by flow (see
// flowOrder).
func (t RouterTopology) views() []View {
	vs := []View{{
		Name:      "conntrack -L (timeouts dropped, sorted)",
		Kernel:    kernelConntrackL,
		Uptables:  uptablesConntrackL,
		Normalise: func(s string) []string { return normConntrack(splitLines(s)) },
	}}
	for _, d := range t.routerDevs() {
		vs = append(vs, View{
			Name: "packets sent on " + d.name + " (by flow)",
			Kernel: func(_ context.Context, k *KernelEnv) (string, error) {
				frames, err := readCapture(k.Captures[d.role+"-out.pcap"], d.name)
				if err != nil {
					return "", err
				}
				var b strings.Builder
				for _, f := range frames {
					if f.ip != nil {
						b.WriteString(fmtPacket(f.ip))
						b.WriteByte('\n')
					}
				}
				return b.String(), nil
			},
			Uptables: func(u *ReplayEnd) (string, error) {
				return strings.Join(u.Egress[d.name], "\n"), nil
			},
			Normalise: func(s string) []string { return flowOrder(splitLines(s)) },
		})
	}
	return vs
}
