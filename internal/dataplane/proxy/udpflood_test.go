package proxy

import (
	"bytes"
	"net"
	"runtime"
	"testing"
	"time"
)

// startPickyUDP is an upstream that answers only datagrams starting with
// "hello": the flood's datagrams, like a spoofed source's, get no reply.
func startPickyUDP(t testing.TB) *net.UDPConn {
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
			if bytes.HasPrefix(buf[:n], []byte("hello")) {
				_, _ = pc.WriteToUDPAddrPort(buf[:n], a)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc
}

// TestUDPFloodBounded: datagrams from thousands of source addresses
// (ports on 127.0.0.1 here) against MaxSessions: sessions, goroutines and
// heap stay bounded; sessions that never got a reply make room for new
// clients, so a real client is served during the flood; a client with
// replies is never evicted by it.
func TestUDPFloodBounded(t *testing.T) {
	const maxSessions, sources = 32, 2000
	base := runtime.NumGoroutine()
	up := startPickyUDP(t)
	g := newGate(t, nil, GateConfig{})
	s, err := Listen(Config{Gate: g, MaxSessions: maxSessions, UDPIdleTimeout: 30 * time.Second,
		Routes: []Route{{Network: "udp", Listen: "127.0.0.1:0", Upstream: up.LocalAddr().String()}}})
	if err != nil {
		t.Fatal(err)
	}
	to := s.Addrs()[0].(*net.UDPAddr)
	old, err := net.DialUDP("udp", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if got := udpExchange(t, old, "hello old"); got != "hello old" {
		t.Fatalf("client before the flood: %q", got)
	}
	heap0 := heapInUse()
	for i := 0; i < sources; i++ {
		c, err := net.DialUDP("udp", nil, to)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("junk"))
		c.Close()
		if i%200 == 199 {
			time.Sleep(5 * time.Millisecond) // let the relay keep up; the socket buffer is not under test
		}
	}
	// Wait (bounded) for the relay to finish what reached its socket.
	for prev, end := uint64(0), time.Now().Add(5*time.Second); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		cur := g.Stats().DatagramsIn
		if cur == prev {
			break
		}
		prev = cur
	}
	u := s.packets[0]
	u.mu.Lock()
	n := len(u.sessions)
	u.mu.Unlock()
	st := g.Stats()
	t.Logf("%d sources: %d sessions, %d evicted, %d refused, %d goroutines over base, heap +%d KiB",
		sources, n, st.SessionsEvicted, st.Overload, runtime.NumGoroutine()-base, (int64(heapInUse())-int64(heap0))>>10)
	if n > maxSessions {
		t.Errorf("%d sessions, MaxSessions %d", n, maxSessions)
	}
	if g := runtime.NumGoroutine() - base; g > maxSessions+16 {
		t.Errorf("%d goroutines over base for MaxSessions %d", g, maxSessions)
	}
	if grew := int64(heapInUse()) - int64(heap0); grew > 16<<20 {
		t.Errorf("heap grew %d KiB", grew>>10)
	}
	// Every flood datagram that reached the relay (the socket buffer may
	// drop some) made a session, evicting an unanswered one once full,
	// unless its ephemeral port was reused and found its session; none
	// was refused while unanswered sessions were there to evict.
	junk := st.DatagramsIn - 1
	if st.Overload != 0 || st.SessionsEvicted < junk/2 || st.SessionsEvicted+uint64(n-1) > junk {
		t.Errorf("%d flood datagrams relayed: %d sessions, %d evicted, %d refused", junk, n, st.SessionsEvicted, st.Overload)
	}
	// A new real client is served at once, and the old one still is.
	c, err := net.DialUDP("udp", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := udpExchange(t, c, "hello new"); got != "hello new" {
		t.Errorf("new client during the flood: %q", got)
	}
	if got := udpExchange(t, old, "hello again"); got != "hello again" {
		t.Errorf("client with replies after the flood: %q", got)
	}
	_ = s.Close()
	old.Close()
	c.Close()
	checkGoroutines(t, base+2) // the upstream's goroutine and cleanup
}

// TestUDPNoEvictionOfAnsweredSessions: when every session has had a reply
// nothing is evicted; a new client is refused and counted (Overload).
func TestUDPNoEvictionOfAnsweredSessions(t *testing.T) {
	up := startPickyUDP(t)
	g := newGate(t, nil, GateConfig{})
	s, err := Listen(Config{Gate: g, MaxSessions: 2,
		Routes: []Route{{Network: "udp", Listen: "127.0.0.1:0", Upstream: up.LocalAddr().String()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	to := s.Addrs()[0].(*net.UDPAddr)
	var cs []*net.UDPConn
	for i := 0; i < 3; i++ {
		c, err := net.DialUDP("udp", nil, to)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	for i, want := range []string{"hello", "hello", "none"} {
		if got := udpExchange(t, cs[i], "hello"); got != want {
			t.Errorf("client %d: %q, want %q", i, got, want)
		}
	}
	if st := g.Stats(); st.SessionsEvicted != 0 || st.Overload != 1 {
		t.Errorf("evicted %d, refused %d; want 0, 1", st.SessionsEvicted, st.Overload)
	}
}
