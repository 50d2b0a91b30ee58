package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"testing/iotest"
	"time"
)

// FuzzReadProxyHeader: any bytes a trusted peer sends, read whole or one
// byte at a time: no panic, errors wrap ErrProxyHeader, the header is the
// same however the bytes arrive, what is returned past the header is what
// followed it, and an accepted header round-trips through
// AppendProxyHeader.
func FuzzReadProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 4000 80\r\nhello"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 ::1 65535 1\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(AppendProxyHeader(nil, 2, netip.MustParseAddrPort("203.0.113.7:1"), netip.MustParseAddrPort("127.0.0.1:80")))
	f.Add(append(AppendProxyHeader(nil, 2, netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[::1]:80")), "data"...))
	f.Add(append(v2Signature[:], 0x20, 0x00, 0x00, 0x00))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, rest, err := ReadProxyHeader(bytes.NewReader(data))
		h1, _, err1 := ReadProxyHeader(iotest.OneByteReader(bytes.NewReader(data)))
		if (err == nil) != (err1 == nil) || h != h1 {
			t.Fatalf("whole: %+v %v; byte by byte: %+v %v", h, err, h1, err1)
		}
		if err != nil {
			if !errors.Is(err, ErrProxyHeader) {
				t.Fatalf("error %v does not wrap ErrProxyHeader", err)
			}
			return
		}
		// What was read past the header, up to the buffer's size.
		end := bytes.Index(data, []byte("\r\n")) + 2
		if h.Version == 2 {
			end = 16 + (int(data[14])<<8 | int(data[15]))
		}
		if end > v2MaxLen || len(rest) > proxyBufLen || !bytes.HasPrefix(data[end:], rest) {
			t.Fatalf("header of %d bytes, rest %d bytes not what followed it", end, len(rest))
		}
		if h.Local {
			return
		}
		if h.Src.Addr().Is4() != h.Dst.Addr().Is4() {
			t.Fatalf("mixed families %v %v", h.Src, h.Dst)
		}
		again, _, err := ReadProxyHeader(bytes.NewReader(AppendProxyHeader(nil, h.Version, h.Src, h.Dst)))
		if err != nil || again.Src != h.Src || again.Dst != h.Dst {
			t.Fatalf("round trip of %+v: %+v %v", h, again, err)
		}
	})
}

// TestProxyHeaderTimeoutWallClock: the wait for a PROXY header is bounded
// in real time even when the gate's packet clock is elsewhere (the demo's
// and tests' simulated clocks): a trusted peer that never sends the header
// is closed after ProxyHeaderTimeout, and its slot freed.
func TestProxyHeaderTimeoutWallClock(t *testing.T) {
	for _, skew := range []time.Duration{0, 100 * 365 * 24 * time.Hour, -100 * 365 * 24 * time.Hour} {
		echo := startEcho(t)
		g := newGate(t, nil, GateConfig{Now: func() time.Time { return time.Now().Add(skew) }})
		_, addr := startProxy(t, g, echo.addr(), func(c *Config) {
			c.MaxConns = 1
			c.Admit.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			c.Admit.ProxyHeaderTimeout = 300 * time.Millisecond
		})
		slow := dial(t, addr)
		start := time.Now()
		_, err := slow.Read(make([]byte, 1))
		el := time.Since(start)
		slow.Close()
		if err == nil || isTimeout(err) || el > 3*time.Second || (skew >= 0 && el < 200*time.Millisecond) {
			t.Errorf("clock skew %v: silent trusted peer: %v after %v, want closed after ~300ms", skew, err, el)
		}
		// The one slot is free again: a proper client is served.
		if got := clientOutcome(t, addr, "PROXY UNKNOWN\r\nhi"); got != "reply:hi" {
			t.Errorf("clock skew %v: next client %q", skew, got)
		}
		if n := g.Stats().ProxyHeaderErrs; n != 1 {
			t.Errorf("clock skew %v: %d header errors, want 1", skew, n)
		}
	}
}

// TestConnFloodBounded: connections far beyond MaxConns, each a slow
// client that never finishes its PROXY header: goroutines and heap stay
// bounded by MaxConns (the rest wait in the kernel's backlog or are
// refused by it), every held one is closed by the header timeout, and
// everything is released after.
func TestConnFloodBounded(t *testing.T) {
	const maxConns, clients = 16, 120
	base := runtime.NumGoroutine()
	echo := startEcho(t)
	g := newGate(t, nil, GateConfig{})
	srv, addr := startProxy(t, g, echo.addr(), func(c *Config) {
		c.MaxConns = maxConns
		c.Admit.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.Admit.ProxyHeaderTimeout = 500 * time.Millisecond
	})
	heap0 := heapInUse()
	var conns []net.Conn
	for i := 0; i < clients; i++ {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			break // the backlog is full: the kernel refuses, as it should
		}
		_, _ = c.Write([]byte("PROXY TCP4 ")) // and never the rest
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(100 * time.Millisecond)
	// The server's goroutines: accept loop plus one per held connection.
	if n := runtime.NumGoroutine() - base; n > maxConns+8 {
		t.Errorf("%d goroutines for %d connections, MaxConns %d", n, len(conns), maxConns)
	}
	if grew := int64(heapInUse()) - int64(heap0); grew > 8<<20 {
		t.Errorf("heap grew %d KiB for %d held connections", grew>>10, len(conns))
	}
	srv.mu.Lock()
	open := len(srv.open)
	srv.mu.Unlock()
	if open > maxConns {
		t.Errorf("%d connections open in the server, MaxConns %d", open, maxConns)
	}
	t.Logf("%d clients connected, %d held by the server, %d header errors so far", len(conns), open, g.Stats().ProxyHeaderErrs)
	// Each batch of MaxConns is closed after the header timeout; all are
	// gone in about (clients/MaxConns) timeouts.
	deadline := time.Now().Add(30 * time.Second)
	for g.Stats().ProxyHeaderErrs < uint64(len(conns)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := g.Stats().ProxyHeaderErrs; n != uint64(len(conns)) {
		t.Errorf("%d of %d slow clients closed", n, len(conns))
	}
	// And the proxy serves again.
	if got := clientOutcome(t, addr, "PROXY UNKNOWN\r\nok"); got != "reply:ok" {
		t.Errorf("after the flood: %q", got)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	_ = srv.Close()
	checkGoroutines(t, base+2) // the echo server's accept loop and cleanup
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

var _ = io.EOF

// TestHalfOpenConnectionsReaped: clients that half-close and never read,
// to an upstream that reads everything and never answers nor closes, are
// all ended by IdleTimeout: no goroutine or connection is left behind.
func TestHalfOpenConnectionsReaped(t *testing.T) {
	const clients = 20
	base := runtime.NumGoroutine()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var held []net.Conn
	done := make(chan struct{})
	go func() { // the silent upstream
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
			go func() { _, _ = io.Copy(io.Discard, c); <-stop }()
		}
	}()
	g := newGate(t, nil, GateConfig{})
	srv, addr := startProxy(t, g, ln.Addr().String(), func(c *Config) { c.IdleTimeout = 400 * time.Millisecond })
	var cs []net.Conn
	for i := 0; i < clients; i++ {
		c := dial(t, addr)
		_, _ = c.Write([]byte("request"))
		_ = c.(*net.TCPConn).CloseWrite()
		cs = append(cs, c)
	}
	for i, c := range cs {
		start := time.Now()
		_, err := io.ReadAll(c) // EOF or reset once the proxy gives up
		if el := time.Since(start); el > 5*time.Second || (err != nil && !isReset(err)) {
			t.Errorf("client %d: %v after %v", i, err, el)
		}
		c.Close()
	}
	// The handlers untrack just after the client saw the end.
	open := -1
	for end := time.Now().Add(5 * time.Second); open != 0 && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		srv.mu.Lock()
		open = len(srv.open)
		srv.mu.Unlock()
	}
	if open != 0 {
		t.Errorf("%d connections still open in the server", open)
	}
	_ = srv.Close()
	ln.Close()
	<-done
	close(stop)
	for _, c := range held {
		c.Close()
	}
	checkGoroutines(t, base)
}
