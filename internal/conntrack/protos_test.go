package conntrack

import (
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// sctpPkt builds an SCTP packet from side "c" (cli:40000 -> srv:80) or "s"
// with the given tag and chunks (sctpChunkBytes syntax) and a valid CRC32c.
func sctpPkt(side string, vtag uint32, chunks string) []byte {
	src, dst, sp, dp := cli, srv, uint16(40000), uint16(80)
	if side == "s" {
		src, dst, sp, dp = srv, cli, 80, 40000
	}
	l4 := binary.BigEndian.AppendUint16(nil, sp)
	l4 = binary.BigEndian.AppendUint16(l4, dp)
	l4 = binary.BigEndian.AppendUint32(l4, vtag)
	l4 = append(l4, 0, 0, 0, 0)
	l4 = append(l4, sctpChunkBytes(chunks)...)
	binary.LittleEndian.PutUint32(l4[8:], crc32.Checksum(l4, crc32.MakeTable(crc32.Castagnoli)))
	return packettest.Raw(packettest.RawOpts{Src: src, Dst: dst, Proto: ProtoSCTP, Payload: l4})
}

func rawPkt(side string, proto uint8, l4 []byte) []byte {
	src, dst := cli, srv
	if side == "s" {
		src, dst = srv, cli
	}
	return packettest.Raw(packettest.RawOpts{Src: src, Dst: dst, Proto: proto, Payload: l4})
}

// stepAny is step for packets the decoder may find truncated (conntrack
// reads the L4 bytes itself, as the kernel does).
func stepAny(tb *Table, b []byte, now int64) Result {
	var p packet.Packet
	p.Decode(b)
	p.TimeNS = now
	r := tb.In(&p, packet.PreRouting)
	tb.Confirm(&r)
	tb.Release(&r)
	return r
}

// TestSCTPSteps: the association's life as a user follows it with
// `conntrack -L` and --ctstate, including what a firewall must refuse.
func TestSCTPSteps(t *testing.T) {
	const a, b = 0x11111111, 0x22222222
	type st struct {
		pkt    []byte
		want   string // packet state
		reason Reason // when INVALID
		line   string // conntrack -L after it ("" = no entry)
	}
	ok := func(s string) string {
		return "sctp     132 " + s + " src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000"
	}
	for _, tc := range []struct {
		name  string
		steps []st
	}{
		{"lifecycle", []st{
			{sctpPkt("c", 0, "init=0x11111111"), "NEW/ORIGINAL", 0, "sctp     132 10 CLOSED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 mark=0 use=1"},
			{sctpPkt("s", a, "initack=0x22222222"), "ESTABLISHED/REPLY", 0, ok("3 COOKIE_WAIT") + " mark=0 use=1"},
			{sctpPkt("c", b, "cookie"), "ESTABLISHED/ORIGINAL", 0, ok("3 COOKIE_ECHOED") + " mark=0 use=1"},
			{sctpPkt("s", a, "cookieack"), "ESTABLISHED/REPLY", 0, ok("210 ESTABLISHED") + " [ASSURED] mark=0 use=1"},
			{sctpPkt("c", 0x33, "data@16"), "INVALID", ReasonSCTPVtag, ok("210 ESTABLISHED") + " [ASSURED] mark=0 use=1"},
			{sctpPkt("c", b, "shutdown@8"), "ESTABLISHED/ORIGINAL", 0, ok("3 SHUTDOWN_SENT") + " [ASSURED] mark=0 use=1"},
			{sctpPkt("s", a, "shutack"), "ESTABLISHED/REPLY", 0, ok("3 SHUTDOWN_ACK_SENT") + " [ASSURED] mark=0 use=1"},
			{sctpPkt("c", b, "shutcomp"), "ESTABLISHED/ORIGINAL", 0, ok("10 CLOSED") + " [ASSURED] mark=0 use=1"},
		}},
		{"no chunk", []st{{sctpPkt("c", 0, ""), "INVALID", ReasonSCTPChunks, ""}}},
		{"zero-length chunk", []st{{sctpPkt("c", 0, "data@0"), "INVALID", ReasonSCTPChunks, ""}}},
		{"init not alone", []st{{sctpPkt("c", 0, "init=0x11111111+data@16"), "INVALID", ReasonSCTPChunks, ""}}},
		{"init with a tag", []st{{sctpPkt("c", 5, "init=0x11111111"), "INVALID", ReasonSCTPVtag, ""}}},
		{"abort cannot open", []st{{sctpPkt("c", 0, "abort"), "INVALID", ReasonSCTPState, ""}}},
		{"unknown chunk cannot open", []st{{sctpPkt("c", 0, "t192@8"), "INVALID", ReasonSCTPState, ""}}},
		{"short header", []st{{rawPkt("c", ProtoSCTP, []byte{0x9c, 0x40, 0, 80, 0, 0, 0, 0}), "INVALID", ReasonTruncated, ""}}},
		{"bad crc", []st{{func() []byte {
			p := sctpPkt("c", 0, "init=0x11111111")
			p[20+8] ^= 1
			return p
		}(), "INVALID", ReasonChecksum, ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, nil)
			for i, s := range tc.steps {
				r := stepAny(tb, s.pkt, t0)
				if got := r.Info.String(); got != s.want || (s.want == "INVALID" && r.Reason != s.reason) {
					t.Errorf("step %d: %s (%v), want %s (%v)", i+1, got, r.Reason, s.want, s.reason)
				}
				have := strings.Join(listing(tb, t0), "\n")
				if have != s.line {
					t.Errorf("step %d: conntrack -L\n%s\nwant\n%s", i+1, have, s.line)
				}
			}
		})
	}
}

// TestSCTPNoChecksumOutsidePrerouting: like nf_conntrack_checksum, the CRC
// is only verified at PREROUTING (the host's own packets are trusted).
func TestSCTPNoChecksumOutsidePrerouting(t *testing.T) {
	tb := newTable(t, nil)
	b := sctpPkt("c", 0, "init=0x11111111")
	b[20+8] ^= 1
	r := tb.In(decode(t, b, t0), packet.LocalOut)
	defer tb.Release(&r)
	if r.Info.State != New {
		t.Fatalf("OUTPUT with a bad CRC: %v (%v), want NEW", r.Info, r.Reason)
	}
}

// TestSCTPInitRetransmitKeepsTimer: a second INIT in CLOSED is accepted
// without refreshing the timer, so a client retrying forever cannot keep
// the entry (and its NAT binding) alive.
func TestSCTPInitRetransmitKeepsTimer(t *testing.T) {
	tb := newTable(t, nil)
	init := sctpPkt("c", 0, "init=0x11111111")
	step(t, tb, init, t0)
	r, e, _ := step(t, tb, init, t0+int64(4*time.Second))
	if r.Info.State != New || e.Expires != t0+int64(10*time.Second) {
		t.Fatalf("retransmitted INIT: %v, expires %v after the first", r.Info, time.Duration(e.Expires-t0))
	}
}

// TestGRE: keys, timeouts and ASSURED as `conntrack -L` shows them.
func TestGRE(t *testing.T) {
	v0 := []byte{0, 0, 0x08, 0}
	ppp := []byte{0x30, 0x01, 0x88, 0x0b, 0, 0, 0xab, 0xcd}
	for _, tc := range []struct {
		name  string
		pkts  [][]byte
		state []string
		line  string
	}{
		{"v0 stream", [][]byte{rawPkt("c", ProtoGRE, v0), rawPkt("s", ProtoGRE, v0), rawPkt("c", ProtoGRE, v0)},
			[]string{"NEW/ORIGINAL", "ESTABLISHED/REPLY", "ESTABLISHED/ORIGINAL"},
			"gre      47 180 src=10.0.0.1 dst=10.0.0.2 srckey=0x0 dstkey=0x0 src=10.0.0.2 dst=10.0.0.1 srckey=0x0 dstkey=0x0 [ASSURED] mark=0 use=1"},
		{"v1 ppp call id", [][]byte{rawPkt("c", ProtoGRE, ppp)}, []string{"NEW/ORIGINAL"},
			"gre      47 30 src=10.0.0.1 dst=10.0.0.2 srckey=0x0 dstkey=0xabcd [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 srckey=0xabcd dstkey=0x0 mark=0 use=1"},
		{"v1 not ppp", [][]byte{rawPkt("c", ProtoGRE, []byte{0x30, 0x01, 0x08, 0x00, 0, 0, 0xab, 0xcd})}, []string{"INVALID"}, ""},
		{"v1 too short for a call id", [][]byte{rawPkt("c", ProtoGRE, []byte{0x30, 0x01, 0x08, 0x00})}, []string{"NEW/ORIGINAL"},
			"gre      47 30 src=10.0.0.1 dst=10.0.0.2 srckey=0x0 dstkey=0x0 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 srckey=0x0 dstkey=0x0 mark=0 use=1"},
		{"dccp is generic", [][]byte{rawPkt("c", ProtoDCCP, []byte{0x9c, 0x40, 0, 80})}, []string{"NEW/ORIGINAL"},
			"dccp     33 600 src=10.0.0.1 dst=10.0.0.2 sport=0 dport=0 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=0 dport=0 mark=0 use=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, nil)
			for i, b := range tc.pkts {
				r := stepAny(tb, b, t0)
				if r.Info.String() != tc.state[i] {
					t.Errorf("packet %d: %v (%v), want %s", i+1, r.Info, r.Reason, tc.state[i])
				}
			}
			if have := strings.Join(listing(tb, t0), "\n"); have != tc.line {
				t.Errorf("conntrack -L\n%s\nwant\n%s", have, tc.line)
			}
		})
	}
}

// TestZeroAllocSCTPGRE: the per-packet path of the SCTP and GRE trackers
// (CRC32c, chunk walk, state machine, GRE keys) allocates nothing, for
// established traffic and for new associations.
func TestZeroAllocSCTPGRE(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.Max = 1024 })
	for _, b := range [][]byte{
		sctpPkt("c", 0, "init=0x11111111"), sctpPkt("s", 0x11111111, "initack=0x22222222"),
		sctpPkt("c", 0x22222222, "cookie"), sctpPkt("s", 0x11111111, "cookieack"),
	} {
		step(t, tb, b, t0)
	}
	data := sctpPkt("c", 0x22222222, "sack@16+data@16")
	gre := rawPkt("c", ProtoGRE, []byte{0x30, 0x01, 0x88, 0x0b, 0, 0, 0xab, 0xcd})
	var p packet.Packet
	buf := make([]byte, 0, 256)
	run := func(b []byte, want CtState) func() {
		return func() {
			p.Decode(b)
			p.TimeNS = t0
			r := tb.In(&p, packet.PreRouting)
			if r.Info.State != want {
				t.Fatalf("%v %v", r.Info, r.Reason)
			}
			tb.Confirm(&r)
			var e Entry
			r.Conn.snapshot(&e)
			buf = e.AppendConntrackL(buf[:0], t0)
			tb.Release(&r)
		}
	}
	if a := testing.AllocsPerRun(1000, run(data, Established)); a != 0 {
		t.Errorf("sctp data: %v allocs per packet", a)
	}
	step(t, tb, gre, t0)
	if a := testing.AllocsPerRun(1000, run(gre, New)); a != 0 {
		t.Errorf("gre: %v allocs per packet", a)
	}
	init := sctpPkt("c", 0, "init=0x11111111")
	port := uint16(0)
	newAssoc := func() {
		port++
		binary.BigEndian.PutUint16(init[20:], port) // OUTPUT: the CRC is not checked
		p.Decode(init)
		p.TimeNS = t0
		r := tb.In(&p, packet.LocalOut)
		if r.Info.State != New {
			t.Fatalf("%v %v", r.Info, r.Reason)
		}
		tb.Confirm(&r)
		tu := r.Conn.Orig()
		tb.Release(&r)
		tb.Delete(tu)
	}
	for range 300 {
		newAssoc()
	}
	if a := testing.AllocsPerRun(1000, newAssoc); a != 0 {
		t.Errorf("new sctp association: %v allocs", a)
	}
}

// TestSCTPEarlyDropUnderPressure: when the table is above 95% full the
// reaper may take ASSURED associations only while they shut down (the
// kernel's sctp_can_early_drop); established ones stay.
func TestSCTPEarlyDropUnderPressure(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.Max = 8; c.Buckets = 8 })
	const a, b = 0x11111111, 0x22222222
	open := func(sport uint16, shut bool) {
		pk := func(side string, vtag uint32, chunks string) []byte {
			p := sctpPkt(side, vtag, chunks)
			if side == "c" {
				binary.BigEndian.PutUint16(p[20:], sport)
			} else {
				binary.BigEndian.PutUint16(p[22:], sport)
			}
			// OUTPUT: the CRC (now stale) is not checked.
			return p
		}
		seq := []struct {
			side, chunks string
			vtag         uint32
		}{{"c", "init=0x11111111", 0}, {"s", "initack=0x22222222", a}, {"c", "cookie", b}, {"s", "cookieack", a}}
		if shut {
			seq = append(seq, struct {
				side, chunks string
				vtag         uint32
			}{"c", "shutdown@8", b})
		}
		for _, s := range seq {
			r := tb.In(decode(t, pk(s.side, s.vtag, s.chunks), t0), packet.LocalOut)
			if r.Conn == nil {
				t.Fatalf("port %d %s: %v", sport, s.chunks, r.Reason)
			}
			tb.Confirm(&r)
			tb.Release(&r)
		}
	}
	for i := range 8 {
		open(uint16(1000+i), i%2 == 1)
	}
	if n := tb.GC(t0, 1000); n != 4 {
		t.Fatalf("GC under pressure removed %d, want the 4 shutting down", n)
	}
	tb.Range(t0, func(e *Entry) bool {
		if e.SCTPState != SCTPEstablished {
			t.Errorf("left %s", e.Orig)
		}
		return true
	})
}
