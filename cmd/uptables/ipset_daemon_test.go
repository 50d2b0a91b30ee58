package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProxyDaemonIpsets: `uptables run --proxy --ipsets FILE` with a
// control socket. The sets exist before the rules; `uptables --control
// SOCK ipset ...` edits the live sets (an added address is dropped at
// once) and lists them byte for byte as the offline form lists the same
// sets and rules; References follows reloads; a reload that drops the
// rules naming a set keeps the set; what -j SET added survives a restart
// through --persist-dir with the time it had left.
func TestProxyDaemonIpsets(t *testing.T) {
	backend := startEchoBackend(t)
	dir := t.TempDir()
	sets := filepath.Join(dir, "sets")
	if err := os.WriteFile(sets, []byte("create bl hash:net\nadd bl 10.0.0.0/8\ncreate seen hash:ip timeout 600\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "rules")
	withSets := "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m set --match-set bl src -j DROP\n" +
		"-A INPUT -p tcp --syn -j SET --add-set seen src --timeout 300\nCOMMIT\n"
	if err := os.WriteFile(rules, []byte(withSets), 0o644); err != nil {
		t.Fatal(err)
	}
	persistDir := filepath.Join(dir, "state")
	sock := filepath.Join(dir, "ctl.sock")
	start := func() *proxyDaemon {
		return startProxyDaemon(t, "--rules", rules, "--ipsets", sets, "--proxy", "tcp:127.0.0.1:0="+backend.Addr().String(),
			"--persist-dir", persistDir, "--control", sock)
	}
	c := newCLI(t)
	ctl := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		return c.run(stdin, append([]string{"--control", sock, "ipset"}, args...)...)
	}
	try := func(addr string) bool {
		t.Helper()
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := conn.Write([]byte("x")); err != nil {
			return false
		}
		b := make([]byte, 1)
		_, err = io.ReadFull(conn, b)
		return err == nil
	}
	d := start()
	if !try(d.addr) {
		t.Fatal("127.0.0.1 is not in bl: the connection should pass")
	}
	if rc, _, errs := ctl("", "add", "bl", "127.0.0.0/30"); rc != 0 {
		t.Fatalf("ipset add: %s", errs)
	}
	if try(d.addr) {
		t.Fatal("127.0.0.1 was added to bl: the connection should be dropped")
	}
	rc, live, _ := ctl("", "list")
	if rc != 0 || !strings.Contains(live, "References: 1\n") || !strings.Contains(live, "127.0.0.1 timeout ") {
		t.Fatalf("live list (rc %d):\n%s", rc, live)
	}
	// Byte for byte the offline form on the same sets and rules.
	_, saved, _ := ctl("", "save")
	offline := filepath.Join(dir, "offline.sets")
	os.WriteFile(offline, []byte(saved), 0o644)
	_, again, _ := ctl("", "list", "bl")
	_, off, offErr := c.run("", "ipset", "--sets", offline, "--ruleset", rules, "list", "bl")
	if off != again {
		t.Fatalf("offline list differs from the live one:\noffline (%s):\n%s\nlive:\n%s", offErr, off, again)
	}
	if rc, _, errs := ctl("", "destroy", "bl"); rc != 1 || errs != "ipset v7.17: Set cannot be destroyed: it is in use by a kernel component\n" {
		t.Fatalf("destroy of a held set: rc %d %q", rc, errs)
	}
	// Restore through the socket takes standard input.
	if rc, _, errs := ctl("create tmp hash:ip\nadd tmp 192.0.2.1\n", "restore"); rc != 0 {
		t.Fatalf("restore: %s", errs)
	}
	if rc, out, _ := ctl("", "test", "tmp", "192.0.2.1"); rc != 0 || out != "" {
		t.Fatalf("test after restore: rc %d", rc)
	}
	// A reload without the set rules: the sets stay, unreferenced.
	if err := os.WriteFile(rules, []byte("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.sig <- os.Interrupt
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.stderr.String(), "rules reloaded") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if _, out, _ := ctl("", "list", "-t", "bl"); !strings.Contains(out, "References: 0\n") {
		t.Fatalf("after the reload:\n%s", out)
	}
	if !try(d.addr) {
		t.Fatal("no rule uses bl any more")
	}
	if rc, _, errs := ctl("", "destroy", "tmp"); rc != 0 {
		t.Fatalf("destroy tmp: %s", errs)
	}
	d.stop()
	// Restart with the set rules: seen keeps what -j SET added, with its time.
	if err := os.WriteFile(rules, []byte(withSets), 0o644); err != nil {
		t.Fatal(err)
	}
	d = start()
	_, out, _ := ctl("", "list", "seen")
	if !strings.Contains(out, "\n127.0.0.1 timeout 29") { // 300 s minus the test's run time
		t.Fatalf("seen after the restart:\n%s", out)
	}
	if _, out, _ := ctl("", "list", "bl"); !strings.Contains(out, "127.0.0.0/30") {
		t.Fatalf("bl after the restart lost the control socket's add:\n%s", out)
	}
	if rc, _, errs := c.run("", "ipset", "--control", sock, "list", "-n"); rc != 0 || errs != "" {
		t.Fatalf("uptables ipset --control: rc %d %s", rc, errs)
	}
	d.stop()
}
