package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// End to end: `uptables run --proxy --control SOCK --metrics ADDR` in
// process, clients through the proxy, then every control command through
// the CLI as a user types it.
func TestControlProxyEndToEnd(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	// The plain-commands form of a rules file, as the blog posts write it.
	if err := os.WriteFile(rules, []byte(`-A INPUT -p tcp --syn -m connlimit --connlimit-above 2 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp --syn -m recent --set --name WEB
-A INPUT -p tcp -m hashlimit --hashlimit-upto 100/sec --hashlimit-mode srcip --hashlimit-name HL
`), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "uptables.sock")
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := pl.Addr().String()
	pl.Close()

	var stderr lockedBuffer
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan int, 1)
	go func() {
		done <- serveProxy(ctx, e, []string{"--rules", rules, "--proxy", "tcp:127.0.0.1:0=" + backend.Addr().String(),
			"--control", sock, "--metrics", metricsAddr}, nil, func(a []string) { addrc <- a[0] })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case rc := <-done:
		t.Fatalf("exited %d: %s", rc, stderr.String())
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if rc := <-done; rc != 0 {
			t.Errorf("daemon exit %d: %s", rc, stderr.String())
		}
	}
	defer stop()

	// Two connections held open, a third refused by connlimit.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	echo := func() (net.Conn, bool) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			c.Close()
			return nil, false
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil {
			c.Close()
			return nil, false
		}
		return c, true
	}
	for i := 0; i < 2; i++ {
		c, ok := echo()
		if !ok {
			t.Fatalf("connection %d refused", i+1)
		}
		held = append(held, c)
	}
	if c, ok := echo(); ok {
		c.Close()
		t.Fatal("third connection accepted despite connlimit above 2")
	}

	c := &cli{t: t, env: map[string]string{}}
	rc, out, errs := c.run("", "--control", sock, "-L", "INPUT", "-n", "-v", "-x")
	if rc != 0 {
		t.Fatalf("-L: %d %s", rc, errs)
	}
	if !regexp.MustCompile(`(?m)^ +1 +\d+ REJECT +6 +-- +\* +\* +0\.0\.0\.0/0 +0\.0\.0\.0/0 +tcp flags:0x17/0x02 #conn src/32 > 2 reject-with tcp-reset$`).MatchString(out) {
		t.Errorf("-L INPUT -n -v -x:\n%s", out)
	}
	// $UPTABLES_CONTROL does the same as --control.
	c.env["UPTABLES_CONTROL"] = sock
	if rc, out2, _ := c.run("", "-L", "INPUT", "-n", "-v", "-x"); rc != 0 || out2 != out {
		t.Errorf("with $UPTABLES_CONTROL: %d\n%s", rc, out2)
	}
	delete(c.env, "UPTABLES_CONTROL")

	// The refused third connection stays in the rule's bookkeeping for two
	// jiffies (8 ms), as in nf_conncount, in case another CPU is still
	// confirming it; after that the count is the two held connections.
	time.Sleep(50 * time.Millisecond)
	rc, out, _ = c.run("", "connlimit", "--control", sock)
	if rc != 0 || !strings.Contains(out, "  127.0.0.1/32              2  3 > 2: rule matches (-j REJECT)\n") {
		t.Errorf("connlimit: %d\n%s", rc, out)
	}
	rc, out, _ = c.run("", "recent", "--control", sock, "WEB")
	if rc != 0 || !regexp.MustCompile(`recent list WEB: 1 entry\n.*\n  127\.0\.0\.1 +64 +2 `).MatchString(out) {
		t.Errorf("recent WEB: %d\n%s", rc, out)
	}
	rc, out, errs = c.run("", "conntrack", "--control", sock, "-L", "-p", "tcp", "-s", "127.0.0.1")
	if rc != 0 || strings.Count(out, " ESTABLISHED src=127.0.0.1 ") != 2 || !strings.Contains(errs, "2 flow entries have been shown.") {
		t.Errorf("conntrack -L: %d\n%s%s", rc, out, errs)
	}
	rc, out, _ = c.run("", "hashlimit", "--control", sock, "HL")
	if rc != 0 || !regexp.MustCompile(`(?m)^\d+ 127\.0\.0\.1:0->0\.0\.0\.0:0 \d+ \d+ \d+$`).MatchString(out) {
		t.Errorf("hashlimit HL: %d\n%s", rc, out)
	}
	rc, out, _ = c.run("", "status", "--control", sock)
	if rc != 0 || !strings.Contains(out, "mode proxy") || !strings.Contains(out, "proxy connections: accepted 2, dropped 0, reset 1") {
		t.Errorf("status: %d\n%s", rc, out)
	}

	// A change: applied at once, written to the rules file.
	rc, _, errs = c.run("", "--control", sock, "-I", "INPUT", "-s", "127.0.0.1", "-p", "tcp", "--syn", "-j", "DROP")
	if rc != 0 || !strings.Contains(errs, "saved to "+rules) {
		t.Fatalf("-I: %d %s", rc, errs)
	}
	for _, cn := range held {
		cn.Close()
	}
	held = nil
	if c, ok := echo(); ok {
		c.Close()
		t.Error("connection accepted after -I ... -j DROP")
	}
	data, _ := os.ReadFile(rules)
	if !strings.HasPrefix(string(data), "# Generated by iptables-save") || !strings.Contains(string(data), "-A INPUT -s 127.0.0.1/32 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DROP\n") {
		t.Errorf("rules file after -I:\n%s", data)
	}
	// A failing change: same exit and message as iptables, nothing changed.
	rc, _, errs = c.run("", "--control", sock, "-D", "INPUT", "9")
	if rc != 1 || errs != "iptables: Index of deletion too big.\n" {
		t.Errorf("-D INPUT 9: %d %q", rc, errs)
	}
	if again, _ := os.ReadFile(rules); string(again) != string(data) {
		t.Error("a failing command rewrote the rules file")
	}
	rc, out, _ = c.run("", "save", "--control", sock, "-c")
	if rc != 0 || !strings.Contains(out, "] -A INPUT -s 127.0.0.1/32 -p tcp") {
		t.Errorf("save -c: %d\n%s", rc, out)
	}
	// --control and --ruleset together are refused.
	if rc, _, errs := c.run("", "--control", sock, "--ruleset", rules, "-S"); rc != 2 || !strings.Contains(errs, "exclusive") {
		t.Errorf("--control with --ruleset: %d %s", rc, errs)
	}

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`uptables_proxy_connections_total{outcome="reset"} 1`, "uptables_ruleset_loads_total 2",
		`uptables_recent_entries{list="WEB"} 1`, "uptables_conntrack_entries "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	stop()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after exit: %v", err)
	}
	rc, _, errs = c.run("", "status", "--control", sock)
	if rc != 1 || !strings.Contains(errs, "no uptables daemon is running") {
		t.Errorf("status with no daemon: %d %s", rc, errs)
	}
	backend.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after\n%s", goroutines, n, buf[:runtime.Stack(buf, true)])
	}
}

// Without a daemon the commands say so; usage of the control subcommands.
func TestControlNoDaemon(t *testing.T) {
	c := &cli{t: t, env: map[string]string{}}
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"--control", sock, "-L"}, {"recent", "--control", sock}, {"conntrack", "--control=" + sock, "-L"}} {
		rc, _, errs := c.run("", args...)
		if rc != 1 || !strings.Contains(errs, "no uptables daemon is running (nothing listens on "+sock) {
			t.Errorf("%v: %d %s", args, rc, errs)
		}
	}
	if rc, out, _ := c.run("", "conntrack", "--help"); rc != 0 || !strings.Contains(out, "usage: uptables conntrack [--control PATH] -L|-D|-F|-C") {
		t.Errorf("conntrack --help: %d %s", rc, out)
	}
	if rc, _, errs := c.run("", "--control"); rc != 2 || !strings.Contains(errs, "--control requires a socket path") {
		t.Errorf("--control without a path: %d %s", rc, errs)
	}
}

// run --nfqueue takes --control and --metrics from flags or the config
// file (flags win); the default socket is resolved at start from the
// state directory.
func TestNfqueueControlFlags(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "u.toml")
	if err := os.WriteFile(cfg, []byte("rules = \"/r\"\ncontrol = \"/c.sock\"\nmetrics = \"127.0.0.1:1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	e := &env{stderr: &stderr, getenv: func(string) string { return "" }}
	o, _ := parseNfqueueFlags(e, []string{"--config", cfg, "--metrics", "127.0.0.1:2"})
	if o == nil || o.control != "/c.sock" || o.metrics != "127.0.0.1:2" {
		t.Fatalf("%+v %s", o, stderr.String())
	}
	o, _ = parseNfqueueFlags(e, []string{"--rules", "r", "--control", "off"})
	if o == nil || o.control != "off" || o.metrics != "" {
		t.Fatalf("%+v %s", o, stderr.String())
	}
}
