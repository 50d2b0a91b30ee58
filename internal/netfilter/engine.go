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
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"

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
}

// New returns an engine with an empty ruleset (every chain ACCEPT).
func New(cfg Config) *Engine {
	e := &Engine{cfg: cfg, log: cfg.Logger, named: &namedState{m: map[string]any{}}}
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
func (e *Engine) Load(rs *ruleset.Ruleset) error {
	if rs == nil {
		return errors.New("netfilter: nil ruleset")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := compile(rs, e.cur.Load(), e.named, e.rnd)
	if err != nil {
		return err
	}
	e.cur.Store(c)
	e.log.Debug("ruleset loaded", "conntrack", c.conntrack)
	return nil
}

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

// Tracer observes traversal (replay --trace). Calls happen on the packet's
// goroutine; implementations must not retain c.
type Tracer interface {
	// Rule is called before a rule is tested.
	Rule(c *xt.Ctx, table, chain string, index int, r *ruleset.Rule)
	// Decision is called when a table decides (rule or policy).
	Decision(c *xt.Ctx, d Decision)
}

// Worker processes packets on one goroutine. It holds the per-packet
// scratch state so that processing allocates nothing.
type Worker struct {
	e      *Engine
	ctx    xt.Ctx
	tracer Tracer
	last   Decision
}

// NewWorker returns a worker whose targets emit into out.
func (e *Engine) NewWorker(out xt.Emitter) *Worker {
	if out == nil {
		out = discard{}
	}
	w := &Worker{e: e}
	w.ctx.Out = out
	return w
}

// SetTracer installs (or with nil removes) a tracer.
func (w *Worker) SetTracer(t Tracer) { w.tracer = t }

// Path is the way a packet crosses the host.
type Path uint8

const (
	// PathInput: arriving for this host (PREROUTING, INPUT).
	PathInput Path = iota
	// PathOutput: locally generated (OUTPUT, POSTROUTING).
	PathOutput
	// PathForward: routed through (PREROUTING, FORWARD, POSTROUTING).
	PathForward
)

// Result is the outcome of one packet.
type Result struct {
	Verdict xt.Verdict // VerdictAccept, VerdictDrop or VerdictQueue
	Queue   xt.QueueInfo
	// Hook and Decision tell where the final verdict was taken.
	Hook     xt.Hook
	Decision Decision
}

var pathHooks = [...][]xt.Hook{
	PathInput:   {xt.PreRouting, xt.LocalIn},
	PathOutput:  {xt.LocalOut, xt.PostRouting},
	PathForward: {xt.PreRouting, xt.Forward, xt.PostRouting},
}

// hookTables lists the tables each hook runs, in priority order (spec §1.1).
var hookTables = [xt.NumHooks][]int{
	xt.PreRouting:  {tRaw, tMangle, tNat},
	xt.LocalIn:     {tMangle, tFilter, tSecurity, tNat},
	xt.Forward:     {tMangle, tFilter, tSecurity},
	xt.LocalOut:    {tRaw, tMangle, tNat, tFilter, tSecurity},
	xt.PostRouting: {tMangle, tNat},
}

// Process runs p along path and returns the verdict. p's metadata (InIface,
// OutIface, Mark, TimeNS) must be set by the caller; p must be decoded.
func (w *Worker) Process(path Path, p *packet.Packet) Result {
	c := w.e.cur.Load()
	w.ctx.P = p
	w.ctx.HotDrop = false
	w.ctx.Queue = xt.QueueInfo{}
	for _, h := range pathHooks[path] {
		w.ctx.Hook = h
		for _, ti := range hookTables[h] {
			t := c.tables[ti]
			if t == nil {
				continue
			}
			v := w.runTable(t, h)
			switch v {
			case xt.VerdictAccept:
				continue
			case xt.VerdictQueue:
				return Result{Verdict: v, Queue: w.ctx.Queue, Hook: h, Decision: w.last}
			default:
				return Result{Verdict: xt.VerdictDrop, Hook: h, Decision: w.last}
			}
		}
	}
	return Result{Verdict: xt.VerdictAccept, Hook: pathHooks[path][len(pathHooks[path])-1], Decision: w.last}
}

type discard struct{}

func (discard) Reply(*xt.Ctx, []byte)      {}
func (discard) Log(*xt.Ctx, uint8, []byte) {}

// namedState implements xt.NamedState for the engine's lifetime, so recent
// lists and hashlimit tables survive reloads by name, as in the kernel.
type namedState struct {
	mu sync.Mutex
	m  map[string]any
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
