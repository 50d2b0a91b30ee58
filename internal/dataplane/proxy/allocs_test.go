package proxy

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// connAllocs returns the heap allocations per connection of n sequential
// connections to addr (connect, one byte each way, close), counted in the
// whole process once settle reports that the far end finished with them.
func connAllocs(t testing.TB, addr string, n int, settle func() bool) float64 {
	t.Helper()
	one := func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	wait := func() {
		for end := time.Now().Add(10 * time.Second); !settle() && time.Now().Before(end); {
			time.Sleep(time.Millisecond)
		}
	}
	for range 20 { // warm pools and caches
		one()
	}
	wait()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range n {
		one()
	}
	wait()
	runtime.ReadMemStats(&m1)
	return float64(m1.Mallocs-m0.Mallocs) / float64(n)
}

// The proxy's own heap allocations per TCP connection (accept, handshake
// through the engine, upstream dial, copying, close), measured as the
// allocations of a proxied connection minus those of the same connection
// made directly to the upstream (client and echo server are the same in
// both). They were 47 per connection while each connection made its own
// engine workers, closures and trackers, 35 since; most of the rest are the
// net package's (accepted and dialled sockets, addresses, the dial's
// context). The bound leaves room for the race detector's pool behaviour
// and runtime noise.
func TestProxyAllocsPerConnection(t *testing.T) {
	echo := startEcho(t)
	g := newGate(t, filter(nil, nil), GateConfig{})
	srv, addr := startProxy(t, g, echo.addr(), nil)
	idle := func() bool {
		srv.mu.Lock()
		n := len(srv.open)
		srv.mu.Unlock()
		return n == 0 && g.Stats().ConnsActive == 0
	}
	const n = 300
	direct := connAllocs(t, echo.addr(), n, func() bool { return true })
	proxied := connAllocs(t, addr, n, idle)
	own := proxied - direct
	t.Logf("allocations per connection: direct %.1f, through the proxy %.1f, the proxy's own %.1f", direct, proxied, own)
	if own > 40 {
		t.Errorf("the proxy allocates %.1f objects per connection, want at most 40", own)
	}
}
