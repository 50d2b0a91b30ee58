package conntrack

import (
	"testing"

	"github.com/uptables/uptables/internal/packet/packettest"
)

// wseg is one segment of a reduced sequence with the ctstate the kernel
// gave it ("NEW", "ESTABLISHED", "INVALID") and, when set, the TCP state
// the entry is in afterwards.
type wseg struct {
	seg
	want  string
	state TCPState
}

// runReduced feeds a reduced sequence (client port sport) through a fresh
// table, one millisecond apart, and checks every packet's ctstate.
func runReduced(t *testing.T, name string, sport uint16, segs []wseg) {
	t.Helper()
	tb := newTable(t, nil)
	var orig Tuple
	for i, s := range segs {
		now := t0 + int64(i)*1e6
		r, first, found := step(t, tb, s.bytes(sport), now)
		if i == 0 && found {
			orig = first.Orig
		}
		e, _, ok := tb.Lookup(orig, now)
		got := "INVALID"
		if r.Info.State != Invalid {
			got = r.Info.State.String()
		}
		if got != s.want {
			t.Fatalf("%s: packet %d (%s flags %#x seq %d ack %d): %s (%v), the kernel says %s", name, i, s.dir, s.flags, s.seq, s.ack, got, r.Reason, s.want)
		}
		if s.state != TCPNone && (!ok || e.TCPState != s.state) {
			t.Fatalf("%s: after packet %d the entry is %v (found %v), the kernel has %v", name, i, e.TCPState, ok, s.state)
		}
	}
}

// handshake returns an established connection's opening: client ISN 1000,
// server ISN 5000, both with window scale 10 and SACK as Linux offers
// them, then 5 bytes from the client acknowledged by the server.
func handshake() []wseg {
	opts := append(packettest.WScale(10), packettest.SACKPermitted()...)
	return []wseg{
		{seg: seg{dir: "c", flags: S, seq: 1000, win: 64240, opts: opts}, want: "NEW"},
		{seg: seg{dir: "s", flags: S | A, seq: 5000, ack: 1001, win: 65160, opts: opts}, want: "ESTABLISHED"},
		{seg: seg{dir: "c", flags: A, seq: 1001, ack: 5001, win: 63}, want: "ESTABLISHED"},
		{seg: seg{dir: "c", flags: P | A, seq: 1001, ack: 5001, win: 63, n: 5}, want: "ESTABLISHED"},
		{seg: seg{dir: "s", flags: A, seq: 5001, ack: 1006, win: 64}, want: "ESTABLISHED", state: TCPEstablished},
	}
}

// TestRSTAfterIgnoredSYN: random differential, seed 3, packet ID 4781.
// After a SYN on an established connection (ignored: the table may be out
// of sync), the peer's maxack is not trusted, so an RST whose sequence
// number lies below it but inside the window is accepted and closes the
// entry; the next SYN then opens a new connection (NEW).
func TestRSTAfterIgnoredSYN(t *testing.T) {
	seq := append(handshake(),
		wseg{seg: seg{dir: "c", flags: A, seq: 1006, ack: 5001, win: 29200, n: 278}, want: "ESTABLISHED"},
		wseg{seg: seg{dir: "s", flags: A, seq: 5001, ack: 1284, win: 64}, want: "ESTABLISHED"},
		wseg{seg: seg{dir: "c", flags: S, seq: 1006, win: 29200}, want: "ESTABLISHED", state: TCPEstablished},
		wseg{seg: seg{dir: "c", flags: R, seq: 1284 - 1240, win: 29200}, want: "ESTABLISHED", state: TCPClose},
		wseg{seg: seg{dir: "c", flags: S, seq: 900000, win: 29200}, want: "NEW", state: TCPSynSent},
	)
	runReduced(t, "RST after an ignored SYN", 42002, seq)

	// Without the SYN in between, the same RST is below maxack: INVALID,
	// the connection stays established.
	seq = append(handshake(),
		wseg{seg: seg{dir: "c", flags: A, seq: 1006, ack: 5001, win: 29200, n: 278}, want: "ESTABLISHED"},
		wseg{seg: seg{dir: "s", flags: A, seq: 5001, ack: 1284, win: 64}, want: "ESTABLISHED"},
		wseg{seg: seg{dir: "c", flags: R, seq: 1284 - 1240, win: 29200}, want: "INVALID", state: TCPEstablished},
	)
	runReduced(t, "RST below maxack", 42003, seq)
}
