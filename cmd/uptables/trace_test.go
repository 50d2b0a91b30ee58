package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReplayTraceWhy: `replay --trace --trace-filter ...` on the
// ping-knock capture explains the knock (icmp type, length 128, recorded
// on SSHOPEN) and each SSH attempt with the SSHOPEN list as the rule found
// it (not listed before the knock, 1 hit within 15 s after it, 0 hits once
// the window has closed). The golden is
// testdata/trace-knock.txt; UPTABLES_UPDATE=1 rewrites it.
func TestReplayTraceWhy(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	pcap := filepath.Join(dir, "k.pcap")
	if rc, _, stderr := c.run("", "gen", "../../examples/scenarios/ping-knock.scn", "-o", pcap); rc != 0 {
		t.Fatalf("gen: %s", stderr)
	}
	rules := filepath.Join(dir, "rules")
	if err := os.WriteFile(rules, []byte(`*filter
:INPUT ACCEPT [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p icmp --icmp-type 8 -m length --length 128 -m recent --set --name SSHOPEN --rsource -j ACCEPT
-A INPUT -p icmp --icmp-type 8 -j ACCEPT
-A INPUT -p tcp --dport 22 -m state --state NEW -m recent --rcheck --seconds 15 --name SSHOPEN --rsource -j ACCEPT
-A INPUT -j DROP
COMMIT
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout string
	for _, f := range []string{"proto icmp and src 192.0.2.10", "port 22 and src 192.0.2.10"} {
		rc, out, stderr := c.run("", "replay", "--rules", rules, "--local", "10.0.0.2", "--trace", "--trace-filter", f, pcap)
		if rc != 0 {
			t.Fatalf("replay: rc %d: %s", rc, stderr)
		}
		stdout += out
	}
	golden := filepath.Join("testdata", "trace-knock.txt")
	if os.Getenv("UPTABLES_UPDATE") != "" {
		if err := os.WriteFile(golden, []byte(stdout), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if stdout != string(want) {
		t.Errorf("trace differs from %s:\n--- got\n%s\n--- want\n%s", golden, stdout, want)
	}
}
