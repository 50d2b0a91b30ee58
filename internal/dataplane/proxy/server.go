package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Route is one --proxy argument: where to listen and where to forward.
type Route struct {
	Network  string // "tcp" or "udp"
	Listen   string // host:port; ":port" listens on every address
	Upstream string // host:port (an address: no name is resolved while parsing)
	// SendProxy is the PROXY protocol version (1 or 2) written to the
	// upstream before the client's bytes; 0 = none. TCP only.
	SendProxy int
}

// String returns the route in --proxy syntax.
func (r Route) String() string {
	s := r.Network + ":" + r.Listen + "=" + r.Upstream
	switch r.SendProxy {
	case 1:
		s += ",send-proxy"
	case 2:
		s += ",send-proxy-v2"
	}
	return s
}

// ParseRoute parses "tcp:LISTEN=UPSTREAM" or "udp:LISTEN=UPSTREAM", with an
// optional ",send-proxy" or ",send-proxy-v2" (HAProxy's names) for TCP.
func ParseRoute(s string) (Route, error) {
	var r Route
	netw, rest, ok := strings.Cut(s, ":")
	if !ok || (netw != "tcp" && netw != "udp") {
		return r, fmt.Errorf("--proxy %q: want tcp:LISTEN=UPSTREAM or udp:LISTEN=UPSTREAM", s)
	}
	r.Network = netw
	rest, opt, _ := strings.Cut(rest, ",")
	switch opt {
	case "":
	case "send-proxy":
		r.SendProxy = 1
	case "send-proxy-v2":
		r.SendProxy = 2
	default:
		return r, fmt.Errorf("--proxy %q: unknown option %q (send-proxy, send-proxy-v2)", s, opt)
	}
	if r.SendProxy != 0 && netw != "tcp" {
		return r, fmt.Errorf("--proxy %q: the PROXY protocol is sent on tcp routes only", s)
	}
	r.Listen, r.Upstream, ok = strings.Cut(rest, "=")
	if !ok {
		return r, fmt.Errorf("--proxy %q: missing =UPSTREAM", s)
	}
	for _, hp := range []string{r.Listen, r.Upstream} {
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			return r, fmt.Errorf("--proxy %q: %v", s, err)
		}
		if port == "" {
			return r, fmt.Errorf("--proxy %q: %q has no port", s, hp)
		}
		if host != "" {
			if _, err := netip.ParseAddr(host); err != nil && hp == r.Listen {
				return r, fmt.Errorf("--proxy %q: listen host %q is not an IP address", s, host)
			}
		}
	}
	return r, nil
}

// Config configures a Server.
type Config struct {
	Gate   *Gate // required
	Routes []Route
	Admit  AdmitConfig
	// MaxConns bounds the TCP connections open at once over all routes
	// (admitted, being admitted, or held after a DROP); at the bound the
	// proxy stops accepting and the kernel's listen backlog queues (then
	// drops) new ones, so memory stays bounded under a flood. 0 = 1024.
	MaxConns int
	// MaxSessions bounds the UDP client sessions per route; a datagram
	// from a new client beyond it is dropped and counted (Overload).
	// 0 = 1024.
	MaxSessions int
	// ConnectTimeout bounds the upstream dial; 0 = 5 s.
	ConnectTimeout time.Duration
	// IdleTimeout closes a TCP connection with no bytes either way for
	// that long; 0 = 5 min.
	IdleTimeout time.Duration
	// UDPIdleTimeout removes a UDP session after that long without a
	// datagram either way; 0 = 30 s (nf_conntrack_udp_timeout).
	UDPIdleTimeout time.Duration
	// DropHold is how long a connection refused by DROP is held open,
	// silent, before it is closed; 0 closes at once.
	DropHold time.Duration
}

// Server runs the routes.
type Server struct {
	cfg   Config
	g     *Gate
	log   *slog.Logger
	slots chan struct{}
	stop  chan struct{} // closed when shutdown starts: accept loops end, DROP holds end
	ctx   context.Context
	kill  context.CancelFunc // force: aborts dials and open connections

	listeners []net.Listener
	packets   []*udpRelay
	loops     sync.WaitGroup // accept and UDP loops
	conns     sync.WaitGroup // one per TCP connection goroutine

	mu     sync.Mutex
	open   map[*session]struct{} // connections being handled, for a forced shutdown
	closed atomic.Bool
}

// tcpRoute is a TCP route as its accept loop serves it.
//
// The upstream is dialled with Dialer.DialContext and its address string,
// not Dialer.DialTCP with a parsed netip.AddrPort, though the latter skips
// a few allocations: DialTCP turns the zero local AddrPort into a non-nil
// local address and binds the socket to it, and bind(2) with port 0 scans
// the port range without the loopback TIME_WAIT reuse connect(2) has (it
// took 83% of the proxy's CPU and ran out of ports at 2,000 connections/s).
type tcpRoute struct {
	Route
}

// Listen binds every route and starts serving. On error nothing is left
// open.
func Listen(cfg Config) (*Server, error) {
	if cfg.Gate == nil {
		return nil, errors.New("proxy: Config.Gate is nil")
	}
	if len(cfg.Routes) == 0 {
		return nil, errors.New("proxy: no routes (--proxy tcp:LISTEN=UPSTREAM)")
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1024
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 1024
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.UDPIdleTimeout <= 0 {
		cfg.UDPIdleTimeout = 30 * time.Second
	}
	s := &Server{cfg: cfg, g: cfg.Gate, log: cfg.Gate.Logger(), slots: make(chan struct{}, cfg.MaxConns),
		stop: make(chan struct{}), open: map[*session]struct{}{}}
	s.ctx, s.kill = context.WithCancel(context.Background())
	for _, r := range cfg.Routes {
		var err error
		switch r.Network {
		case "tcp":
			var ln net.Listener
			if ln, err = net.Listen("tcp", r.Listen); err == nil {
				s.listeners = append(s.listeners, ln)
			}
		case "udp":
			var u *udpRelay
			if u, err = s.newUDP(r); err == nil {
				s.packets = append(s.packets, u)
			}
		default:
			err = fmt.Errorf("unknown network %q", r.Network)
		}
		if err != nil {
			s.closeAll()
			s.kill()
			return nil, fmt.Errorf("proxy: %s: %w", r, err)
		}
	}
	ti := 0
	for _, r := range cfg.Routes {
		if r.Network == "tcp" {
			ln := s.listeners[ti]
			ti++
			tr := &tcpRoute{Route: r}
			s.loops.Add(1)
			go s.acceptLoop(ln, tr)
			s.log.Info("proxy listening", "route", r.String(), "addr", ln.Addr().String())
		}
	}
	for _, u := range s.packets {
		s.loops.Add(1)
		go u.serve()
		s.log.Info("proxy listening", "route", u.route.String(), "addr", u.pc.LocalAddr().String())
	}
	return s, nil
}

// Addrs returns the bound addresses, TCP routes first then UDP, each in
// route order (useful with port 0).
func (s *Server) Addrs() []net.Addr {
	var out []net.Addr
	for _, ln := range s.listeners {
		out = append(out, ln.Addr())
	}
	for _, u := range s.packets {
		out = append(out, u.pc.LocalAddr())
	}
	return out
}

func (s *Server) closeAll() {
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	for _, u := range s.packets {
		u.close()
	}
}

// Shutdown stops accepting at once, ends DROP holds and UDP relaying,
// then waits for the open TCP connections to finish; when ctx ends first
// it aborts the rest and returns ctx.Err(). It returns when every goroutine
// the server started has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.closed.Swap(true) {
		return errors.New("proxy: server already shut down")
	}
	close(s.stop)
	s.closeAll()
	s.loops.Wait()
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.kill()
		s.mu.Lock()
		for ss := range s.open {
			ss.kill()
		}
		s.mu.Unlock()
		<-done
	}
	s.kill()
	return err
}

// Close aborts everything at once (Shutdown with an expired deadline).
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// session is one TCP connection from accept to close: what handle and
// pipe need, in one allocation (they used to allocate a closure, a
// tracker and a handful of escaping locals each).
type session struct {
	s  *Server
	rt *tcpRoute
	// raw, c and up are set under s.mu (kill reads them there).
	raw net.Conn
	c   *Conn    // once admitted
	up  net.Conn // once the upstream is connected
	// last is the wall-clock time (ns) of the last byte either way; the
	// idle timeout counts from it.
	last     atomic.Int64
	failOnce sync.Once
	failed   bool
	wg       sync.WaitGroup // the client → upstream goroutine
	// ended counts the directions that reached EOF (halfClose).
	ended atomic.Int32
}

// halfClose propagates an EOF read in one direction: the write side of
// the other socket is shut down (shutdown(2), a FIN), unless the other
// direction already ended, in which case pipe closes both sockets at once
// and close(2) sends that FIN itself (the socket's receive queue is empty,
// its EOF was read, so Linux sends a FIN, not a RST): one system call less
// per connection. For the client socket, Conn.Close runs the same FIN
// segment through the engine that Conn.CloseWrite would have run.
func (ss *session) halfClose(shutdown func()) {
	if ss.ended.Add(1) == 1 {
		shutdown()
	}
}

// kill aborts the connection (forced shutdown). Called with s.mu held.
func (ss *session) kill() {
	if ss.c != nil {
		ss.c.Abort()
	} else {
		abort(ss.raw)
	}
	if ss.up != nil {
		abort(ss.up)
	}
}

func (s *Server) acceptLoop(ln net.Listener, r *tcpRoute) {
	defer s.loops.Done()
	backoff := 5 * time.Millisecond
	for {
		select {
		case s.slots <- struct{}{}:
		case <-s.stop:
			return
		}
		raw, err := ln.Accept()
		if err != nil {
			<-s.slots
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off (bounded) instead of spinning.
			s.log.Warn("accept failed", "route", r.String(), "err", err)
			select {
			case <-time.After(backoff):
			case <-s.stop:
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.conns.Add(1)
		ss := &session{s: s, rt: r, raw: raw}
		s.mu.Lock()
		s.open[ss] = struct{}{}
		s.mu.Unlock()
		go ss.handle()
	}
}

// handle owns one accepted connection until it is fully closed.
func (ss *session) handle() {
	s, r, raw := ss.s, ss.rt, ss.raw
	defer s.conns.Done()
	defer func() { <-s.slots }()
	defer func() {
		s.mu.Lock()
		delete(s.open, ss)
		s.mu.Unlock()
	}()

	c, o, err := s.g.Accept(raw, &s.cfg.Admit)
	if err != nil {
		_ = raw.Close()
		return
	}
	if o != Accepted {
		Refuse(raw, o, s.cfg.DropHold, s.stop)
		return
	}
	s.mu.Lock()
	ss.c = c
	s.mu.Unlock()
	// No TCP keepalive on the upstream leg (Go's dialer turns it on, four
	// setsockopt calls per connection): the upstream is a service the
	// operator points the proxy at, and the idle timeout already ends a
	// connection whose peer went away. The client leg keeps Go's
	// keepalive, as before.
	d := net.Dialer{Timeout: s.cfg.ConnectTimeout, KeepAlive: -1}
	up, err := d.DialContext(s.ctx, "tcp", r.Upstream)
	if err != nil {
		s.g.CountUpstreamError()
		s.log.Warn("upstream connect failed", "client", c.f.client.String(), "local", c.f.local.String(),
			"upstream", r.Upstream, "err", err)
		c.Abort()
		return
	}
	if r.SendProxy != 0 {
		hdr := AppendProxyHeader(nil, r.SendProxy, c.f.client, c.f.local)
		if _, err := up.Write(hdr); err != nil {
			s.upstreamIOError(c, &r.Route, err)
			c.Abort()
			_ = up.Close()
			return
		}
	}
	s.mu.Lock()
	ss.up = up
	s.mu.Unlock()
	ss.pipe()
}

func (s *Server) upstreamIOError(c *Conn, r *Route, err error) {
	s.g.CountUpstreamError()
	s.log.Warn("upstream failed", "client", c.f.client.String(), "local", c.f.local.String(),
		"upstream", r.Upstream, "err", err)
}

// fail ends both sockets after an error in either direction (once).
func (ss *session) fail(upstreamFault bool, err error) {
	ss.failOnce.Do(func() {
		ss.failed = true
		if upstreamFault {
			ss.s.upstreamIOError(ss.c, &ss.rt.Route, err)
		}
		ss.c.Abort()
		abort(ss.up)
	})
}

// idleCheck is called when a read timed out: it reports whether the
// connection has been idle (no byte either way) for the idle timeout;
// otherwise it re-arms rd's deadline for the moment it would be.
//
// The read deadline is set once per idle period, not before every read:
// it fires at most idle after the last byte this direction saw, and the
// check then looks at both directions (last), so a connection is closed
// exactly when it has been idle for the timeout either way, as before,
// without a deadline update (a timer reset under the descriptor's lock)
// per read.
func (ss *session) idleCheck(rd interface{ SetReadDeadline(time.Time) error }) bool {
	idle := ss.s.cfg.IdleTimeout
	l := ss.last.Load()
	if time.Since(time.Unix(0, l)) >= idle {
		return true
	}
	_ = rd.SetReadDeadline(time.Unix(0, l).Add(idle))
	return false
}

// pipe copies both ways with fixed pooled buffers (a read is written out
// before the next read: no unbounded buffering, the slow side throttles
// the fast one through TCP flow control), propagates half-closes, and
// ends both sockets when both directions are done or either fails.
func (ss *session) pipe() {
	now := time.Now()
	ss.last.Store(now.UnixNano())
	first := now.Add(ss.s.cfg.IdleTimeout)
	_ = ss.c.Conn.SetReadDeadline(first)
	_ = ss.up.SetReadDeadline(first)
	ss.wg.Add(1)
	go ss.clientToUpstream()
	ss.upstreamToClient()
	ss.wg.Wait()
	if !ss.failed {
		_ = ss.c.Close()
		_ = ss.up.Close()
	}
}

func (ss *session) clientToUpstream() {
	defer ss.wg.Done()
	c, up := ss.c, ss.up
	bp := getBuf()
	defer putBuf(bp)
	buf := *bp
	for {
		n, err := c.readSegment(buf)
		if n > 0 {
			ss.last.Store(time.Now().UnixNano())
			if _, werr := up.Write(buf[Headroom : Headroom+n]); werr != nil {
				ss.fail(true, werr)
				return
			}
		}
		switch {
		case err == nil:
		case err == io.EOF:
			ss.halfClose(func() {
				if cw, ok := up.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
			})
			return
		case isTimeout(err) && !ss.idleCheck(c.Conn):
			continue
		case isTimeout(err):
			ss.s.log.Debug("idle timeout", "client", c.f.client.String(), "upstream", ss.rt.Upstream)
			ss.fail(false, err)
			return
		default: // client reset, refused segment, or our own abort
			ss.fail(false, err)
			return
		}
	}
}

func (ss *session) upstreamToClient() {
	c, up := ss.c, ss.up
	bp := getBuf()
	defer putBuf(bp)
	buf := *bp
	for {
		n, err := up.Read(buf[Headroom : Headroom+SegmentBuf])
		if n > 0 {
			ss.last.Store(time.Now().UnixNano())
			if _, werr := c.writeSegment(buf, n); werr != nil {
				ss.fail(false, werr)
				return
			}
		}
		switch {
		case err == nil:
		case err == io.EOF:
			ss.halfClose(func() { _ = c.CloseWrite() })
			return
		case isTimeout(err) && !ss.idleCheck(up):
			continue
		case isTimeout(err):
			ss.fail(false, err)
			return
		default:
			ss.fail(!errors.Is(err, net.ErrClosed), err)
			return
		}
	}
}
