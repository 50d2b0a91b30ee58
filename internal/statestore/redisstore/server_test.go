package redisstore

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// backend is a Redis server a test runs against.
type backend struct {
	name string
	addr string
}

// backends returns the servers to test against: a real redis-server when
// one is on PATH (CI installs it), and always miniredis, which runs the
// same Lua scripts in process, so the tests never skip.
func backends(t testing.TB) []backend {
	t.Helper()
	var out []backend
	if addr, ok := startRedisServer(t); ok {
		out = append(out, backend{"redis-server", addr})
	}
	m := miniredis.RunT(t)
	out = append(out, backend{"miniredis", m.Addr()})
	return out
}

// startRedisServer runs redis-server on a free loopback port without
// persistence in a temporary directory, stopped at the end of the test.
func startRedisServer(t testing.TB) (string, bool) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Logf("redis-server not on PATH: testing against miniredis only")
		return "", false
	}
	for attempt := 0; attempt < 3; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--daemonize", "no",
			"--protected-mode", "yes", "--loglevel", "warning")
		if err := cmd.Start(); err != nil {
			t.Fatalf("redis-server: %v", err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-done
		})
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-done:
				// lost the port to someone else: try another
				deadline = time.Time{}
				continue
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			err := c.Ping(ctx).Err()
			cancel()
			if err == nil {
				c.Close()
				return addr, true
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.Close()
	}
	t.Fatalf("redis-server did not come up")
	return "", false
}

// newClient returns a client for addr, closed at the end of the test.
func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c
}
