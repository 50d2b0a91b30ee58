package target

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/xt"
)

// This file is REJECT's runtime (spec §8): drop the packet and answer it
// with a TCP RST or an ICMP destination-unreachable built in the worker's
// Ctx.Scratch, subject to the kernel's conditions and ICMP rate limits.

// replyTTL is the TTL of REJECT's replies: the route hop limit, which is
// net.ipv4.ip_default_ttl (64) on a default system.
const replyTTL = 64

// ICMP rate limits as the kernel applies them to the error messages REJECT
// sends (type 3 is in the default icmp_ratemask 6168).
const (
	// icmpPeerInterval is net.ipv4.icmp_ratelimit (1000 ms): one token per
	// interval per destination (the kernel's inet_peer_xrlim_allow).
	icmpPeerInterval = int64(1e9)
	// icmpPeerBurst is XRLIM_BURST_FACTOR: a destination not heard from
	// for 6 s may get 6 errors at once. Measured: 6 errors, then silence.
	icmpPeerBurst = 6
	// icmpGlobalPerSec and icmpGlobalBurst are net.ipv4.icmp_msgs_per_sec
	// (1000) and icmp_msgs_burst (50), the host-wide bucket.
	icmpGlobalPerSec = 1000
	icmpGlobalBurst  = 50
	// icmpPeerSets × icmpPeerWays destinations are remembered (the kernel's
	// inet_peer cache is bounded too). A destination silent for 6 s has a
	// full bucket, exactly like a forgotten one, so evicting the least
	// recently used way only matters when more than this many destinations
	// get errors within 6 s; they then get a fresh burst.
	icmpPeerSets = 1024
	icmpPeerWays = 4
)

// icmpPeer is one destination's token bucket, in packet-clock ns.
type icmpPeer struct {
	addr   netip.Addr
	tokens int64
	last   int64
}

type icmpPeerSet struct {
	mu   sync.Mutex
	ways [icmpPeerWays]icmpPeer
}

// ICMPLimiter is the engine-wide state behind REJECT's ICMP errors: the
// per-destination and global rate limits and the IP ID counter. All REJECT
// rules share one, through Env.Named (kind "REJECT", name "icmp"), as all
// of a network namespace's ICMP errors share the kernel's limits. Safe for
// concurrent use; allocation-free.
type ICMPLimiter struct {
	seed uint64
	id   atomic.Uint32

	gmu     sync.Mutex
	gcredit int64 // global credit, in messages
	glast   int64 // packet-clock ns of the last refill
	ginit   bool

	sets [icmpPeerSets]icmpPeerSet
}

// NewICMPLimiter returns a limiter whose hash seed and first IP ID come
// from rnd (nil: fixed values).
func NewICMPLimiter(rnd func() uint32) *ICMPLimiter {
	l := &ICMPLimiter{}
	if rnd != nil {
		l.seed = uint64(rnd())<<32 | uint64(rnd())
		l.id.Store(rnd())
	}
	return l
}

// nextID returns the IP ID of the next ICMP error (the kernel draws it
// from ip_idents; a counter gives the same "normal ID" shape).
func (l *ICMPLimiter) nextID() uint16 { return uint16(l.id.Add(1)) }

// Allow reports whether an ICMP error to dst may be sent at now (ns).
// loopback exempts the destination from the per-destination limit, as the
// kernel does for replies routed over lo; the global limit still applies.
func (l *ICMPLimiter) Allow(dst netip.Addr, now int64, loopback bool) bool {
	if !l.globalAllow(now) {
		return false
	}
	if !loopback && !l.peerAllow(dst, now) {
		return false
	}
	l.gmu.Lock()
	l.gcredit--
	l.gmu.Unlock()
	return true
}

// globalAllow is icmp_global_allow: any credit left passes; otherwise the
// credit is refilled at icmpGlobalPerSec for the time elapsed (at most one
// second's worth, and only after 20 ms), capped at icmpGlobalBurst. The
// kernel consumes a random 0-2 credits per message; uptables consumes 1.
func (l *ICMPLimiter) globalAllow(now int64) bool {
	l.gmu.Lock()
	defer l.gmu.Unlock()
	if !l.ginit {
		l.ginit, l.gcredit, l.glast = true, icmpGlobalBurst, now
	}
	if l.gcredit > 0 {
		return true
	}
	delta := min(now-l.glast, int64(1e9))
	if delta < int64(20e6) {
		return false
	}
	incr := icmpGlobalPerSec * delta / int64(1e9)
	if incr <= 0 {
		return false
	}
	l.glast = now
	l.gcredit = min(l.gcredit+incr, icmpGlobalBurst)
	return true
}

func (l *ICMPLimiter) hashAddr(a netip.Addr) uint64 {
	b := a.As16()
	h := l.seed ^ 0x9e3779b97f4a7c15
	for i := 0; i < 16; i += 8 {
		w := uint64(b[i])<<56 | uint64(b[i+1])<<48 | uint64(b[i+2])<<40 | uint64(b[i+3])<<32 |
			uint64(b[i+4])<<24 | uint64(b[i+5])<<16 | uint64(b[i+6])<<8 | uint64(b[i+7])
		h = mix64(h ^ w)
	}
	return h
}

// mix64 is a 64-bit finaliser (xor-shift-multiply), good enough to spread
// addresses over sets and flows over queues.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// peerAllow is inet_peer_xrlim_allow: tokens accrue with time up to 6
// intervals; an error costs one interval. A new destination starts full.
func (l *ICMPLimiter) peerAllow(dst netip.Addr, now int64) bool {
	s := &l.sets[l.hashAddr(dst)%icmpPeerSets]
	s.mu.Lock()
	defer s.mu.Unlock()
	const full = icmpPeerBurst * icmpPeerInterval
	var p *icmpPeer
	victim := 0
	for i := range s.ways {
		w := &s.ways[i]
		if w.addr == dst {
			p = w
			break
		}
		v := &s.ways[victim]
		if v.addr.IsValid() && (!w.addr.IsValid() || w.last < v.last) {
			victim = i
		}
	}
	if p == nil {
		p = &s.ways[victim]
		*p = icmpPeer{addr: dst, tokens: full, last: now}
	}
	tok := p.tokens
	if now > p.last {
		tok += now - p.last
	}
	p.last = now
	if tok > full {
		tok = full
	}
	ok := tok >= icmpPeerInterval
	if ok {
		tok -= icmpPeerInterval
	}
	p.tokens = tok
	return ok
}

// rejectRT is the runtime of one REJECT rule.
type rejectRT struct {
	with      RejectType
	code      uint8
	lim       *ICMPLimiter
	ifaceAddr func(string, xt.Family) (netip.Addr, bool)
}

// Build refuses IPv6 (REJECT is registered for iptables only) and takes
// the engine-wide ICMP limiter from env.Named.
func (r *Reject) Build(env *xt.Env) (xt.PacketTarget, error) {
	if env.Family != xt.IPv4 {
		return nil, fmt.Errorf("REJECT: only IPv4 replies are built by the uptables engine")
	}
	rt := &rejectRT{with: r.With, ifaceAddr: env.IfaceAddr}
	rt.code, _ = r.With.ICMPCode()
	if r.With != RejectTCPReset {
		if env.Named == nil {
			rt.lim = NewICMPLimiter(env.Rand)
		} else {
			v, err := env.Named.Shared("REJECT", "icmp", func() (any, error) { return NewICMPLimiter(env.Rand), nil })
			if err != nil {
				return nil, err
			}
			l, ok := v.(*ICMPLimiter)
			if !ok {
				return nil, fmt.Errorf("REJECT: shared ICMP limiter has type %T", v)
			}
			rt.lim = l
		}
	}
	return rt, nil
}

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// noReplyAddr reports addresses the kernel never answers or sends to
// (multicast and broadcast routes, the unspecified source). A directed
// subnet broadcast cannot be recognised without the interface's prefix.
func noReplyAddr(a netip.Addr) bool {
	return a.IsMulticast() || a == limitedBroadcast || a.IsUnspecified() || !a.IsValid()
}

// Do drops the packet and emits the reply when the kernel would send one.
func (r *rejectRT) Do(c *xt.Ctx) xt.Verdict {
	p := c.P
	if p.Version != 4 || p.Status == packet.BadL3 || noReplyAddr(p.Dst) || noReplyAddr(p.Src) {
		return xt.VerdictDrop
	}
	if r.with == RejectTCPReset {
		// No RST for an RST, a non-first fragment, a cut header or a bad
		// checksum (nf_reject_ip_tcphdr_get).
		if p.Proto != header.ProtoTCP || p.Status != packet.OK || p.L4Partial || p.TCPFlags&header.TCPFlagRST != 0 {
			return xt.VerdictDrop
		}
		if !r.csumOK(c) {
			return xt.VerdictDrop
		}
		if n := p.WriteTCPReset(c.Scratch[:], replyTTL); n > 0 {
			// nf_send_reset switches the offending packet's connection to
			// CLOSE once the RST is built, before the RST crosses OUTPUT
			// (so even when an OUTPUT rule drops it): connlimit stops
			// counting it at once (spec §8.3, measured on 6.18).
			if c.Conntrack != nil {
				c.Conntrack.SetClosing(c.CT.Conn, p.TimeNS)
			}
			c.Out.Reply(c, c.Scratch[:n])
		}
		return xt.VerdictDrop
	}
	if p.FragOff != 0 {
		return xt.VerdictDrop
	}
	if p.Proto == header.ProtoICMP {
		// Never an error about an error; unknown types (> 18) count as
		// errors, as icmp_send assumes. A cut ICMP header: no type, no reply.
		if p.Status != packet.OK || p.ICMPType > 18 || header.ICMPv4IsError(p.ICMPType) {
			return xt.VerdictDrop
		}
	}
	if !r.csumOK(c) {
		return xt.VerdictDrop
	}
	loop := c.Hook == xt.LocalOut || p.InIface == "lo" || p.Src.IsLoopback()
	if !r.lim.Allow(p.Src, p.TimeNS, loop) {
		return xt.VerdictDrop
	}
	orig := p.Data
	if p.TotalLen > 0 && p.TotalLen < len(orig) {
		orig = orig[:p.TotalLen]
	}
	if n := header.WriteIPv4ICMPError(c.Scratch[:], orig, 3, r.code, 0, r.source(c).As4(), r.lim.nextID(), replyTTL); n > 0 {
		c.Out.Reply(c, c.Scratch[:n])
	}
	return xt.VerdictDrop
}

// source is the ICMP error's source address (icmp_send): the address the
// packet was sent to when it is local (INPUT; OUTPUT over lo); for a
// forwarded packet the address of the interface it came in on (the
// route back to the sender, with icmp_errors_use_inbound_ifaddr=0 on a
// host with one interface per link), falling back to the packet's
// destination when Env.IfaceAddr does not know it; for other locally
// generated packets the packet's own (local) source.
func (r *rejectRT) source(c *xt.Ctx) netip.Addr {
	p := c.P
	switch c.Hook {
	case xt.Forward:
		if r.ifaceAddr != nil && p.InIface != "" {
			if a, ok := r.ifaceAddr(p.InIface, xt.IPv4); ok && a.Is4() {
				return a
			}
		}
	case xt.LocalOut:
		if p.OutIface != "lo" && !p.Dst.IsLoopback() {
			return p.Src
		}
	}
	return p.Dst
}

// csumOK is nf_reject's checksum test: TCP, UDP and UDP-Lite checksums are
// verified (a zero UDP checksum means none; UDP-Lite is not checked) unless the data plane vouches
// for them (for every packet, or for this one: the kernel verified its
// checksum or has not computed it yet) or the packet is locally generated (OUTPUT).
func (r *rejectRT) csumOK(c *xt.Ctx) bool {
	p := c.P
	if c.L4CsumOK || p.L4CsumTrusted || c.Hook == xt.LocalOut {
		return true
	}
	switch p.Proto {
	case header.ProtoTCP, header.ProtoUDP:
	default: // UDP-Lite's partial coverage is not checked
		return true
	}
	if p.Status == packet.Fragment || p.L4Off <= 0 || p.L4Off > len(p.Data) {
		return true
	}
	// Conntrack verified the checksum in PREROUTING (tcp_error/udp_error
	// with nf_conntrack_checksum=1) and left the skb CHECKSUM_UNNECESSARY,
	// which nf_ip_checksum trusts without summing again (measured on
	// 6.18: with conntrack on, a SYN whose record-route option INPUT saw
	// rewritten still got its RST).
	if ct := c.Conntrack; ct != nil && !c.NoTrack && c.CT.Info.State != conntrack.Untracked &&
		c.CT.Reason != conntrack.ReasonTruncated && c.CT.Reason != conntrack.ReasonChecksum && !ct.Config().NoChecksum {
		return true
	}
	end := len(p.Data)
	if p.TotalLen > 0 && p.TotalLen < end {
		end = p.TotalLen
	}
	l4 := p.Data[p.L4Off:end]
	if p.Proto == header.ProtoUDP && len(l4) >= 8 && l4[6] == 0 && l4[7] == 0 {
		return true
	}
	ip := p.Data
	// nf_ip_checksum sums the whole skb from its data pointer, which at
	// these hooks is the IP header: a valid header adds nothing, but one
	// whose options ip_rcv_options rewrote (record route, timestamp:
	// checksum not recomputed for local delivery) makes the test fail, so
	// the kernel sends no RST/ICMP for such packets (measured on 6.18).
	if p.Version == 4 && p.HdrLen >= 20 && p.HdrLen <= len(ip) && header.Sum(ip[:p.HdrLen], 0) != 0xffff {
		return false
	}
	ps := header.PseudoHeaderSum(ip[12:16], ip[16:20], p.Proto, len(l4))
	return header.Sum(l4, ps) == 0xffff
}
