package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const replayTestRules = `*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s 192.0.2.10/32 -p icmp -j ACCEPT
-A INPUT -s 192.0.2.10/32 -p tcp -j ACCEPT
-A OUTPUT -d 192.0.2.10/32
COMMIT
`

// TestGenReplay: gen writes the same capture twice, and replay of the
// ping-knock example gives the counters the scenario implies.
func TestGenReplay(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	scn := "../../examples/scenarios/ping-knock.scn"
	a, b := filepath.Join(dir, "a.pcap"), filepath.Join(dir, "b.pcap")
	for _, out := range []string{a, b} {
		if rc, _, stderr := c.run("", "gen", scn, "-o", out); rc != 0 || stderr != out+": 14 packets\n" {
			t.Fatalf("gen: rc %d stderr %q", rc, stderr)
		}
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if len(da) == 0 || !bytes.Equal(da, db) {
		t.Fatal("two gen runs differ")
	}
	rules := filepath.Join(dir, "rules")
	if err := os.WriteFile(rules, []byte(replayTestRules), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, stdout, stderr := c.run("", "replay", "--rules", rules, "--local", "10.0.0.2", a, "--counters")
	if rc != 0 {
		t.Fatalf("replay: rc %d: %s", rc, stderr)
	}
	// Client: one 128-byte ping; 3 SYNs (60 bytes) and ACK, data (40
	// bytes), ACK, FIN, ACK of the answered connection: 8 TCP packets, 420
	// bytes. Server: SYN/ACK 60, ACK 40, data 80, FIN 40, echo reply 128.
	for _, want := range []string{
		"[1:128] -A INPUT -s 192.0.2.10/32 -p icmp -j ACCEPT\n",
		"[8:420] -A INPUT -s 192.0.2.10/32 -p tcp -j ACCEPT\n",
		":OUTPUT ACCEPT [5:348]\n",
		"[5:348] -A OUTPUT -d 192.0.2.10/32\n",
		"# Completed on Thu Jan  1 00:00:40 2026\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("counters output lacks %q:\n%s", want, stdout)
		}
	}
	if stderr != "14 frames: 14 packets replayed (14 accepted, 0 dropped, 0 queued), 0 replies emitted, 0 LOG lines\n" {
		t.Errorf("summary %q", stderr)
	}
	rc, stdout, _ = c.run("", "replay", "--rules", rules, "--local", "10.0.0.2", "--format", "jsonl", a)
	if rc != 0 || strings.Count(stdout, "\n") != 14 || !strings.HasPrefix(stdout, `{"index":1,"time":"2026-01-01T00:00:00.000000000Z","src":"192.0.2.10"`) {
		t.Errorf("jsonl: rc %d\n%s", rc, stdout)
	}
	rc, stdout, _ = c.run("", "replay", "--rules", rules, "--local", "10.0.0.2", "--trace", "--trace-filter", "proto icmp", a)
	if rc != 0 || !strings.Contains(stdout, "TRACE: filter:INPUT:rule:1 match ACCEPT -A INPUT -s 192.0.2.10/32 -p icmp -j ACCEPT\n") {
		t.Errorf("trace: rc %d\n%s", rc, stdout)
	}
}

// TestReplayKnockRecent replays the ping-knock capture through the seed's
// own rules: the 128-byte ping puts the client on SSHOPEN, the SSH attempt
// 2 s later is accepted, the ones before the knock and 35 s after it fall to
// the final DROP; --recent prints the list as /proc/net/xt_recent does
// (jiffies at HZ 250 from the kernel's initial value, 5 s into the capture).
func TestReplayKnockRecent(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	pcap := filepath.Join(dir, "k.pcap")
	if rc, _, stderr := c.run("", "gen", "../../examples/scenarios/ping-knock.scn", "-o", pcap); rc != 0 {
		t.Fatalf("gen: %s", stderr)
	}
	rules := filepath.Join(dir, "rules")
	os.WriteFile(rules, []byte(`*filter
:INPUT ACCEPT [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p icmp --icmp-type 8 -m length --length 128 -m recent --set --name SSHOPEN --rsource -j ACCEPT
-A INPUT -p icmp --icmp-type 8 -j ACCEPT
-A INPUT -p tcp --dport 22 -m state --state NEW -m recent --rcheck --seconds 15 --name SSHOPEN --rsource -j ACCEPT
-A INPUT -j DROP
COMMIT
`), 0o644)
	rc, stdout, stderr := c.run("", "replay", "--rules", rules, "--local", "10.0.0.2", "--counters", "--recent", "SSHOPEN", pcap)
	if rc != 0 {
		t.Fatalf("replay: %s", stderr)
	}
	for _, want := range []string{
		"[1:128] -A INPUT -p icmp -m icmp --icmp-type 8 -m length --length 128 -m recent --set --name SSHOPEN --mask 255.255.255.255 --rsource -j ACCEPT\n",
		"[1:60] -A INPUT -p tcp -m tcp --dport 22 -m state --state NEW -m recent --rcheck --seconds 15 --name SSHOPEN --mask 255.255.255.255 --rsource -j ACCEPT\n",
		"[2:120] -A INPUT -j DROP\n",
		"src=192.0.2.10 ttl: 64 last_seen: 4294893546 oldest_pkt: 1 4294893546\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

// TestReplayCommandRulesAndAddrtype: replay reads a rules file written as
// iptables commands (as run, demo and the library do), and -m addrtype
// knows the --local addresses as LOCAL: the 9 packets to 10.0.0.2 are
// dropped by the addrtype rule, the server's 5 replies are not.
func TestReplayCommandRulesAndAddrtype(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	pcap := filepath.Join(dir, "k.pcap")
	if rc, _, stderr := c.run("", "gen", "../../examples/scenarios/ping-knock.scn", "-o", pcap); rc != 0 {
		t.Fatalf("gen: %s", stderr)
	}
	rules := filepath.Join(dir, "rules")
	os.WriteFile(rules, []byte("# commands, not a save file\niptables -A INPUT -m addrtype --dst-type LOCAL -j DROP\n-A OUTPUT -m addrtype --src-type LOCAL\n"), 0o644)
	rc, stdout, stderr := c.run("", "replay", "--rules", rules, "--local", "10.0.0.2", "--counters", pcap)
	if rc != 0 {
		t.Fatalf("replay: rc %d: %s", rc, stderr)
	}
	for _, want := range []string{
		"[9:548] -A INPUT -m addrtype --dst-type LOCAL -j DROP\n",
		"[5:348] -A OUTPUT -m addrtype --src-type LOCAL\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestReplayErrors(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	os.WriteFile(rules, []byte(replayTestRules), 0o644)
	bad := filepath.Join(dir, "bad.pcap")
	os.WriteFile(bad, []byte("not a capture at all"), 0o644)
	cases := []struct {
		args []string
		rc   int
		want string
	}{
		{[]string{"replay", "x.pcap"}, 2, "--rules FILE is required"},
		{[]string{"replay", "--rules", rules}, 2, "no capture file given"},
		{[]string{"replay", "--rules", rules, "--format", "xml", "x.pcap"}, 2, `--format "xml": want text or jsonl`},
		{[]string{"replay", "--rules", rules, "--local", "10.0.0.256", "x.pcap"}, 2, `bad address "10.0.0.256"`},
		{[]string{"replay", "--rules", rules, "--trace-filter", "port 22", "x.pcap"}, 2, "--trace-filter needs --trace"},
		{[]string{"replay", "--rules", rules, "--trace", "--trace-filter", "net 10/8", "x.pcap"}, 2, `unknown term "net"`},
		{[]string{"replay", "--rules", rules, "--recent", "SSH", bad}, 1, `--recent: no list named "SSH"`},
		{[]string{"replay", "--rules", rules, bad}, 1, "not a pcap or pcapng file"},
		{[]string{"replay", "--rules", filepath.Join(dir, "none"), bad}, 1, "no such file"},
		{[]string{"gen", "-o", "x.pcap"}, 2, "want exactly one scenario file"},
		{[]string{"gen", rules, "-o", filepath.Join(dir, "o.pcap")}, 1, `line 1: unknown statement "*filter"`},
	}
	for _, tc := range cases {
		rc, _, stderr := c.run("", tc.args...)
		if rc != tc.rc || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: rc %d stderr %q, want %d %q", tc.args, rc, stderr, tc.rc, tc.want)
		}
	}
}
