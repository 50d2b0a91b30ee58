package proxy

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/netfilter"
)

// udpRelay relays one UDP route. Every datagram from a client is a packet
// on the INPUT path (client → the listening address); every reply from the
// upstream is a packet on the OUTPUT path (listening address → client).
// Each client gets its own upstream socket (so replies find their client),
// kept until UDPIdleTimeout passes without traffic; sessions are bounded by
// MaxSessions. At the bound a new client takes the place of a session that
// never got a reply (the least recently active of a bounded sample), as
// conntrack's early drop evicts unassured entries when its table is full:
// a flood from spoofed sources, which never answer, cannot lock real
// clients out for the whole idle timeout. When every sampled session has
// had a reply the new client is refused (Overload), as the kernel drops a
// packet it finds no entry to evict for.
//
// The destination the rules see is the listening address. On a wildcard
// address (":5353") it is the unspecified address, since the datagram's
// real destination is not read (IP_PKTINFO) yet.
type udpRelay struct {
	s     *Server
	route Route
	pc    *net.UDPConn
	local netip.AddrPort
	up    *net.UDPAddr
	in    *runner // used by the read loop only
	ev    Event   // the read loop's event scratch
	once  sync.Once

	mu       sync.Mutex
	sessions map[netip.AddrPort]*udpSession
	wg       sync.WaitGroup // session goroutines
	lastWarn time.Time      // of the session-limit warning, at most one a second
}

// evictSample bounds the sessions looked at to find one to evict, so a
// flood at the bound costs O(1) per datagram (the kernel's early drop
// looks at a few buckets only).
const evictSample = 64

type udpSession struct {
	client netip.AddrPort // as the rules see it (unmapped)
	raw    netip.AddrPort // as the socket reported it, to write back
	conn   *net.UDPConn
	out    *runner
	ev     Event
	mu     sync.Mutex
	last   time.Time
	// replied is set once the upstream answered (conntrack's
	// SEEN_REPLY): such a session is never evicted for a new client.
	replied bool
}

func (s *Server) newUDP(r Route) (*udpRelay, error) {
	laddr, err := net.ResolveUDPAddr("udp", r.Listen)
	if err != nil {
		return nil, err
	}
	up, err := net.ResolveUDPAddr("udp", r.Upstream)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, err
	}
	u := &udpRelay{s: s, route: r, pc: pc, up: up, in: s.g.newRunner(), sessions: map[netip.AddrPort]*udpSession{}}
	u.local = AddrPort(pc.LocalAddr())
	return u, nil
}

func (u *udpRelay) close() { u.once.Do(func() { _ = u.pc.Close() }) }

// serve is the read loop; it ends when the socket is closed, then closes
// every session and waits for their goroutines.
func (u *udpRelay) serve() {
	defer u.s.loops.Done()
	defer func() {
		u.mu.Lock()
		for _, ss := range u.sessions {
			_ = ss.conn.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	}()
	g := u.s.g
	buf := make([]byte, Headroom+65535)
	for {
		n, raw, err := u.pc.ReadFromUDPAddrPort(buf[Headroom:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ICMP-caused errors on an unconnected socket: keep serving
		}
		client := canon(raw)
		local := u.localFor(client)
		start := writeUDP(buf, Headroom, client, local, n)
		u.ev = Event{Proto: header.ProtoUDP, Kind: KindDatagram, FromPeer: true, Client: client, Local: local, Len: n}
		if o := u.in.run(netfilter.PathInput, buf[start:Headroom+n], &u.ev); o != Accepted {
			g.st.dgDrop.Add(1)
			continue
		}
		ss := u.session(client, raw)
		if ss == nil {
			g.st.dgDrop.Add(1)
			continue
		}
		g.st.dgIn.Add(1)
		if _, err := ss.conn.Write(buf[Headroom : Headroom+n]); err != nil {
			g.CountUpstreamError()
			g.log.Warn("upstream failed", "client", client.String(), "upstream", u.route.Upstream, "err", err)
		}
	}
}

// localFor gives the destination the rules see, in the client's family.
func (u *udpRelay) localFor(client netip.AddrPort) netip.AddrPort {
	l := u.local
	if l.Addr().Is4() != client.Addr().Is4() {
		if client.Addr().Is4() {
			return netip.AddrPortFrom(netip.IPv4Unspecified(), l.Port())
		}
		return netip.AddrPortFrom(netip.IPv6Unspecified(), l.Port())
	}
	return l
}

// session returns the client's session, creating it (and its reply
// goroutine) if there is room; nil when the bound is reached or the
// upstream socket cannot be made.
func (u *udpRelay) session(client, raw netip.AddrPort) *udpSession {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if ss, ok := u.sessions[client]; ok {
		ss.mu.Lock()
		ss.last = now
		ss.mu.Unlock()
		return ss
	}
	g := u.s.g
	if len(u.sessions) >= u.s.cfg.MaxSessions && !u.evictLocked() {
		g.CountOverload()
		// One warning a second: a flood must not become a log flood.
		if now.Sub(u.lastWarn) >= time.Second {
			u.lastWarn = now
			g.log.Warn("UDP session limit reached", "client", client.String(), "route", u.route.String(), "max", u.s.cfg.MaxSessions)
		}
		return nil
	}
	conn, err := net.DialUDP("udp", nil, u.up)
	if err != nil {
		g.CountUpstreamError()
		g.log.Warn("upstream connect failed", "client", client.String(), "upstream", u.route.Upstream, "err", err)
		return nil
	}
	ss := &udpSession{client: client, raw: raw, conn: conn, out: g.newRunner(), last: now}
	u.sessions[client] = ss
	u.wg.Add(1)
	go u.replies(ss)
	return ss
}

// evictLocked ends the least recently active session without a reply
// among up to evictSample of them (map order is random), and reports
// whether it found one. u.mu is held. The session's goroutine sees its
// socket closed and ends.
func (u *udpRelay) evictLocked() bool {
	var victim *udpSession
	var oldest time.Time
	n := 0
	for _, ss := range u.sessions {
		if n++; n > evictSample {
			break
		}
		ss.mu.Lock()
		replied, last := ss.replied, ss.last
		ss.mu.Unlock()
		if !replied && (victim == nil || last.Before(oldest)) {
			victim, oldest = ss, last
		}
	}
	if victim == nil {
		return false
	}
	delete(u.sessions, victim.client)
	_ = victim.conn.Close()
	u.s.g.st.evicted.Add(1)
	return true
}

// replies relays the upstream's datagrams back to one client until the
// session idles out or the relay closes.
func (u *udpRelay) replies(ss *udpSession) {
	defer u.wg.Done()
	defer func() {
		u.mu.Lock()
		// An evicted session was already replaced, maybe by a new
		// session of the same client: remove only this one.
		if u.sessions[ss.client] == ss {
			delete(u.sessions, ss.client)
		}
		u.mu.Unlock()
		_ = ss.conn.Close()
	}()
	g := u.s.g
	idle := u.s.cfg.UDPIdleTimeout
	buf := make([]byte, Headroom+65535)
	local := u.localFor(ss.client)
	for {
		_ = ss.conn.SetReadDeadline(time.Now().Add(idle))
		n, err := ss.conn.Read(buf[Headroom:])
		if err != nil {
			if isTimeout(err) {
				ss.mu.Lock()
				quiet := time.Since(ss.last) >= idle
				ss.mu.Unlock()
				if quiet {
					return
				}
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ECONNREFUSED: the upstream sent port unreachable. Count it
			// and keep the session (the next datagram may succeed).
			g.CountUpstreamError()
			g.log.Warn("upstream failed", "client", ss.client.String(), "upstream", u.route.Upstream, "err", err)
			continue
		}
		ss.mu.Lock()
		ss.last = time.Now()
		ss.replied = true
		ss.mu.Unlock()
		start := writeUDP(buf, Headroom, local, ss.client, n)
		ss.ev = Event{Proto: header.ProtoUDP, Kind: KindDatagram, FromPeer: false, Client: ss.client, Local: local, Len: n}
		if o := ss.out.run(netfilter.PathOutput, buf[start:Headroom+n], &ss.ev); o != Accepted {
			g.st.dgDrop.Add(1)
			continue
		}
		g.st.dgOut.Add(1)
		if _, err := u.pc.WriteToUDPAddrPort(buf[Headroom:Headroom+n], ss.raw); err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
	}
}
