package netfilter_test

// The seeds' scenarios end to end: rules written exactly as the blog posts
// (../shared/seeds) write them, loaded through the iptables-restore reader,
// and synthetic packets on a packet clock, with the verdicts, replies,
// counters and log lines the kernel gives (spec §3, §4, §5, §12).

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

const server = "10.0.0.100"

// recorder is the data plane of the tests: it keeps replies and log lines.
type recorder struct {
	replies [][]byte
	logs    []string
}

func (r *recorder) Reply(_ *xt.Ctx, pkt []byte) {
	r.replies = append(r.replies, append([]byte(nil), pkt...))
}
func (r *recorder) Log(_ *xt.Ctx, _ uint8, line []byte) {
	r.logs = append(r.logs, string(line))
}

type harness struct {
	t   *testing.T
	e   *netfilter.Engine
	w   *netfilter.Worker
	rec *recorder
	now int64 // ns on the packet clock
	p   packet.Packet
}

// load builds an engine from iptables commands (one per line, without the
// leading "iptables"), as a user would type them.
func load(t *testing.T, commands string) *harness {
	t.Helper()
	reg := builtin.Registry()
	rs := ruleset.New(xt.IPv4)
	for _, line := range strings.Split(strings.TrimSpace(commands), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		args, err := iptables.SplitShell(line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		var out strings.Builder
		res, _, err := iptables.Run(rs, reg, args, &out)
		if err != nil {
			t.Fatalf("iptables %s: %v", line, err)
		}
		if res.Ruleset != nil {
			rs = res.Ruleset
		}
	}
	e := netfilter.New(netfilter.Config{Seed: 1, Conntrack: conntrack.Config{HashKey: [2]uint64{3, 4}}})
	if err := e.Load(rs); err != nil {
		t.Fatalf("load: %v", err)
	}
	rec := &recorder{}
	return &harness{t: t, e: e, w: e.NewWorker(rec), rec: rec, now: 1_000_000_000}
}

func (h *harness) advance(sec float64) { h.now += int64(sec * 1e9) }

func (h *harness) run(path netfilter.Path, b []byte) netfilter.Result {
	h.t.Helper()
	if st := h.p.Decode(b); st == packet.BadL3 {
		h.t.Fatalf("test packet does not decode: %v", st)
	}
	h.p.InIface, h.p.OutIface, h.p.Mark = "", "", 0
	if path == netfilter.PathInput {
		h.p.InIface = "eth0"
	} else {
		h.p.OutIface = "eth0"
	}
	h.p.TimeNS = h.now
	h.now += 1_000_000 // 1 ms between packets
	return h.w.Process(path, &h.p)
}

func (h *harness) in(b []byte) netfilter.Result  { return h.run(netfilter.PathInput, b) }
func (h *harness) out(b []byte) netfilter.Result { return h.run(netfilter.PathOutput, b) }

// conn is one client TCP connection to the server.
type conn struct {
	cli        string
	cport, dst uint16
	ttl        int
	cseq, sseq uint32
}

func (c *conn) seg(fromClient bool, flags uint8, seq, ack uint32) []byte {
	if fromClient {
		return packettest.TCP(packettest.TCPOpts{Src: c.cli, Dst: server, SrcPort: c.cport, DstPort: c.dst,
			Flags: flags, Seq: seq, Ack: ack, Window: 64240, IP: packettest.IP{TTL: c.ttl}})
	}
	return packettest.TCP(packettest.TCPOpts{Src: server, Dst: c.cli, SrcPort: c.dst, DstPort: c.cport,
		Flags: flags, Seq: seq, Ack: ack, Window: 64240})
}

// outcome of a connection attempt as the client sees it.
type outcome byte

const (
	accepted outcome = 'A'
	dropped  outcome = 'D' // silently dropped
	reset    outcome = 'R' // answered with a TCP RST
	icmpErr  outcome = 'I' // answered with an ICMP error
)

// connect performs the three-way handshake through the engine and tells
// what the client saw.
func (h *harness) connect(c *conn) outcome {
	h.t.Helper()
	c.cseq, c.sseq = 1000+uint32(c.cport)*7, 5000+uint32(c.cport)*11
	before := len(h.rec.replies)
	r := h.in(c.seg(true, packettest.SYN, c.cseq, 0))
	if r.Verdict != xt.VerdictAccept {
		if len(h.rec.replies) > before {
			var rp packet.Packet
			rp.Decode(h.rec.replies[len(h.rec.replies)-1])
			if rp.Proto == 6 && rp.TCPFlags&packettest.RST != 0 {
				return reset
			}
			return icmpErr
		}
		return dropped
	}
	if r := h.out(c.seg(false, packettest.SYN|packettest.ACK, c.sseq, c.cseq+1)); r.Verdict != xt.VerdictAccept {
		h.t.Fatalf("SYN/ACK of %s:%d dropped: %+v", c.cli, c.cport, r)
	}
	if r := h.in(c.seg(true, packettest.ACK, c.cseq+1, c.sseq+1)); r.Verdict != xt.VerdictAccept {
		h.t.Fatalf("handshake ACK of %s:%d dropped: %+v", c.cli, c.cport, r)
	}
	return accepted
}

// close runs an orderly close initiated by the client; the server ends in
// LAST_ACK -> closed, the conntrack entry in TIME_WAIT.
func (h *harness) close(c *conn) {
	h.t.Helper()
	h.in(c.seg(true, packettest.FIN|packettest.ACK, c.cseq+1, c.sseq+1))
	h.out(c.seg(false, packettest.ACK, c.sseq+1, c.cseq+2))
	h.out(c.seg(false, packettest.FIN|packettest.ACK, c.sseq+1, c.cseq+2))
	h.in(c.seg(true, packettest.ACK, c.cseq+2, c.sseq+2))
}

func (h *harness) ping(src string, size int, ttl int) netfilter.Result {
	b := packettest.ICMP(packettest.ICMPOpts{Src: src, Dst: server, Type: 8, ID: 77, Seq: 1, Payload: make([]byte, size), IP: packettest.IP{TTL: ttl}})
	return h.in(b)
}

func (h *harness) counters(table, chain string) []uint64 {
	var out []uint64
	for _, t := range h.e.Ruleset().Tables {
		if t.Name != table {
			continue
		}
		for _, ch := range t.Chains {
			if ch.Name == chain {
				for _, r := range ch.Rules {
					out = append(out, r.Counters.Packets)
				}
			}
		}
	}
	return out
}

func seq(outs ...outcome) string { return string(outs) }

// Seed 001: at most 3 SSH connections per client address; the 4th gets a
// reset (REJECT --reject-with tcp-reset); another client is not affected;
// a connection in TIME_WAIT no longer counts (spec §3.2, §12).
func TestSeedConnlimitPerHost(t *testing.T) {
	h := load(t, `-A INPUT -p tcp --syn --dport 22 -m connlimit --connlimit-above 3 -j REJECT --reject-with tcp-reset`)
	var got []outcome
	conns := make([]*conn, 5)
	for i := range conns {
		conns[i] = &conn{cli: "192.0.2.1", cport: uint16(40000 + i), dst: 22}
		got = append(got, h.connect(conns[i]))
	}
	if s := seq(got...); s != "AAARR" {
		t.Fatalf("5 connections from one host: %s, want AAARR", s)
	}
	if o := h.connect(&conn{cli: "192.0.2.2", cport: 40000, dst: 22}); o != accepted {
		t.Fatalf("another host: %c", o)
	}
	h.close(conns[0])
	if o := h.connect(&conn{cli: "192.0.2.1", cport: 41000, dst: 22}); o != accepted {
		t.Fatalf("after one connection closed (TIME_WAIT): %c, want A", o)
	}
	if o := h.connect(&conn{cli: "192.0.2.1", cport: 41001, dst: 22}); o != reset {
		t.Fatalf("back at the limit: %c, want R", o)
	}
	// The RST answers the SYN: ACK set, ack = seq+1, from the server port.
	var rst packet.Packet
	rst.Decode(h.rec.replies[len(h.rec.replies)-1])
	if rst.TCPFlags != packettest.RST|packettest.ACK || rst.SrcPort != 22 || rst.DstPort != 41001 {
		t.Fatalf("reset: flags %#x ports %d->%d", rst.TCPFlags, rst.SrcPort, rst.DstPort)
	}
}

// Seed 001: 20 connections per /24 (--connlimit-mask 24).
func TestSeedConnlimitPerSubnet(t *testing.T) {
	h := load(t, `-A INPUT -p tcp --syn --dport 80 -m connlimit --connlimit-above 20 --connlimit-mask 24 -j REJECT --reject-with tcp-reset`)
	var got []outcome
	for i := 0; i < 22; i++ {
		got = append(got, h.connect(&conn{cli: fmt.Sprintf("198.51.100.%d", i+1), cport: 50000, dst: 80}))
	}
	if s := seq(got...); s != strings.Repeat("A", 20)+"RR" {
		t.Fatalf("22 hosts of one /24: %s", s)
	}
	if o := h.connect(&conn{cli: "198.51.101.1", cport: 50000, dst: 80}); o != accepted {
		t.Fatalf("a host of another /24: %c", o)
	}
}

// Seed 000: `! --connlimit-above N -j ACCEPT` under a DROP policy: the
// connections over the limit fall through to the policy and are dropped.
func TestSeedConnlimitUptoWithDropPolicy(t *testing.T) {
	h := load(t, `
-P INPUT DROP
-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT
-I INPUT 2 -p tcp --syn --dport 80 -m connlimit ! --connlimit-above 2 -j ACCEPT`)
	var got []outcome
	for i := 0; i < 4; i++ {
		got = append(got, h.connect(&conn{cli: "203.0.113.7", cport: uint16(30000 + i), dst: 80}))
	}
	if s := seq(got...); s != "AADD" {
		t.Fatalf("got %s, want AADD", s)
	}
}

// Seed 001: drop a client that opens 10 or more new HTTP connections within
// 100 s (recent --set, then --update --seconds 100 --hitcount 10).
func TestSeedRecentUpdate10In100s(t *testing.T) {
	h := load(t, `
-A INPUT -p tcp --dport 80 -i eth0 -m state --state NEW -m recent --set
-A INPUT -p tcp --dport 80 -i eth0 -m state --state NEW -m recent --update --seconds 100 --hitcount 10 -j DROP`)
	var got []outcome
	for i := 0; i < 12; i++ {
		got = append(got, h.connect(&conn{cli: "192.0.2.9", cport: uint16(20000 + i), dst: 80}))
		h.advance(1)
	}
	if s := seq(got...); s != "AAAAAAAAADDD" {
		t.Fatalf("12 connections in 12 s: %s, want 9 accepted then dropped", s)
	}
	h.advance(101)
	if o := h.connect(&conn{cli: "192.0.2.9", cport: 21000, dst: 80}); o != accepted {
		t.Fatalf("after 100 s quiet: %c", o)
	}
}

// Seed 002 / spec §4.7 A: rcheck counts from the first stamps, update keeps
// a sender blocked as long as it keeps trying. One ping every 0.516 s when
// answered, every 1.016 s when not (the client waits 0.5 s for a reply).
func TestSeedRecentRcheckVsUpdate(t *testing.T) {
	for _, tc := range []struct{ mode, want string }{
		{"rcheck", "AAADDDDDDDDDAAAD"},
		{"update", "AAADDDDDDDDDDDDD"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			h := load(t, fmt.Sprintf(`
-A INPUT -p icmp --icmp-type echo-request -m recent --name T --%s --seconds 10 --hitcount 3 -j DROP
-A INPUT -p icmp --icmp-type echo-request -m recent --name T --set -j ACCEPT`, tc.mode))
			var got []outcome
			for i := 0; i < 16; i++ {
				r := h.ping("10.99.0.1", 56, 64)
				if r.Verdict == xt.VerdictAccept {
					got = append(got, accepted)
					h.advance(0.516)
				} else {
					got = append(got, dropped)
					h.advance(1.016)
				}
			}
			if s := seq(got...); s != tc.want {
				t.Fatalf("%s: %s, want %s", tc.mode, s, tc.want)
			}
		})
	}
}

// Seed 002 example 2: 5 SSH connections per hour per address with --rttl;
// the 6th is dropped, and one with another TTL (a spoofer) is judged apart.
func TestSeedRecentFivePerHourRTTL(t *testing.T) {
	h := load(t, `
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp --dport 22 -m state --state NEW -m recent --name SSHPOOL --rcheck --seconds 3600 --hitcount 5 --rttl -j DROP
-A INPUT -p tcp --dport 22 -m state --state NEW -m recent --name SSHPOOL --set -j ACCEPT
-A INPUT -j DROP`)
	var got []outcome
	for i := 0; i < 7; i++ {
		got = append(got, h.connect(&conn{cli: "192.0.2.50", cport: uint16(10000 + i), dst: 22, ttl: 64}))
		h.advance(60)
	}
	if s := seq(got...); s != "AAAAADD" {
		t.Fatalf("7 connections in 7 minutes: %s, want AAAAADD", s)
	}
	h.advance(3600)
	if o := h.connect(&conn{cli: "192.0.2.50", cport: 12000, dst: 22, ttl: 64}); o != accepted {
		t.Fatalf("an hour later: %c", o)
	}
}

// Seed 002 example 1: a ping with 100 bytes of data (IP length 128) opens
// SSH for 15 seconds from that address only.
func TestSeedPingKnock(t *testing.T) {
	h := load(t, `
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p icmp --icmp-type 8 -m length --length 128 -m recent --set --name SSHOPEN --rsource -j ACCEPT
-A INPUT -p icmp --icmp-type 8 -j ACCEPT
-A INPUT -p tcp --dport 22 -m state --state NEW -m recent --rcheck --seconds 15 --name SSHOPEN --rsource -j ACCEPT
-A INPUT -j DROP`)
	if o := h.connect(&conn{cli: "192.0.2.77", cport: 1, dst: 22}); o != dropped {
		t.Fatalf("SSH before the knock: %c", o)
	}
	h.ping("192.0.2.77", 56, 64) // wrong size: no knock
	if o := h.connect(&conn{cli: "192.0.2.77", cport: 2, dst: 22}); o != dropped {
		t.Fatalf("SSH after a normal ping: %c", o)
	}
	h.ping("192.0.2.77", 100, 64) // 20 + 8 + 100 = 128
	if o := h.connect(&conn{cli: "192.0.2.77", cport: 3, dst: 22}); o != accepted {
		t.Fatalf("SSH right after the knock: %c", o)
	}
	if o := h.connect(&conn{cli: "192.0.2.78", cport: 3, dst: 22}); o != dropped {
		t.Fatalf("SSH from another address: %c", o)
	}
	h.advance(16)
	if o := h.connect(&conn{cli: "192.0.2.77", cport: 4, dst: 22}); o != dropped {
		t.Fatalf("SSH 16 s after the knock: %c", o)
	}
}

// Seed 003 / spec §12: limit 1/m burst 10 lets 10 of 30 pings at 20 ms
// through; limit 5/s burst 20 lets 38 of 150 through.
func TestSeedLimit(t *testing.T) {
	for _, tc := range []struct {
		rule  string
		n     int
		every float64
		want  int
	}{
		{`-A INPUT -p icmp -m limit --limit 1/m --limit-burst 10 -j ACCEPT`, 30, 0.020, 10},
		{`-A INPUT -p icmp --icmp-type echo-request -m limit --limit 5/s --limit-burst 20 -j ACCEPT`, 150, 0.024, 38},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			h := load(t, "-P INPUT DROP\n"+tc.rule)
			n := 0
			for i := 0; i < tc.n; i++ {
				if h.ping("10.99.0.1", 56, 64).Verdict == xt.VerdictAccept {
					n++
				}
				h.advance(tc.every)
			}
			if n != tc.want {
				t.Fatalf("%d accepted, want %d", n, tc.want)
			}
		})
	}
}

// Seed 004: INVALID packets are logged with a prefix and dropped.
func TestSeedInvalidLoggedAndDropped(t *testing.T) {
	h := load(t, `
-A INPUT -m state --state INVALID -j LOG --log-prefix "INVALID " --log-ip-options
-A INPUT -m state --state INVALID -j DROP
-A INPUT -j ACCEPT`)
	c := &conn{cli: "192.0.2.10", cport: 5555, dst: 80}
	if r := h.in(c.seg(true, packettest.FIN, 1, 0)); r.Verdict != xt.VerdictDrop || r.CT.State != conntrack.Invalid {
		t.Fatalf("stray FIN: %+v", r)
	}
	if len(h.rec.logs) != 1 || !strings.HasPrefix(h.rec.logs[0], "INVALID IN=eth0 OUT= ") || !strings.Contains(h.rec.logs[0], " SRC=192.0.2.10 DST=10.0.0.100 ") {
		t.Fatalf("log lines %q", h.rec.logs)
	}
	if got := h.counters("filter", "INPUT"); got[0] != 1 || got[1] != 1 || got[2] != 0 {
		t.Fatalf("counters %v", got)
	}
}

// Seed 004: the classic tcp-flags scan rules drop XMAS, NULL and SYN/ACK
// probes; a normal SYN passes.
func TestSeedTCPFlagScans(t *testing.T) {
	h := load(t, `
-A INPUT -p tcp --tcp-flags ALL FIN,URG,PSH -j DROP
-A INPUT -p tcp --tcp-flags ALL NONE -j DROP
-A INPUT -p tcp --tcp-flags SYN,ACK SYN,ACK -m state --state NEW -j DROP
-A INPUT -p tcp --tcp-flags SYN,ACK SYN,ACK -j DROP
-A INPUT -j ACCEPT`)
	c := &conn{cli: "192.0.2.11", cport: 6000, dst: 80}
	for _, tc := range []struct {
		flags uint8
		rule  int
	}{
		{packettest.FIN | packettest.URG | packettest.PSH, 1},
		{0, 2},
		{packettest.SYN | packettest.ACK, 4}, // never NEW: a SYN/ACK cannot start a connection
		{packettest.SYN, 5},
	} {
		r := h.in(c.seg(true, tc.flags, 1, 0))
		if r.Decision.Rule != tc.rule {
			t.Fatalf("flags %#x decided by rule %d, want %d", tc.flags, r.Decision.Rule, tc.rule)
		}
	}
}

// Seed 004: NOTRACK in raw makes packets UNTRACKED; a state rule accepting
// UNTRACKED lets them in under a DROP policy, and nothing is tracked.
func TestSeedNotrackUntracked(t *testing.T) {
	h := load(t, `
-t raw -A PREROUTING -p tcp --dport 80 -j NOTRACK
-P INPUT DROP
-A INPUT -m state --state UNTRACKED,ESTABLISHED,RELATED -j ACCEPT`)
	c := &conn{cli: "192.0.2.12", cport: 7000, dst: 80}
	r := h.in(c.seg(true, packettest.ACK, 1, 1))
	if r.Verdict != xt.VerdictAccept || r.CT.State != conntrack.Untracked {
		t.Fatalf("%+v", r)
	}
	if n := h.e.ConntrackTable().Count(); n != 0 {
		t.Fatalf("%d conntrack entries, want 0", n)
	}
	c2 := &conn{cli: "192.0.2.12", cport: 7001, dst: 22}
	if r := h.in(c2.seg(true, packettest.SYN, 1, 0)); r.Verdict != xt.VerdictDrop {
		t.Fatalf("tracked NEW to 22 should hit the policy: %+v", r)
	}
}

// Seed 004: MARK in mangle, saved to the connection, restored on the reply.
func TestSeedMarkConnmark(t *testing.T) {
	h := load(t, `
-t mangle -A PREROUTING -p tcp --dport 80 -j MARK --set-mark 1
-t mangle -A PREROUTING -p tcp -m mark --mark 1 -j CONNMARK --save-mark
-t mangle -A OUTPUT -j CONNMARK --restore-mark
-t mangle -A OUTPUT -m mark --mark 1 -j ACCEPT`)
	c := &conn{cli: "192.0.2.13", cport: 8000, dst: 80}
	h.in(c.seg(true, packettest.SYN, 100, 0))
	if h.p.Mark != 1 {
		t.Fatalf("packet mark %d after MARK", h.p.Mark)
	}
	h.out(c.seg(false, packettest.SYN|packettest.ACK, 500, 101))
	if h.p.Mark != 1 {
		t.Fatalf("reply mark %d, want 1 restored from the connection", h.p.Mark)
	}
	if got := h.counters("mangle", "OUTPUT"); got[1] != 1 {
		t.Fatalf("mangle OUTPUT counters %v", got)
	}
}

// Seed 004: DNAT on the way in and SNAT on the way out of a router; the
// reply is translated back in both fields.
func TestSeedDNATSNATRoundTrip(t *testing.T) {
	h := load(t, `
-t nat -A PREROUTING -p tcp -d 1.1.1.1 --dport 80 -j DNAT --to 2.2.2.2:80
-t nat -A POSTROUTING -d 2.2.2.2 -j SNAT --to-source 1.1.1.1`)
	mk := func(src, dst string, sp, dp uint16, fl uint8, s, a uint32) []byte {
		return packettest.TCP(packettest.TCPOpts{Src: src, Dst: dst, SrcPort: sp, DstPort: dp, Flags: fl, Seq: s, Ack: a, Window: 65000})
	}
	fwd := func(b []byte, in, out string) netfilter.Result {
		h.p.Decode(b)
		h.p.InIface, h.p.OutIface, h.p.TimeNS = in, out, h.now
		h.now += 1e6
		return h.w.Process(netfilter.PathForward, &h.p)
	}
	fwd(mk("9.9.9.9", "1.1.1.1", 33333, 80, packettest.SYN, 1, 0), "wan", "lan")
	if got := netip.AddrPortFrom(h.p.Src, h.p.SrcPort).String() + ">" + netip.AddrPortFrom(h.p.Dst, h.p.DstPort).String(); got != "1.1.1.1:33333>2.2.2.2:80" {
		t.Fatalf("SYN after nat: %s", got)
	}
	r := fwd(mk("2.2.2.2", "1.1.1.1", 80, 33333, packettest.SYN|packettest.ACK, 9, 2), "lan", "wan")
	if got := netip.AddrPortFrom(h.p.Src, h.p.SrcPort).String() + ">" + netip.AddrPortFrom(h.p.Dst, h.p.DstPort).String(); got != "1.1.1.1:80>9.9.9.9:33333" || r.CT.State != conntrack.Established {
		t.Fatalf("SYN/ACK after nat: %s %+v", got, r)
	}
	if got := h.counters("nat", "PREROUTING"); got[0] != 1 {
		t.Fatalf("nat PREROUTING counters %v", got)
	}
}

// Spec §1.4: with conntrack active, fragments are reassembled before raw, so
// `-f` never matches, and counters and -m length see the whole datagram.
func TestDefragBeforeRaw(t *testing.T) {
	h := load(t, `
-t raw -A PREROUTING -f
-t raw -A PREROUTING -p udp -m length --length 3000:3100
-A INPUT -m state --state NEW -p udp --dport 53 -j ACCEPT
-P INPUT DROP`)
	dgram := packettest.UDP(packettest.UDPOpts{Src: "192.0.2.20", Dst: server, SrcPort: 999, DstPort: 53, Payload: make([]byte, 3000), IP: packettest.IP{ID: 4242}})
	frags := packettest.Fragments(dgram, 1480)
	if len(frags) != 3 {
		t.Fatalf("%d fragments", len(frags))
	}
	var last netfilter.Result
	for i, f := range frags {
		last = h.in(f)
		if i < len(frags)-1 && last.Verdict != xt.VerdictStolen {
			t.Fatalf("fragment %d: %+v, want it held for reassembly", i, last)
		}
	}
	if last.Verdict != xt.VerdictAccept || last.CT.State != conntrack.New {
		t.Fatalf("reassembled datagram: %+v", last)
	}
	if got := h.counters("raw", "PREROUTING"); got[0] != 0 || got[1] != 1 {
		t.Fatalf("raw counters %v: -f must not match, length must see 3028 bytes", got)
	}
	if got := h.counters("filter", "INPUT"); got[0] != 1 {
		t.Fatalf("filter counters %v", got)
	}
}

// Spec §4.1: a recent list lives while a rule names it. Adding an unrelated
// rule keeps it (and its entries); deleting the last rule that names it
// destroys it, so a new rule starts with an empty list.
func TestRecentListLifetime(t *testing.T) {
	reg := builtin.Registry()
	rs := ruleset.New(xt.IPv4)
	run := func(line string) {
		t.Helper()
		args, _ := iptables.SplitShell(line)
		res, _, err := iptables.Run(rs, reg, args, &strings.Builder{})
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if res.Ruleset != nil {
			rs = res.Ruleset
		}
	}
	e := netfilter.New(netfilter.Config{Seed: 1})
	w := e.NewWorker(nil)
	ping := func() {
		var p packet.Packet
		p.Decode(packettest.EchoRequest("192.0.2.1", server, 1, 1, 56))
		p.InIface, p.TimeNS = "eth0", 1e9
		w.Process(netfilter.PathInput, &p)
	}
	entries := func() int {
		l, ok := e.Shared("recent", "K")
		if !ok {
			return -1
		}
		return l.(interface{ Len() int }).Len()
	}
	run("-A INPUT -p icmp -m recent --set --name K")
	if err := e.Load(rs); err != nil {
		t.Fatal(err)
	}
	ping()
	run("-A INPUT -p tcp --dport 22 -j ACCEPT")
	if err := e.Load(rs); err != nil {
		t.Fatal(err)
	}
	if n := entries(); n != 1 {
		t.Fatalf("after an unrelated change the list has %d entries, want 1", n)
	}
	run("-D INPUT 1")
	if err := e.Load(rs); err != nil {
		t.Fatal(err)
	}
	if n := entries(); n != -1 {
		t.Fatalf("list still exists (%d entries) after its last rule was deleted", n)
	}
}

// Without conntrack the kernel still reassembles datagrams for local
// delivery (ip_local_deliver): PREROUTING sees the fragments, INPUT the
// whole datagram (found by the kernel differential suite).
func TestLocalDeliveryReassembly(t *testing.T) {
	h := load(t, `
-t raw -A PREROUTING -f
-t raw -A PREROUTING ! -f
-A INPUT -f
-A INPUT -p udp ! -f`)
	if h.e.Conntrack() {
		t.Fatal("these rules must not switch conntrack on")
	}
	dgram := packettest.UDP(packettest.UDPOpts{Src: "192.0.2.21", Dst: server, SrcPort: 40000, DstPort: 7110, Payload: make([]byte, 40), IP: packettest.IP{ID: 99}})
	frags := packettest.Fragments(dgram, 24)
	for i, f := range frags {
		r := h.in(f)
		if i < len(frags)-1 && r.Verdict != xt.VerdictStolen {
			t.Fatalf("fragment %d: %+v", i, r)
		}
	}
	if got := h.counters("raw", "PREROUTING"); got[0] != uint64(len(frags)-1) || got[1] != 1 {
		t.Fatalf("raw PREROUTING %v: every fragment is seen there", got)
	}
	if got := h.counters("filter", "INPUT"); got[0] != 0 || got[1] != 1 {
		t.Fatalf("filter INPUT %v: one whole datagram", got)
	}
}

// traceRecorder also takes the TRACE target's events.
type traceRecorder struct {
	recorder
	trace []string
}

func (r *traceRecorder) Trace(_ *xt.Ctx, line []byte) { r.trace = append(r.trace, string(line)) }

// TestTraceTargetEvents: -j TRACE makes every later base chain report the
// packet, each matching rule with its verdict and the policy, in the format
// xtables-monitor --trace printed for the same rules and packet on 6.18
// (trace id normalised; uptables numbers rules by position, the kernel by
// nft handle: the kernel's lines had rule:0x2 in raw and 0x4/0x2 in INPUT).
func TestTraceTargetEvents(t *testing.T) {
	h := load(t, `
-t raw -A PREROUTING -p udp -j TRACE
-A INPUT -p udp -j ACCEPT
-N X
-I INPUT -j X
-A X -p tcp -j DROP`)
	rec := &traceRecorder{}
	e := netfilter.New(netfilter.Config{Seed: 1, RuleText: iptables.RuleText})
	if err := e.Load(h.e.Ruleset()); err != nil {
		t.Fatal(err)
	}
	w := e.NewWorker(rec)
	b := packettest.UDP(packettest.UDPOpts{Src: "10.233.0.2", Dst: "10.233.0.1", SrcPort: 43087, DstPort: 9999, Payload: []byte("hello"), IP: packettest.IP{ID: 55629, DF: true}})
	var p packet.Packet
	p.Decode(b)
	p.InIface, p.TimeNS = "trva", 1e9
	p.Link = []byte{0xe6, 0xb2, 0xcd, 0xe7, 0xf9, 0xb7, 0x06, 0x97, 0x5b, 0x74, 0xa5, 0x99, 0x08, 0x00}
	if r := w.Process(netfilter.PathInput, &p); r.Verdict != xt.VerdictAccept {
		t.Fatalf("%+v", r)
	}
	const pkt = "PACKET: 2 ID IN=trva MACSRC=6:97:5b:74:a5:99 MACDST=e6:b2:cd:e7:f9:b7 MACPROTO=0800 SRC=10.233.0.2 DST=10.233.0.1 LEN=33 TOS=0x0 TTL=64 ID=55629 DF SPORT=43087 DPORT=9999 "
	want := []string{
		pkt,
		" TRACE: 2 ID raw:PREROUTING:rule:0x1:CONTINUE  -4 -t raw -A PREROUTING -p udp -j TRACE",
		" TRACE: 2 ID raw:PREROUTING:policy:ACCEPT ",
		pkt,
		" TRACE: 2 ID filter:INPUT:rule:0x1:JUMP:X  -4 -t filter -A INPUT -j X",
		" TRACE: 2 ID filter:INPUT:rule:0x2:ACCEPT  -4 -t filter -A INPUT -p udp -j ACCEPT",
	}
	var got []string
	for _, l := range rec.trace {
		f := strings.Fields(l)
		got = append(got, strings.Replace(l, f[2], "ID", 1))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("trace lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// An untraced packet produces nothing.
	rec.trace = nil
	p.Decode(packettest.TCP(packettest.TCPOpts{Src: "10.233.0.2", Dst: "10.233.0.1", SrcPort: 1, DstPort: 2, Flags: packettest.SYN}))
	w.Process(netfilter.PathInput, &p)
	if len(rec.trace) != 0 {
		t.Fatalf("untraced packet traced: %q", rec.trace)
	}
}
