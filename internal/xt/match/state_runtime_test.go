package match

import (
	"net/netip"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

// rtConntrack drives a real conntrack table the way the engine does: In at
// PREROUTING, Confirm at INPUT, and keeps every packet's Result.
type rtConntrack struct {
	t   *testing.T
	tbl *conntrack.Table
	now int64
}

func newRTConntrack(t *testing.T) *rtConntrack {
	tbl, err := conntrack.NewTable(conntrack.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &rtConntrack{t: t, tbl: tbl, now: 1_700_000_000e9}
}

// in tracks data one second after the previous packet; the Result is not
// confirmed yet (what the filter INPUT chain sees of a first packet).
func (r *rtConntrack) in(data []byte) *xt.Ctx {
	r.now += int64(time.Second)
	p := rtPkt(data)
	p.TimeNS = r.now
	c := &xt.Ctx{P: p, Hook: xt.LocalIn, Conntrack: r.tbl}
	c.CT = r.tbl.In(p, xt.PreRouting)
	return c
}

// confirm is the end of INPUT.
func (r *rtConntrack) confirm(c *xt.Ctx) {
	if v := r.tbl.Confirm(&c.CT); v != conntrack.Accept {
		r.t.Fatalf("confirm: %v", v)
	}
}

// check evaluates -m name args on c, and that it does not allocate.
func rtCheck(t *testing.T, c *xt.Ctx, name, args string, want bool) {
	t.Helper()
	m := rtMatcher(t, name, xt.IPv4, 0, args, nil)
	if got := m.Matches(c); got != want {
		t.Errorf("%s: -m %s %s = %v, want %v", c.CT.Info, name, args, got, want)
	}
	if n := testing.AllocsPerRun(100, func() { m.Matches(c) }); n != 0 {
		t.Errorf("-m %s %s allocates %v times per packet", name, args, n)
	}
}

func tcpc(src, dst string, sport, dport uint16, flags uint8, seq, ack uint32) []byte {
	return packettest.TCP(packettest.TCPOpts{Src: src, Dst: dst, SrcPort: sport, DstPort: dport, Flags: flags, Seq: seq, Ack: ack, Window: 64000})
}

func TestStateHandshake(t *testing.T) {
	ct := newRTConntrack(t)
	const S, A, F = packettest.SYN, packettest.ACK, packettest.FIN
	syn := ct.in(tcpc("10.0.0.1", "10.0.0.2", 40000, 80, S, 100, 0))
	rtCheck(t, syn, "state", "--state NEW", true)
	rtCheck(t, syn, "state", "--state ESTABLISHED,RELATED", false)
	rtCheck(t, syn, "state", "! --state NEW", false)
	rtCheck(t, syn, "conntrack", "--ctstate NEW --ctdir ORIGINAL --ctproto 6", true)
	rtCheck(t, syn, "conntrack", "--ctstatus CONFIRMED", false) // not confirmed yet
	rtCheck(t, syn, "conntrack", "--ctexpire 0", true)          // relative timeout until confirm
	rtCheck(t, syn, "conntrack", "--ctexpire 1:1000", false)
	ct.confirm(syn)
	rtCheck(t, syn, "conntrack", "--ctstatus CONFIRMED", true)

	synack := ct.in(tcpc("10.0.0.2", "10.0.0.1", 80, 40000, S|A, 500, 101))
	rtCheck(t, synack, "state", "--state ESTABLISHED", true)
	rtCheck(t, synack, "conntrack", "--ctstate ESTABLISHED --ctdir REPLY", true)
	rtCheck(t, synack, "conntrack", "--ctdir ORIGINAL", false)
	rtCheck(t, synack, "conntrack", "--ctorigsrc 10.0.0.1 --ctorigdstport 80 --ctreplsrcport 80 --ctrepldst 10.0.0.0/24", true)
	rtCheck(t, synack, "conntrack", "! --ctorigsrc 10.0.0.1", false)
	rtCheck(t, synack, "conntrack", "--ctorigsrcport 40000:40010", true)
	rtCheck(t, synack, "conntrack", "! --ctorigsrcport 40000:40010", false)
	rtCheck(t, synack, "conntrack", "--ctstatus SEEN_REPLY", true)
	rtCheck(t, synack, "conntrack", "--ctstatus ASSURED", false)
	rtCheck(t, synack, "conntrack", "--ctstatus NONE", false) // never: no bit of an empty mask is set
	rtCheck(t, synack, "conntrack", "! --ctstatus NONE", true)
	rtCheck(t, synack, "conntrack", "--ctstate DNAT", false)
	// SYN_RECV: 60 s from this packet's time.
	rtCheck(t, synack, "conntrack", "--ctexpire 60", true)
	synack.P.TimeNS += int64(10*time.Second + 500*time.Millisecond)
	rtCheck(t, synack, "conntrack", "--ctexpire 49", true) // whole seconds, rounded down
	rtCheck(t, synack, "conntrack", "! --ctexpire 49", false)

	ack := ct.in(tcpc("10.0.0.1", "10.0.0.2", 40000, 80, A, 101, 501))
	rtCheck(t, ack, "state", "--state ESTABLISHED", true)
	rtCheck(t, ack, "conntrack", "--ctstate ESTABLISHED --ctdir ORIGINAL --ctstatus ASSURED", true)

	// A stray FIN: INVALID, no connection (spec §2.2 observations).
	fin := ct.in(tcpc("10.0.0.7", "10.0.0.2", 1234, 80, F, 9, 0))
	if fin.CT.Conn != nil {
		t.Fatal("stray FIN got a connection")
	}
	rtCheck(t, fin, "state", "--state INVALID", true)
	rtCheck(t, fin, "state", "! --state NEW", true)
	rtCheck(t, fin, "conntrack", "--ctstate INVALID --ctproto 17", true)
	rtCheck(t, fin, "conntrack", "! --ctstate NEW --ctproto 17", true)
	rtCheck(t, fin, "conntrack", "--ctproto 6", false)
	rtCheck(t, fin, "conntrack", "! --ctproto 6", false)
	rtCheck(t, fin, "connmark", "! --mark 1", false) // no conntrack: false even with "!"
}

func TestStateRelatedUntrackedDNAT(t *testing.T) {
	ct := newRTConntrack(t)
	udpOut := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 5000, DstPort: 9})
	first := ct.in(udpOut)
	rtCheck(t, first, "conntrack", "--ctexpire 0", true)
	ct.confirm(first)
	again := ct.in(udpOut)
	rtCheck(t, again, "state", "--state NEW", true) // NEW until a reply
	rtCheck(t, again, "conntrack", "--ctexpire 30", true)
	rtCheck(t, again, "conntrack", "--ctexpire 0:29", false)
	err := ct.in(packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.0.0.2", Type: 3, Code: 3, Original: udpOut}))
	rtCheck(t, err, "state", "--state RELATED", true)
	rtCheck(t, err, "conntrack", "--ctstate RELATED --ctproto 17 --ctdir REPLY", true)

	unt := &xt.Ctx{P: rtPkt(udpOut), Hook: xt.LocalIn, CT: conntrack.UntrackedResult()}
	rtCheck(t, unt, "state", "--state UNTRACKED", true)
	rtCheck(t, unt, "state", "--state INVALID", false)
	rtCheck(t, unt, "conntrack", "--ctstate UNTRACKED", true)
	rtCheck(t, unt, "conntrack", "--ctproto 17", false)

	// DNAT 10.0.0.2:80 -> 192.168.1.5:8080 on the first packet.
	syn := ct.in(tcpc("10.0.0.1", "10.0.0.2", 40001, 80, packettest.SYN, 1, 0))
	if err := syn.CT.Conn.SetNAT(conntrack.ManipDst, netip.MustParseAddr("192.168.1.5"), 8080); err != nil {
		t.Fatal(err)
	}
	syn.CT.Conn.SetMark(0x12)
	rtCheck(t, syn, "conntrack", "--ctstate DNAT", true)
	rtCheck(t, syn, "conntrack", "--ctstate SNAT", false)
	rtCheck(t, syn, "conntrack", "--ctstate NEW,SNAT", true)
	rtCheck(t, syn, "conntrack", "! --ctstate DNAT", false)
	rtCheck(t, syn, "state", "--state NEW", true)
	rtCheck(t, syn, "connmark", "--mark 0x2/0xf", true)
	rtCheck(t, syn, "connmark", "--mark 0x12", true)
	rtCheck(t, syn, "connmark", "! --mark 0x12", false)
	ct.confirm(syn)
	reply := ct.in(tcpc("192.168.1.5", "10.0.0.1", 8080, 40001, packettest.SYN|packettest.ACK, 7, 2))
	rtCheck(t, reply, "conntrack", "--ctstate DNAT --ctdir REPLY", true)
	rtCheck(t, reply, "conntrack", "--ctorigdst 10.0.0.2 --ctorigdstport 80 --ctreplsrc 192.168.1.5 --ctreplsrcport 8080", true)
	rtCheck(t, reply, "conntrack", "--ctrepldst 10.0.0.1/32 --ctrepldstport 40001", true)
	rtCheck(t, reply, "conntrack", "--ctreplsrc 10.0.0.2", false)
	rtCheck(t, reply, "conntrack", "--ctorigdst 192.168.1.0/24", false)
}

// TestStateRawTable: before the conntrack hook nothing is attached, so the
// packet is INVALID to -m state.
func TestStateRawTable(t *testing.T) {
	c := &xt.Ctx{P: rtPkt(tcpc("10.0.0.1", "10.0.0.2", 1, 2, packettest.SYN, 0, 0)), Hook: xt.PreRouting}
	rtCheck(t, c, "state", "--state INVALID", true)
	rtCheck(t, c, "state", "--state NEW", false)
}
