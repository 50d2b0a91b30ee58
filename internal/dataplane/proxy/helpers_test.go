package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// Test doubles for extensions, so the data plane's translation of verdicts
// is tested independently of the extensions' runtime.

type nopExt struct{}

func (nopExt) Parse(*xt.ParseContext, string, bool, string, []string) error { return nil }
func (nopExt) Final(*xt.ParseContext) error                                 { return nil }
func (nopExt) Save(*strings.Builder)                                        {}
func (nopExt) List(*strings.Builder, bool)                                  {}

// payloadMatch matches packets whose payload contains s.
type payloadMatch struct {
	nopExt
	s []byte
}

func (m *payloadMatch) Matches(c *xt.Ctx) bool { return bytes.Contains(c.P.Payload(), m.s) }

// flagMatch matches TCP packets with all of the flags set.
type flagMatch struct {
	nopExt
	flags uint8
}

func (m *flagMatch) Matches(c *xt.Ctx) bool {
	return c.P.Proto == header.ProtoTCP && c.P.TCPFlags&m.flags == m.flags
}

// recordMatch records every packet it sees and never matches.
type recordMatch struct {
	nopExt
	mu   sync.Mutex
	pkts []seen
}

type seen struct {
	hook      xt.Hook
	flags     uint8
	seq, ack  uint32
	payload   int
	sport     uint16
	dport     uint16
	src, dst  string
	in, out   string
	csumValid bool
}

func (m *recordMatch) Matches(c *xt.Ctx) bool {
	p := c.P
	s := seen{hook: c.Hook, flags: p.TCPFlags, seq: p.Seq, ack: p.Ack, payload: len(p.Data) - p.PayloadOff,
		sport: p.SrcPort, dport: p.DstPort, src: p.Src.String(), dst: p.Dst.String(), in: p.InIface, out: p.OutIface}
	l4 := p.Data[p.L4Off:]
	var ph uint16
	if p.Version == 4 {
		ph = header.PseudoHeaderSum(p.Data[12:16], p.Data[16:20], p.Proto, len(l4))
	}
	s.csumValid = header.Checksum(l4, ph) == 0
	m.mu.Lock()
	m.pkts = append(m.pkts, s)
	m.mu.Unlock()
	return false
}

func (m *recordMatch) snapshot() []seen {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]seen(nil), m.pkts...)
}

// rejectTarget emits what REJECT would (a TCP RST, or an ICMP error) and
// drops, as the engine's REJECT does.
type rejectTarget struct {
	nopExt
	rst bool
}

func (t *rejectTarget) Do(c *xt.Ctx) xt.Verdict {
	var buf [600]byte
	p := c.P
	if t.rst {
		n := header.WriteIPv4TCPReset(buf[:], p.Data[:p.HdrLen], p.Data[p.L4Off:], len(p.Data)-p.PayloadOff, 64)
		c.Out.Reply(c, buf[:n])
	} else {
		n := header.WriteIPv4ICMPError(buf[:], p.Data, 3, 3, 0, p.Dst.As4(), 0, 64)
		c.Out.Reply(c, buf[:n])
	}
	return xt.VerdictDrop
}

var (
	payloadSpec = &xt.MatchSpec{Name: "payload"}
	flagSpec    = &xt.MatchSpec{Name: "flags"}
	recordSpec  = &xt.MatchSpec{Name: "record"}
	rejectSpec  = &xt.TargetSpec{Name: "REJECT"}
)

func rule(kind ruleset.TargetKind, v ruleset.Verdict, t xt.Target, ms ...ruleset.MatchEntry) *ruleset.Rule {
	r := &ruleset.Rule{Kind: kind, Verdict: v, Matches: ms, Target: t}
	if t != nil {
		r.TSpec = rejectSpec
	}
	return r
}

func accept(ms ...ruleset.MatchEntry) *ruleset.Rule {
	return rule(ruleset.TargetVerdict, ruleset.Accept, nil, ms...)
}
func drop(ms ...ruleset.MatchEntry) *ruleset.Rule {
	return rule(ruleset.TargetVerdict, ruleset.Drop, nil, ms...)
}
func reject(rst bool, ms ...ruleset.MatchEntry) *ruleset.Rule {
	return rule(ruleset.TargetExt, 0, &rejectTarget{rst: rst}, ms...)
}
func withPayload(s string) ruleset.MatchEntry {
	return ruleset.MatchEntry{Spec: payloadSpec, Match: &payloadMatch{s: []byte(s)}}
}
func withFlags(f uint8) ruleset.MatchEntry {
	return ruleset.MatchEntry{Spec: flagSpec, Match: &flagMatch{flags: f}}
}

// filter builds a filter table with the given INPUT and OUTPUT rules.
func filter(input, output []*ruleset.Rule) *ruleset.Ruleset {
	t, _ := ruleset.NewTable("filter")
	for _, ch := range t.Chains {
		switch ch.Name {
		case "INPUT":
			ch.Rules = input
		case "OUTPUT":
			ch.Rules = output
		}
	}
	return &ruleset.Ruleset{Family: xt.IPv4, Tables: []*ruleset.Table{t}}
}

func newGate(t testing.TB, rs *ruleset.Ruleset, cfg GateConfig) *Gate {
	t.Helper()
	e := netfilter.New(netfilter.Config{Seed: 1})
	if rs != nil {
		if err := e.Load(rs); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Engine = e
	return NewGate(cfg)
}

// echoServer is an upstream on 127.0.0.1 that echoes every connection
// until EOF, then closes. It records what it received.
type echoServer struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	got  [][]byte
	hold bool // do not close after EOF until the client closes (for half-close tests it is off)
}

func startEcho(t testing.TB) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				var all []byte
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if len(all) < 1<<16 { // keep what tests inspect, not bulk transfers
						all = append(all, buf[:n]...)
					}
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				s.mu.Lock()
				s.got = append(s.got, all)
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *echoServer) addr() string { return s.ln.Addr().String() }

func (s *echoServer) received() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.got...)
}

// startProxy runs a server with one TCP route to upstream.
func startProxy(t testing.TB, g *Gate, upstream string, mod func(*Config)) (*Server, string) {
	t.Helper()
	cfg := Config{Gate: g, Routes: []Route{{Network: "tcp", Listen: "127.0.0.1:0", Upstream: upstream}}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, s.Addrs()[0].String()
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// clientOutcome writes msg, half-closes, and reads everything: what a client
// sees ("reply:<bytes>", "eof" for a close without a byte, "reset").
func clientOutcome(t testing.TB, addr, msg string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if isReset(err) {
		// The RST came before connect(2) returned on loopback.
		return "reset"
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.Close()
	_, werr := c.Write([]byte(msg))
	if werr == nil {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	got, err := io.ReadAll(c)
	switch {
	case isReset(err) || isReset(werr):
		return "reset"
	case err != nil:
		return "error:" + err.Error()
	case len(got) == 0:
		return "eof"
	}
	return "reply:" + string(got)
}

func isReset(err error) bool {
	return err != nil && (errors.Is(err, syscallECONNRESET) || strings.Contains(err.Error(), "connection reset"))
}

// goroutines waits (bounded) for the goroutine count to come back to base.
func checkGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if runtime.NumGoroutine() <= base {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	n := runtime.Stack(buf, true)
	t.Errorf("goroutine leak: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:n])
}

// logBuffer is a concurrency-safe slog destination.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var _ = packet.OK
var _ = context.Background
