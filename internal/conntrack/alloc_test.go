package conntrack

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// established builds a table with one established, ASSURED TCP flow and
// returns a data segment of it.
func established(tb testing.TB) (*Table, []byte) {
	t := newTable(tb, nil)
	for _, s := range []seg{
		{dir: "c", flags: S, seq: 1000, win: 64240},
		{dir: "s", flags: S | A, seq: 5000, ack: 1001, win: 65160},
		{dir: "c", flags: A, seq: 1001, ack: 5001, win: 64240},
	} {
		step(tb, t, s.bytes(40000), t0)
	}
	return t, seg{dir: "c", flags: A, seq: 1001, ack: 5001, win: 64240}.bytes(40000)
}

func TestZeroAllocEstablished(t *testing.T) {
	tb, b := established(t)
	var p packet.Packet
	allocs := testing.AllocsPerRun(1000, func() {
		p.Decode(b)
		p.TimeNS = t0
		r := tb.In(&p, packet.PreRouting)
		if r.Info.State != Established {
			t.Fatalf("%v %v", r.Info, r.Reason)
		}
		tb.Confirm(&r)
		tb.Release(&r)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per established packet", allocs)
	}
}

func TestZeroAllocNewFlows(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.Max = 1024 })
	syn := seg{dir: "c", flags: S, seq: 1, win: 100}.bytes(1)
	u := udp(cli, srv, 1, 53)
	var p packet.Packet
	port := uint16(0)
	run := func(b []byte, confirm bool) {
		port++
		binary.BigEndian.PutUint16(b[20:], port) // new source port: a new flow (checksum not checked at OUTPUT)
		p.Decode(b)
		p.TimeNS = t0
		r := tb.In(&p, packet.LocalOut)
		if r.Info.State != New {
			t.Fatalf("%v %v", r.Info, r.Reason)
		}
		if confirm {
			tb.Confirm(&r)
			tu := r.Conn.Orig()
			tb.Release(&r)
			tb.Delete(tu)
		} else {
			tb.Release(&r) // dropped before confirm
		}
	}
	for _, tc := range []struct {
		name    string
		b       []byte
		confirm bool
	}{{"tcp confirmed", syn, true}, {"tcp dropped", syn, false}, {"udp confirmed", u, true}} {
		for i := 0; i < 300; i++ { // warm the slab
			run(tc.b, tc.confirm)
		}
		if a := testing.AllocsPerRun(1000, func() { run(tc.b, tc.confirm) }); a != 0 {
			t.Errorf("%s: %v allocs per new flow", tc.name, a)
		}
	}
	// Churn through a full table with early drop: still no allocation.
	tb = newTable(t, func(c *Config) { c.Max = 64; c.Buckets = 8 })
	churn := func() {
		port++
		binary.BigEndian.PutUint16(u[20:], port)
		p.Decode(u)
		p.TimeNS = t0
		r := tb.In(&p, packet.LocalOut)
		tb.Confirm(&r)
		tb.Release(&r)
	}
	for i := 0; i < 300; i++ {
		churn()
	}
	if a := testing.AllocsPerRun(1000, churn); a != 0 {
		t.Errorf("early-drop churn: %v allocs per new flow", a)
	}
	if tb.Count() > 64 {
		t.Fatalf("count %d above max", tb.Count())
	}
}

func TestZeroAllocICMPError(t *testing.T) {
	tb := newTable(t, nil)
	probe := udp(cli, srv, 40000, 33434)
	step(t, tb, probe, t0)
	e := packettest.ICMPError(packettest.ICMPErrorOpts{Src: srv, Type: 3, Code: 3, Original: probe})
	var p packet.Packet
	buf := make([]byte, 0, 256)
	r2 := Tuple{Src: mustAddr(cli), Dst: mustAddr(srv), SrcID: 40000, DstID: 33434, Proto: ProtoUDP}
	allocs := testing.AllocsPerRun(1000, func() {
		p.Decode(e)
		p.TimeNS = t0
		r := tb.In(&p, packet.PreRouting)
		if r.Info.State != Related {
			t.Fatalf("%v", r.Info)
		}
		tb.Release(&r)
		en, _, _ := tb.Lookup(r2, t0)
		buf = en.AppendConntrackL(buf[:0], t0)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs", allocs)
	}
}

func BenchmarkEstablished(b *testing.B) {
	tb, pkt := established(b)
	var p packet.Packet
	p.Decode(pkt)
	p.TimeNS = t0
	b.ReportAllocs()
	for b.Loop() {
		r := tb.In(&p, packet.PreRouting)
		tb.Confirm(&r)
		tb.Release(&r)
	}
}

func BenchmarkEstablishedParallel(b *testing.B) {
	tb := newTable(b, nil)
	const flows = 256
	pkts := make([][]byte, flows)
	for i := range pkts {
		pkts[i] = udp(cli, srv, uint16(10000+i), 53)
		step(b, tb, pkts[i], t0)
		step(b, tb, udp(srv, cli, 53, uint16(10000+i)), t0)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var p packet.Packet
		i := 0
		for pb.Next() {
			p.Decode(pkts[i%flows])
			p.TimeNS = t0 + int64(time.Second)
			r := tb.In(&p, packet.LocalOut)
			tb.Release(&r)
			i++
		}
	})
}

func BenchmarkNewFlow(b *testing.B) {
	tb := newTable(b, func(c *Config) { c.Max = 1 << 16 })
	syn := seg{dir: "c", flags: S, seq: 1, win: 100}.bytes(1)
	var p packet.Packet
	port := uint16(0)
	b.ReportAllocs()
	for b.Loop() {
		port++
		binary.BigEndian.PutUint16(syn[20:], port)
		p.Decode(syn)
		p.TimeNS = t0
		r := tb.In(&p, packet.LocalOut)
		tb.Confirm(&r)
		tu := r.Conn.Orig()
		tb.Release(&r)
		tb.Delete(tu)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
