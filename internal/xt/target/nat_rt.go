package target

import (
	"fmt"
	"math/bits"
	"net/netip"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/xt"
)

// This file is the runtime of DNAT, SNAT, MASQUERADE and REDIRECT (§9.11).
// A NAT target only chooses the binding of a new connection, on the
// connection's first packet in the nat table: it picks the address and port
// (the kernel's get_unique_tuple), stores them with Conn.SetNAT and
// returns ACCEPT. The engine then rewrites this packet and every later one
// of the connection, both directions, from the binding.

type natKind uint8

const (
	natDNAT natKind = iota
	natSNAT
	natMasquerade
	natRedirect
)

// natRT is the runtime of one NAT rule.
type natRT struct {
	kind       natKind
	name       string
	fam        xt.Family
	rng        NATRange
	random     bool // --random or --random-fully: the port is drawn at random
	persistent bool
	ifaceAddr  func(string, xt.Family) (netip.Addr, bool)
	rand       func() uint32
}

// natMaxAttempts bounds the search for a free port (NF_NAT_MAX_ATTEMPTS).
const natMaxAttempts = 128

func newNATRT(kind natKind, name string, env *xt.Env, rng NATRange, f natFlags) (*natRT, error) {
	r := &natRT{kind: kind, name: name, fam: env.Family, rng: rng, random: f.Random || f.RandomFully,
		persistent: f.Persistent, ifaceAddr: env.IfaceAddr, rand: env.Rand}
	if r.rand == nil {
		return nil, fmt.Errorf("%s: the engine gave no random source (Env.Rand)", name)
	}
	if rng.HasAddr && rng.MinAddr.Is4() && rng.MaxAddr.Is4() && addr4(rng.MaxAddr) < addr4(rng.MinAddr) {
		// iptables accepts "10.0.0.9-10.0.0.1"; the kernel then maps
		// nothing useful. Refuse rather than guess.
		return nil, fmt.Errorf("%s: address range %s-%s is reversed", name, rng.MinAddr, rng.MaxAddr)
	}
	return r, nil
}

// Build of DNAT and SNAT.
func (n *natTarget) Build(env *xt.Env) (xt.PacketTarget, error) {
	kind := natDNAT
	if n.name == "SNAT" {
		kind = natSNAT
	}
	rng := n.Range
	if !n.keepBase {
		rng.HasBase = false
	}
	return newNATRT(kind, n.name, env, rng, n.natFlags)
}

// Build of MASQUERADE: the address is the outgoing interface's, asked of
// Env.IfaceAddr for each new connection.
func (m *Masquerade) Build(env *xt.Env) (xt.PacketTarget, error) {
	if env.IfaceAddr == nil {
		return nil, fmt.Errorf("MASQUERADE needs interface addresses, which the engine does not provide (Env.IfaceAddr)")
	}
	rng := m.Ports
	rng.HasBase = false
	return newNATRT(natMasquerade, "MASQUERADE", env, rng, m.natFlags)
}

// Build of REDIRECT: from PREROUTING the address is the incoming
// interface's (Env.IfaceAddr), from OUTPUT the loopback address.
func (r *Redirect) Build(env *xt.Env) (xt.PacketTarget, error) {
	if env.IfaceAddr == nil && env.Hooks.Has(xt.PreRouting) {
		return nil, fmt.Errorf("REDIRECT in PREROUTING needs interface addresses, which the engine does not provide (Env.IfaceAddr)")
	}
	rng := r.Ports
	rng.HasBase = false
	return newNATRT(natRedirect, "REDIRECT", env, rng, natFlags{Random: r.Random})
}

func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func from4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Do binds a new connection and accepts. Without a connection, or when
// the connection already has a binding for this hook's manip type, it just
// accepts (the engine does not run nat then anyway). MASQUERADE and
// REDIRECT drop the packet when the interface has no address, as the
// kernel does.
func (r *natRT) Do(c *xt.Ctx) xt.Verdict {
	conn := c.CT.Conn
	if conn == nil {
		return xt.VerdictAccept
	}
	m := conntrack.ManipForHook(c.Hook)
	if conn.NATInitialized(m) {
		return xt.VerdictAccept
	}
	var minA, maxA netip.Addr
	mapIPs := false
	switch r.kind {
	case natDNAT, natSNAT:
		if r.rng.HasAddr {
			minA, maxA, mapIPs = r.rng.MinAddr, r.rng.MaxAddr, true
		}
	case natMasquerade:
		a, ok := r.ifaceAddr(c.P.OutIface, r.fam)
		if !ok {
			return xt.VerdictDrop
		}
		minA, maxA, mapIPs = a, a, true
	case natRedirect:
		var a netip.Addr
		ok := true
		if c.Hook == xt.LocalOut {
			a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
			if r.fam == xt.IPv6 {
				a = netip.IPv6Loopback()
			}
		} else {
			a, ok = r.ifaceAddr(c.P.InIface, r.fam)
		}
		if !ok {
			return xt.VerdictDrop
		}
		minA, maxA, mapIPs = a, a, true
	}
	cur, ok := conn.ReplyTuple().Invert()
	if !ok {
		cur = conn.Orig()
	}
	t := r.uniqueTuple(c, cur, m, mapIPs, minA, maxA)
	addr, port := t.Dst, t.DstID
	if m == conntrack.ManipSrc {
		addr, port = t.Src, t.SrcID
	}
	if !t.HasPorts() {
		port = 0
	}
	// Errors mean the binding was already made or the entry is confirmed:
	// nothing left to choose.
	_ = conn.SetNAT(m, addr, port)
	return xt.VerdictAccept
}

// taken reports whether the connection would clash with a live one: the
// reply tuple of the translated tuple t is in use (nf_nat_used_tuple).
func taken(c *xt.Ctx, t conntrack.Tuple) bool {
	if c.Conntrack == nil {
		return false
	}
	rt, ok := t.Invert()
	if !ok {
		return false
	}
	return c.Conntrack.TupleTaken(rt, c.P.TimeNS)
}

func manipAddr(t *conntrack.Tuple, m conntrack.Manip) *netip.Addr {
	if m == conntrack.ManipSrc {
		return &t.Src
	}
	return &t.Dst
}

func manipPort(t *conntrack.Tuple, m conntrack.Manip) *uint16 {
	if m == conntrack.ManipSrc {
		return &t.SrcID
	}
	return &t.DstID
}

// inRange reports whether t's manipulated address and port already lie in
// the rule's range.
func (r *natRT) inRange(t conntrack.Tuple, m conntrack.Manip, mapIPs bool, minA, maxA netip.Addr) bool {
	if mapIPs {
		a := *manipAddr(&t, m)
		if a.Less(minA) || maxA.Less(a) {
			return false
		}
	}
	if r.rng.HasPorts && t.HasPorts() {
		p := *manipPort(&t, m)
		if p < r.rng.MinPort || p > r.rng.MaxPort {
			return false
		}
	}
	return true
}

// uniqueTuple is the kernel's choice of the translated tuple:
//  1. SNAT without --random keeps the tuple when it is already in range
//     and unique (a source port is kept whenever possible);
//  2. the address: the only one, or one picked from the range by a hash of
//     the source address and, unless --persistent, the destination - so a
//     client keeps its address across connections;
//  3. the port: kept when it is in range (a one-port range is used even
//     if taken) and the tuple is unique, unless --random;
//  4. otherwise a free port is searched in the range (no range: DNAT keeps
//     the port; SNAT searches 1-511, 600-1023 or 1024-65535 by the
//     original port's class), starting at 0 for DNAT, at random for SNAT
//     and --random, at the shifted offset for DNAT's "A-B/C", trying at
//     most 128 ports, then ever fewer from random starts. If all are taken
//     the last one tried is used, as in the kernel.
//
// Protocols without ports (ICMP ids included) only get the address.
func (r *natRT) uniqueTuple(c *xt.Ctx, cur conntrack.Tuple, m conntrack.Manip, mapIPs bool, minA, maxA netip.Addr) conntrack.Tuple {
	if m == conntrack.ManipSrc && !r.random && r.inRange(cur, m, mapIPs, minA, maxA) && !taken(c, cur) {
		return cur
	}
	t := cur
	if mapIPs {
		*manipAddr(&t, m) = r.pickAddr(cur, minA, maxA)
	}
	if !t.HasPorts() {
		return t
	}
	if !r.random {
		if r.rng.HasPorts {
			p := *manipPort(&t, m)
			if !r.rng.HasBase && p >= r.rng.MinPort && p <= r.rng.MaxPort &&
				(r.rng.MinPort == r.rng.MaxPort || !taken(c, t)) {
				return t
			}
		} else if !taken(c, t) {
			return t
		}
	}
	key := manipPort(&t, m)
	var lo, size uint32
	if r.rng.HasPorts {
		lo, size = uint32(r.rng.MinPort), uint32(r.rng.MaxPort)-uint32(r.rng.MinPort)+1
	} else {
		if m == conntrack.ManipDst {
			return t
		}
		switch p := *key; {
		case p < 512:
			lo, size = 1, 511
		case p < 1024:
			lo, size = 600, 1023-600+1
		default:
			lo, size = 1024, 65535-1024+1
		}
	}
	var off uint32
	switch {
	case r.rng.HasBase && !r.random:
		off = uint32(*key) - uint32(r.rng.Base)
	case r.random || m != conntrack.ManipDst:
		off = r.rand() & 0xffff
	}
	attempts := min(size, natMaxAttempts)
	for {
		for i := uint32(0); i < attempts; i, off = i+1, off+1 {
			*key = uint16(lo + off%size)
			if !taken(c, t) {
				return t
			}
		}
		if attempts >= size || attempts < 16 {
			return t
		}
		attempts /= 2
		off = r.rand() & 0xffff
	}
}

// pickAddr chooses the address from [minA, maxA] as the kernel's
// find_best_ips_proto does, so that uptables and the kernel send the same
// client to the same address (measured against the kernel in
// internal/kerneldiff, router scenario dnat-ranges): j = jhash2 of the
// connection's source address as the kernel stores it (a 16-byte
// nf_inet_addr, four host-order words, the IPv4 address in the first and
// zeros after it) with the initial value 0 under --persistent, else the
// destination's first word XOR the zone; the address is then
// min + reciprocal_scale(j, max-min+1), i.e. min + (j*dist)>>32. IPv4
// ranges only; an IPv6 range only ever has one address here.
func (r *natRT) pickAddr(t conntrack.Tuple, minA, maxA netip.Addr) netip.Addr {
	if minA == maxA || !minA.Is4() || !maxA.Is4() || !t.Src.Is4() || !t.Dst.Is4() {
		return minA
	}
	lo, hi := addr4(minA), addr4(maxA)
	dist := uint64(hi-lo) + 1
	var init uint32
	if !r.persistent {
		init = hostWord(t.Dst) ^ uint32(t.Zone)
	}
	j := jhash2([4]uint32{hostWord(t.Src), 0, 0, 0}, init)
	return from4(lo + uint32(uint64(j)*dist>>32))
}

// hostWord is an IPv4 address as the kernel's u32 view of its network-order
// bytes reads on a little-endian machine (the machines the kernel
// behaviour was measured on).
func hostWord(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// jhash2 is Bob Jenkins' lookup3 hashword over k with initial value init,
// the kernel's jhash2 (include/linux/jhash.h), for four words: one mix
// round over the first three, then the fourth added to a and the final
// mix.
func jhash2(k [4]uint32, init uint32) uint32 {
	a := 0xdeadbeef + uint32(len(k))<<2 + init
	b, c := a, a
	a += k[0]
	b += k[1]
	c += k[2]
	// mix
	a -= c
	a ^= bits.RotateLeft32(c, 4)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 6)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 8)
	b += a
	a -= c
	a ^= bits.RotateLeft32(c, 16)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 19)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 4)
	b += a
	a += k[3]
	// final
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return c
}
