package netfilter

import (
	"net/netip"
	"slices"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/ruleset"
)

// Address runs: the blocklist shape.
//
// A country or abuse blocklist is loaded as thousands of consecutive rules
// that differ only in their source (or destination) network:
//
//	-A INPUT -s 1.0.1.0/24 -j DROP
//	-A INPUT -s 1.0.2.0/23 -j DROP
//	...
//
// The kernel walks them one by one, so every packet pays for every rule
// (the seeds warn that such lists "affect iptables performance"). uptables
// finds these runs when it compiles a chain and answers "which rule of the
// run is the first to match this address?" with one binary search over
// disjoint address intervals. The answer moves the traversal straight to
// that rule, which then runs as usual, so verdicts, counters, LOG-free
// decisions and the rule number in traces are exactly those of the linear
// walk. A run qualifies only when skipping its non-matching rules cannot be
// observed:
//
//   - no matches and a terminal verdict (ACCEPT, DROP or RETURN), so only
//     the first matching rule of the run can ever take effect;
//   - identical generic parts (interfaces, protocol, fragment flag, the
//     other address) apart from the varying address, which is an IPv4
//     network with a contiguous mask and no "!".
//
// Under an explaining tracer (replay --trace) the linear walk runs instead,
// since the tracer reports every rule it visits.

// minAddrRun is the shortest run worth a lookup: below it the linear walk
// over a few generic parts is as fast as a binary search.
const minAddrRun = 16

// addrRun is one compiled run of rules [start, end) of a chain.
type addrRun struct {
	start, end int
	byDst      bool   // the varying address is the destination
	shared     ipPart // the common generic part, the varying address "any"
	// Disjoint, sorted intervals of the varying address, each with the
	// chain index of the first rule of the run whose network covers it.
	lo, hi []uint32
	first  []int32
}

// next returns the chain index of the first rule of the run that matches
// p, or r.end when none does.
func (r *addrRun) next(p *packet.Packet) int {
	if !r.shared.match(p) {
		return r.end
	}
	if r.byDst {
		return r.nextAddr(p.Dst)
	}
	return r.nextAddr(p.Src)
}

// nextAddr is next's lookup for the run's varying address a.
func (r *addrRun) nextAddr(a netip.Addr) int {
	if !a.Is4() {
		return r.end
	}
	b := a.As4()
	x := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	// The last interval starting at or below x.
	i, j := 0, len(r.lo)
	for i < j {
		h := int(uint(i+j) >> 1)
		if r.lo[h] <= x {
			i = h + 1
		} else {
			j = h
		}
	}
	if i == 0 || x > r.hi[i-1] {
		return r.end
	}
	return int(r.first[i-1])
}

// v4Net returns the network of a rule's address as an interval, when it is
// IPv4 with a contiguous mask.
func v4Net(addr, mask netip.Addr) (lo, hi uint32, ok bool) {
	if !addr.Is4() || !mask.Is4() {
		return 0, 0, false
	}
	a, m := addr.As4(), mask.As4()
	av := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	mv := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	if inv := ^mv; inv&(inv+1) != 0 || mv == 0 { // not a prefix of ones, or /0
		return 0, 0, false
	}
	return av & mv, av&mv | ^mv, true
}

// runKey reports whether r can be part of a run varying in the source
// (byDst false) or destination address, and the generic part it shares
// with the other rules of such a run.
func runKey(r *rule, byDst bool) (ipPart, bool) {
	if len(r.matches) != 0 || r.kind != ruleset.TargetVerdict {
		return ipPart{}, false
	}
	switch r.verdict {
	case ruleset.Accept, ruleset.Drop, ruleset.Return:
	default:
		return ipPart{}, false
	}
	ip := r.ip
	if byDst {
		if ip.anyDst || ip.invDst {
			return ipPart{}, false
		}
		if _, _, ok := v4Net(ip.dst, ip.dstMask); !ok {
			return ipPart{}, false
		}
		ip.dst, ip.dstMask, ip.anyDst = netip.Addr{}, netip.Addr{}, true
	} else {
		if ip.anySrc || ip.invSrc {
			return ipPart{}, false
		}
		if _, _, ok := v4Net(ip.src, ip.srcMask); !ok {
			return ipPart{}, false
		}
		ip.src, ip.srcMask, ip.anySrc = netip.Addr{}, netip.Addr{}, true
	}
	return ip, true
}

// findAddrRuns marks the runs of ch's rules (maximal, source runs tried
// before destination runs at each position) and builds their lookups.
func findAddrRuns(ch *chain) {
	rules := ch.rules
	for i := 0; i < len(rules); {
		best, bestEnd, bestDst := ipPart{}, i, false
		for _, byDst := range []bool{false, true} {
			key, ok := runKey(&rules[i], byDst)
			if !ok {
				continue
			}
			j := i + 1
			for j < len(rules) {
				k, ok := runKey(&rules[j], byDst)
				if !ok || k != key {
					break
				}
				j++
			}
			if j > bestEnd {
				best, bestEnd, bestDst = key, j, byDst
			}
		}
		if bestEnd-i < minAddrRun {
			i++
			continue
		}
		run := buildAddrRun(rules, i, bestEnd, bestDst, best)
		ch.runs = append(ch.runs, run)
		rules[i].run = len(ch.runs)
		i = bestEnd
	}
}

// buildAddrRun flattens the run's networks into disjoint intervals, each
// labelled with the first (lowest-index) rule covering it. CIDR networks
// are nested or disjoint, so a sweep over them sorted by start (wider
// first) with a stack of the enclosing networks gives every interval its
// label: the minimum over the stack.
func buildAddrRun(rules []rule, start, end int, byDst bool, shared ipPart) addrRun {
	type net struct {
		lo, hi uint64
		idx    int32
	}
	nets := make([]net, 0, end-start)
	for i := start; i < end; i++ {
		ip := &rules[i].ip
		a, m := ip.src, ip.srcMask
		if byDst {
			a, m = ip.dst, ip.dstMask
		}
		lo, hi, _ := v4Net(a, m)
		nets = append(nets, net{uint64(lo), uint64(hi), int32(i)})
	}
	slices.SortFunc(nets, func(a, b net) int {
		switch {
		case a.lo != b.lo:
			return cmpU64(a.lo, b.lo)
		case a.hi != b.hi:
			return cmpU64(b.hi, a.hi) // wider first
		}
		return int(a.idx - b.idx)
	})
	run := addrRun{start: start, end: end, byDst: byDst, shared: shared}
	emit := func(lo, hi uint64, first int32) {
		if lo > hi {
			return
		}
		if n := len(run.lo); n > 0 && run.first[n-1] == first && uint64(run.hi[n-1])+1 == lo {
			run.hi[n-1] = uint32(hi) // extend the previous interval
			return
		}
		run.lo = append(run.lo, uint32(lo))
		run.hi = append(run.hi, uint32(hi))
		run.first = append(run.first, first)
	}
	type open struct {
		hi    uint64
		first int32 // minimum rule index over this network and its parents
	}
	var stack []open
	var pos uint64
	for _, n := range nets {
		for len(stack) > 0 && stack[len(stack)-1].hi < n.lo {
			top := stack[len(stack)-1]
			emit(pos, top.hi, top.first)
			pos = top.hi + 1
			stack = stack[:len(stack)-1]
		}
		first := n.idx
		if len(stack) > 0 {
			top := stack[len(stack)-1]
			if n.lo > pos {
				emit(pos, n.lo-1, top.first)
			}
			first = min(first, top.first)
		}
		pos = max(pos, n.lo)
		stack = append(stack, open{hi: n.hi, first: first})
	}
	for len(stack) > 0 {
		top := stack[len(stack)-1]
		emit(pos, top.hi, top.first)
		pos = top.hi + 1
		stack = stack[:len(stack)-1]
	}
	return run
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
