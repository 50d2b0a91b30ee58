package kerneldiff

import (
	"strings"
	"testing"
)

// TestRouterKernelDiff runs every router scenario against the real kernel
// (three namespaces, the ruleset on the router) and against uptables
// replaying the router's ingress captures as the router, and fails on any
// difference in counters, LOG lines, recent lists, conntrack -L or the
// packets sent on either router device. KERNELDIFF_RUN selects scenarios
// by substring, as for TestKernelDiff.
func TestRouterKernelDiff(t *testing.T) {
	runSuite(t, suite{name: "router differential suite", tools: []string{"conntrack"}, index: func(i int) int { return i + 1 }},
		RouterScenarios())
}

// TestRouterScenarioSuite checks the router suite without the kernel:
// unique names, every placeholder expanded, the rulesets load in uptables
// (with the router's interface addresses), and the NAT targets, FORWARD
// policy DROP and the stateful matches the suite must prove are there.
func TestRouterScenarioSuite(t *testing.T) {
	scs := RouterScenarios()
	topo := NewRouterTopology(7, 4242, t.TempDir())
	_, all := checkSuiteText(t, scs, 8, topo)
	for _, sc := range scs {
		if !sc.Router {
			t.Errorf("%s: not on the router topology", sc.Name)
		}
		if _, err := loadRouter(topo.Expand(sc.Rules), topo); err != nil {
			t.Errorf("%s: %v", sc.Name, err)
		}
	}
	for _, want := range []string{"-j DNAT", "-j SNAT", "-j MASQUERADE", ":FORWARD DROP", "-m connlimit", "-m recent", "-m limit",
		"-j LOG", "-j TTL", "-j TCPMSS", "-j MARK", "-j CONNMARK", "-j NOTRACK", "--to-ports", "--persistent"} {
		if !strings.Contains(all, want) {
			t.Errorf("no router scenario uses %s", want)
		}
	}
}

func TestFlowOrderAndNormConntrack(t *testing.T) {
	k := []string{"tcp 1.1.1.1:1 > 2.2.2.2:2 [S] ttl=63 | aa", "udp 1.1.1.1:5 > 2.2.2.2:6 ttl=63 | bb", "tcp 1.1.1.1:1 > 2.2.2.2:2 [A] ttl=63 | cc"}
	u := []string{"udp 1.1.1.1:5 > 2.2.2.2:6 ttl=63 | bb", "tcp 1.1.1.1:1 > 2.2.2.2:2 [S] ttl=63 | aa", "tcp 1.1.1.1:1 > 2.2.2.2:2 [A] ttl=63 | cc"}
	if d := diffLines("x", flowOrder(k), flowOrder(u)); d != "" {
		t.Errorf("flows interleaved differently reported as different:\n%s", d)
	}
	swapped := []string{k[2], k[1], k[0]}
	if d := diffLines("x", flowOrder(k), flowOrder(swapped)); d == "" {
		t.Error("two packets of one flow in the other order not reported")
	}
	got := normConntrack([]string{
		"udp      17 29 src=10.0.0.2 dst=10.0.0.1 sport=1 dport=2 [UNREPLIED] src=10.0.0.1 dst=10.0.0.2 sport=2 dport=1 mark=0 use=1",
		"tcp      6 118 SYN_SENT src=10.0.0.2 dst=10.0.0.1 sport=3 dport=4 [UNREPLIED] src=10.0.0.1 dst=10.0.0.2 sport=4 dport=3 mark=0 use=1",
		""})
	want := []string{
		"tcp 6 SYN_SENT src=10.0.0.2 dst=10.0.0.1 sport=3 dport=4 [UNREPLIED] src=10.0.0.1 dst=10.0.0.2 sport=4 dport=3 mark=0 use=1",
		"udp 17 src=10.0.0.2 dst=10.0.0.1 sport=1 dport=2 [UNREPLIED] src=10.0.0.1 dst=10.0.0.2 sport=2 dport=1 mark=0 use=1"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("normConntrack = %q", got)
	}
}
