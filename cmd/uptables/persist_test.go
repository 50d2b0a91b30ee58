package main

import (
	"github.com/alicebob/miniredis/v2"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestProxyPersistsRecentAcrossRestart: a client on the recent list stays
// on it (and blocked) after the daemon restarts, the pain of "lists lost on
// reboot": run --proxy --persist-dir DIR saves at exit and restores at
// start.
func TestProxyPersistsRecentAcrossRestart(t *testing.T) {
	backend := startEchoBackend(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	// Three new connections within an hour are allowed, the fourth is dropped.
	if err := os.WriteFile(rules, []byte(`-A INPUT -p tcp --syn -m recent --name GATE --rcheck --seconds 3600 --hitcount 3 -j DROP
-A INPUT -p tcp --syn -m recent --name GATE --set
`), 0o644); err != nil {
		t.Fatal(err)
	}
	persistDir := filepath.Join(dir, "state")
	sock := filepath.Join(dir, "ctl.sock")
	run := func(conns int) string {
		t.Helper()
		d := startProxyDaemon(t, "--rules", rules, "--proxy", "tcp:127.0.0.1:0="+backend.Addr().String(),
			"--persist-dir", persistDir, "--control", sock)
		addr := d.addr
		var got []byte
		for i := 0; i < conns; i++ {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			b := make([]byte, 1)
			if _, err := c.Write([]byte("x")); err == nil {
				if _, err := io.ReadFull(c, b); err == nil {
					got = append(got, 'A')
					c.Close()
					continue
				}
			}
			got = append(got, 'D')
			c.Close()
		}
		d.stop()
		return string(got)
	}
	if got := run(2); got != "AA" {
		t.Fatalf("first run: %s, want AA", got)
	}
	if _, err := os.Stat(filepath.Join(persistDir, "state.json")); err != nil {
		t.Fatalf("no state saved at exit: %v", err)
	}
	// Restarted: the two earlier connections still count.
	if got := run(2); got != "AD" {
		t.Fatalf("after a restart: %s, want AD (the list was restored)", got)
	}
}

// TestProxiesShareRecentThroughRedis: two proxy daemons with --state
// redis://... share one recent list: three attempts through the first make
// the second drop the fourth (seed rule --rcheck --seconds 3600 --hitcount 3).
func TestProxiesShareRecentThroughRedis(t *testing.T) {
	mr := miniredis.RunT(t)
	backend := startEchoBackend(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	if err := os.WriteFile(rules, []byte(`-A INPUT -p tcp --syn -m recent --name SSHPOOL --rcheck --seconds 3600 --hitcount 3 -j DROP
-A INPUT -p tcp --syn -m recent --name SSHPOOL --set
`), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "redis://" + mr.Addr() + "/0?prefix=test:recent:"
	a := startProxyDaemon(t, "--rules", rules, "--proxy", "tcp:127.0.0.1:0="+backend.Addr().String(), "--state", url)
	b := startProxyDaemon(t, "--rules", rules, "--proxy", "tcp:127.0.0.1:0="+backend.Addr().String(), "--state", url)
	try := func(addr string) byte {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1)
		if _, err := c.Write([]byte("x")); err == nil {
			if _, err := io.ReadFull(c, buf); err == nil {
				return 'A'
			}
		}
		return 'D'
	}
	got := string([]byte{try(a.addr), try(a.addr), try(a.addr), try(b.addr)})
	if got != "AAAD" {
		t.Fatalf("three through A then one through B: %s, want AAAD (B must see A's list)", got)
	}
}
