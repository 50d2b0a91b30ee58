package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// TestProxiesShareHashlimitThroughRedis: two proxy daemons with --state
// redis://... share one hashlimit table: at most 3 new connections a
// minute per client (burst 3), two through A and one through B spend the
// burst and B drops the fourth; B's control socket lists the bucket A
// filled, `uptables status` and the metrics report the shared store. With
// share=recent the same two daemons each grant their own burst.
func TestProxiesShareHashlimitThroughRedis(t *testing.T) {
	mr := miniredis.RunT(t)
	backend := startEchoBackend(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	if err := os.WriteFile(rules, []byte(`-A INPUT -p tcp --syn -m hashlimit --hashlimit-above 3/min --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name CONN -j DROP
`), 0o644); err != nil {
		t.Fatal(err)
	}
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
	for _, tc := range []struct {
		query, want string
	}{
		{"prefix=fleet1:", "AAAD"},
		{"prefix=fleet2:&share=recent", "AAAA"},
	} {
		url := "redis://" + mr.Addr() + "/0?" + tc.query
		sock := filepath.Join(dir, "b-"+tc.want+".sock")
		pl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		metricsAddr := pl.Addr().String()
		pl.Close()
		a := startProxyDaemon(t, "--rules", rules, "--proxy", "tcp:127.0.0.1:0="+backend.Addr().String(), "--state", url)
		b := startProxyDaemon(t, "--rules", rules, "--proxy", "tcp:127.0.0.1:0="+backend.Addr().String(), "--state", url,
			"--control", sock, "--metrics", metricsAddr)
		got := string([]byte{try(a.addr), try(a.addr), try(b.addr), try(b.addr)})
		if got != tc.want {
			t.Fatalf("%s: two through A then two through B: %s, want %s", tc.query, got, tc.want)
		}
		if tc.want == "AAAA" {
			a.stop()
			b.stop()
			continue
		}
		c := &cli{t: t, env: map[string]string{}}
		// B lists the bucket: 4 SYNs from 127.0.0.1 (none left of the
		// burst of 3, each costing 20 s of credit).
		rc, out, errs := c.run("", "hashlimit", "--control", sock, "CONN")
		if rc != 0 || !regexp.MustCompile(`^\d+ 127\.0\.0\.1:0->0\.0\.0\.0:0 \d+ 8246337180000000 2748779060000000\n$`).MatchString(out) {
			t.Errorf("hashlimit CONN on B: %d %q %s", rc, out, errs)
		}
		rc, out, _ = c.run("", "status", "--control", sock)
		if rc != 0 || !regexp.MustCompile(`(?m)^hashlimit tables: CONN 1$`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^shared state: recent, hashlimit in redis://127\.0\.0\.1:\d+/0\?prefix=fleet1: \(fail open\): calls \d+, errors 0, skipped 0, hotdrops 0$`).MatchString(out) {
			t.Errorf("status on B: %d\n%s", rc, out)
		}
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`uptables_state_store_shared{backend="redis://`, `kind="hashlimit"} 1`,
			`uptables_state_store_calls_total{result="error"} 0`, `uptables_hashlimit_entries{table="CONN"} 1`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %q", want)
			}
		}
		if !regexp.MustCompile(`uptables_state_store_calls_total\{result="ok"\} [1-9]`).Match(body) {
			t.Errorf("metrics: no successful call counted:\n%s", body)
		}
		a.stop()
		b.stop()
	}
}
