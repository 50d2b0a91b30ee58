package proxy

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/ruleset"
)

func startUDPEcho(t testing.TB) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, a, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteToUDPAddrPort(buf[:n], a)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc
}

func udpExchange(t *testing.T, c *net.UDPConn, msg string) string {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return "none"
	}
	return string(buf[:n])
}

func TestUDPRelay(t *testing.T) {
	base := runtime.NumGoroutine()
	echo := startUDPEcho(t)
	// Datagrams containing "BAD" are dropped inbound, replies containing
	// "SECRET" outbound.
	g := newGate(t, filter([]*ruleset.Rule{drop(withPayload("BAD"))}, []*ruleset.Rule{drop(withPayload("SECRET"))}), GateConfig{})
	s, err := Listen(Config{Gate: g, UDPIdleTimeout: time.Second,
		Routes: []Route{{Network: "udp", Listen: "127.0.0.1:0", Upstream: echo.LocalAddr().String()}}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, s.Addrs()[0].(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, step := range []struct{ send, want string }{
		{"hello", "hello"}, {"BAD one", "none"}, {"SECRET", "none"}, {"again", "again"},
	} {
		if got := udpExchange(t, c, step.send); got != step.want {
			t.Errorf("sent %q: got %q, want %q", step.send, got, step.want)
		}
	}
	st := g.Stats()
	if st.DatagramsIn != 3 || st.DatagramsOut != 2 || st.DatagramsDrop != 2 {
		t.Errorf("stats %+v: want in 3, out 2, dropped 2", st)
	}
	// The session idles out.
	u := s.packets[0]
	deadline := time.Now().Add(5 * time.Second)
	for {
		u.mu.Lock()
		n := len(u.sessions)
		u.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions left after the idle timeout", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// And comes back.
	if got := udpExchange(t, c, "back"); got != "back" {
		t.Errorf("after idle: %q", got)
	}
	_ = s.Close()
	c.Close()
	checkGoroutines(t, base+2) // the echo server's goroutine and its cleanup remain
}

func TestUDPMaxSessions(t *testing.T) {
	echo := startUDPEcho(t)
	g := newGate(t, nil, GateConfig{})
	s, err := Listen(Config{Gate: g, MaxSessions: 1,
		Routes: []Route{{Network: "udp", Listen: "127.0.0.1:0", Upstream: echo.LocalAddr().String()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	to := s.Addrs()[0].(*net.UDPAddr)
	c1, _ := net.DialUDP("udp", nil, to)
	c2, _ := net.DialUDP("udp", nil, to)
	defer c1.Close()
	defer c2.Close()
	if got := udpExchange(t, c1, "one"); got != "one" {
		t.Fatalf("first client: %q", got)
	}
	if got := udpExchange(t, c2, "two"); got != "none" {
		t.Fatalf("second client beyond MaxSessions got %q", got)
	}
	if g.Stats().Overload != 1 {
		t.Errorf("Overload = %d", g.Stats().Overload)
	}
}

func TestParseRoute(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Route
		err  bool
	}{
		{"tcp:127.0.0.1:8080=127.0.0.1:80", Route{Network: "tcp", Listen: "127.0.0.1:8080", Upstream: "127.0.0.1:80"}, false},
		{"udp::53=127.0.0.1:5353", Route{Network: "udp", Listen: ":53", Upstream: "127.0.0.1:5353"}, false},
		{"tcp:[::1]:443=[::1]:8443,send-proxy-v2", Route{Network: "tcp", Listen: "[::1]:443", Upstream: "[::1]:8443", SendProxy: 2}, false},
		{"tcp::80=backend:80,send-proxy", Route{Network: "tcp", Listen: ":80", Upstream: "backend:80", SendProxy: 1}, false},
		{"sctp::80=a:1", Route{}, true},
		{"tcp::80", Route{}, true},
		{"udp::53=a:53,send-proxy", Route{}, true},
		{"tcp:host:80=a:1", Route{}, true},
		{"tcp::80=a:1,frob", Route{}, true},
		{"tcp:127.0.0.1=a:1", Route{}, true},
	} {
		got, err := ParseRoute(tc.in)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ParseRoute(%q) = %+v, %v", tc.in, got, err)
		}
		if !tc.err && got.String() != tc.in {
			t.Errorf("String() = %q, want %q", got.String(), tc.in)
		}
	}
}

// The per-segment path allocates nothing.
func TestFlowDataAllocs(t *testing.T) {
	g := newGate(t, filter([]*ruleset.Rule{accept(withPayload("nope"))}, nil), GateConfig{})
	f, o := g.Admit(netip.MustParseAddrPort("192.0.2.1:4000"), netip.MustParseAddrPort("127.0.0.1:80"))
	if o != Accepted {
		t.Fatal(o)
	}
	buf := make([]byte, Headroom+1400)
	allocs := testing.AllocsPerRun(200, func() {
		f.Data(true, buf, 1400)
		f.Data(false, buf, 1400)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per segment pair", allocs)
	}
}
