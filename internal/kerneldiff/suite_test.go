package kerneldiff

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// requireKernel skips unless the suite can drive the real kernel: root,
// not -short, and the tools present (tools are needed beyond the common
// ones).
func requireKernel(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("kernel differential suite skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("kernel differential suite needs root (network namespaces, iptables-restore, tcpdump); CI runs it as root")
	}
	for _, tool := range []string{"ip", "iptables-restore", "iptables-save", "tcpdump", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("kernel differential suite needs %s (apt-get install -y iproute2 iptables tcpdump procps)", tool)
		}
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt-get install -y %s)", tool, tool)
		}
	}
}

// enableNetnsLogging turns on net.netfilter.nf_log_all_netns (LOG is
// silent in child namespaces otherwise) and restores the old value when
// the test ends.
func enableNetnsLogging(t *testing.T) {
	t.Helper()
	const key = "/proc/sys/net/netfilter/nf_log_all_netns"
	old, err := os.ReadFile(key)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	if strings.TrimSpace(string(old)) != "1" {
		if err := os.WriteFile(key, []byte("1\n"), 0o644); err != nil {
			t.Fatalf("sysctl -w net.netfilter.nf_log_all_netns=1: %v", err)
		}
		t.Cleanup(func() { _ = os.WriteFile(key, old, 0o644) })
	}
}

// suite is one kernel differential test: its scenarios and how they run.
type suite struct {
	// name titles the closing summary.
	name string
	// tools are needed beyond requireKernel's (the test skips without).
	tools []string
	// index is scenario i's topology index (namespace names, addresses):
	// suites of one process use disjoint ranges where they can.
	index func(i int) int
	// timeout bounds one scenario (2 minutes when zero).
	timeout time.Duration
	// check is an extra sanity check of a run, before the comparison.
	check func(sc *Scenario, out *Outcome) error
	// logTraffic adds the helpers' report to the line of an agreeing
	// scenario.
	logTraffic bool
}

// maxShownView bounds the lines of a view shown with a disagreement.
const maxShownView = 100

// runSuite runs every scenario of scs against the real kernel and against
// uptables' replay, and fails on any difference (Scenario.Run's Diff).
// KERNELDIFF_RUN=substring selects scenarios, KERNELDIFF_VERBOSE=1 logs
// the kernel's outputs of agreeing ones, KERNELDIFF_KEEP=DIR keeps each
// run's rules, captures and both sides' LOG lines there.
func runSuite(t *testing.T, s suite, scs []Scenario) {
	requireKernel(t, s.tools...)
	enableNetnsLogging(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if s.timeout == 0 {
		s.timeout = 2 * time.Minute
	}
	only := os.Getenv("KERNELDIFF_RUN")
	start := time.Now()
	var agree, differ, failed []string
	for i, sc := range scs {
		if only != "" && !strings.Contains(sc.Name, only) {
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			defer cancel()
			out, err := sc.Run(ctx, s.index(i), self, t.TempDir())
			if err == nil {
				err = sanity(&sc, out, s.check)
			}
			if err != nil {
				failed = append(failed, sc.Name)
				if out != nil && out.Traffic != "" {
					t.Logf("traffic:\n%s", out.Traffic)
				}
				t.Fatalf("%s (covers: %s): %v", sc.Name, sc.Covers, err)
			}
			if keep := os.Getenv("KERNELDIFF_KEEP"); keep != "" {
				keepRun(t, keep, sc.Name, out)
			}
			if out.Diff != "" {
				differ = append(differ, sc.Name)
				t.Errorf("uptables disagrees with the kernel (covers: %s):\n%s\nreplay: %s%s\ntraffic:\n%s",
					sc.Covers, out.Diff, replaySummary(out.Uptables), showViews(out), out.Traffic)
				return
			}
			if os.Getenv("KERNELDIFF_VERBOSE") != "" {
				t.Logf("kernel:\n%s\nLOG:\n%s\nrecent: %v%s\ntraffic:\n%s", out.Kernel.Save, strings.Join(out.Kernel.Log, "\n"),
					out.Kernel.Recent, showViews(out), out.Traffic)
			}
			agree = append(agree, sc.Name)
			msg := fmt.Sprintf("agrees (%d packets replayed, %d LOG lines%s) in %v", out.Uptables.Replayed(), len(out.Kernel.Log),
				viewCounts(out), out.Duration.Round(time.Millisecond))
			if s.logTraffic {
				msg += "; " + strings.TrimSpace(out.Traffic)
			}
			t.Log(msg)
		})
	}
	t.Logf("%s: %d agree, %d disagree, %d could not run, in %v\nagree: %s\ndisagree: %s\nnot run: %s",
		s.name, len(agree), len(differ), len(failed), time.Since(start).Round(time.Second),
		strings.Join(agree, " "), strings.Join(differ, " "), strings.Join(failed, " "))
}

// sanity fails a run whose replay saw nothing (a capture that is empty
// compares equal to a kernel that saw nothing), then applies check.
func sanity(sc *Scenario, out *Outcome, check func(*Scenario, *Outcome) error) error {
	switch {
	case sc.Router && out.Uptables.Packets == 0:
		return fmt.Errorf("the router received nothing")
	case !sc.Router && out.Uptables.Stats.Frames == 0:
		return fmt.Errorf("the capture is empty")
	}
	if check != nil {
		return check(sc, out)
	}
	return nil
}

// replaySummary is the replay's counts for a report.
func replaySummary(u *UptablesResult) string {
	if u.Packets+u.Local+u.Skipped > 0 {
		return fmt.Sprintf("%d ingress packets, %d of the router's own, %d frames skipped", u.Packets, u.Local, u.Skipped)
	}
	return fmt.Sprintf("%+v", u.Stats)
}

// viewCounts is ", NAME N lines" per view of the outcome.
func viewCounts(out *Outcome) string {
	var b strings.Builder
	for _, name := range sortedKeys(out.Kernel.Views) {
		fmt.Fprintf(&b, ", %s %d lines", name, len(out.Kernel.Views[name]))
	}
	return b.String()
}

// showViews is both sides of every view, each bounded by maxShownView
// lines.
func showViews(out *Outcome) string {
	var b strings.Builder
	for _, name := range sortedKeys(out.Kernel.Views) {
		for _, side := range []struct {
			who   string
			lines []string
		}{{"kernel", out.Kernel.Views[name]}, {"uptables", out.Uptables.Views[name]}} {
			l := side.lines
			more := ""
			if len(l) > maxShownView {
				l, more = l[:maxShownView], fmt.Sprintf("\n... %d more", len(side.lines)-maxShownView)
			}
			fmt.Fprintf(&b, "\n%s, %s:\n%s%s", name, side.who, strings.Join(l, "\n"), more)
		}
	}
	return b.String()
}

func sortedKeys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// keepRun copies a run's rules, captures and both sides' LOG lines to dir
// (KERNELDIFF_KEEP), named after the scenario.
func keepRun(t *testing.T, dir, name string, out *Outcome) {
	files := map[string][]byte{
		name + ".rules":        []byte(out.Rules),
		name + ".kernel.log":   []byte(strings.Join(out.Kernel.Log, "\n") + "\n"),
		name + ".uptables.log": []byte(strings.Join(out.Uptables.Log, "\n") + "\n"),
	}
	for cname, path := range out.Captures {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Logf("KERNELDIFF_KEEP: %v", err)
			continue
		}
		if len(out.Captures) == 1 {
			cname = "pcap"
		}
		files[name+"."+cname] = data
	}
	for f, data := range files {
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Logf("KERNELDIFF_KEEP: %v", err)
		}
	}
}
