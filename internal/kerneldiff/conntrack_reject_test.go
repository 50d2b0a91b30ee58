package kerneldiff

import (
	"strings"
	"testing"
)

// conntrackScenarioBase numbers the conntrack scenarios' namespaces after
// the main suite's (Topology index 0..249).
const conntrackScenarioBase = 200

// TestKernelDiffConntrack runs ConntrackScenarios against the kernel and
// the replay and fails on any difference in counters, LOG lines or the
// connection table.
func TestKernelDiffConntrack(t *testing.T) {
	runSuite(t, suite{name: "conntrack differential scenarios", tools: []string{"conntrack"},
		index: func(i int) int { return conntrackScenarioBase + i }, logTraffic: true}, ConntrackScenarios())
}

// TestCompareConntrack checks the table comparison without the kernel.
func TestCompareConntrack(t *testing.T) {
	k := normaliseConntrackL(`tcp      6 9 CLOSE src=10.0.0.2 dst=10.0.0.1 sport=1 dport=2 src=10.0.0.1 dst=10.0.0.2 sport=2 dport=1 [ASSURED] mark=0 use=1
udp      17 27 src=10.0.0.2 dst=10.0.0.1 sport=3 dport=4 src=10.0.0.1 dst=10.0.0.2 sport=4 dport=3 mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.
`)
	same := normaliseConntrackL(`udp      17 29 src=10.0.0.2 dst=10.0.0.1 sport=3 dport=4 src=10.0.0.1 dst=10.0.0.2 sport=4 dport=3 mark=0 use=2
tcp      6 10 CLOSE src=10.0.0.2 dst=10.0.0.1 sport=1 dport=2 src=10.0.0.1 dst=10.0.0.2 sport=2 dport=1 [ASSURED] mark=0 use=1
`)
	if d := CompareConntrack(k, same); d != "" {
		t.Errorf("equal tables reported different:\n%s", d)
	}
	est := normaliseConntrackL(`udp      17 29 src=10.0.0.2 dst=10.0.0.1 sport=3 dport=4 src=10.0.0.1 dst=10.0.0.2 sport=4 dport=3 mark=0 use=2
tcp      6 299 ESTABLISHED src=10.0.0.2 dst=10.0.0.1 sport=1 dport=2 src=10.0.0.1 dst=10.0.0.2 sport=2 dport=1 [ASSURED] mark=0 use=1
`)
	d := CompareConntrack(k, est)
	if !strings.Contains(d, "kernel only: tcp 6 9 CLOSE") || !strings.Contains(d, "uptables only: tcp 6 299 ESTABLISHED") {
		t.Errorf("state difference not shown:\n%s", d)
	}
	late := normaliseConntrackL(`udp      17 20 src=10.0.0.2 dst=10.0.0.1 sport=3 dport=4 src=10.0.0.1 dst=10.0.0.2 sport=4 dport=3 mark=0 use=2
tcp      6 10 CLOSE src=10.0.0.2 dst=10.0.0.1 sport=1 dport=2 src=10.0.0.1 dst=10.0.0.2 sport=2 dport=1 [ASSURED] mark=0 use=1
`)
	if d := CompareConntrack(k, late); !strings.Contains(d, "timeout kernel 27, uptables 20") {
		t.Errorf("timeout difference not shown:\n%s", d)
	}
}
