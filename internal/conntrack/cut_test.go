package conntrack

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// TestCutAggregate: a GSO aggregate beyond 64 KiB of which NFQUEUE copied
// only the first 65531 bytes (packet.Packet.Cut) advances the sender's
// sequence space by its real payload, as the kernel's conntrack, holding
// the whole skb, does; the receiver's ACK of the whole aggregate is then
// in window. With the copy's length instead, that ACK would acknowledge
// data never seen and be INVALID. The cut packet's checksum is not tested
// (it cannot be computed without the tail), and a UDP datagram longer than
// the copy is not truncated.
func TestCutAggregate(t *testing.T) {
	const real = 130000
	ws := append(packettest.WScale(7), packettest.SACKPermitted()...)
	tb := newTable(t, nil)
	for i, s := range []seg{
		{dir: "c", flags: S, seq: 1000, win: 64240, opts: ws},
		{dir: "s", flags: S | A, seq: 5000, ack: 1001, win: 65160, opts: ws},
		{dir: "c", flags: A, seq: 1001, ack: 5001, win: 502},
	} {
		if r, _, _ := step(t, tb, s.bytes(40000), t0+int64(i)); r.Info.State == Invalid {
			t.Fatalf("handshake segment %d INVALID (%v)", i, r.Reason)
		}
	}
	agg := seg{dir: "c", flags: P | A, seq: 1001, ack: 5001, win: 502, n: 65531 - 40}.bytes(40000)
	binary.BigEndian.PutUint16(agg[2:], 0) // tot_len 0: beyond 64 KiB
	h := header.IPv4(agg)
	h.SetChecksum(h.CalculateChecksum())
	agg[36] ^= 0xff // the checksum of the present bytes is wrong anyway
	p := new(packet.Packet)
	if st := p.DecodeCut(agg, real); st != packet.OK || !p.Cut {
		t.Fatalf("DecodeCut: %v cut %v", st, p.Cut)
	}
	p.TimeNS = t0 + 10
	r := tb.In(p, packet.PreRouting)
	tb.Confirm(&r)
	tb.Release(&r)
	if r.Info.State == Invalid {
		t.Fatalf("cut aggregate INVALID (%v)", r.Reason)
	}
	now := t0 + int64(20*time.Millisecond)
	ack := seg{dir: "s", flags: A, seq: 5001, ack: 1001 + real - 40, win: 509}
	if r, _, _ := step(t, tb, ack.bytes(40000), now); r.Info.State == Invalid {
		t.Fatalf("ACK of the whole aggregate INVALID (%v)", r.Reason)
	}
	next := seg{dir: "c", flags: P | A, seq: 1001 + real - 40, ack: 5001, win: 502, n: 100}
	if r, _, _ := step(t, tb, next.bytes(40000), now+1); r.Info.State == Invalid {
		t.Fatalf("segment after the aggregate INVALID (%v)", r.Reason)
	}

	// UDP: 65535 bytes on the wire, 65531 copied; the length field is the
	// real one, not a truncation.
	u := packettest.UDP(packettest.UDPOpts{Src: cli, Dst: srv, SrcPort: 53000, DstPort: 53, Payload: make([]byte, 65535-28)})
	q := new(packet.Packet)
	if st := q.DecodeCut(u[:65531], 65535); st != packet.OK {
		t.Fatal(st)
	}
	q.TimeNS = now
	r = tb.In(q, packet.PreRouting)
	tb.Confirm(&r)
	tb.Release(&r)
	if r.Info.State != New {
		t.Errorf("cut UDP datagram: %v (%v), want NEW", r.Info, r.Reason)
	}
}
