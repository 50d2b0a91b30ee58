package kerneldiff

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// ipsetScenarioBase numbers the ipset scenarios' namespaces after the
// conntrack ones (200..).
const ipsetScenarioBase = 230

// TestKernelDiffIpset runs IpsetScenarios against the kernel and the
// replay and fails on any difference in counters, LOG lines or set
// contents.
func TestKernelDiffIpset(t *testing.T) {
	requireKernel(t)
	enableNetnsLogging(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	only := os.Getenv("KERNELDIFF_RUN")
	for i, sc := range IpsetScenarios() {
		if only != "" && !strings.Contains(sc.Name, only) {
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := sc.RunIpset(ctx, ipsetScenarioBase+i, self, t.TempDir())
			if err != nil {
				if out != nil && out.Outcome != nil {
					t.Logf("traffic:\n%s", out.Traffic)
				}
				t.Fatalf("%s: %v", sc.Name, err)
			}
			if out.Uptables.Stats.Frames == 0 {
				t.Fatalf("the capture is empty (traffic:\n%s)", out.Traffic)
			}
			if out.Diff != "" {
				t.Errorf("uptables disagrees with the kernel (covers: %s):\n%s\nkernel:\n%s\nknock: %v\ntraffic:\n%s",
					sc.Covers, out.Diff, out.Kernel.Save, out.KernelSets["knock"], out.Traffic)
				return
			}
			t.Logf("agrees (%d packets, %d country members, knock %v) in %v\n%s", out.Uptables.Stats.Processed,
				len(out.KernelSets["country"]), out.KernelSets["knock"], out.Duration.Round(time.Millisecond), out.Kernel.Save)
		})
	}
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
