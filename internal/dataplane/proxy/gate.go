package proxy

import (
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/xt"
)

// GateConfig configures a Gate.
type GateConfig struct {
	// Engine runs the packets; required. Its ruleset may be reloaded at any
	// time: packets in flight finish on the ruleset they started with.
	Engine *netfilter.Engine
	// Logger receives data-plane events (refusals at debug level, upstream
	// failures at warn); nil = discard.
	Logger *slog.Logger
	// Now is the clock; the engine's clock is the packet timestamp taken
	// from it (limit, recent --seconds, conntrack timeouts). nil = time.Now.
	Now func() time.Time
	// Iface is the interface name the packets are given (InIface for
	// client→local packets, OutIface for local→client ones). "" = as the
	// kernel would: "lo" when the client is on this host (a loopback
	// address, or the local address itself), otherwise the interface that
	// holds the local address.
	Iface string
	// Observer, if set, is called on the packet's goroutine for every
	// synthetic packet with its outcome and the rule that decided it (the
	// trace `uptables demo` prints). It must not block.
	Observer func(Event)
	// LogLine receives the LOG target's kernel-format lines (without the
	// newline) with their syslog level; line is reused after the call.
	// nil = Logger at info level with the line as "kernel".
	LogLine func(level uint8, line []byte)
	// Rand draws initial sequence numbers; nil = math/rand/v2.
	Rand func() uint32
}

// Gate turns connections and datagrams into the packets the kernel would
// see on the listening host and asks the engine about each. It holds the
// data-plane counters. A Gate is safe for concurrent use.
type Gate struct {
	cfg    GateConfig
	log    *slog.Logger
	now    func() time.Time
	rnd    func() uint32
	uid    uint32
	gid    uint32
	ifaces sync.Map // netip.Addr -> string, interface holding a local address
	st     counters

	// free holds idle runners for the TCP flows, which borrow one per
	// synthetic packet (getRunner/putRunner) instead of owning one each:
	// a runner is two netfilter.Workers, the largest per-connection
	// allocation the proxy had. At most maxFreeRunners are kept; the number
	// in use at once is the number of packets being run at once (about
	// GOMAXPROCS), so the workers' indices, which stand for the kernel's
	// CPU number (-m cpu, NFQUEUE --queue-cpu-fanout), stay small, as on a
	// host with that many CPUs, instead of growing with every connection.
	// A long-lived worker also reaches the conntrack GC step that every
	// worker runs once per 64 packets, which short per-connection workers
	// (8 packets for a short connection) never did.
	freeMu sync.Mutex
	free   []*runner
}

// maxFreeRunners bounds Gate.free.
const maxFreeRunners = 64

// NewGate returns a gate over cfg.Engine.
func NewGate(cfg GateConfig) *Gate {
	g := &Gate{cfg: cfg, log: cfg.Logger, now: cfg.Now, rnd: cfg.Rand,
		uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.rnd == nil {
		g.rnd = rand.Uint32
	}
	return g
}

// Engine returns the engine the gate feeds.
func (g *Gate) Engine() *netfilter.Engine { return g.cfg.Engine }

// Logger returns the gate's logger (never nil).
func (g *Gate) Logger() *slog.Logger { return g.log }

// Outcome is what the data plane does with a connection or datagram after
// the engine's verdict.
type Outcome uint8

const (
	// Accepted: the packet goes on.
	Accepted Outcome = iota
	// Dropped: DROP (or a policy DROP) with no reply. A connection is
	// closed without a byte; a datagram is discarded.
	Dropped
	// Reset: REJECT --reject-with tcp-reset (the engine emitted a TCP RST).
	// The connection is aborted with SO_LINGER 0, so the client gets a RST.
	Reset
	// Closed: REJECT with an ICMP error. The proxy cannot send ICMP without
	// privileges, so a connection is closed (FIN) and a datagram discarded.
	Closed
)

var outcomeNames = [...]string{"accept", "drop", "reset", "close"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "?"
}

// Kind names a synthetic packet in an Event.
type Kind uint8

const (
	KindSYN Kind = iota
	KindSYNACK
	KindACK
	KindData
	KindFIN
	KindRST
	KindDatagram
)

var kindNames = [...]string{"SYN", "SYN/ACK", "ACK", "DATA", "FIN", "RST", "DGRAM"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "?"
}

// Event describes one synthetic packet and what became of it.
type Event struct {
	Time     time.Time
	Proto    uint8 // 6 TCP, 17 UDP
	Kind     Kind
	FromPeer bool           // true: client → local (INPUT); false: local → client (OUTPUT)
	Client   netip.AddrPort // the remote peer (the real client behind PROXY protocol)
	Local    netip.AddrPort // the listening address as the rules see it
	Len      int            // payload bytes
	Outcome  Outcome
	// Decision is the table/chain/rule (0 = policy) that took the final
	// verdict; zero when no table had a rule for the packet's path.
	Decision netfilter.Decision
}

// Stats are the data-plane counters, all since the gate was made.
type Stats struct {
	ConnsAccepted   uint64 // connections admitted (SYN, SYN/ACK and ACK accepted)
	ConnsDropped    uint64 // connections refused by DROP
	ConnsReset      uint64 // connections refused by REJECT tcp-reset
	ConnsClosed     uint64 // connections refused by REJECT with an ICMP type
	ConnsCut        uint64 // admitted connections closed because a later packet was refused
	ConnsActive     uint64 // admitted connections not yet closed
	UpstreamErrors  uint64 // upstream dial or I/O failures
	ProxyHeaderErrs uint64 // bad, missing or untrusted-but-required PROXY headers
	Overload        uint64 // connections or UDP sessions refused at the configured bound
	PacketsIn       uint64 // synthetic packets client → local run through the engine
	PacketsOut      uint64 // synthetic packets local → client run through the engine
	PacketsRefused  uint64 // synthetic packets whose verdict was not ACCEPT
	DatagramsIn     uint64 // datagrams accepted client → local
	DatagramsOut    uint64 // datagrams accepted local → client
	DatagramsDrop   uint64 // datagrams refused (either way)
	// SessionsEvicted counts UDP sessions that never got a reply, ended
	// to make room for a new client at MaxSessions (conntrack's early drop
	// of unassured entries).
	SessionsEvicted uint64
}

type counters struct {
	connsAccepted, connsDropped, connsReset, connsClosed, connsCut atomic.Uint64
	active                                                         atomic.Int64
	upstreamErrors, proxyHeaderErrs, overload                      atomic.Uint64
	pktIn, pktOut, pktRefused                                      atomic.Uint64
	dgIn, dgOut, dgDrop                                            atomic.Uint64
	evicted                                                        atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (g *Gate) Stats() Stats {
	s := &g.st
	return Stats{
		ConnsAccepted: s.connsAccepted.Load(), ConnsDropped: s.connsDropped.Load(),
		ConnsReset: s.connsReset.Load(), ConnsClosed: s.connsClosed.Load(), ConnsCut: s.connsCut.Load(),
		ConnsActive:    uint64(max(s.active.Load(), 0)),
		UpstreamErrors: s.upstreamErrors.Load(), ProxyHeaderErrs: s.proxyHeaderErrs.Load(), Overload: s.overload.Load(),
		PacketsIn: s.pktIn.Load(), PacketsOut: s.pktOut.Load(), PacketsRefused: s.pktRefused.Load(),
		DatagramsIn: s.dgIn.Load(), DatagramsOut: s.dgOut.Load(), DatagramsDrop: s.dgDrop.Load(),
		SessionsEvicted: s.evicted.Load(),
	}
}

func (g *Gate) countRefusal(o Outcome) {
	switch o {
	case Dropped:
		g.st.connsDropped.Add(1)
	case Reset:
		g.st.connsReset.Add(1)
	case Closed:
		g.st.connsClosed.Add(1)
	}
}

// CountUpstreamError records an upstream failure (used by the data planes
// built on the gate).
func (g *Gate) CountUpstreamError() { g.st.upstreamErrors.Add(1) }

// CountOverload records a connection or session refused at a bound.
func (g *Gate) CountOverload() { g.st.overload.Add(1) }

// CountProxyHeaderError records a refused PROXY protocol header.
func (g *Gate) CountProxyHeaderError() { g.st.proxyHeaderErrs.Add(1) }

// iface returns the interface name for packets between client and local.
func (g *Gate) iface(client, local netip.Addr) string {
	if g.cfg.Iface != "" {
		return g.cfg.Iface
	}
	if client.IsLoopback() || local.IsLoopback() || client == local {
		return "lo"
	}
	if v, ok := g.ifaces.Load(local); ok {
		return v.(string)
	}
	name := ""
	if ifs, err := net.Interfaces(); err == nil {
	search:
		for _, ifc := range ifs {
			addrs, err := ifc.Addrs()
			if err != nil {
				continue
			}
			for _, a := range addrs {
				if pn, ok := a.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(pn.IP); ok && ip.Unmap() == local {
						name = ifc.Name
						break search
					}
				}
			}
		}
	}
	g.ifaces.Store(local, name)
	return name
}

// replyKind is what a REJECT emitted in answer to the last packet.
type replyKind uint8

const (
	replyNone replyKind = iota
	replyRST
	replyOther
)

// runner owns one netfilter.Worker and the scratch packet it decodes into;
// it is used by one goroutine at a time (its owner's lock).
type runner struct {
	g     *Gate
	w     *netfilter.Worker
	pkt   packet.Packet
	reply replyKind
	last  netfilter.Decision // of the last packet run
}

func (g *Gate) newRunner() *runner {
	r := &runner{g: g}
	r.w = g.cfg.Engine.NewWorker(r)
	r.w.SetNoQueueListener(true) // nothing consumes NFQUEUE here
	return r
}

// getRunner borrows an idle runner (a new one when none is idle); the
// caller gives it back with putRunner once its packet has run.
func (g *Gate) getRunner() *runner {
	g.freeMu.Lock()
	n := len(g.free)
	if n == 0 {
		g.freeMu.Unlock()
		return g.newRunner()
	}
	r := g.free[n-1]
	g.free[n-1] = nil
	g.free = g.free[:n-1]
	g.freeMu.Unlock()
	return r
}

func (g *Gate) putRunner(r *runner) {
	g.freeMu.Lock()
	if len(g.free) < maxFreeRunners {
		g.free = append(g.free, r)
	}
	g.freeMu.Unlock()
}

// Reply implements xt.Emitter: the proxy cannot put REJECT's packet on the
// wire, it translates it (RST → reset, anything else → close).
func (r *runner) Reply(_ *xt.Ctx, pkt []byte) {
	var p packet.Packet
	if p.Decode(pkt) == packet.OK && p.Proto == header.ProtoTCP && p.TCPFlags&header.TCPFlagRST != 0 {
		r.reply = replyRST
		return
	}
	if r.reply == replyNone {
		r.reply = replyOther
	}
}

// Log implements xt.Emitter.
func (r *runner) Log(_ *xt.Ctx, level uint8, line []byte) {
	if r.g.cfg.LogLine != nil {
		r.g.cfg.LogLine(level, line)
		return
	}
	r.g.log.Info("LOG", "level", level, "kernel", string(line))
}

var _ xt.Emitter = (*runner)(nil)

// run decodes data (a packet built by writeTCP/writeUDP), runs it along
// the path and translates the verdict. ev carries the event fields the
// caller knows; the outcome and decision are filled in here.
func (r *runner) run(path netfilter.Path, data []byte, ev *Event) Outcome {
	g := r.g
	p := &r.pkt
	p.Decode(data)
	now := g.now()
	p.TimeNS = now.UnixNano()
	p.Mark = 0
	ifc := g.iface(ev.Client.Addr(), ev.Local.Addr())
	if path == netfilter.PathInput {
		p.InIface, p.OutIface = ifc, ""
		p.HasOwner = false
		g.st.pktIn.Add(1)
	} else {
		p.InIface, p.OutIface = "", ifc
		p.HasOwner, p.UID, p.GID = true, g.uid, g.gid
		g.st.pktOut.Add(1)
	}
	r.reply = replyNone
	res := r.w.Process(path, p)
	r.last = res.Decision
	o := Accepted
	switch res.Verdict {
	case xt.VerdictAccept:
	case xt.VerdictQueue:
		// Nobody listens on a queue here. With --queue-bypass the engine
		// already went on with the next table and hook, as the kernel does;
		// what comes back queued had no bypass: the kernel drops it.
		o = Dropped
	default:
		switch r.reply {
		case replyRST:
			o = Reset
		case replyOther:
			o = Closed
		default:
			o = Dropped
		}
	}
	if o != Accepted {
		g.st.pktRefused.Add(1)
	}
	if g.cfg.Observer != nil {
		ev.Time = now
		ev.Outcome = o
		ev.Decision = res.Decision
		g.cfg.Observer(*ev)
	}
	return o
}
