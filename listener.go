package uptables

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/uptables/uptables/internal/dataplane/proxy"
)

// Listener wraps l so that only connections the rules accept reach
// Accept. Each accepted connection runs its handshake through the rules
// before Accept returns it; a refused one is reset (REJECT tcp-reset),
// closed (DROP, other REJECTs; after the drop hold) and never returned.
// The returned connections run their reads and writes through the rules
// as data segments and their Close as FIN; RemoteAddr is the client the
// rules saw.
//
// With WithTrustedProxies, Accept reads the PROXY header of connections
// from the trusted ranges inline: a trusted balancer that is slow to send
// it delays Accept up to the header timeout.
//
// Closing the Listener closes l and every connection still held after a
// DROP; connections already returned by Accept belong to the caller.
func (f *Firewall) Listener(l net.Listener) net.Listener {
	return &listener{Listener: l, f: f, stop: make(chan struct{}), held: make(chan struct{}, max(f.o.maxHeld, 1))}
}

type listener struct {
	net.Listener
	f    *Firewall
	stop chan struct{}
	once sync.Once
	held chan struct{} // semaphore of held (DROP) connections
	wg   sync.WaitGroup
}

// Accept returns the next connection the rules accept.
func (l *listener) Accept() (net.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c, o, err := l.f.gate.Accept(raw, &proxy.AdmitConfig{TrustedProxies: l.f.o.trusted, ProxyHeaderTimeout: l.f.o.proxyTO})
		if err != nil {
			_ = raw.Close()
			continue
		}
		if o == proxy.Accepted {
			return c, nil
		}
		if o != proxy.Dropped || l.f.o.hold <= 0 {
			proxy.Refuse(raw, o, 0, nil)
			continue
		}
		select {
		case l.held <- struct{}{}:
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				defer func() { <-l.held }()
				proxy.Refuse(raw, o, l.f.o.hold, l.stop)
			}()
		default:
			l.f.gate.CountOverload()
			proxy.Refuse(raw, o, 0, nil)
		}
	}
}

// Close closes the listener and ends the DROP holds, waiting for them.
func (l *listener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	return err
}

// PacketConn wraps pc so that ReadFrom returns only datagrams the rules
// accept on the INPUT path (others are discarded and counted) and WriteTo
// sends only datagrams they accept on the OUTPUT path, failing otherwise
// with EPERM as sendto(2) does under a netfilter DROP.
func (f *Firewall) PacketConn(pc net.PacketConn) net.PacketConn {
	return f.gate.WrapPacketConn(pc)
}

// ProxyConfig configures ListenProxy. Zero values are the defaults named.
type ProxyConfig struct {
	// Routes are "tcp:LISTEN=UPSTREAM" or "udp:LISTEN=UPSTREAM", TCP ones
	// optionally ending in ",send-proxy" or ",send-proxy-v2" to announce
	// the client to the upstream with the PROXY protocol.
	Routes []string
	// MaxConns bounds open TCP connections over all routes (1024).
	MaxConns int
	// MaxSessions bounds UDP client sessions per route (1024).
	MaxSessions int
	// ConnectTimeout bounds an upstream dial (5 s).
	ConnectTimeout time.Duration
	// IdleTimeout closes TCP connections idle both ways (5 min).
	IdleTimeout time.Duration
	// UDPIdleTimeout ends UDP sessions idle both ways (30 s).
	UDPIdleTimeout time.Duration
}

// Proxy is a running TCP/UDP proxy (ListenProxy).
type Proxy struct{ s *proxy.Server }

// ListenProxy binds the routes and proxies them through the rules: each
// client connection is admitted or refused as Listener does, then copied to
// a new connection to the upstream (half-closes propagated, fixed buffers,
// idle and connect timeouts, upstream failures logged and counted). Trusted
// proxies and the drop hold come from the firewall's options.
func (f *Firewall) ListenProxy(cfg ProxyConfig) (*Proxy, error) {
	var routes []proxy.Route
	for _, s := range cfg.Routes {
		r, err := proxy.ParseRoute(s)
		if err != nil {
			return nil, err
		}
		routes = append(routes, r)
	}
	s, err := proxy.Listen(proxy.Config{Gate: f.gate, Routes: routes,
		Admit:    proxy.AdmitConfig{TrustedProxies: f.o.trusted, ProxyHeaderTimeout: f.o.proxyTO},
		MaxConns: cfg.MaxConns, MaxSessions: cfg.MaxSessions, ConnectTimeout: cfg.ConnectTimeout,
		IdleTimeout: cfg.IdleTimeout, UDPIdleTimeout: cfg.UDPIdleTimeout, DropHold: f.o.hold})
	if err != nil {
		return nil, err
	}
	return &Proxy{s: s}, nil
}

// Addrs returns the bound addresses: TCP routes first, then UDP, each in
// route order.
func (p *Proxy) Addrs() []net.Addr { return p.s.Addrs() }

// Shutdown stops accepting, lets open connections finish until ctx ends,
// then aborts the rest (returning ctx.Err()).
func (p *Proxy) Shutdown(ctx context.Context) error { return p.s.Shutdown(ctx) }

// Close aborts every connection and stops the proxy.
func (p *Proxy) Close() error { return p.s.Close() }
