package netfilter_test

import (
	"net/netip"
	"testing"

	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

// routedRouter is a two-interface router: 10.1.0.1 (wan) and 10.2.0.1
// (lan) are its own, 10.2.0.0/24 is behind lan, everything else behind wan.
func routedRouter(p *packet.Packet) (string, bool) {
	switch {
	case p.Dst == netip.MustParseAddr("10.1.0.1"), p.Dst == netip.MustParseAddr("10.2.0.1"):
		return "", true
	case netip.MustParsePrefix("10.2.0.0/24").Contains(p.Dst):
		return "lan", false
	}
	return "wan", false
}

func (h *harness) routed(b []byte, in string) netfilter.Result {
	h.t.Helper()
	if st := h.p.Decode(b); st == packet.BadL3 {
		h.t.Fatalf("test packet does not decode: %v", st)
	}
	h.p.InIface, h.p.OutIface, h.p.Mark = in, "stale", 0
	h.p.TimeNS = h.now
	h.now += 1_000_000
	return h.w.Process(netfilter.PathRouted, &h.p)
}

// A packet for the router's public address that PREROUTING DNATs to a host
// behind it is forwarded (the kernel routes after PREROUTING): FORWARD and
// POSTROUTING see it with the new destination, the reply (to the client,
// un-DNATed in POSTROUTING) is forwarded too, and a packet that stays for
// the router goes to INPUT. Without a route function everything is local.
func TestPathRoutedRoutesAfterDNAT(t *testing.T) {
	h := load(t, `
-t nat -A PREROUTING -i wan -p tcp -d 10.1.0.1 --dport 8080 -j DNAT --to-destination 10.2.0.2:80
-t nat -A POSTROUTING -o lan
-A FORWARD -i wan -o lan -p tcp --dport 80
-A FORWARD -i lan -o wan -p tcp --sport 80
-A INPUT -p tcp`)
	h.w.SetRoute(routedRouter)
	syn := packettest.TCP(packettest.TCPOpts{Src: "10.1.0.9", Dst: "10.1.0.1", SrcPort: 40000, DstPort: 8080, Flags: packettest.SYN, Seq: 1, Window: 1000})
	r := h.routed(syn, "wan")
	if r.Path != netfilter.PathForward || h.p.OutIface != "lan" {
		t.Fatalf("DNATed SYN: path %v out %q, want forward to lan", r.Path, h.p.OutIface)
	}
	if got := netip.AddrPortFrom(h.p.Dst, h.p.DstPort).String(); got != "10.2.0.2:80" || h.p.TTL != 63 {
		t.Fatalf("DNATed SYN leaves for %s with TTL %d, want 10.2.0.2:80 and 63", got, h.p.TTL)
	}
	sa := packettest.TCP(packettest.TCPOpts{Src: "10.2.0.2", Dst: "10.1.0.9", SrcPort: 80, DstPort: 40000, Flags: packettest.SYN | packettest.ACK, Seq: 7, Ack: 2, Window: 1000})
	if r := h.routed(sa, "lan"); r.Path != netfilter.PathForward || h.p.OutIface != "wan" {
		t.Fatalf("reply: path %v out %q", r.Path, h.p.OutIface)
	}
	if got := netip.AddrPortFrom(h.p.Src, h.p.SrcPort).String(); got != "10.1.0.1:8080" {
		t.Fatalf("reply leaves from %s, want 10.1.0.1:8080", got)
	}
	if pk, _, _ := h.ctr("filter", "FORWARD"); pk[0] != 1 || pk[1] != 1 {
		t.Fatalf("FORWARD counters %v, want [1 1]", pk)
	}
	if pk, _, _ := h.ctr("nat", "POSTROUTING"); pk[0] != 1 {
		t.Fatalf("nat POSTROUTING counters %v, want [1] (the SYN, routed to lan)", pk)
	}
	local := packettest.TCP(packettest.TCPOpts{Src: "10.1.0.9", Dst: "10.1.0.1", SrcPort: 40001, DstPort: 22, Flags: packettest.SYN, Seq: 1, Window: 1000})
	if r := h.routed(local, "wan"); r.Path != netfilter.PathInput || h.p.OutIface != "" || h.p.TTL != 64 {
		t.Fatalf("SYN for the router: path %v out %q ttl %d, want input, no OUT, TTL 64", r.Path, h.p.OutIface, h.p.TTL)
	}
	if pk, _, _ := h.ctr("filter", "INPUT"); pk[0] != 1 {
		t.Fatalf("INPUT counters %v", pk)
	}
	h.w.SetRoute(nil)
	other := packettest.TCP(packettest.TCPOpts{Src: "10.1.0.9", Dst: "10.2.0.2", SrcPort: 40002, DstPort: 80, Flags: packettest.SYN, Seq: 1, Window: 1000})
	if r := h.routed(other, "wan"); r.Path != netfilter.PathInput {
		t.Fatalf("without a route function: path %v, want input", r.Path)
	}
}

// PathRouted with an established flow allocates nothing (the route
// function is a plain func value).
func TestPathRoutedAllocs(t *testing.T) {
	h := load(t, `
-t nat -A PREROUTING -p tcp -d 10.1.0.1 --dport 8080 -j DNAT --to-destination 10.2.0.2:80
-A FORWARD -m state --state ESTABLISHED -j ACCEPT`)
	h.w.SetRoute(routedRouter)
	syn := packettest.TCP(packettest.TCPOpts{Src: "10.1.0.9", Dst: "10.1.0.1", SrcPort: 40000, DstPort: 8080, Flags: packettest.SYN, Seq: 1, Window: 1000})
	sa := packettest.TCP(packettest.TCPOpts{Src: "10.2.0.2", Dst: "10.1.0.9", SrcPort: 80, DstPort: 40000, Flags: packettest.SYN | packettest.ACK, Seq: 7, Ack: 2, Window: 1000})
	ack := packettest.TCP(packettest.TCPOpts{Src: "10.1.0.9", Dst: "10.1.0.1", SrcPort: 40000, DstPort: 8080, Flags: packettest.ACK, Seq: 2, Ack: 8, Window: 1000})
	h.routed(syn, "wan")
	h.routed(sa, "lan")
	buf := make([]byte, len(ack))
	n := testing.AllocsPerRun(200, func() {
		copy(buf, ack) // the packet is rewritten in place
		h.routed(buf, "wan")
	})
	if n != 0 {
		t.Fatalf("%v allocations per routed packet", n)
	}
}

// REJECT in FORWARD of a DNATed SYN: the RST is attached to the rejected
// connection as RELATED; that connection never reached POSTROUTING, so the
// RST crosses nat POSTROUTING (counted by its policy, as the kernel's
// nf_nat_inet_fn does for non-ICMP RELATED packets) and leaves with the
// public address. An ICMP error (REJECT with port unreachable) is only
// translated and never traverses nat.
func TestRelatedRSTTraversesNat(t *testing.T) {
	h := load(t, `
-t nat -A PREROUTING -p tcp -d 10.1.0.1 --dport 8080 -j DNAT --to-destination 10.2.0.2:80
-t nat -A PREROUTING -p udp -d 10.1.0.1 --dport 8053 -j DNAT --to-destination 10.2.0.2:53
-A FORWARD -p tcp -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -j REJECT`)
	h.w.SetRoute(routedRouter)
	syn := packettest.TCP(packettest.TCPOpts{Src: "10.1.0.9", Dst: "10.1.0.1", SrcPort: 40000, DstPort: 8080, Flags: packettest.SYN, Seq: 1, Window: 1000})
	if r := h.routed(syn, "wan"); r.Verdict != xt.VerdictDrop || len(h.rec.replies) != 1 {
		t.Fatalf("SYN: %+v, %d replies; want dropped by REJECT with one RST", r, len(h.rec.replies))
	}
	var rst packet.Packet
	rst.Decode(h.rec.replies[0])
	if got := netip.AddrPortFrom(rst.Src, rst.SrcPort).String(); got != "10.1.0.1:8080" || rst.TCPFlags&packettest.RST == 0 {
		t.Fatalf("RST from %s flags %#x, want from 10.1.0.1:8080", got, rst.TCPFlags)
	}
	if _, _, pol := h.ctr("nat", "POSTROUTING"); pol.Packets != 1 || pol.Bytes != 40 {
		t.Fatalf("nat POSTROUTING policy %+v, want the RST (1 packet, 40 bytes)", pol)
	}
	udp := packettest.UDP(packettest.UDPOpts{Src: "10.1.0.9", Dst: "10.1.0.1", SrcPort: 40001, DstPort: 8053})
	if r := h.routed(udp, "wan"); r.Verdict != xt.VerdictDrop || len(h.rec.replies) != 2 {
		t.Fatalf("UDP: %+v, %d replies; want dropped by REJECT with an ICMP error", r, len(h.rec.replies))
	}
	if _, _, pol := h.ctr("nat", "POSTROUTING"); pol.Packets != 1 {
		t.Fatalf("nat POSTROUTING policy %+v: the ICMP error must not traverse nat", pol)
	}
}
