package xt

import (
	"net/netip"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/packet"
)

// Ctx is the per-packet context the engine hands to matches and targets.
// It is owned by the goroutine processing the packet and reused from packet
// to packet, so nothing in it may be retained after the call returns.
// The engine will add conntrack and state-store fields here.
type Ctx struct {
	// P is the packet. Targets rewrite P.Data in place (NAT, TTL, TOS,
	// DSCP, TCPMSS) and keep the decoded fields in step; TCPMSS may also
	// grow P.Data by 4 bytes within its capacity (an MSS option added to
	// an option-less SYN), so the data plane must send len(P.Data) bytes,
	// and should leave spare capacity if it wants that rewrite.
	P    *packet.Packet
	Hook Hook
	// HotDrop is set by a match that wants the packet dropped at once,
	// whatever the rule's target (the kernel's par->hotdrop), e.g. a
	// truncated TCP header under a tcp match.
	HotDrop bool
	// Out receives replies and log lines; never nil while the engine runs.
	Out Emitter
	// Queue is set by NFQUEUE together with VerdictQueue.
	Queue QueueInfo
	// Table and Chain name where the current rule lives (LOG, TRACE, trace).
	Table, Chain string

	// CT is the packet's conntrack as attached at PREROUTING/OUTPUT: Conn is
	// nil for INVALID and UNTRACKED packets, and before the conntrack hook
	// ran (raw table). CT.Info.State is what -m state tests.
	CT conntrack.Result
	// Conntrack is the engine's connection table; nil while no rule of the
	// ruleset needs tracking (as in a fresh kernel namespace).
	Conntrack *conntrack.Table
	// NoTrack is set by NOTRACK / CT --notrack in raw: conntrack leaves the
	// packet UNTRACKED. Zone is set by CT --zone.
	NoTrack bool
	Zone    uint16
	// Trace is set by TRACE: the engine's tracer then reports every rule
	// this packet visits.
	Trace bool

	// L4CsumOK tells that the data plane vouches for the packet's L4
	// checksum (the kernel's CHECKSUM_UNNECESSARY: a device verified it, or
	// it was captured on the sending side with checksum offload, where the
	// field holds only the pseudo-header sum). REJECT then skips its own
	// check; otherwise it verifies the checksum as nf_reject does (except in
	// OUTPUT, where local packets are CHECKSUM_PARTIAL) and sends nothing
	// for a bad one. The data plane sets it per packet; default false.
	L4CsumOK bool
	// CPU is the index of the goroutine/worker processing the packet, the
	// stand-in for the kernel's CPU number (NFQUEUE --queue-cpu-fanout).
	// The data plane sets it; 0 sends every packet to the first queue, as a
	// one-CPU machine would.
	CPU int

	// Scratch is per-worker buffer space a target may use during its Do
	// call (REJECT builds its reply here, LOG its line). Nothing may keep a
	// reference to it after Do returns; Emitters copy what they keep. It is
	// part of the Ctx, so concurrent workers never share it and no target
	// allocates. ScratchLen covers the longest reply (an ICMPv6 error of
	// 1280 bytes) and the kernel's 1024-byte LOG line.
	Scratch [ScratchLen]byte
}

// ScratchLen is the size of Ctx.Scratch.
const ScratchLen = 1280

// PacketMatcher is implemented by a configured match that can test packets
// without per-rule mutable state (tcp, length, mark, ...). Matches returns
// the result after the match's own "!" handling. It must not allocate.
type PacketMatcher interface {
	Matches(c *Ctx) bool
}

// Explainer is an optional interface of a PacketMatcher: it says why the
// match just decided as it did for c.P (replay --trace, an iptables TRACE
// that gives reasons). The engine's tracer calls Explain right after
// Matches returned matched for this packet and before anything else runs,
// so the match explains from the state as Matches left it: what it
// consulted ("SSHPOOL 192.0.2.1: 5 hits within 3600s (need 5), ttl 64"),
// and, when it failed, which of its tests did ("dpt 22 (want 80)").
// Explain appends to b and returns it, without the verdict (the tracer
// adds "→ match" or "→ no match"). It must not change any state (no second
// Matches, no bucket refill, no list update) and may allocate: it only
// runs in trace mode. Matches without it are reported as plain
// "match"/"no match".
type Explainer interface {
	Explain(c *Ctx, matched bool, b []byte) []byte
}

// Verdict is what a target tells the engine.
type Verdict uint8

const (
	// Continue: go on with the next rule (LOG, MARK, TTL, ...).
	Continue Verdict = iota
	// VerdictAccept stops this table at this hook; the packet goes on.
	VerdictAccept
	// VerdictDrop discards the packet (REJECT drops after emitting a reply).
	VerdictDrop
	// VerdictQueue hands the packet to user space (NFQUEUE): the queue
	// number and bypass flag are in Ctx.Queue.
	VerdictQueue
	// VerdictStolen: the engine kept the packet (a fragment queued for
	// reassembly, or refused by the defragmenter); the data plane neither
	// delivers nor answers it (the kernel's NF_STOLEN).
	VerdictStolen
)

// QueueInfo is filled by NFQUEUE.
type QueueInfo struct {
	Num    uint16
	Bypass bool
}

// Emitter receives what targets produce besides a verdict. It is supplied by
// the data plane (replay collects, NFQUEUE sends, proxy translates) and must
// copy what it keeps: the buffers are reused.
type Emitter interface {
	// Reply is a packet generated in reaction to c.P (REJECT's RST or ICMP
	// error), starting at the IP header.
	Reply(c *Ctx, pkt []byte)
	// Log is one kernel log line (LOG), without the trailing newline, and
	// its syslog level (0-7).
	Log(c *Ctx, level uint8, line []byte)
}

// NFLogger is an optional interface of an Emitter: the data plane's
// nfnetlink_log listener. NFLOG hands it the packet (c.P) with the rule's
// group, prefix, copy size (size < 0: the whole packet) and batching
// threshold. An Emitter that does not implement it is the kernel's "no
// listener on that group": NFLOG then does nothing and the packet goes on
// to the next rule, as in the kernel. NFLog must copy what it keeps.
type NFLogger interface {
	NFLog(c *Ctx, group uint16, prefix string, size int, threshold uint16)
}

// TraceEmitter is implemented by emitters that want the trace events of
// packets marked by TRACE, one line each, as `xtables-monitor --trace`
// prints them ("PACKET: 2 61d071cd IN=...", " TRACE: 2 61d071cd
// raw:PREROUTING:rule:0x2:CONTINUE  -4 -t raw -A PREROUTING -j TRACE").
type TraceEmitter interface {
	Trace(c *Ctx, line []byte)
}

// PacketTarget is the runtime of a target. Do must not allocate.
type PacketTarget interface {
	Do(c *Ctx) Verdict
}

// Env is what an extension gets when the engine builds the runtime of one
// rule. Extensions with state (limit, connlimit, recent, hashlimit, quota,
// statistic --mode nth) implement MatchBuilder/TargetBuilder and keep their
// state in the object they return.
type Env struct {
	Family Family
	Table  string
	Chain  string
	Hooks  HookMask
	Proto  uint8
	// Prev is the runtime object this same rule (same table, chain and
	// canonical text) had in the ruleset being replaced, or nil. Reusing its
	// state gives iptables-nft's behaviour: rules that did not change keep
	// their limit buckets and connlimit lists across ruleset changes.
	Prev any
	// Named holds state shared by name across rules and reloads (recent
	// lists, hashlimit tables), as the kernel's per-netns lists do.
	Named NamedState
	// Rand is a seeded random source (statistic, hash seeds).
	Rand func() uint32
	// IfaceAddr returns the primary IPv4/IPv6 address of an interface
	// (MASQUERADE, REDIRECT, addrtype); ok is false when unknown.
	IfaceAddr func(iface string, fam Family) (netip.Addr, bool)
	// RouteMTU returns the MTU of the route towards addr (TCPMSS
	// --clamp-mss-to-pmtu takes the smaller of the routes to the packet's
	// destination and back to its source, as the kernel does); ok false or
	// a nil RouteMTU means the default of 1500, an Ethernet link.
	RouteMTU func(addr netip.Addr) (mtu int, ok bool)
	// LocalAddrs returns the addresses configured on the host's interfaces,
	// from which addrtype and pkttype derive what the kernel keeps in its
	// local routing table (LOCAL and BROADCAST routes). It is called when a
	// rule is built, so an address change needs a rebuild of the rules that
	// use it. nil stands for a host with only its loopback interface:
	// 127.0.0.1/8 and ::1/128 on "lo".
	LocalAddrs func() []HostAddr
}

// HostAddr is one address of one interface, as `ip addr` shows it.
type HostAddr struct {
	// Iface is the interface name; "lo" is taken as the loopback device
	// (IFF_LOOPBACK), whose whole prefix is local.
	Iface string
	// Prefix is the address with its on-link prefix length, not masked
	// (192.0.2.10/24).
	Prefix netip.Prefix
}

// NamedState is a registry of named shared objects owned by the engine.
type NamedState interface {
	// Shared returns the object stored under kind and name, calling create
	// to make it when there is none yet.
	Shared(kind, name string, create func() (any, error)) (any, error)
}

// MatchBuilder is implemented by matches that need per-rule runtime state.
type MatchBuilder interface {
	Build(env *Env) (PacketMatcher, error)
}

// TargetBuilder is implemented by targets that need per-rule runtime state.
type TargetBuilder interface {
	Build(env *Env) (PacketTarget, error)
}
