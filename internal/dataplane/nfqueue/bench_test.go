package nfqueue

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestNFQueueBench measures, between two namespaces, established-TCP
// throughput (one connection, 64 KiB writes) and new TCP connections per
// second (connect + close, sequential) with no firewall, with the same
// rules in the kernel's iptables, and through uptables in exact and
// lifecycle modes. It is not part of the normal run: set UPTABLES_BENCH=1
// (scripts/bench-nfqueue.sh does). UPTABLES_BENCH_SECONDS sets each
// measurement's duration (default 3).
func TestNFQueueBench(t *testing.T) {
	if os.Getenv("UPTABLES_BENCH") == "" {
		t.Skip("benchmark: set UPTABLES_BENCH=1 (scripts/bench-nfqueue.sh)")
	}
	dur := 3 * time.Second
	if s := os.Getenv("UPTABLES_BENCH_SECONDS"); s != "" {
		var n int
		fmt.Sscan(s, &n)
		if n > 0 && n <= 60 {
			dur = time.Duration(n) * time.Second
		}
	}
	// Ten rules that do not match, then the one that accepts: the kind of
	// ruleset both firewalls can run (no port or state matches needed).
	var rules strings.Builder
	rules.WriteString(rulesHeader)
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&rules, "-A INPUT -s 192.0.2.%d/32 -j DROP\n", i)
	}
	rules.WriteString("-A INPUT -s 10.201.0.1/32 -p tcp -j ACCEPT\n-A INPUT -p icmp -j ACCEPT\nCOMMIT\n")

	type row struct {
		name      string
		mbps      float64
		connsPerS float64
	}
	var rows []row
	// The stateful variant: INVALID dropped, established accepted, new
	// connections counted by connlimit (a bound the benchmark never
	// reaches), everything else dropped.
	stateful := "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -m conntrack --ctstate INVALID -j DROP\n" +
		"-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n" +
		"-A INPUT -p tcp --syn -m connlimit --connlimit-above 1000 -j REJECT --reject-with tcp-reset\n" +
		"-A INPUT -p tcp -m conntrack --ctstate NEW -j ACCEPT\n" +
		"-A INPUT -p icmp -j ACCEPT\nCOMMIT\n"
	for _, setup := range []string{"none", "kernel iptables", "uptables exact", "uptables exact --gso=false", "uptables lifecycle",
		"kernel iptables, stateful", "uptables exact, stateful"} {
		p := newPair(t)
		sh(t, "ip", "netns", "exec", p.cli, "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1")
		sh(t, "ip", "netns", "exec", p.cli, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=10000 65000")
		var d *daemon
		switch setup {
		case "kernel iptables":
			cmd := "iptables-restore"
			out, err := runStdin(cmd, rules.String(), "ip", "netns", "exec", p.srv, cmd)
			if err != nil {
				t.Fatalf("%s: %v %s", cmd, err, out)
			}
		case "kernel iptables, stateful":
			out, err := runStdin("", stateful, "ip", "netns", "exec", p.srv, "iptables-restore")
			if err != nil {
				t.Fatalf("iptables-restore: %v %s", err, out)
			}
		case "uptables exact":
			d = p.startDaemon(t, rules.String(), "--mode", "exact")
		case "uptables exact --gso=false":
			d = p.startDaemon(t, rules.String(), "--mode", "exact", "--gso=false")
		case "uptables exact, stateful":
			d = p.startDaemon(t, stateful, "--mode", "exact")
		case "uptables lifecycle":
			d = p.startDaemon(t, rules.String(), "--mode", "lifecycle")
		}
		r := row{name: setup}
		r.mbps = benchThroughput(t, p, dur)
		r.connsPerS = benchConnRate(t, p, dur)
		if d != nil {
			d.counters()
			st, _ := os.ReadFile(d.stateDir + "/stats")
			t.Logf("%s: %s", setup, strings.TrimSpace(string(st)))
			d.stop()
		}
		rows = append(rows, r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| setup | TCP throughput (Mbit/s) | new connections/s |\n|---|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %.0f | %.0f |\n", r.name, r.mbps, r.connsPerS)
	}
	t.Logf("%v per measurement, 2 namespaces over veth:\n%s", dur, b.String())
	if f := os.Getenv("UPTABLES_BENCH_OUT"); f != "" {
		os.WriteFile(f, []byte(b.String()), 0o644)
	}
}

func runStdin(_ string, stdin string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// benchThroughput sends for dur over one connection and returns Mbit/s
// counted by the receiver.
func benchThroughput(t *testing.T, p *pair, dur time.Duration) float64 {
	var ln net.Listener
	inNS(t, p.srv, func() {
		var err error
		if ln, err = net.Listen("tcp4", "0.0.0.0:5201"); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(dur + 30*time.Second))
		buf := make([]byte, 256<<10)
		for {
			n, err := c.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	var c net.Conn
	inNS(t, p.cli, func() {
		var err error
		if c, err = net.DialTimeout("tcp4", srvAddr+":5201", 5*time.Second); err != nil {
			t.Fatal(err)
		}
	})
	buf := make([]byte, 64<<10)
	start := time.Now()
	// Warm-up excluded: count from the receiver's view after 200 ms.
	var base int64
	warm := false
	c.SetWriteDeadline(start.Add(dur + 10*time.Second))
	var measuredFrom time.Time
	for time.Since(start) < dur+200*time.Millisecond {
		if !warm && time.Since(start) > 200*time.Millisecond {
			warm, base, measuredFrom = true, got.Load(), time.Now()
		}
		if _, err := c.Write(buf); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	total := got.Load() - base
	el := time.Since(measuredFrom)
	c.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	_ = io.EOF
	return float64(total) * 8 / el.Seconds() / 1e6
}

// benchConnRate opens and closes connections sequentially for dur.
func benchConnRate(t *testing.T, p *pair, dur time.Duration) float64 {
	var ln net.Listener
	inNS(t, p.srv, func() {
		var err error
		if ln, err = net.Listen("tcp4", "0.0.0.0:5202"); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	n := 0
	var el time.Duration
	inNS(t, p.cli, func() {
		start := time.Now()
		d := net.Dialer{Timeout: 2 * time.Second}
		for time.Since(start) < dur && n < 1_000_000 {
			c, err := d.Dial("tcp4", srvAddr+":5202")
			if err != nil {
				t.Logf("dial %d: %v", n, err)
				break
			}
			c.Close()
			n++
		}
		el = time.Since(start)
	})
	return float64(n) / el.Seconds()
}
