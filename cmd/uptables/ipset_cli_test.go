package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOfflineIptablesWithSets: `uptables --ruleset F` checks -m set and
// -j SET against the sets file (--sets, $UPTABLES_IPSETS), as iptables
// checks with the kernel; `uptables ipset` counts the rule-set file's
// references and refuses to destroy a set the rules hold, with the
// kernel's texts; save and restore parse against the same sets.
func TestOfflineIptablesWithSets(t *testing.T) {
	c := newCLI(t)
	sets := filepath.Join(filepath.Dir(c.file), "sets")
	c.env["UPTABLES_RULESET"] = c.file
	c.env["UPTABLES_IPSETS"] = sets
	steps := []struct {
		args   []string
		stdin  string
		rc     int
		stdout string
		stderr string
	}{
		{args: []string{"-A", "INPUT", "-m", "set", "--match-set", "bl", "src", "-j", "DROP"}, rc: 2,
			stderr: "iptables v1.8.9 (nf_tables): Set bl doesn't exist.\n\nTry `iptables -h' or 'iptables --help' for more information.\n"},
		{args: []string{"ipset", "create", "bl", "hash:net"}},
		{args: []string{"ipset", "add", "bl", "10.0.0.0/8"}},
		{args: []string{"-A", "INPUT", "-m", "set", "--match-set", "bl", "src", "-j", "DROP"}},
		{args: []string{"ipset", "create", "knock", "hash:ip", "timeout", "10"}},
		{args: []string{"--sets", sets, "-A", "INPUT", "-p", "tcp", "--dport", "1000", "-j", "SET", "--add-set", "knock", "src", "--del-set", "knock", "dst"}},
		{args: []string{"ipset", "list", "-t", "knock"}, stdout: "References: 2\n"},
		{args: []string{"ipset", "list", "-t", "bl"}, stdout: "References: 1\n"},
		{args: []string{"ipset", "destroy", "bl"}, rc: 1, stderr: "ipset v7.17: Set cannot be destroyed: it is in use by a kernel component\n"},
		{args: []string{"ipset", "destroy"}, rc: 1, stderr: "ipset v7.17: Set cannot be destroyed: it is in use by a kernel component\n"},
		{args: []string{"-D", "INPUT", "1"}},
		{args: []string{"ipset", "list", "-t", "bl"}, stdout: "References: 0\n"},
		{args: []string{"ipset", "destroy", "bl"}},
		{args: []string{"restore", "--noflush"}, stdin: "*filter\n-A INPUT -m set --match-set bl src -j DROP\nCOMMIT\n", rc: 2,
			stderr: "Set bl doesn't exist."},
		{args: []string{"restore", "--noflush"}, stdin: "*filter\n-A INPUT -m set --match-set knock src -j ACCEPT\nCOMMIT\n"},
		{args: []string{"save"}, stdout: "-A INPUT -m set --match-set knock src -j ACCEPT\n"},
		{args: []string{"ipset", "list", "-t", "knock"}, stdout: "References: 3\n"},
		// Another sets file without knock: the rule-set file no longer loads.
		{args: []string{"--sets", sets + ".other", "-S"}, rc: 1, stderr: "Set knock doesn't exist."},
		{args: []string{"--sets"}, rc: 2, stderr: "--sets requires a file name"},
		{args: []string{"ipset", "--help"}, stdout: "usage: uptables ipset [--sets FILE]"},
		{args: []string{"ipset", "--sets=" + sets, "list", "-n"}, stdout: "knock\n"},
	}
	for _, s := range steps {
		rc, out, errs := c.run(s.stdin, s.args...)
		if rc != s.rc || !strings.Contains(out, s.stdout) || !strings.Contains(errs, s.stderr) || (s.stderr == "" && errs != "") {
			t.Fatalf("%v: rc %d, stdout %q, stderr %q; want rc %d, stdout with %q, stderr with %q", s.args, rc, out, errs, s.rc, s.stdout, s.stderr)
		}
	}
}

// TestReplaySetTimeoutsOnCaptureClock: elements of the --ipsets file
// count their timeouts from the capture's first frame, not from the wall
// clock: the entry of 3 s admits the SYN at 0 s and has expired for the
// ones at 7 s and 40 s. SET's additions are on the same clock
// (--ipsets-out lists them at the last frame's time).
func TestReplaySetTimeoutsOnCaptureClock(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	pcap := filepath.Join(dir, "k.pcap")
	if rc, _, stderr := c.run("", "gen", "../../examples/scenarios/ping-knock.scn", "-o", pcap); rc != 0 {
		t.Fatalf("gen: %s", stderr)
	}
	sets := filepath.Join(dir, "sets")
	os.WriteFile(sets, []byte("create knock hash:ip timeout 10\nadd knock 192.0.2.10 timeout 3\ncreate seen hash:ip timeout 0\n"), 0o644)
	rules := filepath.Join(dir, "rules")
	os.WriteFile(rules, []byte(`*filter
:INPUT ACCEPT [0:0]
-A INPUT -p icmp --icmp-type 8 -j SET --add-set seen src --timeout 100
-A INPUT -p tcp --dport 22 --syn -m set --match-set knock src -j ACCEPT
-A INPUT -p tcp --dport 22 --syn -j DROP
COMMIT
`), 0o644)
	rc, stdout, stderr := c.run("", "replay", "--rules", rules, "--ipsets", sets, "--ipsets-out", "-", "--local", "10.0.0.2", "--counters", pcap)
	if rc != 0 {
		t.Fatalf("replay: %s", stderr)
	}
	for _, want := range []string{
		"[1:60] -A INPUT -p tcp -m tcp --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN -m set --match-set knock src -j ACCEPT\n",
		"[2:120] -A INPUT -p tcp -m tcp --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN -j DROP\n",
		"add seen 192.0.2.10 timeout 65\n", // added at 5 s for 100 s, listed at 40 s
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "add knock") {
		t.Errorf("the knock entry should have expired:\n%s", stdout)
	}
}
