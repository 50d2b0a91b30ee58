package conntrack

import (
	"github.com/uptables/uptables/internal/siphash"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

const (
	cli = "10.0.0.1"
	srv = "10.0.0.2"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

func newTable(t testing.TB, mod func(*Config)) *Table {
	t.Helper()
	cfg := Config{Max: 4096, HashKey: [2]uint64{0x1234, 0x5678}}
	if mod != nil {
		mod(&cfg)
	}
	tb, err := NewTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func decode(t testing.TB, b []byte, now int64) *packet.Packet {
	t.Helper()
	p := new(packet.Packet)
	if s := p.Decode(b); s != packet.OK {
		t.Fatalf("decode: status %v", s)
	}
	p.TimeNS = now
	return p
}

// seg is a TCP segment from the client (dir "c") or the server ("s").
type seg struct {
	dir      string
	flags    uint8
	seq, ack uint32
	win      uint16
	n        int // payload bytes
	opts     []byte
}

func (s seg) bytes(sport uint16) []byte {
	src, dst, sp, dp := cli, srv, sport, uint16(80)
	if s.dir == "s" {
		src, dst, sp, dp = srv, cli, 80, sport
	}
	return packettest.TCP(packettest.TCPOpts{Src: src, Dst: dst, SrcPort: sp, DstPort: dp, Flags: s.flags,
		Seq: s.seq, Ack: s.ack, Window: s.win, Options: s.opts, Payload: make([]byte, s.n)})
}

// step feeds one packet through In (PREROUTING) + Confirm + Release, as on
// a router, and returns what the packet got plus a snapshot of its entry.
func step(t testing.TB, tb *Table, b []byte, now int64) (Result, Entry, bool) {
	t.Helper()
	r := tb.In(decode(t, b, now), packet.PreRouting)
	tb.Confirm(&r)
	var e Entry
	ok := false
	if r.Conn != nil {
		e, _, ok = tb.Lookup(r.Conn.Orig(), now)
	}
	tb.Release(&r)
	return r, e, ok
}

const (
	S = packettest.SYN
	A = packettest.ACK
	F = packettest.FIN
	R = packettest.RST
	P = packettest.PSH
	U = packettest.URG
)

func TestTCPStateMachine(t *testing.T) {
	ws := append(packettest.WScale(7), packettest.SACKPermitted()...)
	hs := []seg{
		{dir: "c", flags: S, seq: 1000, win: 64240, opts: ws},
		{dir: "s", flags: S | A, seq: 5000, ack: 1001, win: 65160, opts: ws},
		{dir: "c", flags: A, seq: 1001, ack: 5001, win: 502},
	}
	type want struct {
		info    string
		state   TCPState // 0xff: no entry
		timeout time.Duration
		assured bool
	}
	gone := TCPState(0xff)
	tests := []struct {
		name  string
		loose bool
		segs  []seg
		want  []want
	}{
		{"handshake and data", true, append(hs[:3:3],
			seg{dir: "c", flags: P | A, seq: 1001, ack: 5001, win: 502, n: 100},
			seg{dir: "s", flags: A, seq: 5001, ack: 1101, win: 509}),
			[]want{{"NEW/ORIGINAL", TCPSynSent, 120 * time.Second, false},
				{"ESTABLISHED/REPLY", TCPSynRecv, 60 * time.Second, false},
				{"ESTABLISHED/ORIGINAL", TCPEstablished, 432000 * time.Second, true},
				{"ESTABLISHED/ORIGINAL", TCPEstablished, 300 * time.Second, true}, // unacknowledged data
				{"ESTABLISHED/REPLY", TCPEstablished, 432000 * time.Second, true}}},
		{"FIN both ways to TIME_WAIT", true, append(hs[:3:3],
			seg{dir: "c", flags: F | A, seq: 1001, ack: 5001, win: 502},
			seg{dir: "s", flags: A, seq: 5001, ack: 1002, win: 509},
			seg{dir: "s", flags: F | A, seq: 5001, ack: 1002, win: 509},
			seg{dir: "c", flags: A, seq: 1002, ack: 5002, win: 502}),
			[]want{{"NEW/ORIGINAL", TCPSynSent, 120 * time.Second, false},
				{"ESTABLISHED/REPLY", TCPSynRecv, 60 * time.Second, false},
				{"ESTABLISHED/ORIGINAL", TCPEstablished, 432000 * time.Second, true},
				{"ESTABLISHED/ORIGINAL", TCPFinWait, 120 * time.Second, true},
				{"ESTABLISHED/REPLY", TCPCloseWait, 60 * time.Second, true},
				{"ESTABLISHED/REPLY", TCPLastAck, 30 * time.Second, true},
				{"ESTABLISHED/ORIGINAL", TCPTimeWait, 120 * time.Second, true}}},
		{"RST closes", true, append(hs[:3:3], seg{dir: "s", flags: R | A, seq: 5001, ack: 1001}),
			[]want{{"NEW/ORIGINAL", TCPSynSent, 120 * time.Second, false},
				{"ESTABLISHED/REPLY", TCPSynRecv, 60 * time.Second, false},
				{"ESTABLISHED/ORIGINAL", TCPEstablished, 432000 * time.Second, true},
				{"ESTABLISHED/REPLY", TCPClose, 10 * time.Second, true}}},
		{"retransmitted SYN stays NEW, timer not refreshed", true, []seg{hs[0], hs[0]},
			[]want{{"NEW/ORIGINAL", TCPSynSent, 120 * time.Second, false},
				{"NEW/ORIGINAL", TCPSynSent, 120*time.Second - 5*time.Millisecond, false}}},
		{"SYN/ACK from the client is INVALID", true, []seg{hs[0], {dir: "c", flags: S | A, seq: 1000, ack: 1, win: 100}},
			[]want{{"NEW/ORIGINAL", TCPSynSent, 120 * time.Second, false},
				{"INVALID", TCPSynSent, 120*time.Second - 5*time.Millisecond, false}}},
		{"RST before any reply deletes the entry", true, []seg{hs[0], {dir: "s", flags: R | A, ack: 1001}},
			[]want{{"NEW/ORIGINAL", TCPSynSent, 120 * time.Second, false},
				{"ESTABLISHED/REPLY", gone, 0, false}}},
		{"sequence far above the window is INVALID", true, append(hs[:3:3],
			seg{dir: "c", flags: P | A, seq: 900001, ack: 5001, win: 502, n: 10},
			seg{dir: "s", flags: A, seq: 5001, ack: 99999, win: 509}),
			[]want{{"NEW/ORIGINAL", TCPSynSent, 120 * time.Second, false},
				{"ESTABLISHED/REPLY", TCPSynRecv, 60 * time.Second, false},
				{"ESTABLISHED/ORIGINAL", TCPEstablished, 432000 * time.Second, true},
				{"INVALID", TCPEstablished, 432000*time.Second - 5*time.Millisecond, true},
				{"INVALID", TCPEstablished, 432000*time.Second - 10*time.Millisecond, true}}},
		{"loose pickup of a mid-stream ACK", true, []seg{
			{dir: "c", flags: A, seq: 7000, ack: 9000, win: 500},
			{dir: "s", flags: A, seq: 9000, ack: 7000, win: 500},
			{dir: "c", flags: P | A, seq: 7000, ack: 9000, win: 500, n: 10}},
			[]want{{"NEW/ORIGINAL", TCPEstablished, 300 * time.Second, false},
				{"ESTABLISHED/REPLY", TCPEstablished, 300 * time.Second, false},
				{"ESTABLISHED/ORIGINAL", TCPEstablished, 300 * time.Second, true}}},
		{"no pickup with tcp_loose=0", false, []seg{{dir: "c", flags: A, seq: 7000, ack: 9000, win: 500}, hs[0]},
			[]want{{"INVALID", gone, 0, false}, {"NEW/ORIGINAL", TCPSynSent, 120 * time.Second, false}}},
		{"SYN reopens a TIME_WAIT connection", true, append(hs[:3:3],
			seg{dir: "c", flags: F | A, seq: 1001, ack: 5001, win: 502},
			seg{dir: "s", flags: F | A, seq: 5001, ack: 1002, win: 509},
			seg{dir: "c", flags: A, seq: 1002, ack: 5002, win: 502},
			seg{dir: "c", flags: S, seq: 200000, win: 64240}),
			[]want{{"NEW/ORIGINAL", TCPSynSent, 120 * time.Second, false},
				{"ESTABLISHED/REPLY", TCPSynRecv, 60 * time.Second, false},
				{"ESTABLISHED/ORIGINAL", TCPEstablished, 432000 * time.Second, true},
				{"ESTABLISHED/ORIGINAL", TCPFinWait, 120 * time.Second, true},
				{"ESTABLISHED/REPLY", TCPLastAck, 30 * time.Second, true},
				{"ESTABLISHED/ORIGINAL", TCPTimeWait, 120 * time.Second, true},
				{"NEW/ORIGINAL", TCPSynSent, 120 * time.Second, false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, func(c *Config) { c.NoTCPLoose = !tc.loose })
			for i, s := range tc.segs {
				now := t0 + int64(i)*int64(5*time.Millisecond)
				r, e, ok := step(t, tb, s.bytes(40000), now)
				w := tc.want[i]
				if got := r.Info.String(); got != w.info {
					t.Fatalf("seg %d: %s (reason %v), want %s", i, got, r.Reason, w.info)
				}
				if !ok {
					// INVALID packets have no entry in the Result: look it up.
					tu := Tuple{Src: netip.MustParseAddr(cli), Dst: netip.MustParseAddr(srv), SrcID: 40000, DstID: 80, Proto: ProtoTCP}
					e, _, ok = tb.Lookup(tu, now)
				}
				if w.state == gone {
					if ok {
						t.Fatalf("seg %d: entry %v exists, want none", i, e.String())
					}
					continue
				}
				if !ok {
					t.Fatalf("seg %d: no entry, want %v", i, w.state)
				}
				if e.TCPState != w.state || time.Duration(e.Expires-now) != w.timeout || (e.Status&StatusAssured != 0) != w.assured {
					t.Fatalf("seg %d: %v timeout %v assured %v; want %v %v %v", i, e.TCPState, time.Duration(e.Expires-now),
						e.Status&StatusAssured != 0, w.state, w.timeout, w.assured)
				}
			}
		})
	}
}

// TestTCPFirstPacket is the first-packet classification of spec §2.3, as
// observed on 6.18 with tcp_loose=1 (and the kernel oracle agrees).
func TestTCPFirstPacket(t *testing.T) {
	tests := []struct {
		name  string
		flags uint8
		n     int
		want  CtState
		why   Reason
	}{
		{"ACK", A, 0, New, 0}, {"PSH+ACK+data", P | A, 10, New, 0}, {"SYN", S, 0, New, 0},
		{"SYN+URG", S | U, 0, New, 0}, {"ACK+URG", A | U, 0, New, 0},
		{"FIN", F, 0, Invalid, ReasonTCPFlags}, {"RST", R, 0, Invalid, ReasonNoNew},
		{"SYN+FIN", S | F, 0, Invalid, ReasonTCPFlags}, {"NULL", 0, 0, Invalid, ReasonTCPFlags},
		{"FIN+PSH+URG", F | P | U, 0, Invalid, ReasonTCPFlags}, {"SYN+ACK", S | A, 0, Invalid, ReasonNoNew},
		{"FIN+ACK", F | A, 0, Invalid, ReasonNoNew}, {"RST+ACK", R | A, 0, Invalid, ReasonNoNew},
		{"SYN+RST", S | R, 0, Invalid, ReasonTCPFlags},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, nil)
			r, _, _ := step(t, tb, seg{dir: "c", flags: tc.flags, seq: 1, ack: 1, win: 100, n: tc.n}.bytes(41000), t0)
			if r.Info.State != tc.want || r.Reason != tc.why {
				t.Fatalf("got %v (%v), want %v (%v)", r.Info, r.Reason, tc.want, tc.why)
			}
			if want := map[CtState]int{New: 1, Invalid: 0}[tc.want]; tb.Count() != want {
				t.Fatalf("count %d, want %d", tb.Count(), want)
			}
		})
	}
}

func udp(src, dst string, sp, dp uint16) []byte {
	return packettest.UDP(packettest.UDPOpts{Src: src, Dst: dst, SrcPort: sp, DstPort: dp, Payload: []byte("abcd")})
}

func TestUDP(t *testing.T) {
	tb := newTable(t, nil)
	q, a := udp(cli, srv, 5000, 53), udp(srv, cli, 53, 5000)
	sec := int64(time.Second)
	steps := []struct {
		b       []byte
		at      int64
		info    string
		timeout time.Duration
		assured bool
	}{
		{q, 0, "NEW/ORIGINAL", 30 * time.Second, false},
		{q, sec / 2, "NEW/ORIGINAL", 30 * time.Second, false}, // unanswered repeats stay NEW
		{a, sec, "ESTABLISHED/REPLY", 30 * time.Second, false},
		{q, sec * 3 / 2, "ESTABLISHED/ORIGINAL", 30 * time.Second, false}, // < 2 s after creation
		{q, 3 * sec, "ESTABLISHED/ORIGINAL", 120 * time.Second, true},     // > 2 s: stream, ASSURED
		{a, 4 * sec, "ESTABLISHED/REPLY", 120 * time.Second, true},
		// 120 s of silence: the entry expired, the next datagram is NEW again.
		{q, 4*sec + 120*sec, "NEW/ORIGINAL", 30 * time.Second, false},
	}
	for i, s := range steps {
		r, e, _ := step(t, tb, s.b, t0+s.at)
		if r.Info.String() != s.info || time.Duration(e.Expires-(t0+s.at)) != s.timeout || (e.Status&StatusAssured != 0) != s.assured {
			t.Fatalf("step %d: %v timeout %v assured %v, want %s %v %v", i, r.Info, time.Duration(e.Expires-(t0+s.at)),
				e.Status&StatusAssured != 0, s.info, s.timeout, s.assured)
		}
	}
	if tb.Count() != 1 {
		t.Fatalf("count %d, want 1", tb.Count())
	}
}

func TestUDPMalformedAndChecksum(t *testing.T) {
	tb := newTable(t, nil)
	bad := packettest.UDP(packettest.UDPOpts{Src: cli, Dst: srv, SrcPort: 1, DstPort: 2, Payload: []byte("abcd"), Length: 200})
	if r, _, _ := step(t, tb, bad, t0); r.Info.State != Invalid || r.Reason != ReasonTruncated {
		t.Fatalf("UDP length beyond packet: %v %v", r.Info, r.Reason)
	}
	b := udp(cli, srv, 1, 2)
	b[len(b)-1] ^= 0xff // corrupt the payload, checksum now wrong
	if r, _, _ := step(t, tb, b, t0); r.Info.State != Invalid || r.Reason != ReasonChecksum {
		t.Fatalf("bad checksum in PREROUTING: %v %v", r.Info, r.Reason)
	}
	// Locally generated packets are not checksum-checked.
	r := tb.In(decode(t, b, t0), packet.LocalOut)
	if r.Info.State != New {
		t.Fatalf("bad checksum in OUTPUT: %v %v", r.Info, r.Reason)
	}
	tb.Release(&r)
	// nf_conntrack_checksum=0.
	tb2 := newTable(t, func(c *Config) { c.NoChecksum = true })
	if r, _, _ := step(t, tb2, b, t0); r.Info.State != New {
		t.Fatalf("checksum=0: %v %v", r.Info, r.Reason)
	}
	nock := packettest.UDP(packettest.UDPOpts{Src: cli, Dst: srv, SrcPort: 7, DstPort: 8, NoChecksum: true})
	if r, _, _ := step(t, tb, nock, t0); r.Info.State != New {
		t.Fatalf("UDP/IPv4 without checksum: %v %v", r.Info, r.Reason)
	}
}

func TestICMP(t *testing.T) {
	tb := newTable(t, nil)
	req := packettest.EchoRequest(cli, srv, 7, 1, 8)
	rep := packettest.EchoReply(srv, cli, 7, 1, 8)
	for i, s := range []struct {
		b    []byte
		want string
	}{
		{req, "NEW/ORIGINAL"}, {rep, "ESTABLISHED/REPLY"}, {req, "ESTABLISHED/ORIGINAL"},
		{packettest.EchoReply(srv, cli, 8, 1, 8), "INVALID"}, // reply without request
		{packettest.ICMP(packettest.ICMPOpts{Src: cli, Dst: srv, Type: 13, ID: 9}), "NEW/ORIGINAL"},
		{packettest.ICMP(packettest.ICMPOpts{Src: cli, Dst: srv, Type: 30, ID: 9}), "INVALID"},
		{packettest.ICMP(packettest.ICMPOpts{Src: cli, Dst: srv, Type: 9}), "INVALID"}, // router advert cannot create
	} {
		r, e, _ := step(t, tb, s.b, t0)
		if r.Info.String() != s.want {
			t.Fatalf("pkt %d: %v (%v), want %s", i, r.Info, r.Reason, s.want)
		}
		if r.Info.State != Invalid && time.Duration(e.Expires-t0) != 30*time.Second {
			t.Fatalf("pkt %d: timeout %v", i, time.Duration(e.Expires-t0))
		}
	}
	// The entry survives the reply (not deleted) and is not ASSURED.
	e, _, ok := tb.Lookup(Tuple{Src: netip.MustParseAddr(cli), Dst: netip.MustParseAddr(srv), SrcID: 7, DstID: 8 << 8, Proto: ProtoICMP}, t0)
	if !ok || e.Status&StatusAssured != 0 || e.Status&StatusSeenReply == 0 {
		t.Fatalf("echo entry: ok %v %v", ok, e.String())
	}
}

func TestICMPErrors(t *testing.T) {
	tb := newTable(t, nil)
	probe := udp(cli, srv, 40000, 33434)
	step(t, tb, probe, t0)
	unreach := func(src, dst string, orig []byte) []byte {
		return packettest.ICMPError(packettest.ICMPErrorOpts{Src: src, Dst: dst, Type: 3, Code: 3, Original: orig})
	}
	tests := []struct {
		name string
		b    []byte
		want string
		why  Reason
	}{
		{"port unreachable from the server", unreach(srv, "", probe), "RELATED/REPLY", 0},
		{"from a router on the way", unreach("10.9.9.9", "", probe), "RELATED/REPLY", 0},
		{"outer destination is not the client", unreach(srv, "10.0.0.99", probe), "INVALID", ReasonICMPOuterDst},
		{"error in the original direction", unreach(cli, srv, udp(srv, cli, 33434, 40000)), "RELATED/ORIGINAL", 0},
		{"no connection", unreach(srv, "", udp(cli, srv, 1, 2)), "INVALID", ReasonICMPNoConn},
		{"error about an error", unreach(srv, "", unreach(cli, srv, udp(srv, cli, 33434, 40000))), "INVALID", ReasonICMPNoConn},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _, _ := step(t, tb, tc.b, t0+int64(time.Second))
			if r.Info.String() != tc.want || r.Reason != tc.why {
				t.Fatalf("%v (%v), want %s (%v)", r.Info, r.Reason, tc.want, tc.why)
			}
		})
	}
	// RELATED errors neither set SEEN_REPLY nor refresh the timer.
	e, _, _ := tb.Lookup(Tuple{Src: netip.MustParseAddr(cli), Dst: netip.MustParseAddr(srv), SrcID: 40000, DstID: 33434, Proto: ProtoUDP}, t0)
	if e.Status&StatusSeenReply != 0 || e.Expires != t0+int64(30*time.Second) {
		t.Fatalf("after errors: %s", e.String())
	}
	// An error about a ping is RELATED to the ping.
	ping := packettest.EchoRequest(cli, srv, 44, 1, 8)
	step(t, tb, ping, t0)
	te := packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.9.9.9", Type: 11, Original: ping})
	if r, _, _ := step(t, tb, te, t0); r.Info.String() != "RELATED/REPLY" {
		t.Fatalf("time exceeded about a ping: %v %v", r.Info, r.Reason)
	}
}

func TestAttachForGeneratedPackets(t *testing.T) {
	tb := newTable(t, nil)
	syn := seg{dir: "c", flags: S, seq: 1, win: 100}.bytes(40000)
	r := tb.In(decode(t, syn, t0), packet.PreRouting)
	// filter INPUT rejects the SYN: REJECT's RST is RELATED in the reply
	// direction; the SYN is dropped before confirm, so no entry remains.
	rst, ok := tb.Attach(&r)
	if !ok || rst.Info.String() != "RELATED/REPLY" {
		t.Fatalf("attach: %v %v", ok, rst.Info)
	}
	if tb.Confirm(&rst) != Accept {
		t.Fatal("confirm of a related reply must be a no-op accept")
	}
	tb.Release(&rst)
	tb.Release(&r)
	if tb.Count() != 0 {
		t.Fatalf("count %d after dropping before confirm", tb.Count())
	}
	inv := Result{}
	if _, ok := tb.Attach(&inv); ok {
		t.Fatal("attach to a packet without conntrack")
	}
}

func TestUntrackedAndZones(t *testing.T) {
	if r := UntrackedResult(); r.Info.State != Untracked || r.Conn != nil || r.StateMask() != MaskUntracked {
		t.Fatalf("untracked: %+v", r)
	}
	tb := newTable(t, nil)
	b := udp(cli, srv, 1, 2)
	for zone := uint16(0); zone < 3; zone++ {
		r := tb.InZone(decode(t, b, t0), packet.PreRouting, zone)
		if r.Info.State != New {
			t.Fatalf("zone %d: %v", zone, r.Info)
		}
		tb.Confirm(&r)
		tb.Release(&r)
	}
	if tb.Count() != 3 {
		t.Fatalf("count %d, want one entry per zone", tb.Count())
	}
	// ICMPv6 neighbour discovery is never tracked.
	ns := packettest.ICMP(packettest.ICMPOpts{Src: "fe80::1", Dst: "ff02::1:ff00:2", Type: 135})
	if r := tb.In(decode(t, ns, t0), packet.PreRouting); r.Info.State != Untracked {
		t.Fatalf("ICMPv6 NS: %v %v", r.Info, r.Reason)
	}
	v6 := packettest.EchoRequest("2001:db8::1", "2001:db8::2", 3, 1, 8)
	if r, _, _ := step(t, tb, v6, t0); r.Info.String() != "NEW/ORIGINAL" {
		t.Fatalf("ICMPv6 echo: %v %v", r.Info, r.Reason)
	}
	if r, _, _ := step(t, tb, packettest.EchoReply("2001:db8::2", "2001:db8::1", 3, 1, 8), t0); r.Info.String() != "ESTABLISHED/REPLY" {
		t.Fatalf("ICMPv6 echo reply: %v %v", r.Info, r.Reason)
	}
}

func TestTableFullAndEarlyDrop(t *testing.T) {
	const max = 16
	tb := newTable(t, func(c *Config) { c.Max = max; c.Buckets = 1 }) // one bucket: early drop always sees everything
	for i := 0; i < max; i++ {
		if r, _, _ := step(t, tb, udp(cli, srv, uint16(1000+i), 53), t0); r.Info.State != New {
			t.Fatalf("flow %d: %v", i, r.Info)
		}
	}
	// Full of unassured entries: the 17th flow early-drops them (all the
	// eligible ones in the first bucket, as the kernel).
	r, _, _ := step(t, tb, udp(cli, srv, 2000, 53), t0)
	if r.Info.State != New || r.Verdict != Accept {
		t.Fatalf("early drop did not make room: %+v", r)
	}
	if got := tb.Stats().EarlyDrop.Load(); got != max {
		t.Fatalf("early drops %d, want %d", got, max)
	}
	if tb.Count() != 1 {
		t.Fatalf("count %d", tb.Count())
	}

	// Full of ASSURED entries: nothing to evict, the packet is dropped
	// (not INVALID).
	tb = newTable(t, func(c *Config) { c.Max = max; c.Buckets = 1 })
	for i := 0; i < max; i++ {
		q, a := udp(cli, srv, uint16(1000+i), 53), udp(srv, cli, 53, uint16(1000+i))
		step(t, tb, q, t0)
		step(t, tb, a, t0)
		step(t, tb, q, t0+int64(3*time.Second)) // stream: ASSURED
	}
	r, _, _ = step(t, tb, udp(cli, srv, 2000, 53), t0+int64(3*time.Second))
	if r.Verdict != Drop || r.Reason != ReasonTableFull || r.Info.State != Invalid {
		t.Fatalf("table full: %+v", r)
	}
	// Existing flows still pass.
	if r, _, _ := step(t, tb, udp(cli, srv, 1000, 53), t0+int64(4*time.Second)); r.Info.State != Established {
		t.Fatalf("established flow at table full: %+v", r)
	}
	// Once they expire (120 s), room appears again without GC.
	if r, _, _ := step(t, tb, udp(cli, srv, 2000, 53), t0+int64(200*time.Second)); r.Info.State != New {
		t.Fatalf("after expiry: %+v", r)
	}
}

func TestGC(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.Max = 1000; c.Buckets = 256 })
	for i := 0; i < 100; i++ {
		step(t, tb, udp(cli, srv, uint16(1000+i), 53), t0+int64(i)*int64(time.Second))
	}
	// At t0+50s+30s, flows 0..50 have expired (expiry at creation+30 s <= now).
	now := t0 + int64(80*time.Second)
	removed := 0
	for i := 0; i < 1000 && removed < 51; i++ {
		removed += tb.GC(now, 16)
	}
	if removed != 51 || tb.Count() != 49 {
		t.Fatalf("GC removed %d, count %d; want 51, 49", removed, tb.Count())
	}
	if n := tb.GC(now, 1<<20); n != 0 {
		t.Fatalf("second pass removed %d", n)
	}
	if n := tb.Flush(); n != 49 || tb.Count() != 0 {
		t.Fatalf("flush %d, count %d", n, tb.Count())
	}

	// Above 95% of max, GC also evicts live unassured entries.
	tb = newTable(t, func(c *Config) { c.Max = 20; c.Buckets = 16 })
	for i := 0; i < 20; i++ {
		step(t, tb, udp(cli, srv, uint16(1000+i), 53), t0)
	}
	if n := tb.GC(t0, 1000); n != 20 {
		t.Fatalf("pressure GC removed %d, want 20", n)
	}
}

func TestDroppedBeforeConfirmLeavesNoEntry(t *testing.T) {
	tb := newTable(t, nil)
	r := tb.In(decode(t, udp(cli, srv, 1, 2), t0), packet.PreRouting)
	if r.Info.State != New || tb.Count() != 1 {
		t.Fatalf("%v count %d", r.Info, tb.Count())
	}
	tb.Release(&r) // dropped in filter: never confirmed
	if tb.Count() != 0 {
		t.Fatalf("count %d", tb.Count())
	}
	if r, _, _ := step(t, tb, udp(cli, srv, 1, 2), t0); r.Info.State != New {
		t.Fatalf("next packet %v", r.Info)
	}
}

func TestConfirmClash(t *testing.T) {
	tb := newTable(t, nil)
	// Two packets of one new UDP flow race: both get unconfirmed entries.
	b := udp(cli, srv, 1, 2)
	r1 := tb.In(decode(t, b, t0), packet.PreRouting)
	r2 := tb.In(decode(t, b, t0), packet.PreRouting)
	if tb.Confirm(&r1) != Accept || tb.Confirm(&r2) != Accept || r1.Conn != r2.Conn {
		t.Fatalf("UDP clash not merged: %+v %+v", r1, r2)
	}
	tb.Release(&r1)
	tb.Release(&r2)
	if tb.Count() != 1 {
		t.Fatalf("count %d", tb.Count())
	}
	// TCP: the loser is dropped.
	syn := seg{dir: "c", flags: S, seq: 1, win: 100}.bytes(40000)
	r1 = tb.In(decode(t, syn, t0), packet.PreRouting)
	r2 = tb.In(decode(t, syn, t0), packet.PreRouting)
	if tb.Confirm(&r1) != Accept || tb.Confirm(&r2) != Drop || r2.Reason != ReasonClash {
		t.Fatalf("TCP clash: %+v %+v", r1, r2)
	}
	tb.Release(&r1)
	tb.Release(&r2)
	if tb.Count() != 2 {
		t.Fatalf("count %d", tb.Count())
	}
}

func TestNAT(t *testing.T) {
	tb := newTable(t, nil)
	// DNAT 10.0.0.2:80 -> 192.168.1.5:8080 at PREROUTING, then SNAT to
	// 203.0.113.1 at POSTROUTING (the first packet binds both).
	syn := seg{dir: "c", flags: S, seq: 1, win: 100}.bytes(40000)
	r := tb.In(decode(t, syn, t0), packet.PreRouting)
	c := r.Conn
	if c.NATInitialized(ManipDst) {
		t.Fatal("fresh entry already has a binding")
	}
	if err := c.SetNAT(ManipDst, netip.MustParseAddr("192.168.1.5"), 8080); err != nil {
		t.Fatal(err)
	}
	if rw, ok := r.NAT(packet.PreRouting); !ok || rw.Addr.String() != "192.168.1.5" || rw.Port != 8080 || rw.Manip != ManipDst {
		t.Fatalf("DNAT rewrite %+v %v", rw, ok)
	}
	if err := c.SetNAT(ManipSrc, netip.MustParseAddr("203.0.113.1"), 0); err != nil {
		t.Fatal(err)
	}
	if rw, ok := r.NAT(packet.PostRouting); !ok || rw.Addr.String() != "203.0.113.1" || rw.Port != 40000 {
		t.Fatalf("SNAT rewrite %+v %v", rw, ok)
	}
	if got := r.StateMask(); got != MaskNew|MaskSNAT|MaskDNAT {
		t.Fatalf("state mask %b", got)
	}
	tb.Confirm(&r)
	if err := c.SetNAT(ManipSrc, netip.MustParseAddr("1.1.1.1"), 0); err != ErrConfirmed {
		t.Fatalf("NAT after confirm: %v", err)
	}
	tb.Release(&r)
	e, _, _ := tb.Lookup(Tuple{Src: netip.MustParseAddr(cli), Dst: netip.MustParseAddr(srv), SrcID: 40000, DstID: 80, Proto: ProtoTCP}, t0)
	want := "tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] src=192.168.1.5 dst=203.0.113.1 sport=8080 dport=40000 mark=0 use=1"
	if got := string(e.AppendConntrackL(nil, t0)); got != want {
		t.Fatalf("listing\n%s\nwant\n%s", got, want)
	}
	// The server's SYN/ACK arrives addressed to the SNAT address and is
	// translated back: destination to the client at PREROUTING, source to
	// the original destination at POSTROUTING.
	synack := packettest.TCP(packettest.TCPOpts{Src: "192.168.1.5", Dst: "203.0.113.1", SrcPort: 8080, DstPort: 40000,
		Flags: S | A, Seq: 5000, Ack: 2, Window: 100})
	r = tb.In(decode(t, synack, t0), packet.PreRouting)
	if r.Info.String() != "ESTABLISHED/REPLY" {
		t.Fatalf("reply: %v %v", r.Info, r.Reason)
	}
	if rw, ok := r.NAT(packet.PreRouting); !ok || rw.Addr.String() != cli || rw.Port != 40000 {
		t.Fatalf("reply DNAT-back %+v %v", rw, ok)
	}
	if rw, ok := r.NAT(packet.PostRouting); !ok || rw.Addr.String() != srv || rw.Port != 80 {
		t.Fatalf("reply SNAT-back %+v %v", rw, ok)
	}
	tb.Release(&r)
	if !tb.TupleTaken(Tuple{Src: netip.MustParseAddr("192.168.1.5"), Dst: netip.MustParseAddr("203.0.113.1"), SrcID: 8080, DstID: 40000, Proto: ProtoTCP}, t0) {
		t.Fatal("reply tuple not reported taken")
	}

	// A null binding: nat chain traversed without a target.
	r = tb.In(decode(t, udp(cli, srv, 9, 9), t0), packet.PreRouting)
	r.Conn.SetNullBinding(ManipDst)
	if !r.Conn.NATInitialized(ManipDst) || r.Conn.NATInitialized(ManipSrc) {
		t.Fatal("null binding bits")
	}
	if _, ok := r.NAT(packet.PreRouting); ok {
		t.Fatal("null binding rewrites")
	}
	if err := r.Conn.SetNAT(ManipDst, netip.MustParseAddr("1.2.3.4"), 0); err != ErrNATDone {
		t.Fatalf("second binding: %v", err)
	}
	tb.Release(&r)
}

func TestMarkAndConnlimit(t *testing.T) {
	tb := newTable(t, nil)
	r := tb.In(decode(t, seg{dir: "c", flags: S, seq: 1, win: 100}.bytes(40000), t0), packet.PreRouting)
	c := r.Conn
	c.SetMark(0xf0)
	if got := c.XorMark(0x0f, 0x03); got != 0xf3 || c.Mark() != 0xf3 {
		t.Fatalf("xor mark %#x", got)
	}
	tb.Confirm(&r)
	tu := c.Orig()
	tb.Release(&r)
	if !tb.ConnlimitAlive(tu, t0) {
		t.Fatal("SYN_SENT must count for connlimit")
	}
	// After a reply, an RST moves it to CLOSE: no longer counted.
	step(t, tb, seg{dir: "s", flags: S | A, seq: 500, ack: 2, win: 100}.bytes(40000), t0)
	if !tb.ConnlimitAlive(tu, t0) {
		t.Fatal("SYN_RECV must count for connlimit")
	}
	step(t, tb, seg{dir: "c", flags: R, seq: 2}.bytes(40000), t0)
	if e, _, ok := tb.Lookup(tu, t0); !ok || e.TCPState != TCPClose {
		t.Fatalf("after RST: %v %v", ok, e.String())
	}
	if tb.ConnlimitAlive(tu, t0) {
		t.Fatal("CLOSE must not count")
	}
	if tb.ConnlimitAlive(tu, t0+int64(time.Hour)) {
		t.Fatal("expired must not count")
	}
	// The lookup at +1h met the expired entry and removed it (lazy expiry).
	if tb.Count() != 0 || tb.Delete(tu) {
		t.Fatalf("expired entry still there: count %d", tb.Count())
	}
	step(t, tb, seg{dir: "c", flags: S, seq: 1, win: 100}.bytes(40000), t0)
	if !tb.Delete(tu) || tb.Delete(tu) || tb.Count() != 0 {
		t.Fatal("delete")
	}
}

func TestConfigDefaults(t *testing.T) {
	c := DefaultConfig()
	if c.Max != 262144 || c.Buckets != 262144 || c.Timeouts.TCPEstablished != 432000*time.Second || c.Timeouts.UDPStream != 120*time.Second ||
		c.TCPMaxRetrans != 3 || c.HashKey == [2]uint64{} {
		t.Fatalf("defaults %+v", c)
	}
	for _, tc := range []struct {
		ram  uint64
		want int
	}{{24 << 30, 262144}, {2 << 30, 65536}, {512 << 20, 4096}, {8 << 20, 1024}} {
		if got := DefaultMaxForRAM(tc.ram); got != tc.want {
			t.Errorf("DefaultMaxForRAM(%d) = %d, want %d", tc.ram, got, tc.want)
		}
	}
	if _, err := NewTable(Config{Max: -1}); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("negative max: %v", err)
	}
}

func TestSipHashVectors(t *testing.T) {
	// Reference vectors of the SipHash paper: key 00..0f, message 00..len-1.
	k0, k1 := uint64(0x0706050403020100), uint64(0x0f0e0d0c0b0a0908)
	if got := siphash.Sum24(siphash.Key{K0: k0, K1: k1}, nil); got != 0x726fdb47dd0e0e31 {
		t.Errorf("len 0: %#x", got)
	}
	if got := siphash.Sum24(siphash.Key{K0: k0, K1: k1}, []uint64{0x0706050403020100}); got != 0x93f5f5799a932462 {
		t.Errorf("len 8: %#x", got)
	}
}

func TestConcurrent(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.Max = 512; c.Buckets = 64; c.Locks = 8 })
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var p packet.Packet
			pkts := make([][]byte, 0, 64)
			for i := 0; i < 32; i++ {
				sp := uint16(1000 + g*100 + i%50)
				pkts = append(pkts, udp(cli, srv, sp, 53), udp(srv, cli, 53, sp))
			}
			// A shared flow all goroutines hit.
			pkts = append(pkts, udp(cli, srv, 7, 7))
			for n := 0; n < 300; n++ {
				b := pkts[(n*7+g)%len(pkts)]
				p.Decode(b)
				p.TimeNS = t0 + int64(n)*int64(time.Second)/10
				r := tb.In(&p, packet.PreRouting)
				if r.Conn != nil {
					r.Conn.XorMark(0, uint32(g))
					_ = r.Conn.TCPState()
				}
				tb.Confirm(&r)
				tb.Release(&r)
				if n%50 == 0 {
					tb.GC(p.TimeNS, 32)
					tb.Range(p.TimeNS, func(*Entry) bool { return true })
				}
			}
		}(g)
	}
	wg.Wait()
	n := 0
	tb.Range(minTime+1, func(*Entry) bool { n++; return true })
	if n != tb.Count() {
		t.Fatalf("listed %d, count %d", n, tb.Count())
	}
	tb.Flush()
	if tb.Count() != 0 {
		t.Fatalf("count %d after flush", tb.Count())
	}
}
