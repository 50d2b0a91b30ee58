package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// uptables run: the proxy with a rules file, a reload, a clean stop.
func TestRunProxy(t *testing.T) {
	backend := startEchoBackend(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	if err := os.WriteFile(rules, []byte("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 127.0.0.1/32 -j ACCEPT\nCOMMIT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startProxyDaemon(t, "--rules", rules, "--proxy", "tcp:127.0.0.1:0="+backend.Addr().String())
	addr, reload, stderr := d.addr, d.sig, d.stderr
	try := func() string {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write([]byte("hi"))
		_ = c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := try(); got != "hi" {
		t.Fatalf("before reload: %q", got)
	}
	if err := os.WriteFile(rules, []byte("-A INPUT -s 127.0.0.1 -j DROP\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reload <- os.Interrupt // any value: reload
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stderr.String(), "rules reloaded") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := try(); got != "" {
		t.Fatalf("after reload to DROP: %q", got)
	}
	d.stop()
	if !strings.Contains(stderr.String(), "accepted=1 dropped=1") {
		t.Errorf("final stats line missing:\n%s", stderr.String())
	}
}

// lockedBuffer is a bytes.Buffer safe for the logger's and the test's
// goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRunProxyUsage(t *testing.T) {
	var stderr bytes.Buffer
	e := &env{stdout: io.Discard, stderr: &stderr}
	if rc := serveProxy(context.Background(), e, []string{"--proxy", "tcp::1=127.0.0.1:2"}, nil, nil); rc != 2 {
		t.Fatalf("rc %d", rc)
	}
	if rc := serveProxy(context.Background(), e, []string{"--rules", "/nonexistent", "--proxy", "sctp::1=a:2"}, nil, nil); rc != 1 {
		t.Fatalf("rc %d: %s", rc, stderr.String())
	}
}
