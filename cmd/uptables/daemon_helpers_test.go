package main

import (
	"context"
	"io"
	"net"
	"os"
	"strings"
	"testing"
)

// startEchoBackend is an upstream on 127.0.0.1 that echoes every byte;
// closed when the test ends.
func startEchoBackend(t *testing.T) net.Listener {
	t.Helper()
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return backend
}

// proxyDaemon is `uptables run --proxy ...` running in process.
type proxyDaemon struct {
	t      *testing.T
	addr   string // the first route's listening address
	stderr *lockedBuffer
	cancel context.CancelFunc
	done   chan int
	sig    chan os.Signal
	exited bool
}

// startProxyDaemon runs serveProxy with args until stop (or the test's end).
func startProxyDaemon(t *testing.T, args ...string) *proxyDaemon {
	t.Helper()
	d := &proxyDaemon{t: t, stderr: &lockedBuffer{}, done: make(chan int, 1), sig: make(chan os.Signal, 1)}
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: d.stderr, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	addrc := make(chan string, 1)
	go func() { d.done <- serveProxy(ctx, e, args, d.sig, func(a []string) { addrc <- a[0] }) }()
	select {
	case d.addr = <-addrc:
	case rc := <-d.done:
		cancel()
		t.Fatalf("daemon exited %d: %s", rc, d.stderr.String())
	}
	t.Cleanup(func() { d.stop() })
	return d
}

// stop ends the daemon and checks it exited 0.
func (d *proxyDaemon) stop() {
	if d.exited {
		return
	}
	d.exited = true
	d.cancel()
	if rc := <-d.done; rc != 0 {
		d.t.Errorf("daemon exit %d: %s", rc, d.stderr.String())
	}
}
