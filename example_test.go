package uptables_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uptables/uptables"
)

// echoAll accepts connections from ln until it is closed and echoes what
// each sends, recording the messages.
func echoAll(ln net.Listener, got chan<- string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			close(got)
			return
		}
		b, _ := io.ReadAll(c)
		_, _ = c.Write(b)
		c.Close()
		got <- string(b)
	}
}

// ask connects, sends msg, half-closes and reads the answer as a client
// sees it.
func ask(addr, msg string) string { return askFrom("", addr, msg) }

// askFrom is ask from the loopback source address src (127.0.0.x; ""
// lets the kernel choose).
func askFrom(src, addr, msg string) string {
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) {
			return "reset"
		}
		return "dial error: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte(msg))
	_ = c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case err != nil:
		return err.Error()
	case len(b) == 0:
		return "closed without a byte"
	}
	return "reply " + string(b)
}

// A server whose listener is wrapped only ever accepts connections the
// rules let through; Reload swaps the rules while it runs.
func ExampleFirewall_Listener() {
	open := uptables.MustLoadRules("-A INPUT -s 127.0.0.1 -j ACCEPT\n-P INPUT DROP\n")
	closed := uptables.MustLoadRules("-A INPUT -s 127.0.0.1 -j DROP\n")

	fw, err := uptables.New(open)
	if err != nil {
		fmt.Println(err)
		return
	}
	raw, _ := net.Listen("tcp", "127.0.0.1:0")
	ln := fw.Listener(raw)
	got := make(chan string, 4)
	go echoAll(ln, got)

	fmt.Println(ask(ln.Addr().String(), "first"))
	_ = fw.Reload(closed)
	fmt.Println(ask(ln.Addr().String(), "second"))
	_ = fw.Reload(open)
	fmt.Println(ask(ln.Addr().String(), "third"))
	ln.Close()
	for m := range got {
		fmt.Println("server accepted:", m)
	}
	s := fw.Stats()
	fmt.Println("accepted", s.ConnsAccepted, "dropped", s.ConnsDropped)
	// Output:
	// reply first
	// closed without a byte
	// reply third
	// server accepted: first
	// server accepted: third
	// accepted 2 dropped 1
}

// Counters are the kernel's: each rule counts the packets it matched and
// their IP bytes (here the SYN, 48 bytes with its options, and the
// handshake's last ACK, 40 bytes; the server closes without reading).
func ExampleFirewall_Counters() {
	fw, err := uptables.New(uptables.MustLoadRules("-A INPUT -p tcp -j ACCEPT\n-A INPUT -p udp -j DROP\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	raw, _ := net.Listen("tcp", "127.0.0.1:0")
	ln := fw.Listener(raw)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
	}()
	ask(ln.Addr().String(), "")
	ln.Close()
	for _, c := range fw.Counters() {
		if c.Chain == "INPUT" {
			fmt.Printf("%-28s %d packets %d bytes\n", c.Spec, c.Packets, c.Bytes)
		}
	}
	// Output:
	// -P INPUT ACCEPT              0 packets 0 bytes
	// -A INPUT -p tcp -j ACCEPT    2 packets 88 bytes
	// -A INPUT -p udp -j DROP      0 packets 0 bytes
}

// Datagrams the rules refuse on the way in are never returned by ReadFrom;
// on the way out WriteTo fails with EPERM, as sendto(2) under a DROP.
func ExampleFirewall_PacketConn() {
	fw, _ := uptables.New(uptables.MustLoadRules("-A OUTPUT -p udp -j DROP\n"))
	raw, _ := net.ListenPacket("udp", "127.0.0.1:0")
	pc := fw.PacketConn(raw)
	defer pc.Close()

	client, _ := net.Dial("udp", pc.LocalAddr().String())
	defer client.Close()
	client.Write([]byte("ping"))

	buf := make([]byte, 100)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, _ := pc.ReadFrom(buf)
	fmt.Println("received", string(buf[:n]))
	_, err := pc.WriteTo([]byte("pong"), from)
	fmt.Println(errors.Is(err, syscall.EPERM))
	// Output:
	// received ping
	// true
}

// The proxy puts the rules in front of any TCP or UDP service.
func ExampleFirewall_ListenProxy() {
	backend, _ := net.Listen("tcp", "127.0.0.1:0")
	got := make(chan string, 2)
	go echoAll(backend, got)

	fw, _ := uptables.New(uptables.MustLoadRules("-A INPUT -s 127.0.0.1 -j ACCEPT\n"))
	p, err := fw.ListenProxy(uptables.ProxyConfig{Routes: []string{"tcp:127.0.0.1:0=" + backend.Addr().String()}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ask(p.Addrs()[0].String(), "through the proxy"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(p.Shutdown(ctx))
	backend.Close()
	// Output:
	// reply through the proxy
	// <nil>
}

// newFirewall builds a firewall from one of the seeds' rule sets; the
// engine runs every extension they use, so any error fails the test.
func newFirewall(t *testing.T, rules string) *uptables.Firewall {
	t.Helper()
	r, err := uptables.LoadRules(strings.NewReader(rules))
	if err != nil {
		t.Fatal(err)
	}
	fw, err := uptables.New(r)
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

// frontend is one way to put a firewall in front of a service: start
// returns the address clients dial and a function that stops everything
// (closing every connection it accepted before returning).
type frontend struct {
	name  string
	start func(t *testing.T, fw *uptables.Firewall) (string, func())
}

// frontends are the library Listener and the proxy, in that order (the
// order matters when a test shares one firewall's state between them).
func frontends() []frontend {
	return []frontend{
		{"listener", func(t *testing.T, fw *uptables.Firewall) (string, func()) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln := fw.Listener(raw)
			var mu sync.Mutex
			var conns []net.Conn
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
					go func() { _, _ = io.Copy(c, c); c.Close() }()
				}
			}()
			return raw.Addr().String(), func() {
				ln.Close()
				<-done
				mu.Lock()
				for _, c := range conns {
					c.Close()
				}
				mu.Unlock()
			}
		}},
		{"proxy", func(t *testing.T, fw *uptables.Firewall) (string, func()) {
			backend, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for {
					c, err := backend.Accept()
					if err != nil {
						return
					}
					go func() { _, _ = io.Copy(c, c); c.Close() }()
				}
			}()
			p, err := fw.ListenProxy(uptables.ProxyConfig{Routes: []string{"tcp:127.0.0.1:0=" + backend.Addr().String()}})
			if err != nil {
				t.Fatal(err)
			}
			return p.Addrs()[0].String(), func() { p.Close(); backend.Close() }
		}},
	}
}

// probe opens a connection and reports what the client sees: "ok" when a
// byte comes back, else "reset" or "closed"; the connection stays open
// when ok (the caller closes it).
func probe(t *testing.T, addr string) (string, net.Conn) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) {
			return "reset", nil
		}
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	// A reset that arrives before the write is reported by the write (the
	// read after it then sees EOF): on a busy machine that is the order.
	if _, werr := c.Write([]byte("x")); errors.Is(werr, syscall.ECONNRESET) || errors.Is(werr, syscall.EPIPE) {
		c.Close()
		return "reset", nil
	}
	b := make([]byte, 1)
	_, err = io.ReadFull(c, b)
	switch {
	case err == nil:
		return "ok", c
	case errors.Is(err, syscall.ECONNRESET):
		c.Close()
		return "reset", nil
	}
	c.Close()
	return "closed", nil
}

// probeN runs n probes one after the other, closing each, and returns
// what the client saw, space-separated.
func probeN(t *testing.T, addr string, n int) string {
	var got []string
	for range n {
		o, c := probe(t, addr)
		if c != nil {
			c.Close()
		}
		got = append(got, o)
	}
	return strings.Join(got, " ")
}

// Seed: -m connlimit --connlimit-above 3 with REJECT tcp-reset: three live
// connections per client, the fourth is reset; closing one frees a slot
// (spec §3.2: once both sides closed, conntrack is in TIME_WAIT and the
// connection no longer counts).
func TestSeedConnlimit(t *testing.T) {
	for _, fe := range frontends() {
		t.Run(fe.name, func(t *testing.T) {
			fw := newFirewall(t, "-A INPUT -p tcp --syn -m connlimit --connlimit-above 3 -j REJECT --reject-with tcp-reset\n")
			addr, stop := fe.start(t, fw)
			defer stop()
			var open []net.Conn
			for i := 0; i < 3; i++ {
				o, c := probe(t, addr)
				if o != "ok" {
					t.Fatalf("connection %d: %s", i+1, o)
				}
				open = append(open, c)
			}
			if o, _ := probe(t, addr); o != "reset" {
				t.Fatalf("fourth connection: %s, want reset", o)
			}
			open[0].Close()
			time.Sleep(200 * time.Millisecond)
			o, c := probe(t, addr)
			if o != "ok" {
				t.Fatalf("after closing one: %s", o)
			}
			open = append(open[1:], c)
			if o, _ := probe(t, addr); o != "reset" {
				t.Fatalf("fourth live connection again: %s, want reset", o)
			}
			for _, c := range open {
				c.Close()
			}
		})
	}
}

// Seed S09/S10: recent --set on NEW, --update --seconds 60 --hitcount 10
// DROP: the tenth new connection within a minute and those after it are
// dropped (spec §4.2: the --set stamp comes first, so the 10th sees 10).
func TestSeedRecent(t *testing.T) {
	const rules = "-A INPUT -p tcp -i lo -m state --state NEW -m recent --set\n" +
		"-A INPUT -p tcp -i lo -m state --state NEW -m recent --update --seconds 60 --hitcount 10 -j DROP\n"
	const want = "ok ok ok ok ok ok ok ok ok closed closed closed"
	for _, fe := range frontends() {
		t.Run(fe.name, func(t *testing.T) {
			fw := newFirewall(t, rules)
			addr, stop := fe.start(t, fw)
			defer stop()
			if got := probeN(t, addr, 12); got != want {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
	// One firewall in front of two services shares the list, as the
	// kernel's one DEFAULT list per network namespace does: the rules
	// match neither port nor address, so the listener's 12 new
	// connections (9 accepted, 3 dropped: 15 stamps, --update stamps the
	// dropped ones too) are still within the minute when 127.0.0.1
	// connects through the proxy, and its first new connection sees at
	// least 10 hits.
	t.Run("shared list", func(t *testing.T) {
		fw := newFirewall(t, rules)
		var got []string
		for _, fe := range frontends() {
			addr, stop := fe.start(t, fw)
			got = append(got, probeN(t, addr, 12))
			stop()
		}
		if got[0] != want {
			t.Fatalf("listener: got %s\nwant %s", got[0], want)
		}
		if w := strings.TrimSpace(strings.Repeat("closed ", 12)); got[1] != w {
			t.Fatalf("proxy after the listener: got %s\nwant %s", got[1], w)
		}
	})
}

// Seed: -m limit (1/minute, burst 3) on new connections, the rest dropped.
func TestSeedLimit(t *testing.T) {
	for _, fe := range frontends() {
		t.Run(fe.name, func(t *testing.T) {
			fw := newFirewall(t, "-A INPUT -p tcp --syn -m limit --limit 1/m --limit-burst 3 -j ACCEPT\n-A INPUT -p tcp --syn -j DROP\n")
			addr, stop := fe.start(t, fw)
			defer stop()
			if got := probeN(t, addr, 5); got != "ok ok ok closed closed" {
				t.Fatalf("got %s", got)
			}
		})
	}
}

// Rules load in iptables-save format or as one iptables command per line;
// a mistake is reported as iptables reports it, with the line.
func ExampleLoadRules() {
	_, err := uptables.LoadRules(strings.NewReader(`
-A INPUT -p tcp --syn --dport 22 -m connlimit --connlimit-above 3 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp –-dport 80 -j ACCEPT`))
	fmt.Println(err)

	rules, err := uptables.LoadRules(strings.NewReader(`*filter
:INPUT DROP [0:0]
-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p tcp --dport 22 -j ACCEPT
COMMIT
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	var saved strings.Builder
	_ = rules.Save(&saved) // iptables-save format
	for _, l := range strings.Split(strings.TrimSpace(saved.String()), "\n") {
		if !strings.HasPrefix(l, "#") { // the dated header and footer
			fmt.Println(l)
		}
	}
	// Output:
	// line 3: Bad argument `–-dport'
	// Try `iptables -h' or 'iptables --help' for more information.
	// uptables: hint: ‘–-dport’ is an en dash; did you mean --dport?
	// *filter
	// :INPUT DROP [0:0]
	// :FORWARD ACCEPT [0:0]
	// :OUTPUT ACCEPT [0:0]
	// -A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
	// -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
	// COMMIT
}
