package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// What a client sees for each verdict on its SYN.
func TestProxyOutcomesAsClientSeesThem(t *testing.T) {
	base := runtime.NumGoroutine()
	syn := withFlags(header.TCPFlagSYN)
	cases := []struct {
		name  string
		input []*ruleset.Rule
		want  string
		stats func(Stats) uint64
	}{
		{"accept", []*ruleset.Rule{accept()}, "reply:hello", func(s Stats) uint64 { return s.ConnsAccepted }},
		{"policy accept, no rules", nil, "reply:hello", func(s Stats) uint64 { return s.ConnsAccepted }},
		{"drop", []*ruleset.Rule{drop(syn)}, "eof", func(s Stats) uint64 { return s.ConnsDropped }},
		{"reject tcp-reset", []*ruleset.Rule{reject(true, syn)}, "reset", func(s Stats) uint64 { return s.ConnsReset }},
		{"reject icmp", []*ruleset.Rule{reject(false, syn)}, "eof", func(s Stats) uint64 { return s.ConnsClosed }},
		{"drop the handshake's last ACK", []*ruleset.Rule{drop(withFlags(header.TCPFlagACK))}, "eof", func(s Stats) uint64 { return s.ConnsDropped }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			echo := startEcho(t)
			g := newGate(t, filter(tc.input, nil), GateConfig{})
			_, addr := startProxy(t, g, echo.addr(), nil)
			if got := clientOutcome(t, addr, "hello"); got != tc.want {
				t.Fatalf("client saw %q, want %q", got, tc.want)
			}
			if n := tc.stats(g.Stats()); n != 1 {
				t.Errorf("stats %+v: counter for %s = %d, want 1", g.Stats(), tc.name, n)
			}
			if tc.want != "reply:hello" && len(echo.received()) != 0 {
				t.Errorf("upstream was contacted for a refused connection")
			}
		})
	}
	checkGoroutines(t, base)
}

// OUTPUT verdicts are honoured: a dropped SYN/ACK refuses the connection.
func TestProxyOutputDropRefuses(t *testing.T) {
	echo := startEcho(t)
	g := newGate(t, filter(nil, []*ruleset.Rule{drop(withFlags(header.TCPFlagSYN | header.TCPFlagACK))}), GateConfig{})
	_, addr := startProxy(t, g, echo.addr(), nil)
	if got := clientOutcome(t, addr, "x"); got != "eof" {
		t.Fatalf("client saw %q, want eof", got)
	}
	if s := g.Stats(); s.ConnsDropped != 1 || s.ConnsAccepted != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A DROP hold keeps the refused connection open and silent, then closes it.
func TestProxyDropHold(t *testing.T) {
	echo := startEcho(t)
	g := newGate(t, filter([]*ruleset.Rule{drop()}, nil), GateConfig{})
	_, addr := startProxy(t, g, echo.addr(), func(c *Config) { c.DropHold = 400 * time.Millisecond })
	c := dial(t, addr)
	defer c.Close()
	start := time.Now()
	n, err := c.Read(make([]byte, 10))
	if n != 0 || err != io.EOF {
		t.Fatalf("read = %d, %v; want 0, EOF", n, err)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("closed after %v, want the 400ms hold", el)
	}
}

// A refused data segment cuts the connection; the upstream never gets it.
func TestProxyDataSegmentDropCuts(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *ruleset.Rule
		want string
	}{
		{"drop", drop(withPayload("BAD")), "eof"},
		{"reject tcp-reset", reject(true, withPayload("BAD")), "reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			echo := startEcho(t)
			g := newGate(t, filter([]*ruleset.Rule{tc.r}, nil), GateConfig{})
			_, addr := startProxy(t, g, echo.addr(), nil)
			c := dial(t, addr)
			defer c.Close()
			buf := make([]byte, 100)
			if _, err := c.Write([]byte("good")); err != nil {
				t.Fatal(err)
			}
			if n, err := io.ReadFull(c, buf[:4]); err != nil || string(buf[:n]) != "good" {
				t.Fatalf("echo = %q, %v", buf[:n], err)
			}
			if _, err := c.Write([]byte("BAD")); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			outcome := "eof"
			if isReset(err) {
				outcome = "reset"
			} else if err != nil || len(got) != 0 {
				outcome = "other: " + string(got)
			}
			if outcome != tc.want {
				t.Fatalf("after the refused segment the client saw %s (%v), want %s", outcome, err, tc.want)
			}
			if s := g.Stats(); s.ConnsCut != 1 {
				t.Errorf("ConnsCut = %d, want 1", s.ConnsCut)
			}
			c.Close()
			deadline := time.Now().Add(5 * time.Second)
			for len(echo.received()) == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			for _, r := range echo.received() {
				if strings.Contains(string(r), "BAD") {
					t.Fatalf("upstream received the refused bytes: %q", r)
				}
			}
		})
	}
}

// The engine sees a plausible TCP stream: handshake, data with advancing
// sequence numbers both ways, FIN/ACK from each side and the last ACK, on
// INPUT (client → local, iface lo) and OUTPUT (local → client), with valid
// checksums.
func TestProxySegmentsAsKernelSeesThem(t *testing.T) {
	echo := startEcho(t)
	in, out := &recordMatch{}, &recordMatch{}
	rs := filter([]*ruleset.Rule{accept(ruleset.MatchEntry{Spec: recordSpec, Match: in})},
		[]*ruleset.Rule{accept(ruleset.MatchEntry{Spec: recordSpec, Match: out})})
	g := newGate(t, rs, GateConfig{})
	s, addr := startProxy(t, g, echo.addr(), nil)
	if got := clientOutcome(t, addr, "hello"); got != "reply:hello" {
		t.Fatalf("client saw %q", got)
	}
	// Wait for the connection to end completely.
	deadline := time.Now().Add(5 * time.Second)
	for g.Stats().ConnsActive != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	_ = s
	var all []seen
	ins, outs := in.snapshot(), out.snapshot()
	// Interleave by sequence: we check each direction's own order.
	type want struct {
		flags   uint8
		payload int
	}
	const S, A, F, P = header.TCPFlagSYN, header.TCPFlagACK, header.TCPFlagFIN, header.TCPFlagPSH
	checkDir := func(name string, got []seen, w []want) {
		t.Helper()
		if len(got) != len(w) {
			t.Fatalf("%s: %d packets %+v, want %d", name, len(got), got, len(w))
		}
		for i := range w {
			if got[i].flags != w[i].flags || got[i].payload != w[i].payload || !got[i].csumValid {
				t.Errorf("%s packet %d: flags %#x payload %d csum ok %v; want flags %#x payload %d",
					name, i, got[i].flags, got[i].payload, got[i].csumValid, w[i].flags, w[i].payload)
			}
		}
	}
	// Client: SYN, ACK, data "hello", FIN, and either the final ACK (server
	// FIN first) or not (client FIN was second: the server's ACK is last).
	if len(ins) < 4 {
		t.Fatalf("INPUT saw %+v", ins)
	}
	checkDir("INPUT", ins[:4], []want{{S, 0}, {A, 0}, {A | P, 5}, {F | A, 0}})
	checkDir("OUTPUT", outs[:2], []want{{S | A, 0}, {A | P, 5}})
	all = append(ins, outs...)
	for _, p := range all {
		if p.src != "127.0.0.1" || p.dst != "127.0.0.1" {
			t.Errorf("addresses %s -> %s", p.src, p.dst)
		}
	}
	lport := uint16(s.Addrs()[0].(*net.TCPAddr).Port)
	for _, p := range ins {
		if p.dport != lport || p.in != "lo" || p.out != "" || p.hook != xt.LocalIn {
			t.Errorf("INPUT packet %+v: want dport %d, in lo", p, lport)
		}
	}
	for _, p := range outs {
		if p.sport != lport || p.out != "lo" || p.in != "" || p.hook != xt.LocalOut {
			t.Errorf("OUTPUT packet %+v: want sport %d, out lo", p, lport)
		}
	}
	// Sequence numbers: the client's data starts at ISN+1 and is acked by the
	// server's data; the FIN follows the data.
	syn, ack, data, fin := ins[0], ins[1], ins[2], ins[3]
	synack := outs[0]
	if synack.ack != syn.seq+1 || ack.seq != syn.seq+1 || ack.ack != synack.seq+1 || data.seq != syn.seq+1 {
		t.Errorf("handshake numbers: syn %+v synack %+v ack %+v data %+v", syn, synack, ack, data)
	}
	if fin.seq != data.seq+5 {
		t.Errorf("client FIN seq %d, want %d", fin.seq, data.seq+5)
	}
	// The stream ends with FIN both ways and a last ACK (TIME_WAIT for
	// conntrack), or a RST from the local side.
	nFin, nRST := 0, 0
	for _, p := range all {
		if p.flags&F != 0 {
			nFin++
		}
		if p.flags&header.TCPFlagRST != 0 {
			nRST++
		}
	}
	if nFin != 2 || nRST != 0 {
		t.Errorf("FINs %d RSTs %d, want a clean close (2 FINs): INPUT %+v OUTPUT %+v", nFin, nRST, ins, outs)
	}
	if last := all[len(ins)-1]; len(outs) > 0 && outs[len(outs)-1].flags != A && last.flags != A {
		t.Errorf("no last ACK: INPUT %+v OUTPUT %+v", ins, outs)
	}
}

// Half-close: the client's FIN reaches the upstream, which still answers.
func TestProxyHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err.Error()
			return
		}
		defer c.Close()
		b, err := io.ReadAll(c) // until the client's FIN
		if err != nil {
			done <- err.Error()
			return
		}
		_, _ = c.Write([]byte("got " + string(b)))
		done <- "ok"
	}()
	g := newGate(t, nil, GateConfig{})
	_, addr := startProxy(t, g, ln.Addr().String(), nil)
	if got := clientOutcome(t, addr, "ping"); got != "reply:got ping" {
		t.Fatalf("client saw %q", got)
	}
	if r := <-done; r != "ok" {
		t.Fatal(r)
	}
}

// An upstream that refuses: the client is reset, the failure logged with
// client, upstream and error, and counted.
func TestProxyUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	var logs logBuffer
	g := newGate(t, nil, GateConfig{Logger: logs.logger()})
	_, addr := startProxy(t, g, dead, nil)
	if got := clientOutcome(t, addr, "x"); got != "reset" && got != "eof" {
		t.Fatalf("client saw %q", got)
	}
	if s := g.Stats(); s.UpstreamErrors != 1 {
		t.Fatalf("UpstreamErrors = %d", s.UpstreamErrors)
	}
	l := logs.String()
	for _, w := range []string{"upstream connect failed", "client=127.0.0.1:", "upstream=" + dead, "err=", "refused"} {
		if !strings.Contains(l, w) {
			t.Errorf("log lacks %q:\n%s", w, l)
		}
	}
}

// Graceful shutdown lets an open connection finish; a forced one aborts it.
func TestProxyShutdown(t *testing.T) {
	base := runtime.NumGoroutine()
	echo := startEcho(t)
	g := newGate(t, nil, GateConfig{})
	s, addr := startProxy(t, g, echo.addr(), nil)
	c := dial(t, addr)
	buf := make([]byte, 4)
	if _, err := c.Write([]byte("one!")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res <- s.Shutdown(ctx)
	}()
	time.Sleep(200 * time.Millisecond)
	// New connections are no longer accepted.
	if c2, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c2.Close()
		t.Errorf("dial after shutdown started succeeded")
	}
	// The open one still works.
	if _, err := c.Write([]byte("two!")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "two!" {
		t.Fatalf("during shutdown: %q %v", buf, err)
	}
	select {
	case err := <-res:
		t.Fatalf("Shutdown returned %v with a connection open", err)
	default:
	}
	c.Close()
	if err := <-res; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}

	// Forced.
	s2, addr2 := startProxy(t, g, echo.addr(), nil)
	c3 := dial(t, addr2)
	defer c3.Close()
	if _, err := c3.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c3, buf[:1]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s2.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("forced Shutdown = %v", err)
	}
	if _, err := c3.Read(buf); err == nil {
		t.Fatalf("connection still open after forced shutdown")
	}
	if a := g.Stats().ConnsActive; a != 0 {
		t.Errorf("ConnsActive = %d after shutdown", a)
	}
	echo.ln.Close()
	echo.wg.Wait()
	checkGoroutines(t, base)
}

// At MaxConns the proxy stops accepting; a slot freed serves the next.
func TestProxyMaxConns(t *testing.T) {
	echo := startEcho(t)
	g := newGate(t, nil, GateConfig{})
	_, addr := startProxy(t, g, echo.addr(), func(c *Config) { c.MaxConns = 2 })
	c1, c2 := dial(t, addr), dial(t, addr)
	defer c2.Close()
	buf := make([]byte, 1)
	for _, c := range []net.Conn{c1, c2} {
		if _, err := c.Write([]byte("a")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	c3 := dial(t, addr) // the kernel completes it into the backlog
	defer c3.Close()
	if _, err := c3.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	_ = c3.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c3.Read(buf); !isTimeout(err) {
		t.Fatalf("third connection served beyond MaxConns: %v", err)
	}
	c1.Close()
	_ = c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c3, buf); err != nil || buf[0] != 'b' {
		t.Fatalf("third connection after a slot freed: %q %v", buf, err)
	}
}

// An idle connection is closed after IdleTimeout; an active one is not.
func TestProxyIdleTimeout(t *testing.T) {
	echo := startEcho(t)
	g := newGate(t, nil, GateConfig{})
	// Wide margins: a busy 2-core CI machine running other packages' tests
	// can stall this goroutine for a good fraction of a second.
	_, addr := startProxy(t, g, echo.addr(), func(c *Config) { c.IdleTimeout = 1500 * time.Millisecond })
	c := dial(t, addr)
	defer c.Close()
	buf := make([]byte, 1)
	// Active for 1 s: one byte every 100 ms keeps it open.
	for i := 0; i < 10; i++ {
		if _, err := c.Write([]byte("k")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("active connection closed at step %d: %v", i, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	if _, err := c.Read(buf); err == nil {
		t.Fatal("idle connection read data")
	}
	if el := time.Since(start); el > 6*time.Second {
		t.Fatalf("idle close took %v", el)
	}
}
