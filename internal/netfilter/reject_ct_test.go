package netfilter_test

// REJECT's effect on connection tracking and the path of its own replies,
// as measured on Linux 6.18 with iptables-nft 1.8.9 in network namespaces
// (client 10.98.0.2, server 10.98.0.1 with the rules):
//
//   - tcp-reset of a segment of an ESTABLISHED connection: conntrack -E
//     shows "[UPDATE] tcp 6 10 CLOSE ... [ASSURED]" at once, conntrack -L
//     then "CLOSE" counting down from 10 s; also when an OUTPUT rule drops
//     the RST. A connlimit --connlimit-above 1 rule then admits the next
//     connection of that client (CLOSE is not counted).
//   - tcp-reset of a SYN: no event, no entry (never confirmed).
//   - icmp-port-unreachable of a TCP segment: the entry stays ESTABLISHED;
//     of a UDP datagram: the entry is unchanged (or never confirmed, for
//     the first one).
//   - The RST and the ICMP errors traverse OUTPUT: -m state --state
//     RELATED and -m conntrack --ctstate RELATED --ctdir REPLY count them,
//     NEW/ESTABLISHED/INVALID and --ctdir ORIGINAL do not; a LOG rule logs
//     the RST as "IN= OUT=rjs SRC=10.98.0.1 DST=10.98.0.2 LEN=40 TOS=0x00
//     PREC=0x00 TTL=64 ID=0 DF PROTO=TCP SPT=5007 DPT=45202 WINDOW=0
//     RES=0x00 RST URGP=0 ".

import (
	"net/netip"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

// rejectCTRules is the ruleset of the kernel experiment, on the test
// harness's addresses.
const rejectCTRules = `
-A INPUT -p tcp --dport 5001 --syn -j REJECT --reject-with tcp-reset
-A INPUT -p tcp --dport 5002 -m length --length 100:65535 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp --dport 5005 -m length --length 100:65535 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp --dport 5006 -m length --length 100:65535 -j REJECT
-A INPUT -p udp --dport 5003 -j REJECT --reject-with icmp-port-unreachable
-A OUTPUT -p tcp --sport 5005 --tcp-flags RST RST -j DROP
-A OUTPUT -p tcp --tcp-flags RST RST -m state --state NEW
-A OUTPUT -p tcp --tcp-flags RST RST -m state --state ESTABLISHED
-A OUTPUT -p tcp --tcp-flags RST RST -m state --state RELATED
-A OUTPUT -p tcp --tcp-flags RST RST -m state --state INVALID
-A OUTPUT -p tcp --tcp-flags RST RST -m conntrack --ctstate RELATED --ctdir ORIGINAL
-A OUTPUT -p tcp --tcp-flags RST RST -m conntrack --ctstate RELATED --ctdir REPLY
-A OUTPUT -p tcp --tcp-flags RST RST -j LOG --log-prefix "rjrst "
-A OUTPUT -p icmp -m state --state NEW,ESTABLISHED,INVALID,UNTRACKED
-A OUTPUT -p icmp -m conntrack --ctstate RELATED --ctdir ORIGINAL
-A OUTPUT -p icmp -m conntrack --ctstate RELATED --ctdir REPLY
`

// tuple is c's ORIGINAL conntrack tuple.
func (c *conn) tuple() conntrack.Tuple {
	return conntrack.Tuple{Src: netip.MustParseAddr(c.cli), Dst: netip.MustParseAddr(server), SrcID: c.cport, DstID: c.dst, Proto: 6}
}

// data sends a client segment with n payload bytes on an open connection.
func (h *harness) data(c *conn, n int) netfilter.Result {
	h.t.Helper()
	b := packettest.TCP(packettest.TCPOpts{Src: c.cli, Dst: server, SrcPort: c.cport, DstPort: c.dst,
		Flags: packettest.ACK | packettest.PSH, Seq: c.cseq + 1, Ack: c.sseq + 1, Window: 502, Payload: make([]byte, n)})
	return h.in(b)
}

func TestRejectTCPResetClosesConnection(t *testing.T) {
	h := load(t, rejectCTRules)
	c := &conn{cli: "10.0.0.7", cport: 43410, dst: 5002}
	if o := h.connect(c); o != accepted {
		t.Fatalf("connect: %c", o)
	}
	if e, ok := h.entry(c.tuple()); !ok || e.TCPState != conntrack.TCPEstablished || e.Status&conntrack.StatusAssured == 0 {
		t.Fatalf("before: %+v %v", e, ok)
	}
	if r := h.data(c, 10); r.Verdict != xt.VerdictAccept {
		t.Fatalf("small segment: %+v", r)
	}
	before := len(h.rec.replies)
	r := h.data(c, 200)
	now := h.now - 1_000_000 // the packet's time
	if r.Verdict != xt.VerdictDrop || len(h.rec.replies) != before+1 {
		t.Fatalf("200-byte segment: %+v, %d replies", r, len(h.rec.replies)-before)
	}
	e, ok := h.entry(c.tuple())
	if !ok || e.TCPState != conntrack.TCPClose || e.Status&conntrack.StatusAssured == 0 || e.Expires != now+int64(10*time.Second) {
		t.Fatalf("after the reset: %v %v expires in %v, want CLOSE [ASSURED] 10s", e.TCPState, e.Status, time.Duration(e.Expires-now))
	}
	// OUTPUT: the RST was RELATED in the reply direction, and logged.
	want := []uint64{0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0}
	if got := h.counters("filter", "OUTPUT"); !eqU(got[:11], want...) {
		t.Fatalf("OUTPUT counters %v, want %v", got[:11], want)
	}
	wantLog := "rjrst IN= OUT=eth0 SRC=10.0.0.100 DST=10.0.0.7 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=TCP SPT=5002 DPT=43410 WINDOW=0 RES=0x00 RST URGP=0 "
	if len(h.rec.logs) != 1 || h.rec.logs[0] != wantLog {
		t.Fatalf("LOG lines %q\nwant %q", h.rec.logs, wantLog)
	}
}

// The kernel switches the connection to CLOSE when it builds the RST,
// before the RST crosses OUTPUT: an OUTPUT rule dropping the RST does not
// keep the connection alive, and no reply leaves.
func TestRejectTCPResetClosesEvenWhenOutputDropsTheRST(t *testing.T) {
	h := load(t, rejectCTRules)
	c := &conn{cli: "10.0.0.7", cport: 50288, dst: 5005}
	if o := h.connect(c); o != accepted {
		t.Fatalf("connect: %c", o)
	}
	before := len(h.rec.replies)
	if r := h.data(c, 200); r.Verdict != xt.VerdictDrop {
		t.Fatalf("segment: %+v", r)
	}
	if n := len(h.rec.replies) - before; n != 0 {
		t.Fatalf("%d replies left although OUTPUT drops the RST", n)
	}
	if e, ok := h.entry(c.tuple()); !ok || e.TCPState != conntrack.TCPClose {
		t.Fatalf("after the dropped reset: %v %v, want CLOSE", e.TCPState, ok)
	}
	if got := h.counters("filter", "OUTPUT"); got[0] != 1 || got[6] != 0 {
		t.Fatalf("OUTPUT counters %v: the DROP rule counts the RST, nothing after it", got)
	}
}

// A rejected SYN's entry is never confirmed: no entry is left, the RST is
// RELATED (reply direction) in OUTPUT.
func TestRejectSYNLeavesNoEntry(t *testing.T) {
	h := load(t, rejectCTRules)
	c := &conn{cli: "10.0.0.7", cport: 41000, dst: 5001}
	if o := h.connect(c); o != reset {
		t.Fatalf("connect: %c, want reset", o)
	}
	if n := h.e.ConntrackTable().Count(); n != 0 {
		t.Fatalf("%d conntrack entries after a rejected SYN", n)
	}
	if got := h.counters("filter", "OUTPUT"); !eqU(got[1:8], 0, 0, 1, 0, 0, 1, 1) {
		t.Fatalf("OUTPUT counters %v", got)
	}
}

// An ICMP error (REJECT's default) never closes a TCP connection, and
// ICMP errors are RELATED in the reply direction in OUTPUT, also for a
// first UDP datagram whose entry is never confirmed.
func TestRejectICMPLeavesConnection(t *testing.T) {
	h := load(t, rejectCTRules)
	c := &conn{cli: "10.0.0.7", cport: 44882, dst: 5006}
	if o := h.connect(c); o != accepted {
		t.Fatalf("connect: %c", o)
	}
	if r := h.data(c, 200); r.Verdict != xt.VerdictDrop {
		t.Fatalf("segment: %+v", r)
	}
	if e, ok := h.entry(c.tuple()); !ok || e.TCPState != conntrack.TCPEstablished {
		t.Fatalf("after an ICMP error: %v %v, want ESTABLISHED", e.TCPState, ok)
	}
	u := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.8", Dst: server, SrcPort: 50741, DstPort: 5003, Payload: []byte("hello0")})
	before := len(h.rec.replies)
	if r := h.in(u); r.Verdict != xt.VerdictDrop || len(h.rec.replies) != before+1 {
		t.Fatalf("UDP: %+v", r)
	}
	n := 0
	h.e.ConntrackTable().Range(h.now, func(e *conntrack.Entry) bool {
		if e.Orig.Proto == 17 {
			n++
		}
		return true
	})
	if n != 0 {
		t.Fatalf("%d UDP entries after a rejected first datagram", n)
	}
	if got := h.counters("filter", "OUTPUT"); !eqU(got[len(got)-3:], 0, 0, 2) {
		t.Fatalf("OUTPUT ICMP counters %v, want the two errors RELATED/REPLY", got)
	}
}

// The kernel experiment with connlimit: A holds the only slot, B is
// refused, A is reset by REJECT mid-stream, C gets in at once.
func TestRejectTCPResetFreesConnlimitSlot(t *testing.T) {
	h := load(t, `
-A INPUT -p tcp --dport 5007 --syn -m connlimit --connlimit-above 1 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp --dport 5007 -m length --length 100:65535 -j REJECT --reject-with tcp-reset
`)
	a := &conn{cli: "10.0.0.9", cport: 45202, dst: 5007}
	b := &conn{cli: "10.0.0.9", cport: 45212, dst: 5007}
	c := &conn{cli: "10.0.0.9", cport: 45228, dst: 5007}
	if got := seq(h.connect(a), h.connect(b)); got != "AR" {
		t.Fatalf("A, B: %s, want AR", got)
	}
	if r := h.data(a, 200); r.Verdict != xt.VerdictDrop {
		t.Fatalf("A's segment: %+v", r)
	}
	if got := h.connect(c); got != accepted {
		t.Fatalf("C after A was reset: %c, want accepted (CLOSE is not counted)", got)
	}
	if got := h.counters("filter", "INPUT"); !eqU(got, 1, 1) {
		t.Fatalf("INPUT counters %v", got)
	}
}

// The reset path (REJECT, SetClosing, the RST through OUTPUT with LOG)
// allocates nothing per packet.
func TestRejectResetAllocs(t *testing.T) {
	h := load(t, `
-A INPUT -p tcp --dport 5002 -m state --state ESTABLISHED -m length --length 100:65535 -j REJECT --reject-with tcp-reset
-A OUTPUT -p tcp --tcp-flags RST RST -m state --state RELATED
`)
	h.w = h.e.NewWorker(nopEmitter{})
	c := &conn{cli: "10.0.0.7", cport: 43410, dst: 5002}
	if o := h.connect(c); o != accepted {
		t.Fatalf("connect: %c", o)
	}
	seg := packettest.TCP(packettest.TCPOpts{Src: c.cli, Dst: server, SrcPort: c.cport, DstPort: c.dst,
		Flags: packettest.ACK | packettest.PSH, Seq: c.cseq + 1, Ack: c.sseq + 1, Window: 502, Payload: make([]byte, 200)})
	if r := h.in(seg); r.Verdict != xt.VerdictDrop {
		t.Fatalf("segment: %+v", r)
	}
	if n := testing.AllocsPerRun(200, func() { h.in(seg) }); n != 0 {
		t.Fatalf("%v allocations per rejected segment", n)
	}
	if got := h.counters("filter", "OUTPUT"); got[0] < 200 {
		t.Fatalf("OUTPUT saw %v RSTs", got)
	}
}

type nopEmitter struct{}

func (nopEmitter) Reply(*xt.Ctx, []byte)      {}
func (nopEmitter) Log(*xt.Ctx, uint8, []byte) {}
