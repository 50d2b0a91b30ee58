package proxy

import (
	"io"
	"net"
	"testing"
)

// Run with: go test -run '^$' -bench . -benchtime 2000x ./internal/dataplane/proxy
// "direct" talks to the loopback upstream itself; "proxy" goes through the
// uptables proxy with an ACCEPT-all ruleset (the engine still runs every
// synthetic packet). conns/s: connect, 1-byte round trip, close.
// Throughput: one connection, 1 MiB writes echoed back (MB/s counts one way).

func benchTargets(b *testing.B) map[string]string {
	echo := startEcho(b)
	g := newGate(b, filter(nil, nil), GateConfig{})
	_, addr := startProxy(b, g, echo.addr(), func(c *Config) { c.MaxConns = 4096 })
	return map[string]string{"direct": echo.addr(), "proxy": addr}
}

func BenchmarkNewConnections(b *testing.B) {
	targets := benchTargets(b)
	for _, name := range []string{"direct", "proxy"} {
		addr := targets[name]
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 1)
			for i := 0; i < b.N; i++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Write([]byte{'x'}); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
		})
	}
}

func BenchmarkThroughput(b *testing.B) {
	targets := benchTargets(b)
	for _, name := range []string{"direct", "proxy"} {
		addr := targets[name]
		b.Run(name, func(b *testing.B) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			chunk := make([]byte, 1<<20)
			back := make([]byte, 1<<20)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				errc := make(chan error, 1)
				go func() { _, err := c.Write(chunk); errc <- err }()
				if _, err := io.ReadFull(c, back); err != nil {
					b.Fatal(err)
				}
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
