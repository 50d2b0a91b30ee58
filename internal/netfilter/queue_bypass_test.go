package netfilter_test

import (
	"testing"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

// queueRules is the kernel experiment of spec §10.2 (Linux 6.18,
// iptables-nft 1.8.9, nothing bound to queues 7 and 8), with UDP datagrams
// to ports 6001-6005, two from each client socket. Measured counters:
//
//	mangle PREROUTING  6001 NFQUEUE bypass 2, next rule 0
//	mangle INPUT       6001 2; 6002 -j QCH 2, next rule 0; QCH: NFQUEUE bypass 2, next rule 0
//	filter INPUT       6001 2, 6002 2, 6003 NFQUEUE bypass 2, next rule 0,
//	                   6004 NFQUEUE (no bypass) 2, next rule 0 (no reply: dropped),
//	                   6005 state NEW NFQUEUE bypass 1, DROP 1 (the second datagram
//	                   is ESTABLISHED: the bypassed first one was confirmed)
//	conntrack -L       entries for 6001, 6002, 6003, 6005; none for 6004
const queueRules = `
-t mangle -N QCH
-t mangle -A PREROUTING -p udp --dport 6001 -j NFQUEUE --queue-num 7 --queue-bypass
-t mangle -A PREROUTING -p udp --dport 6001
-t mangle -A INPUT -p udp --dport 6001
-t mangle -A INPUT -p udp --dport 6002 -j QCH
-t mangle -A INPUT -p udp --dport 6002
-t mangle -A QCH -j NFQUEUE --queue-num 7 --queue-bypass
-t mangle -A QCH -p udp
-A INPUT -p udp --dport 6001
-A INPUT -p udp --dport 6002
-A INPUT -p udp --dport 6003 -j NFQUEUE --queue-num 7 --queue-bypass
-A INPUT -p udp --dport 6003
-A INPUT -p udp --dport 6004 -j NFQUEUE --queue-num 8
-A INPUT -p udp --dport 6004
-A INPUT -p udp --dport 6005 -m state --state NEW -j NFQUEUE --queue-num 7 --queue-bypass
-A INPUT -p udp --dport 6005 -j DROP
-A OUTPUT -p udp --sport 6001:6005
`

func TestQueueBypassWithoutListener(t *testing.T) {
	h := load(t, queueRules)
	h.w.SetNoQueueListener(true)
	want := map[uint16][2]xt.Verdict{
		6001: {xt.VerdictAccept, xt.VerdictAccept},
		6002: {xt.VerdictAccept, xt.VerdictAccept},
		6003: {xt.VerdictAccept, xt.VerdictAccept},
		6004: {xt.VerdictQueue, xt.VerdictQueue},
		6005: {xt.VerdictAccept, xt.VerdictDrop},
	}
	for port := uint16(6001); port <= 6005; port++ {
		for i := range 2 {
			b := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.2", Dst: server, SrcPort: 40000 + port, DstPort: port, Payload: []byte("hello0")})
			r := h.in(b)
			if r.Verdict != want[port][i] {
				t.Errorf("port %d datagram %d: %v, want %v (%+v)", port, i+1, r.Verdict, want[port][i], r)
			}
			if port == 6004 && (r.Queue.Num != 8 || r.Queue.Bypass) {
				t.Errorf("port 6004: queue %+v", r.Queue)
			}
			if r.Verdict == xt.VerdictAccept { // the server answers
				re := packettest.UDP(packettest.UDPOpts{Src: server, Dst: "10.0.0.2", SrcPort: port, DstPort: 40000 + port, Payload: []byte("re:hello0")})
				if r := h.out(re); r.Verdict != xt.VerdictAccept {
					t.Errorf("reply from %d: %+v", port, r)
				}
			}
		}
	}
	checks := []struct {
		table, chain string
		want         []uint64
	}{
		{"mangle", "PREROUTING", []uint64{2, 0}},
		{"mangle", "INPUT", []uint64{2, 2, 0}},
		{"mangle", "QCH", []uint64{2, 0}},
		{"filter", "INPUT", []uint64{2, 2, 2, 0, 2, 0, 1, 1}},
		{"filter", "OUTPUT", []uint64{7}},
	}
	for _, c := range checks {
		if got := h.counters(c.table, c.chain); !eqU(got, c.want...) {
			t.Errorf("%s %s counters %v, want %v", c.table, c.chain, got, c.want)
		}
	}
	ports := map[uint16]bool{}
	h.e.ConntrackTable().Range(h.now, func(e *conntrack.Entry) bool {
		ports[e.Orig.DstID] = true
		return true
	})
	for port := uint16(6001); port <= 6005; port++ {
		if ports[port] != (port != 6004) {
			t.Errorf("conntrack entry for %d: %v", port, ports[port])
		}
	}
}

// Without SetNoQueueListener (the NFQUEUE data plane) every queue verdict
// ends traversal and goes to the kernel with its bypass flag.
func TestQueueVerdictWithListener(t *testing.T) {
	h := load(t, queueRules)
	b := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.2", Dst: server, SrcPort: 41001, DstPort: 6001, Payload: []byte("x")})
	r := h.in(b)
	if r.Verdict != xt.VerdictQueue || r.Queue != (xt.QueueInfo{Num: 7, Bypass: true}) || r.Hook != xt.PreRouting {
		t.Fatalf("%+v", r)
	}
	if got := h.counters("mangle", "INPUT"); got[0] != 0 {
		t.Fatalf("INPUT ran after the queue verdict: %v", got)
	}
}

// A REJECT reply that meets NFQUEUE --queue-bypass in OUTPUT goes on to
// the next table and leaves, as any locally generated packet would.
func TestQueueBypassReplyPath(t *testing.T) {
	h := load(t, `
-A INPUT -p tcp --dport 5001 --syn -j REJECT --reject-with tcp-reset
-t mangle -A OUTPUT -p tcp --tcp-flags RST RST -j NFQUEUE --queue-num 3 --queue-bypass
-A OUTPUT -p tcp --tcp-flags RST RST -m state --state RELATED
`)
	h.w.SetNoQueueListener(true)
	c := &conn{cli: "10.0.0.7", cport: 41000, dst: 5001}
	if o := h.connect(c); o != reset {
		t.Fatalf("connect: %c, want reset", o)
	}
	if got := h.counters("filter", "OUTPUT"); !eqU(got, 1) {
		t.Fatalf("filter OUTPUT %v", got)
	}
	syn := c.seg(true, packettest.SYN, 1, 0)
	h.w = h.e.NewWorker(nopEmitter{})
	h.w.SetNoQueueListener(true)
	if n := testing.AllocsPerRun(100, func() { h.run(netfilter.PathInput, syn) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
