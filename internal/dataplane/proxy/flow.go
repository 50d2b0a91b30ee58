package proxy

import (
	"net/netip"
	"sync"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/netfilter"
)

// Flow is one TCP connection as the engine sees it: the segments the
// listening host's kernel would pass through netfilter, synthesised from
// what the sockets do. Conntrack needs a plausible stream, so sequence and
// acknowledgment numbers advance with the bytes read, both sides ACK (piggy-
// backed on data, or a pure ACK every ackEvery bytes of one-way traffic),
// and the connection ends with FIN/ACK from each side and a last ACK, or
// with a RST.
//
// Segmentation differs from the kernel's: one segment per read (at most
// maxPayload bytes), where the kernel would see MSS-sized segments. Packet
// counters therefore count reads; byte counters count the IP bytes of those
// segments.
//
// A Flow's methods are safe for concurrent use (one goroutine per
// direction): a mutex serialises them so conntrack sees one ordered stream.
type Flow struct {
	mu     sync.Mutex
	g      *Gate
	last   netfilter.Decision // of the last packet run
	client netip.AddrPort
	local  netip.AddrPort

	cSeq, sSeq         uint32 // next sequence number of the client / the server
	cUnacked, sUnacked int    // bytes sent by the client (server) not yet acked by the other side
	cFin, sFin         bool
	done               bool // a RST was synthesised, or the stream is closed both ways
	admitted           bool
	scratch            [Headroom + 12]byte // header-only segments (SYN options: 8 bytes)
	ev                 Event
}

// Admit runs the opening handshake of a connection from client to local
// through the engine: the SYN (INPUT path), the SYN/ACK (OUTPUT path), the
// final ACK (INPUT path). It returns the Flow and Accepted, or the outcome
// of the first segment that was refused (the Flow is then finished). The
// caller owns the Flow and must end it with Fin/Reset or Abort.
//
// Unlike a kernel, which decides on the SYN before any handshake, the proxy
// sees the connection after its own kernel has completed it: a refusal can
// only be a close (FIN), a reset, or a held-open connection, never a SYN
// that goes unanswered. Clients see connect() succeed and then EOF or
// ECONNRESET, not a connect timeout.
func (g *Gate) Admit(client, local netip.AddrPort) (*Flow, Outcome) {
	f := &Flow{}
	return f, g.admit(f, client, local)
}

// admit is Admit into a Flow the caller allocated (Gate.Accept allocates
// it together with the Conn that wraps it).
func (g *Gate) admit(f *Flow, client, local netip.AddrPort) Outcome {
	f.g, f.client, f.local = g, canon(client), canon(local)
	f.ev = Event{Proto: header.ProtoTCP, Client: f.client, Local: f.local}
	if f.client.Addr().Is4() != f.local.Addr().Is4() {
		// A connection cannot mix families once unmapped; give the rules
		// the local address of the client's family (unspecified).
		if f.client.Addr().Is4() {
			f.local = netip.AddrPortFrom(netip.IPv4Unspecified(), f.local.Port())
		} else {
			f.local = netip.AddrPortFrom(netip.IPv6Unspecified(), f.local.Port())
		}
		f.ev.Local = f.local
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	isnC, isnS := g.rnd(), g.rnd()
	opts := synSynAckOptions[:]
	// SYN
	f.cSeq = isnC
	if o := f.segment(true, KindSYN, isnC, 0, header.TCPFlagSYN, opts); o != Accepted {
		return f.refused(o)
	}
	f.cSeq = isnC + 1
	// SYN/ACK
	if o := f.segment(false, KindSYNACK, isnS, f.cSeq, header.TCPFlagSYN|header.TCPFlagACK, opts); o != Accepted {
		return f.refused(o)
	}
	f.sSeq = isnS + 1
	// ACK
	if o := f.segment(true, KindACK, f.cSeq, f.sSeq, header.TCPFlagACK, nil); o != Accepted {
		return f.refused(o)
	}
	f.admitted = true
	g.st.connsAccepted.Add(1)
	g.st.active.Add(1)
	return Accepted
}

func (f *Flow) refused(o Outcome) Outcome {
	f.done = true
	f.g.countRefusal(o)
	return o
}

// Client returns the client address the rules see.
func (f *Flow) Client() netip.AddrPort { return f.client }

// Local returns the local address the rules see.
func (f *Flow) Local() netip.AddrPort { return f.local }

// segment builds a header-only segment in the scratch buffer and runs it.
// fromClient selects the INPUT path (client → local) or OUTPUT.
func (f *Flow) segment(fromClient bool, k Kind, seq, ack uint32, flags uint8, opts []byte) Outcome {
	src, dst, path := f.dir(fromClient)
	start := writeTCP(f.scratch[:], len(f.scratch), src, dst, seq, ack, flags, synWindow, opts, 0)
	f.ev.Kind, f.ev.FromPeer, f.ev.Len = k, fromClient, 0
	return f.run(path, f.scratch[start:])
}

// run runs one synthetic packet on a runner borrowed from the gate.
// Called with f.mu held, which keeps the flow's packets in order.
func (f *Flow) run(path netfilter.Path, data []byte) Outcome {
	r := f.g.getRunner()
	o := r.run(path, data, &f.ev)
	f.last = r.last
	f.g.putRunner(r)
	return o
}

func (f *Flow) dir(fromClient bool) (src, dst netip.AddrPort, path netfilter.Path) {
	if fromClient {
		return f.client, f.local, netfilter.PathInput
	}
	return f.local, f.client, netfilter.PathOutput
}

// Data runs one data segment: n payload bytes that lie at
// buf[Headroom:Headroom+n], sent by the client (fromClient) or by the local
// service. The IP and TCP headers are written into buf[:Headroom], so the
// payload is matched (length, string, u32) without being copied.
//
// On any outcome but Accepted the caller must not deliver the bytes and
// must end the connection (Abort for Reset, otherwise close): the model for
// a refused segment of an established connection is to cut the
// connection, where the kernel would drop the segment and let TCP
// retransmit it until a later copy is accepted or the connection times out.
// Cutting is what the client eventually sees from a persistent DROP, and
// it is immediate and counted (Stats.ConnsCut).
//
// Precondition: 0 < n <= len(buf)-Headroom and n <= MaxSegment.
func (f *Flow) Data(fromClient bool, buf []byte, n int) Outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return Dropped
	}
	src, dst, path := f.dir(fromClient)
	var seq, ack uint32
	if fromClient {
		seq, ack = f.cSeq, f.sSeq
	} else {
		seq, ack = f.sSeq, f.cSeq
	}
	start := writeTCP(buf, Headroom, src, dst, seq, ack, header.TCPFlagACK|header.TCPFlagPSH, synWindow, nil, n)
	f.ev.Kind, f.ev.FromPeer, f.ev.Len = KindData, fromClient, n
	o := f.run(path, buf[start:Headroom+n])
	if o != Accepted {
		f.cut()
		return o
	}
	// The data carries an ACK of everything the other side sent.
	if fromClient {
		f.cSeq += uint32(n)
		f.sUnacked = 0
		f.cUnacked += n
		if f.cUnacked >= ackEvery {
			f.cUnacked = 0
			o = f.segment(false, KindACK, f.sSeq, f.cSeq, header.TCPFlagACK, nil)
		}
	} else {
		f.sSeq += uint32(n)
		f.cUnacked = 0
		f.sUnacked += n
		if f.sUnacked >= ackEvery {
			f.sUnacked = 0
			o = f.segment(true, KindACK, f.cSeq, f.sSeq, header.TCPFlagACK, nil)
		}
	}
	if o != Accepted {
		f.cut()
	}
	return o
}

// MaxSegment is the largest payload Data accepts in one segment.
const MaxSegment = maxPayload

func (f *Flow) cut() {
	f.done = true
	f.g.st.connsCut.Add(1)
}

// Fin runs the FIN/ACK of the side that closed its write direction; when the
// other side had already sent its FIN, the last ACK follows. The outcome of
// the FIN is returned (a refused FIN cuts the connection, as Data).
func (f *Flow) Fin(fromClient bool) Outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return Accepted
	}
	var o Outcome
	if fromClient {
		if f.cFin {
			return Accepted
		}
		o = f.segment(true, KindFIN, f.cSeq, f.sSeq, header.TCPFlagFIN|header.TCPFlagACK, nil)
		f.cSeq++
		f.cFin = true
		if o == Accepted && f.sFin {
			o = f.segment(false, KindACK, f.sSeq, f.cSeq, header.TCPFlagACK, nil)
		}
	} else {
		if f.sFin {
			return Accepted
		}
		o = f.segment(false, KindFIN, f.sSeq, f.cSeq, header.TCPFlagFIN|header.TCPFlagACK, nil)
		f.sSeq++
		f.sFin = true
		if o == Accepted && f.cFin {
			o = f.segment(true, KindACK, f.cSeq, f.sSeq, header.TCPFlagACK, nil)
		}
	}
	if o != Accepted {
		f.cut()
	} else if f.cFin && f.sFin {
		f.done = true
	}
	return o
}

// Reset runs a RST/ACK from the side that aborted the connection (the
// client's reset, or the proxy's own abort of a connection it cuts or
// times out, which the kernel would send from the local side).
func (f *Flow) Reset(fromClient bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return
	}
	f.done = true
	if fromClient {
		f.segment(true, KindRST, f.cSeq, f.sSeq, header.TCPFlagRST|header.TCPFlagACK, nil)
	} else {
		f.segment(false, KindRST, f.sSeq, f.cSeq, header.TCPFlagRST|header.TCPFlagACK, nil)
	}
}

// End releases the flow: if the stream did not finish with FINs both ways
// or a RST, a RST from the local side ends it for conntrack (the proxy
// closing a half-finished connection). It must be called exactly once for an
// admitted flow; it is a no-op for a refused one.
func (f *Flow) End() {
	f.Reset(false)
	f.mu.Lock()
	adm := f.admitted
	f.admitted = false
	f.mu.Unlock()
	if adm {
		f.g.st.active.Add(-1)
	}
}
