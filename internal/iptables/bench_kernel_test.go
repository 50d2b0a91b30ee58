package iptables_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// TestKernelRestoreComparison times the real `iptables-restore --test` on
// the BenchmarkRestore50k file inside a throw-away network namespace and
// uptables' Restore on the same file, and reports both times and uptables'
// memory. It needs root and iptables-restore, so it runs only with
// UPTABLES_BENCH_KERNEL=1 (scripts/test sets it when it can).
func TestKernelRestoreComparison(t *testing.T) {
	if os.Getenv("UPTABLES_BENCH_KERNEL") != "1" {
		t.Skip("set UPTABLES_BENCH_KERNEL=1 (root, iptables-restore installed) to compare with the kernel")
	}
	n := 50000
	if v, err := strconv.Atoi(os.Getenv("UPTABLES_BENCH_RULES")); err == nil && v > 0 {
		n = v
	}
	file := GenSaveFile(n)
	path := filepath.Join(t.TempDir(), "rules.save")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}

	ns := "upt-bench-" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("ip", "netns", "exec", ns, "iptables-restore", "--test")
	cmd.Stdin = f
	start := time.Now()
	out, err := cmd.CombinedOutput()
	kernel := time.Since(start)
	if err != nil {
		t.Fatalf("iptables-restore --test refused the file: %v\n%s", err, out)
	}

	reg := builtin.Registry()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	best := time.Duration(1<<63 - 1)
	var rs *ruleset.Ruleset
	for i := 0; i < 3; i++ {
		start = time.Now()
		rs, err = iptables.Restore(ruleset.New(xt.IPv4), reg, strings.NewReader(file), iptables.RestoreOptions{})
		if d := time.Since(start); d < best {
			best = d
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(rs)
	liveMB := float64(after.HeapAlloc) / 1e6
	sysMB := float64(after.Sys) / 1e6
	t.Logf("%d rules (%d bytes): iptables-restore --test %v; uptables Restore (parse+validate) %v; %.1fx faster; uptables live heap %.1f MB, runtime total from OS %.1f MB",
		n, len(file), kernel.Round(time.Millisecond), best.Round(time.Millisecond), float64(kernel)/float64(best), liveMB, sysMB)
	if sysMB > 200 {
		t.Errorf("uptables used %.1f MB from the OS (goal < 200 MB)", sysMB)
	}
}
