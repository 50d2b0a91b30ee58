package proxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// ErrRefused is returned by a Conn's Read or Write once the rules refused a
// segment of the connection (which is then closed or reset).
var ErrRefused = errors.New("connection refused by the rules")

// SegmentBuf is the payload size of the pooled copy buffers: one read fills
// at most this many bytes, so one synthetic segment carries at most this
// much. It is the largest payload a segment can have (MaxSegment, 64 KiB
// less the headers), which is also what one read of a loopback socket
// returns at most (the loopback MTU is 64 KiB): each read and each engine
// run moves as many bytes as it can, and a loopback stream went from 870
// to 1,130 MB/s in BenchmarkThroughput when this was raised from 32 KiB.
// Each proxied connection holds two buffers (one per direction) while it
// lives, so memory is bounded by MaxConns * 2 * (SegmentBuf+Headroom),
// 128 MiB at the default MaxConns of 1024.
const SegmentBuf = maxPayload

// bufPool hands out buffers of Headroom+SegmentBuf bytes.
var bufPool = sync.Pool{New: func() any { b := make([]byte, Headroom+SegmentBuf); return &b }}

// getBuf and putBuf wrap bufPool (the pool is immutable shared plumbing,
// not state: any buffer is as good as any other).
func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

// AdmitConfig says how a gate admits a raw connection.
type AdmitConfig struct {
	// TrustedProxies are the source ranges whose connections must start
	// with a PROXY protocol header (v1 or v2); the rules then see the
	// client it announces. Connections from elsewhere are taken as they
	// are, their first bytes never interpreted.
	TrustedProxies []netip.Prefix
	// ProxyHeaderTimeout bounds the wait for the header; 0 = 5 s.
	ProxyHeaderTimeout time.Duration
}

// AddrPort converts a net.Addr of a TCP or UDP socket.
func AddrPort(a net.Addr) netip.AddrPort {
	switch x := a.(type) {
	case *net.TCPAddr:
		return canon(x.AddrPort())
	case *net.UDPAddr:
		return canon(x.AddrPort())
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return canon(ap)
}

// Accept admits raw, a connection just accepted by the local kernel: it
// reads the PROXY header when raw comes from a trusted proxy, then runs the
// handshake through the engine (Gate.Admit). On Accepted it returns the
// wrapped connection, whose reads and writes run as data segments. On any
// other outcome it returns a nil Conn and the outcome; the caller ends raw
// with Refuse. A non-nil error (PROXY header missing or bad, I/O error
// while reading it) means raw must be closed; it was counted.
func (g *Gate) Accept(raw net.Conn, ac *AdmitConfig) (*Conn, Outcome, error) {
	client := AddrPort(raw.RemoteAddr())
	local := AddrPort(raw.LocalAddr())
	var pre []byte
	if ac != nil && Trusted(ac.TrustedProxies, client.Addr()) {
		to := ac.ProxyHeaderTimeout
		if to <= 0 {
			to = 5 * time.Second
		}
		// A socket deadline is wall-clock time; g.now is the packets'
		// clock, which may be simulated (demo, tests) and far from it.
		_ = raw.SetReadDeadline(time.Now().Add(to))
		h, rest, err := ReadProxyHeader(raw)
		_ = raw.SetReadDeadline(time.Time{})
		if err != nil {
			g.CountProxyHeaderError()
			g.log.Warn("PROXY protocol header refused", "peer", client, "local", local, "err", err)
			return nil, Dropped, err
		}
		if !h.Local {
			client = canon(h.Src)
		}
		pre = rest
	}
	// The Flow and the Conn that wraps it are one allocation.
	cf := &connFlow{}
	f := &cf.f
	o := g.admit(f, client, local)
	if o != Accepted {
		g.log.Debug("connection refused", "client", f.client, "local", f.local, "outcome", o.String(),
			"table", f.last.Table, "chain", f.last.Chain, "rule", f.last.Rule)
		return nil, o, nil
	}
	c := &cf.c
	c.Conn, c.f, c.pre = raw, f, pre
	return c, Accepted, nil
}

// connFlow holds an admitted connection's Conn and Flow together.
type connFlow struct {
	c Conn
	f Flow
}

// Refuse ends a connection the rules refused, as the client should see it:
// Reset aborts it (SO_LINGER 0: the client's next read or write fails with
// ECONNRESET); Dropped waits hold (the client sees a connection that
// stays silent, the closest a proxy can come to a SYN that is never
// answered, since its kernel already completed the handshake) or until
// stop is closed, then closes; Closed closes at once. A close sends a FIN
// (EOF to the client), unless the client had sent bytes we never read, in
// which case Linux sends a RST instead.
func Refuse(raw net.Conn, o Outcome, hold time.Duration, stop <-chan struct{}) {
	switch o {
	case Reset:
		abort(raw)
		return
	case Dropped:
		if hold > 0 {
			t := time.NewTimer(hold)
			select {
			case <-t.C:
			case <-stop:
				t.Stop()
			}
		}
	}
	closeGracefully(raw)
}

// abort closes c with a RST (SO_LINGER 0) when c is a TCP socket.
func abort(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		_ = l.SetLinger(0)
	}
	_ = c.Close()
}

func closeGracefully(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.Close()
}

// Conn is an admitted connection: every Read runs the bytes read as a
// client → local data segment through the engine before returning them,
// every Write runs the bytes as a local → client segment before sending
// them. A refused segment cuts the connection (Read/Write return
// ErrRefused). Close and CloseWrite run the FIN (and end the flow).
//
// RemoteAddr returns the client the rules see: the one announced by a
// trusted PROXY header, else the socket's peer.
type Conn struct {
	net.Conn
	f    *Flow
	pre  []byte // bytes read past a PROXY header, delivered first
	rmu  sync.Mutex
	wmu  sync.Mutex
	once sync.Once
	rerr error // sticky read error after a refusal or EOF
	werr error
}

// Flow returns the connection's flow (addresses the rules see).
func (c *Conn) Flow() *Flow { return c.f }

// RemoteAddr returns the client address the rules see.
func (c *Conn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.f.client) }

// readSegment reads at most len(buf)-Headroom bytes into buf[Headroom:],
// runs them through the engine and returns how many may be delivered. On
// io.EOF the client's FIN is run. A refused segment ends the connection and
// returns ErrRefused.
func (c *Conn) readSegment(buf []byte) (int, error) {
	if c.rerr != nil {
		return 0, c.rerr
	}
	var n int
	var err error
	if len(c.pre) > 0 {
		n = copy(buf[Headroom:], c.pre)
		c.pre = c.pre[n:]
	} else {
		n, err = c.Conn.Read(buf[Headroom:min(len(buf), Headroom+MaxSegment)])
	}
	if n > 0 {
		if o := c.f.Data(true, buf, n); o != Accepted {
			c.refused(o)
			c.rerr = ErrRefused
			return 0, ErrRefused
		}
	}
	if err == io.EOF {
		c.f.Fin(true)
		c.rerr = io.EOF
	} else if err != nil && !isTimeout(err) {
		c.f.Reset(true)
	}
	return n, err
}

// writeSegment runs buf[Headroom:Headroom+n] as a local → client segment
// and, if accepted, writes it to the client.
func (c *Conn) writeSegment(buf []byte, n int) (int, error) {
	if c.werr != nil {
		return 0, c.werr
	}
	if o := c.f.Data(false, buf, n); o != Accepted {
		c.refused(o)
		c.werr = ErrRefused
		return 0, ErrRefused
	}
	return c.Conn.Write(buf[Headroom : Headroom+n])
}

// refused ends the socket after a refused segment: RST for a reset,
// otherwise a close.
func (c *Conn) refused(o Outcome) {
	if o == Reset {
		abort(c.Conn)
	} else {
		closeGracefully(c.Conn)
	}
}

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	bp := getBuf()
	defer putBuf(bp)
	buf := (*bp)[:Headroom+min(len(p), SegmentBuf)]
	n, err := c.readSegment(buf)
	copy(p, buf[Headroom:Headroom+n])
	return n, err
}

// Write implements net.Conn.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	bp := getBuf()
	defer putBuf(bp)
	buf := *bp
	done := 0
	for done < len(p) {
		n := copy(buf[Headroom:], p[done:])
		w, err := c.writeSegment(buf, n)
		done += w
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// CloseWrite sends the local side's FIN (half-close), as
// net.TCPConn.CloseWrite.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.f.Fin(false)
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the connection. Unless the stream already ended, the local
// FIN is run and then a RST ends the flow: the proxy cannot know when (or
// whether) the client's FIN will come, and a closed flow stops counting
// for connlimit at once, as the kernel's does once the client's FIN or RST
// arrives.
func (c *Conn) Close() error {
	var err error
	c.once.Do(func() {
		c.f.Fin(false)
		c.f.End()
		err = c.Conn.Close()
	})
	return err
}

// Abort closes the connection with a RST (SO_LINGER 0) and runs the local
// side's RST.
func (c *Conn) Abort() {
	c.once.Do(func() {
		c.f.Reset(false)
		c.f.End()
		abort(c.Conn)
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
