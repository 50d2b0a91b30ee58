package conntrack

import (
	"testing"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// FuzzIn feeds arbitrary packets (as the decoder accepts them) through In,
// Confirm and Release at both conntrack hooks: no panic, and the entry count
// always equals what a listing shows once no packet holds a reference.
func FuzzIn(f *testing.F) {
	probe := udp(cli, srv, 40000, 33434)
	for _, b := range [][]byte{
		seg{dir: "c", flags: S, seq: 1, win: 100, opts: packettest.WScale(7)}.bytes(1),
		seg{dir: "s", flags: S | A, seq: 1, ack: 2, win: 100}.bytes(1),
		probe,
		packettest.ICMPError(packettest.ICMPErrorOpts{Src: srv, Type: 3, Code: 3, Original: probe}),
		packettest.ICMPError(packettest.ICMPErrorOpts{Src: "2001:db8::2", Type: 1, Original: packettest.UDP(packettest.UDPOpts{Src: "2001:db8::1", Dst: "2001:db8::2", SrcPort: 1, DstPort: 2})}),
		packettest.EchoRequest("2001:db8::1", "2001:db8::2", 1, 1, 4),
		packettest.Raw(packettest.RawOpts{Src: cli, Dst: srv, Proto: 47, Payload: []byte{1, 2, 3, 4}}),
		packettest.Raw(packettest.RawOpts{Src: cli, Dst: srv, Proto: 47, Payload: []byte{0x30, 1, 0x88, 0x0b, 0, 0, 0xab, 0xcd}}),
		sctpPkt("c", 0, "init=0x11111111"),
		sctpPkt("s", 0x11111111, "initack=0x22222222"),
		sctpPkt("c", 0x22222222, "cookie+data@16+hb@8"),
		sctpPkt("s", 0x99, "hback@8+abort.T+shutcomp"),
	} {
		f.Add(b, b)
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		tb := newTable(t, func(c *Config) { c.Max = 8; c.Buckets = 4 })
		var p packet.Packet
		for i, d := range [][]byte{a, b, a, b} {
			if p.Decode(d) == packet.BadL3 {
				continue
			}
			p.TimeNS = t0 + int64(i)
			hook := packet.PreRouting
			if i%2 == 1 {
				hook = packet.LocalOut
			}
			r := tb.In(&p, hook)
			if (r.Conn == nil) != (r.Info.State == Invalid || r.Info.State == Untracked) {
				t.Fatalf("result %+v", r)
			}
			if rel, ok := tb.Attach(&r); ok {
				tb.Release(&rel)
			}
			tb.Confirm(&r)
			tb.Release(&r)
		}
		n := 0
		tb.Range(minTime+1, func(*Entry) bool { n++; return true })
		if n != tb.Count() {
			t.Fatalf("listed %d, count %d", n, tb.Count())
		}
	})
}
