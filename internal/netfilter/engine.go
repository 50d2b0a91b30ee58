// Package netfilter runs packets through a ruleset the way the Linux kernel
// does with iptables-nft: hooks in order, tables by priority at each hook,
// chains with jumps, gotos and policies, counters bumped before the target
// runs, connection tracking where the kernel has it.
//
// A loaded ruleset is an immutable compiled value behind an atomic pointer;
// Load builds the new one completely (failing without effect on error) and
// swaps it in. Packets in flight finish on the ruleset they started with.
// Counters and extension state of rules that did not change are carried over.
package netfilter

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/defrag"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// Config configures an Engine. The zero value is usable.
type Config struct {
	// Logger receives control-plane events (loads, errors); nil = discard.
	Logger *slog.Logger
	// Seed seeds the random source handed to extensions; 0 = random.
	Seed uint64
	// Conntrack configures the connection table (nf_conntrack_max,
	// timeouts, hash key...). The table is created when the first ruleset
	// that needs tracking is loaded, and kept across reloads.
	Conntrack conntrack.Config
	// IfaceAddr returns an interface's primary address (MASQUERADE,
	// REDIRECT). nil = no interface addresses are known.
	IfaceAddr func(iface string, fam xt.Family) (netip.Addr, bool)
	// LocalAddrs lists the host's interface addresses (addrtype, pkttype).
	// nil = a host with only the loopback interface.
	LocalAddrs func() []xt.HostAddr
	// RouteMTU returns the MTU of the route towards an address (TCPMSS
	// --clamp-mss-to-pmtu). nil = 1500 everywhere.
	RouteMTU func(addr netip.Addr) (int, bool)
	// Defrag configures IPv4 reassembly, which runs before raw at
	// PREROUTING and OUTPUT whenever conntrack is active (nf_defrag_ipv4).
	Defrag defrag.Config
	// RuleText prints a rule as iptables -S does (without "-A CHAIN"), for
	// the TRACE target's trace lines; nil = the lines name the rule only.
	RuleText func(r *ruleset.Rule) string
	// GCBudget is how many conntrack hash-chain nodes a worker scans every
	// 64 packets to reap expired entries (0 = 256).
	GCBudget int
	// NoAddrRuns turns off the address-run lookup (addrrun.go) so every
	// rule is walked one by one, as the kernel does; results are the same
	// either way, this exists to compare the two.
	NoAddrRuns bool
}

// Engine is the packet path. It is safe for concurrent use: each goroutine
// that processes packets uses its own Worker.
type Engine struct {
	cfg   Config
	log   *slog.Logger
	cur   atomic.Pointer[compiled]
	mu    sync.Mutex // serialises Load
	named *namedState
	rnd   func() uint32
	ct    atomic.Pointer[conntrack.Table]
	frag  atomic.Pointer[defrag.Defrag]
	// local reassembles fragments for local delivery when conntrack is
	// off (ip_local_deliver): INPUT then sees whole datagrams while
	// PREROUTING saw the fragments.
	local *defrag.Defrag
	// workers numbers the workers: a worker's index stands in for the
	// kernel's CPU number (NFQUEUE --queue-cpu-fanout, -m cpu).
	workers atomic.Int32
}

// New returns an engine with an empty ruleset (every chain ACCEPT).
func New(cfg Config) *Engine {
	e := &Engine{cfg: cfg, log: cfg.Logger, named: &namedState{m: map[string]any{}}, local: defrag.New(cfg.Defrag)}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	var rmu sync.Mutex
	src := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	e.rnd = func() uint32 {
		rmu.Lock()
		defer rmu.Unlock()
		return src.Uint32()
	}
	e.cur.Store(&compiled{rs: &ruleset.Ruleset{Family: xt.IPv4}, byKey: map[string]*rule{}})
	return e
}

// Load compiles rs and makes it the active ruleset. On error the active
// ruleset is unchanged. rs must not be modified afterwards.
func (e *Engine) Load(rs *ruleset.Ruleset) error { return e.LoadWith(rs, LoadOptions{}) }

// Ruleset returns the active ruleset with the current counters filled in.
// The returned value is a copy the caller owns.
func (e *Engine) Ruleset() *ruleset.Ruleset {
	c := e.cur.Load()
	out := &ruleset.Ruleset{Family: c.rs.Family}
	for _, t := range c.rs.Tables {
		nt := &ruleset.Table{Name: t.Name}
		ct := c.tables[tableIndex(t.Name)]
		for i, ch := range t.Chains {
			nc := *ch
			cc := &ct.chains[i]
			if cc.pol != nil {
				nc.Counters = ruleset.Counters{Packets: cc.pol.packets.Load(), Bytes: cc.pol.bytes.Load()}
			}
			nc.Rules = make([]*ruleset.Rule, len(ch.Rules))
			for j, r := range ch.Rules {
				nr := *r
				nr.Counters = ruleset.Counters{Packets: cc.rules[j].ctr.packets.Load(), Bytes: cc.rules[j].ctr.bytes.Load()}
				nc.Rules[j] = &nr
			}
			nt.Chains = append(nt.Chains, &nc)
		}
		out.Tables = append(out.Tables, nt)
	}
	return out
}

// Conntrack reports whether the active ruleset switches connection tracking
// on (a state, conntrack, connlimit, connmark, CT/NOTRACK, CONNMARK or NAT
// rule exists), as in a kernel network namespace.
func (e *Engine) Conntrack() bool { return e.cur.Load().conntrack }

// ConntrackTable returns the connection table, or nil when no ruleset
// needing tracking has been loaded yet.
func (e *Engine) ConntrackTable() *conntrack.Table { return e.ct.Load() }

// Tracer observes traversal (replay --trace). Calls happen on the packet's
// goroutine; implementations must not retain c.
//
// For every rule visited the engine calls Rule, then IP with the result of
// the rule's generic part (-s, -d, -i, -o, -p, -f), then, when that held,
// Match after each of the rule's matches ran until one fails. The rule
// matched when IP said IPMatch and no Match said false (a match that set
// c.HotDrop is followed by a Decision dropping the packet at this rule).
type Tracer interface {
	// Rule is called before a rule is tested.
	Rule(c *xt.Ctx, table, chain string, index int, r *ruleset.Rule)
	// IP reports the generic part: IPMatch, or the first test that failed.
	IP(c *xt.Ctx, fail IPTest)
	// Match is called right after the rule's match number i (0-based, the
	// index in r.Matches) ran with its result, before anything else runs,
	// so that an xt.Explainer m can explain it from the state it left.
	Match(c *xt.Ctx, i int, m xt.PacketMatcher, matched bool)
	// Decision is called when a table decides (rule or policy).
	Decision(c *xt.Ctx, d Decision)
}

// Worker processes packets on one goroutine. It holds the per-packet
// scratch state so that processing allocates nothing.
type Worker struct {
	e      *Engine
	ctx    xt.Ctx
	out    xt.Emitter
	tracer Tracer
	last   Decision
	n      uint64
	// reply is the worker that sends REJECT's replies through OUTPUT and
	// POSTROUTING, as the kernel's ip_local_out does; replyPkt is its packet.
	reply    *Worker
	replyPkt packet.Packet
	// whole is the reassembled datagram when a fragment completed one;
	// wholeBuf is its buffer (64 KiB, the largest IPv4 datagram).
	whole    packet.Packet
	wholeBuf []byte
	// inner is the datagram quoted by an ICMP error, for NAT.
	inner packet.Packet
	// route decides where PathRouted packets go after PREROUTING.
	route RouteFunc
	// nftrace state of the current packet (TRACE): its trace id, whether
	// the current base chain printed its PACKET line, and a line buffer.
	traceID     uint32
	tracedChain bool
	traceBuf    []byte
	// noQueue: no program listens on any NFQUEUE queue (SetNoQueueListener).
	noQueue bool
}

// NewWorker returns a worker whose targets emit into out.
func (e *Engine) NewWorker(out xt.Emitter) *Worker {
	if out == nil {
		out = discard{}
	}
	w := &Worker{e: e, out: out}
	w.ctx.Out = (*replyRouter)(w)
	w.ctx.CPU = int(e.workers.Add(1) - 1)
	r := &Worker{e: e, out: out}
	r.ctx.Out = out // a reply's own replies are not generated (RST to RST, ICMP to ICMP error)
	r.ctx.CPU = w.ctx.CPU
	w.reply = r
	return w
}

// SetNoQueueListener tells the worker whether its data plane has no
// consumer for NFQUEUE verdicts: the proxy, replay and the Go library hand
// no packet to any queue, so for them an NFQUEUE rule behaves as the
// kernel's nf_queue does when nothing is bound to the queue (spec §10.2,
// measured on 6.18 with --queue-num 7 and no listener):
//
//   - with --queue-bypass the queue verdict becomes ACCEPT for the table
//     that queued: the rest of its chain, and of the chains that jumped to
//     it, is skipped, and the packet goes on with the next table and the
//     next hooks, conntrack confirm included (a bypassed first datagram
//     leaves a confirmed entry) - not with the next rule;
//   - without it the packet is dropped: traversal stops and Process returns
//     VerdictQueue with Result.Queue, which such a data plane treats as a
//     drop.
//
// The default (false) is the NFQUEUE data plane's: VerdictQueue always ends
// traversal and the data plane passes the queue verdict to the kernel,
// which knows whether that queue has a listener. The setting covers the
// worker's REJECT replies too.
func (w *Worker) SetNoQueueListener(on bool) {
	w.noQueue = on
	w.reply.noQueue = on
}

// TrustL4Checksums tells targets that the data plane vouches for the L4
// checksums of the packets it hands in (a capture taken on the sending host
// carries offloaded, not yet computed checksums). REJECT then answers them.
func (w *Worker) TrustL4Checksums(ok bool) { w.ctx.L4CsumOK = ok }

// SetRoute installs the routing decision of PathRouted packets (nil: every
// such packet is delivered locally).
func (w *Worker) SetRoute(fn RouteFunc) { w.route = fn }

// SetTracer installs (or with nil removes) a tracer.
func (w *Worker) SetTracer(t Tracer) {
	w.tracer = t
	w.reply.tracer = t
}

// Path is the way a packet crosses the host.
type Path uint8

const (
	// PathInput: arriving for this host (PREROUTING, INPUT).
	PathInput Path = iota
	// PathOutput: locally generated (OUTPUT, POSTROUTING).
	PathOutput
	// PathForward: routed through (PREROUTING, FORWARD, POSTROUTING).
	PathForward
	// PathRouted: received from a device, destination not yet routed.
	// PREROUTING runs first; then the worker's route function (SetRoute)
	// decides on the destination PREROUTING left — after DNAT, REDIRECT or
	// a conntrack binding rewrote it — whether the packet is delivered
	// locally (INPUT) or forwarded (FORWARD, POSTROUTING), as the kernel's
	// ip_rcv_finish routes only after the PREROUTING hook. Result.Path says
	// which. Without a route function the packet is delivered locally.
	PathRouted
)

// RouteFunc is the routing decision of a PathRouted packet after
// PREROUTING (ip_route_input_noref): local reports delivery to this host,
// otherwise out names the output device of the forwarded packet. It must
// not retain p and, on the packet path, must not allocate.
type RouteFunc func(p *packet.Packet) (out string, local bool)

// Result is the outcome of one packet.
type Result struct {
	Verdict xt.Verdict // VerdictAccept, VerdictDrop or VerdictQueue
	Queue   xt.QueueInfo
	// Hook and Decision tell where the final verdict was taken.
	Hook     xt.Hook
	Decision Decision
	// CT is the packet's conntrack state and direction (INVALID when
	// conntrack is off or the packet could not be tracked).
	CT conntrack.Info
	// Tracked reports whether conntrack was active for this packet.
	Tracked bool
	// Orig is the connection's original tuple when the packet had one.
	Orig conntrack.Tuple
	// Path is the path the packet took: the one given to Process, or for
	// PathRouted the one the route function chose (PathInput or
	// PathForward). A packet dropped in PREROUTING keeps PathRouted.
	Path Path
}

var pathHooks = [...][]xt.Hook{
	PathInput:   {xt.PreRouting, xt.LocalIn},
	PathOutput:  {xt.LocalOut, xt.PostRouting},
	PathForward: {xt.PreRouting, xt.Forward, xt.PostRouting},
	PathRouted:  {xt.PreRouting},
}

// step is one function registered at a hook, in priority order.
type step uint8

const (
	stepRaw      step = iota // raw table, -300
	stepCT                   // conntrack in, -200
	stepMangle               // -150
	stepNatDst               // nat, -100 (PREROUTING, OUTPUT)
	stepFilter               // 0
	stepSecurity             // 50
	stepNatSrc               // nat, 100 (INPUT, POSTROUTING)
	stepConfirm              // conntrack confirm, INT_MAX
)

// hookSteps lists what runs at each hook (spec §1.1, §1.3).
var hookSteps = [xt.NumHooks][]step{
	xt.PreRouting:  {stepRaw, stepCT, stepMangle, stepNatDst},
	xt.LocalIn:     {stepMangle, stepFilter, stepSecurity, stepNatSrc, stepConfirm},
	xt.Forward:     {stepMangle, stepFilter, stepSecurity},
	xt.LocalOut:    {stepRaw, stepCT, stepMangle, stepNatDst, stepFilter, stepSecurity},
	xt.PostRouting: {stepMangle, stepNatSrc, stepConfirm},
}

var stepTable = [...]int{stepRaw: tRaw, stepMangle: tMangle, stepNatDst: tNat, stepFilter: tFilter, stepSecurity: tSecurity, stepNatSrc: tNat}

// Process runs p along path and returns the verdict. p's metadata (InIface,
// OutIface, Mark, TimeNS) must be set by the caller; p must be decoded and
// its Status must not be BadL3 (the kernel drops those before netfilter).
func (w *Worker) Process(path Path, p *packet.Packet) Result {
	return w.process(path, p, nil)
}

func (w *Worker) process(path Path, p *packet.Packet, attach *conntrack.Result) Result {
	c := w.e.cur.Load()
	x := &w.ctx
	x.P = p
	x.HotDrop = false
	x.Queue = xt.QueueInfo{}
	x.CT = conntrack.Result{}
	x.NoTrack = false
	x.Zone = 0
	x.Trace = false
	w.traceID = 0
	x.Conntrack = nil
	var ct *conntrack.Table
	if c.conntrack {
		ct = w.e.ct.Load()
		x.Conntrack = ct
		if w.n++; w.n&63 == 0 {
			b := w.e.cfg.GCBudget
			if b == 0 {
				b = 256
			}
			ct.GC(p.TimeNS, b)
		}
	}
	w.last = Decision{}
	res := Result{Verdict: xt.VerdictAccept, Tracked: ct != nil, Path: path}
	hooks := pathHooks[path]
	if ct != nil && attach == nil && defrag.IsFragment(p) {
		q, ok := w.reassemble(w.e.frag.Load(), hooks[0], p)
		if !ok {
			res.Verdict = xt.VerdictStolen
			res.Hook = hooks[0]
			return res
		}
		p = q
		x.P = p
	}
	// A forwarded packet has no output device before routing: PREROUTING
	// sees OUT= empty; ip_forward then drops packets whose TTL would expire
	// and decrements the TTL before FORWARD (spec audit, measured).
	outIface := p.OutIface
	if path == PathRouted {
		p.OutIface, outIface = "", ""
	}
hooks:
	for i := 0; i < len(hooks); i++ {
		h := hooks[i]
		x.Hook = h
		res.Hook = h
		// ip_rcv_finish checks (and for local delivery updates) the IP
		// options after PREROUTING: malformed ones and source routes are
		// dropped there, outside netfilter.
		if (h == xt.LocalIn || h == xt.Forward) && path != PathOutput && p.HdrLen > 20 && p.RcvOptions(h == xt.LocalIn, p.TimeNS) {
			res.Verdict = xt.VerdictDrop
			break hooks
		}
		if path == PathForward {
			switch h {
			case xt.PreRouting:
				p.OutIface = ""
			case xt.Forward:
				p.OutIface = outIface
				if p.TTL <= 1 {
					res.Verdict = xt.VerdictDrop
					break hooks
				}
				p.SetTTL(p.TTL - 1)
			}
		}
		if h == xt.LocalIn && ct == nil && defrag.IsFragment(p) {
			q, ok := w.reassemble(w.e.local, xt.PreRouting, p)
			if !ok {
				res.Verdict = xt.VerdictStolen
				break
			}
			p = q
			x.P = p
		}
		for _, st := range hookSteps[h] {
			v := xt.VerdictAccept
			switch st {
			case stepCT:
				if ct == nil {
					continue
				}
				switch {
				case attach != nil:
					if r, ok := ct.Attach(attach); ok {
						x.CT = r
						continue
					}
					x.CT = ct.InZone(p, h, x.Zone)
				case x.NoTrack:
					x.CT = conntrack.UntrackedResult()
				default:
					x.CT = ct.InZone(p, h, x.Zone)
				}
				if x.CT.Verdict == conntrack.Drop {
					v = xt.VerdictDrop
				}
			case stepConfirm:
				if ct == nil {
					continue
				}
				if ct.Confirm(&x.CT) == conntrack.Drop {
					v = xt.VerdictDrop
				}
			case stepNatDst, stepNatSrc:
				v = w.nat(c, h, ct)
			default:
				t := c.tables[stepTable[st]]
				if t == nil {
					continue
				}
				v = w.runTable(t, h)
			}
			if v == xt.VerdictAccept {
				continue
			}
			if v == xt.VerdictQueue && w.noQueue && x.Queue.Bypass {
				continue // no listener, --queue-bypass: accepted by this table
			}
			res.Verdict = v
			if v == xt.VerdictQueue {
				res.Queue = x.Queue
			} else {
				res.Verdict = xt.VerdictDrop
			}
			break hooks
		}
		if path == PathRouted {
			// Routed on the destination PREROUTING left (DNAT included);
			// the rest is the chosen path's, whose first hook is
			// PREROUTING too.
			path = PathInput
			if w.route != nil {
				out, local := w.route(p)
				if !local {
					path, outIface = PathForward, out
				}
			}
			res.Path = path
			hooks = pathHooks[path]
		}
	}
	p.OutIface = outIface
	res.Decision = w.last
	res.CT = x.CT.Info
	if x.CT.Conn != nil {
		res.Orig = x.CT.Conn.Orig()
	}
	if ct != nil {
		ct.Release(&x.CT)
	}
	return res
}

// reassemble offers a fragment to the defragmenter (priority -400, before
// raw). It returns the reassembled datagram, decoded into the worker's own
// packet with the completing fragment's metadata, or ok=false when the
// fragment was queued or refused: the packet is stolen, no chain sees it.
func (w *Worker) reassemble(d *defrag.Defrag, h xt.Hook, p *packet.Packet) (*packet.Packet, bool) {
	if w.wholeBuf == nil {
		w.wholeBuf = make([]byte, 0, 65536)
	}
	if w.n&63 == 0 {
		d.GC(p.TimeNS, nil)
	}
	r, err := d.Add(p, h, w.ctx.Zone, w.wholeBuf[:0])
	if err != nil || !r.Done {
		return nil, false
	}
	q := &w.whole
	meta := *p
	if q.Decode(r.Out) == packet.BadL3 {
		return nil, false
	}
	q.Link, q.InIface, q.OutIface, q.Mark, q.TimeNS = meta.Link, meta.InIface, meta.OutIface, meta.Mark, meta.TimeNS
	q.UID, q.GID, q.HasOwner = meta.UID, meta.GID, meta.HasOwner
	return q, true
}

// Defrag returns the reassembly state (statistics), or nil while
// conntrack has never been active.
func (e *Engine) Defrag() *defrag.Defrag { return e.frag.Load() }

// replyRouter is the emitter the worker's targets see: a reply (REJECT's RST
// or ICMP error) first crosses OUTPUT and POSTROUTING of the same ruleset,
// attached to the offending packet's connection as RELATED (nf_ct_attach),
// and reaches the data plane only if those chains accept it.
type replyRouter Worker

func (r *replyRouter) Reply(c *xt.Ctx, pkt []byte) {
	w := (*Worker)(r)
	rp := &w.replyPkt
	if rp.Decode(pkt) == packet.BadL3 {
		return
	}
	rp.InIface = ""
	rp.OutIface = c.P.InIface
	rp.TimeNS = c.P.TimeNS
	rp.Mark = 0
	off := c.CT
	res := w.reply.process(PathOutput, rp, &off)
	if res.Verdict == xt.VerdictAccept {
		w.out.Reply(c, pkt)
	}
}

func (r *replyRouter) Log(c *xt.Ctx, level uint8, line []byte) { r.out.Log(c, level, line) }

type discard struct{}

func (discard) Reply(*xt.Ctx, []byte)      {}
func (discard) Log(*xt.Ctx, uint8, []byte) {}

// namedState implements xt.NamedState for the engine's lifetime, so recent
// lists and hashlimit tables survive reloads by name, as in the kernel.
type namedState struct {
	mu     sync.Mutex
	m      map[string]any
	pinned map[string]bool
}

// trackedNamed records which named objects a compile asked for.
type trackedNamed struct {
	n    *namedState
	used map[string]bool
}

func (t *trackedNamed) Shared(kind, name string, create func() (any, error)) (any, error) {
	v, err := t.n.Shared(kind, name, create)
	if err == nil {
		t.used[kind+"\x00"+name] = true
	}
	return v, err
}

// prune forgets the objects no rule of the new ruleset refers to, except
// the pinned ones.
func (n *namedState) prune(used map[string]bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k := range n.m {
		if !used[k] && !n.pinned[k] {
			delete(n.m, k)
		}
	}
}

func (n *namedState) Shared(kind, name string, create func() (any, error)) (any, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := kind + "\x00" + name
	if v, ok := n.m[k]; ok {
		return v, nil
	}
	v, err := create()
	if err != nil {
		return nil, err
	}
	n.m[k] = v
	return v, nil
}

// Shared returns the engine-wide object an extension registered under kind
// and name (a recent list, a hashlimit table), for the control plane: the
// CLI and replay list them, /proc-style writes edit them.
func (e *Engine) Shared(kind, name string) (any, bool) {
	e.named.mu.Lock()
	defer e.named.mu.Unlock()
	v, ok := e.named.m[kind+"\x00"+name]
	return v, ok
}

// SharedNames lists the names registered under kind, sorted.
func (e *Engine) SharedNames(kind string) []string {
	e.named.mu.Lock()
	defer e.named.mu.Unlock()
	var out []string
	for k := range e.named.m {
		if kk, name, ok := strings.Cut(k, "\x00"); ok && kk == kind {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Pin installs v in the registry of shared named state under kind and name
// for the engine's lifetime, whatever the rules name: a state store that
// replaces the in-memory one (match.NamedStoreKind, match.NamedStoreName)
// is pinned before the first Load. It fails when another object is there.
func (e *Engine) Pin(kind, name string, v any) error {
	n := e.named
	n.mu.Lock()
	defer n.mu.Unlock()
	k := kind + "\x00" + name
	if old, ok := n.m[k]; ok && old != v {
		return fmt.Errorf("netfilter: %s %q is already in use (%T)", kind, name, old)
	}
	n.m[k] = v
	if n.pinned == nil {
		n.pinned = map[string]bool{}
	}
	n.pinned[k] = true
	return nil
}

// Named returns the engine's registry of shared named state, for
// control-plane lookups such as match.RecentListByName.
func (e *Engine) Named() xt.NamedState { return e.named }

// LoadOptions changes how Load treats the new ruleset.
type LoadOptions struct {
	// Counters sets every rule's and built-in chain's counters to the
	// values in the ruleset instead of carrying the running ones over:
	// iptables -Z and -c. Extension state (limit buckets, connlimit
	// bookkeeping) is still carried over for unchanged rules.
	Counters bool
}

// LoadWith is Load with options.
func (e *Engine) LoadWith(rs *ruleset.Ruleset, o LoadOptions) error {
	if rs == nil {
		return errors.New("netfilter: nil ruleset")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	track := &trackedNamed{n: e.named, used: map[string]bool{}}
	c, err := compile(rs, e.cur.Load(), track, e.rnd, &e.cfg)
	if err != nil {
		return err
	}
	if o.Counters {
		c.takeCounters()
	}
	if c.conntrack && e.ct.Load() == nil {
		t, err := conntrack.NewTable(e.cfg.Conntrack)
		if err != nil {
			return err
		}
		e.ct.Store(t)
		e.frag.Store(defrag.New(e.cfg.Defrag))
	}
	e.cur.Store(c)
	// A recent list or hashlimit table lives as long as a rule names it:
	// the kernel destroys it with its last rule, so re-adding a rule later
	// starts from an empty list with the new rule's configuration.
	e.named.prune(track.used)
	e.log.Debug("ruleset loaded", "conntrack", c.conntrack)
	return nil
}

// takeCounters gives every rule and policy of c fresh counters holding the
// values of its ruleset, instead of the running ones compile carried over.
func (c *compiled) takeCounters() {
	for _, t := range c.rs.Tables {
		ct := c.tables[tableIndex(t.Name)]
		for i, ch := range t.Chains {
			cc := &ct.chains[i]
			if cc.pol != nil {
				cc.pol = &counter{}
				cc.pol.packets.Store(ch.Counters.Packets)
				cc.pol.bytes.Store(ch.Counters.Bytes)
				c.byKey[t.Name+"/"+ch.Name+"/policy"] = &rule{ctr: cc.pol}
			}
			for j := range cc.rules {
				r := &cc.rules[j]
				r.ctr = &counter{}
				r.ctr.packets.Store(r.src.Counters.Packets)
				r.ctr.bytes.Store(r.src.Counters.Bytes)
			}
		}
	}
}

// Runtimes calls fn for every rule of the active ruleset with its table,
// chain, 1-based number and the runtime of each of its matches (in
// r.Matches order), so that the control plane can ask stateful matches
// about their state (connlimit counts per address). The runtimes are live:
// only read-only methods may be called.
func (e *Engine) Runtimes(fn func(table, chain string, num int, r *ruleset.Rule, matches []xt.PacketMatcher)) {
	c := e.cur.Load()
	for _, t := range c.rs.Tables {
		ct := c.tables[tableIndex(t.Name)]
		for i, ch := range t.Chains {
			cc := &ct.chains[i]
			for j, r := range ch.Rules {
				fn(t.Name, ch.Name, j+1, r, cc.rules[j].matches)
			}
		}
	}
}
