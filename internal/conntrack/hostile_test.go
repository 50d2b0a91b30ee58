package conntrack

import (
	"testing"
	"time"

	"github.com/uptables/uptables/internal/packet/packettest"
)

// TestUDPLengthFieldShorterThanPayload: a UDP length field smaller than
// the IP payload (but >= 8) is valid, and the checksum covers the whole IP
// payload, as nf_ip_checksum does (skb->len - dataoff). Measured on 6.18:
// such a datagram is NEW (random differential scenario, seed 2).
func TestUDPLengthFieldShorterThanPayload(t *testing.T) {
	tb := newTable(t, nil)
	b := packettest.UDP(packettest.UDPOpts{Src: cli, Dst: srv, SrcPort: 32932, DstPort: 7020, Payload: make([]byte, 16), Length: 14})
	if r, _, _ := step(t, tb, b, t0); r.Info.String() != "NEW/ORIGINAL" {
		t.Fatalf("UDP length 14 in a 24-byte payload: %v (%v), want NEW", r.Info, r.Reason)
	}
	for _, n := range []int{7, 0x7fff} {
		b := packettest.UDP(packettest.UDPOpts{Src: cli, Dst: srv, SrcPort: 1, DstPort: 2, Payload: make([]byte, 16), Length: n})
		if r, _, _ := step(t, tb, b, t0); r.Info.State != Invalid || r.Reason != ReasonTruncated {
			t.Errorf("UDP length %d: %v (%v), want INVALID truncated", n, r.Info, r.Reason)
		}
	}
}

// TestICMPErrorShortQuote: an ICMP error quoting only 4 to 7 bytes of a
// UDP/TCP header still names the connection (nf_ct_get_tuple_ports reads
// the two ports); fewer than 4 bytes name none. Measured on 6.18: a
// parameter problem quoting 7 bytes of a live flow's header is RELATED.
func TestICMPErrorShortQuote(t *testing.T) {
	tb := newTable(t, nil)
	probe := udp(cli, srv, 40000, 7020)
	step(t, tb, probe, t0)
	back := udp(srv, cli, 7020, 40000)
	for _, c := range []struct {
		quote int
		want  string
	}{{20 + 8, "RELATED/ORIGINAL"}, {20 + 7, "RELATED/ORIGINAL"}, {20 + 4, "RELATED/ORIGINAL"}, {20 + 3, "INVALID"}, {20, "INVALID"}} {
		e := packettest.ICMPError(packettest.ICMPErrorOpts{Src: cli, Dst: srv, Type: 12, Original: back, QuoteLen: c.quote})
		if r, _, _ := step(t, tb, e, t0+int64(time.Second)); r.Info.String() != c.want {
			t.Errorf("quote of %d bytes: %v (%v), want %s", c.quote, r.Info, r.Reason, c.want)
		}
	}
}
