package kerneldiff

import (
	"strings"
	"testing"
)

// ipsetScenarioBase numbers the ipset scenarios' namespaces after the
// conntrack ones (200..).
const ipsetScenarioBase = 230

// TestKernelDiffIpset runs IpsetScenarios against the kernel and the
// replay and fails on any difference in counters, LOG lines or set
// contents.
func TestKernelDiffIpset(t *testing.T) {
	runSuite(t, suite{name: "ipset differential scenarios", index: func(i int) int { return ipsetScenarioBase + i }}, IpsetScenarios())
}

// TestCompareSetMembers checks the set comparison without the kernel.
func TestCompareSetMembers(t *testing.T) {
	for _, c := range []struct {
		k, u []string
		want string
	}{
		{[]string{"10.0.0.1 timeout 8"}, []string{"10.0.0.1 timeout 9"}, ""},
		{[]string{"10.0.0.1 timeout 9"}, []string{"10.0.0.1 timeout 8"}, "timeout kernel 9, uptables 8"},
		{[]string{"10.0.0.1 timeout 2"}, []string{"10.0.0.1 timeout 9"}, "timeout kernel 2, uptables 9"},
		{[]string{"10.0.0.0/8", "10.1.0.0/16 nomatch"}, []string{"10.0.0.0/8", "10.1.0.0/16"}, "kernel only: 10.1.0.0/16 nomatch"},
		{nil, []string{"10.0.0.2"}, "uptables only: 10.0.0.2"},
	} {
		got := CompareSetMembers("s", c.k, c.u)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%v vs %v: %q, want %q", c.k, c.u, got, c.want)
		}
	}
}
