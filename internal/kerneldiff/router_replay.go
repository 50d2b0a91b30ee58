package kerneldiff

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/uptables/uptables/internal/dataplane/replay"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/xt"
)

// frame is one captured Ethernet frame: its time, the router device it
// was captured on, the Ethernet header (LOG's MAC=) and the IPv4 packet
// (nil for ARP and anything else that is not IPv4).
type frame struct {
	ts   int64
	dev  string
	link []byte
	ip   []byte
}

// maxRouterFrames bounds one capture read (the scenarios send a few
// hundred packets).
const maxRouterFrames = 100000

// readCapture reads a tcpdump capture of an Ethernet device.
func readCapture(path, dev string) ([]frame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		return nil, fmt.Errorf("%s: link type %v, want Ethernet", path, r.LinkType())
	}
	var out []frame
	for len(out) < maxRouterFrames {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("%s: frame %d: %w", path, len(out)+1, err)
		}
		fr := frame{ts: ci.Timestamp.UnixNano(), dev: dev}
		if len(data) >= 14 && binary.BigEndian.Uint16(data[12:14]) == 0x0800 {
			fr.link = append([]byte(nil), data[:14]...)
			fr.ip = append([]byte(nil), data[14:]...)
		}
		out = append(out, fr)
	}
	return out, fmt.Errorf("%s: more than %d frames", path, maxRouterFrames)
}

// fmtPacket is one line per packet for the egress comparison: a readable
// summary (protocol, addresses and ports, TCP flags, TTL, IP ID, length,
// the IP and L4 checksums) followed by the whole packet in hex, so that
// two lines are equal exactly when the packets are byte for byte.
func fmtPacket(ip []byte) string {
	var p packet.Packet
	if p.Decode(ip) == packet.BadL3 {
		return "undecodable " + hex.EncodeToString(ip)
	}
	var b strings.Builder
	switch p.Proto {
	case 6:
		fmt.Fprintf(&b, "tcp %s > %s [%s]", netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort), tcpFlagString(p.TCPFlags))
	case 17:
		fmt.Fprintf(&b, "udp %s > %s", netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort))
	case 1:
		fmt.Fprintf(&b, "icmp %s > %s type %d code %d id %d", p.Src, p.Dst, p.ICMPType, p.ICMPCode, p.ICMPID)
	default:
		fmt.Fprintf(&b, "proto %d %s > %s", p.Proto, p.Src, p.Dst)
	}
	fmt.Fprintf(&b, " ttl=%d id=%d len=%d ipsum=%04x", p.TTL, p.ID, len(ip), binary.BigEndian.Uint16(ip[10:12]))
	if p.Status == packet.OK {
		switch p.Proto {
		case 6:
			if p.L4Off+18 <= len(ip) {
				fmt.Fprintf(&b, " l4sum=%04x", binary.BigEndian.Uint16(ip[p.L4Off+16:]))
			}
		case 17, 1:
			off := p.L4Off + 6
			if p.Proto == 1 {
				off = p.L4Off + 2
			}
			if off+2 <= len(ip) {
				fmt.Fprintf(&b, " l4sum=%04x", binary.BigEndian.Uint16(ip[off:]))
			}
		}
	}
	b.WriteString(" | ")
	b.WriteString(hex.EncodeToString(ip))
	return b.String()
}

// flowOrder orders packet lines (fmtPacket) by flow — protocol, source and
// destination — keeping each flow's packets in the order sent. Packets of
// different flows that arrive together on different CPUs may leave in
// either order; within a flow the order is the kernel's.
func flowOrder(lines []string) []string {
	key := func(l string) string {
		f := strings.SplitN(l, " ", 5)
		if len(f) < 4 {
			return l
		}
		return strings.Join(f[:4], " ")
	}
	out := append([]string(nil), lines...)
	sort.SliceStable(out, func(i, j int) bool { return key(out[i]) < key(out[j]) })
	return out
}

func tcpFlagString(f uint8) string {
	const letters = "FSRPAUEC"
	var b []byte
	for i := 0; i < 8; i++ {
		if f&(1<<i) != 0 {
			b = append(b, letters[i])
		}
	}
	return string(b)
}

// normConntrack prepares conntrack -L lines for comparison: the timeout
// (third field: remaining seconds, which depend on when each side was
// asked) is dropped, blanks collapsed, and the lines sorted (the kernel
// lists in hash order).
func normConntrack(lines []string) []string {
	var out []string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		f = append(f[:2:2], f[3:]...)
		out = append(out, strings.Join(f, " "))
	}
	sort.Strings(out)
	return out
}

// routerEmitter collects what the engine's targets emit: LOG lines, and
// replies (REJECT), which leave by the device the offending packet came in
// on.
type routerEmitter struct {
	log    []string
	egress map[string][]string
}

func (e *routerEmitter) Reply(c *xt.Ctx, pkt []byte) {
	e.egress[c.P.InIface] = append(e.egress[c.P.InIface], fmtPacket(pkt))
}

// note adds the lines sent since the last call (seen counts them per
// device) to the unmatched multiset.
func (e *routerEmitter) note(sent map[string]map[string]int, seen map[string]int) {
	for dev, lines := range e.egress {
		for _, l := range lines[seen[dev]:] {
			sent[dev] = ensure(sent[dev])
			sent[dev][l]++
		}
		seen[dev] = len(lines)
	}
}

func ensure(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return m
}

func (e *routerEmitter) Log(_ *xt.Ctx, _ uint8, line []byte) { e.log = append(e.log, string(line)) }

// loadRouter parses rules with uptables' iptables-restore and loads them
// into a fresh engine (seed 1) that knows the router's interface
// addresses (MASQUERADE, REDIRECT) and local addresses (addrtype).
func loadRouter(rules string, t RouterTopology) (*netfilter.Engine, error) {
	eng, _, err := t.load(rules, "", 0)
	return eng, err
}

// routerConfig is the router engine's configuration: seed 1, the
// router's interface and local addresses.
func routerConfig(t RouterTopology) netfilter.Config {
	wan, lan := netip.MustParseAddr(t.Wan), netip.MustParseAddr(t.Lan)
	host := []xt.HostAddr{
		{Iface: "lo", Prefix: netip.MustParsePrefix("127.0.0.1/8")},
		{Iface: t.WanIf, Prefix: netip.PrefixFrom(wan, 24)},
		{Iface: t.LanIf, Prefix: netip.PrefixFrom(lan, 24)},
	}
	return netfilter.Config{
		Seed: 1,
		IfaceAddr: func(iface string, fam xt.Family) (netip.Addr, bool) {
			switch iface {
			case t.WanIf:
				return wan, true
			case t.LanIf:
				return lan, true
			case "lo":
				return netip.MustParseAddr("127.0.0.1"), true
			}
			return netip.Addr{}, false
		},
		LocalAddrs: func() []xt.HostAddr { return host },
	}
}

// routerRoute is the router's routing table: its own addresses (and
// loopback) are local, the two /24s are on their devices; there is no
// default route.
func routerRoute(t RouterTopology) netfilter.RouteFunc {
	wan, lan := netip.MustParseAddr(t.Wan), netip.MustParseAddr(t.Lan)
	wnet, lnet := netip.PrefixFrom(wan, 24).Masked(), netip.PrefixFrom(lan, 24).Masked()
	return func(p *packet.Packet) (string, bool) {
		switch {
		case p.Dst == wan || p.Dst == lan || p.Dst.IsLoopback():
			return "", true
		case wnet.Contains(p.Dst):
			return t.WanIf, false
		case lnet.Contains(p.Dst):
			return t.LanIf, false
		}
		return "", true
	}
}

// ReplayRouter runs the router's ingress frames (both devices, merged by
// time) through uptables as the router: PREROUTING, then the routing
// decision on the destination PREROUTING left, then INPUT or FORWARD and
// POSTROUTING. It returns the counters, LOG lines and recent lists, and
// the replay's end state: the engine (its connection table), the sets
// (loaded at the first frame's time when sets is not empty) and per
// device the packets uptables sent (forwarded packets as they leave
// POSTROUTING, and REJECT's replies). A result with an error means a
// recent list could not be read.
//
// egress, when not nil, are the router's egress captures, for scenarios
// where the router itself talks (REDIRECT to a local listener): an egress
// packet that is not one uptables forwarded or replied is the router's
// own and runs OUTPUT and POSTROUTING at its capture time, in the form
// OUTPUT saw (see replay.UndoLocalNAT).
func ReplayRouter(rules, sets string, t RouterTopology, ingress, egress []frame, recent []string) (*UptablesResult, *ReplayEnd, error) {
	type item struct {
		f   frame
		out bool
	}
	var all []item
	for _, f := range ingress {
		all = append(all, item{f: f})
	}
	for _, f := range egress {
		all = append(all, item{f: f, out: true})
	}
	// Ingress first at equal times: a packet is received before it (or
	// what it causes) is sent.
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].f.ts != all[j].f.ts {
			return all[i].f.ts < all[j].f.ts
		}
		return !all[i].out && all[j].out
	})
	var start int64
	if len(all) > 0 {
		start = all[0].f.ts
	}
	eng, ss, err := t.load(rules, sets, start)
	if err != nil {
		return nil, nil, err
	}
	em := &routerEmitter{egress: map[string][]string{}}
	w := eng.NewWorker(em)
	w.SetRoute(routerRoute(t))
	res := &UptablesResult{Recent: map[string]string{}}
	// sent counts, per device, the lines uptables sent that no egress
	// frame has matched yet.
	sent := map[string]map[string]int{}
	seen := map[string]int{}
	var p packet.Packet
	var first, last int64
	for i, it := range all {
		f := it.f
		if i == 0 {
			first = f.ts
		}
		last = f.ts
		if it.out {
			if f.ip == nil {
				continue
			}
			em.note(sent, seen)
			line := fmtPacket(f.ip)
			if sent[f.dev][line] > 0 {
				sent[f.dev][line]--
				continue
			}
			// The router's own packet.
			if p.Decode(f.ip) == packet.BadL3 {
				continue
			}
			p.Link, p.InIface, p.OutIface, p.Mark, p.TimeNS, p.HasOwner = nil, "", f.dev, 0, f.ts, false
			replay.UndoLocalNAT(eng, &p)
			res.Local++
			if r := w.Process(netfilter.PathOutput, &p); r.Verdict == xt.VerdictAccept {
				em.egress[f.dev] = append(em.egress[f.dev], fmtPacket(p.Data))
				seen[f.dev]++ // matched by this very frame
			}
			continue
		}
		if f.ip == nil {
			res.Skipped++
			continue
		}
		if p.Decode(f.ip) == packet.BadL3 || p.Version != 4 {
			res.Skipped++
			continue
		}
		p.Link, p.InIface, p.OutIface, p.Mark, p.TimeNS, p.HasOwner = f.link, f.dev, "", 0, f.ts, false
		res.Packets++
		r := w.Process(netfilter.PathRouted, &p)
		if r.Verdict == xt.VerdictStolen {
			return nil, nil, fmt.Errorf("packet %d was a fragment kept for reassembly: router scenarios send none", i+1)
		}
		if r.Verdict == xt.VerdictAccept && r.Path == netfilter.PathForward {
			em.egress[p.OutIface] = append(em.egress[p.OutIface], fmtPacket(p.Data))
		}
	}
	res.Log = em.log
	var save bytes.Buffer
	if err := iptables.WriteSave(&save, eng.Ruleset(), iptables.SaveOptions{Counters: true, Now: time.Unix(0, last).UTC()}); err != nil {
		return nil, nil, err
	}
	res.Save = save.String()
	end := &ReplayEnd{Engine: eng, Sets: ss, FirstNS: first, LastNS: last, Egress: em.egress}
	return res, end, recentLists(res, eng, recent, first)
}
