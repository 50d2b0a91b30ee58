package conntrack

import (
	"testing"
	"time"

	"github.com/uptables/uptables/internal/packet"
)

// TestSetClosing: what REJECT --reject-with tcp-reset does to the
// offending packet's connection, as measured on Linux 6.18 (conntrack -E
// shows "[UPDATE] tcp 6 10 CLOSE ... [ASSURED]" right after the RST).
func TestSetClosing(t *testing.T) {
	hs := []seg{
		{dir: "c", flags: S, seq: 1000, win: 64240},
		{dir: "s", flags: S | A, seq: 5000, ack: 1001, win: 65160},
		{dir: "c", flags: A, seq: 1001, ack: 5001, win: 502},
	}
	open := func(tb *Table, sport uint16) Tuple {
		t.Helper()
		var orig Tuple
		for i, s := range hs {
			_, e, ok := step(t, tb, s.bytes(sport), t0+int64(i)*1e6)
			if !ok {
				t.Fatalf("handshake segment %d left no entry", i)
			}
			orig = e.Orig
		}
		return orig
	}
	// rejectAt runs a data segment of the established connection through
	// In (as PREROUTING does) and calls SetClosing as REJECT would, on the
	// packet's reference; the segment is dropped (never confirmed again).
	rejectAt := func(tb *Table, sport uint16, now int64) {
		t.Helper()
		d := seg{dir: "c", flags: P | A, seq: 1001, ack: 5001, win: 502, n: 200}
		r := tb.In(decode(t, d.bytes(sport), now), packet.PreRouting)
		if r.Conn == nil {
			t.Fatalf("data segment not tracked: %v", r.Reason)
		}
		tb.SetClosing(r.Conn, now)
		tb.Release(&r)
	}

	t.Run("established becomes CLOSE 10s, ASSURED kept, connlimit stops counting", func(t *testing.T) {
		tb := newTable(t, nil)
		orig := open(tb, 40001)
		now := t0 + 5e9
		rejectAt(tb, 40001, now)
		e, _, ok := tb.Lookup(orig, now)
		if !ok {
			t.Fatal("entry gone; the kernel keeps it in CLOSE")
		}
		if e.TCPState != TCPClose || e.Expires != now+int64(10*time.Second) || e.Status&StatusAssured == 0 {
			t.Fatalf("got %v expires in %v status %v; want CLOSE, 10s, ASSURED", e.TCPState, time.Duration(e.Expires-now), e.Status)
		}
		if tb.ConnlimitAlive(orig, now) {
			t.Fatal("connlimit still counts a connection in CLOSE")
		}
		var ref ConnRef
		if l := tb.ConnlimitCheck(&ref, &orig, now); l != Closed {
			t.Fatalf("ConnlimitCheck = %v, want closed", l)
		}
		// SetClosing on a connection already in CLOSE leaves the timer
		// alone (a retransmitted segment rejected again is first run
		// through the tracker, which refreshes it by itself).
		c, _ := tb.lookup(&orig, now+3e9)
		tb.SetClosing(c, now+3e9)
		tb.put(c)
		if e, _, _ := tb.Lookup(orig, now+3e9); e.Expires != now+int64(10*time.Second) {
			t.Fatalf("second SetClosing moved the timer to %v after the first", time.Duration(e.Expires-now))
		}
		if _, _, ok := tb.Lookup(orig, now+int64(10*time.Second)+1); ok {
			t.Fatal("the CLOSE entry outlived its 10 s")
		}
	})

	t.Run("CLOSE timeout from the configuration", func(t *testing.T) {
		tb := newTable(t, func(c *Config) { c.Timeouts.TCPClose = 3 * time.Second })
		orig := open(tb, 40002)
		now := t0 + 1e9
		rejectAt(tb, 40002, now)
		if e, _, _ := tb.Lookup(orig, now); e.Expires != now+int64(3*time.Second) {
			t.Fatalf("expires in %v, want 3s", time.Duration(e.Expires-now))
		}
	})

	t.Run("fixed timeout: state changes, timer does not", func(t *testing.T) {
		tb := newTable(t, nil)
		orig := open(tb, 40003)
		r := tb.In(decode(t, seg{dir: "c", flags: A, seq: 1001, ack: 5001, win: 502}.bytes(40003), t0+1e9), packet.PreRouting)
		r.Conn.setStatus(StatusFixedTimeout)
		before, _, _ := tb.Lookup(orig, t0+1e9)
		tb.SetClosing(r.Conn, t0+2e9)
		tb.Release(&r)
		e, _, _ := tb.Lookup(orig, t0+2e9)
		if e.TCPState != TCPClose || e.Expires != before.Expires {
			t.Fatalf("got %v, expires moved by %v", e.TCPState, time.Duration(e.Expires-before.Expires))
		}
	})

	t.Run("rejected SYN: unconfirmed entry untouched and never kept", func(t *testing.T) {
		tb := newTable(t, nil)
		r := tb.In(decode(t, hs[0].bytes(40004), t0), packet.PreRouting)
		tb.SetClosing(r.Conn, t0)
		if s := r.Conn.TCPState(); s != TCPSynSent {
			t.Fatalf("unconfirmed SYN entry moved to %v", s)
		}
		tb.Release(&r)
		if tb.Count() != 0 {
			t.Fatalf("%d entries after the rejected SYN", tb.Count())
		}
	})

	t.Run("UDP and nil untouched", func(t *testing.T) {
		tb := newTable(t, nil)
		b := udp(cli, srv, 5000, 53)
		r := tb.In(decode(t, b, t0), packet.PreRouting)
		tb.Confirm(&r)
		exp := r.Conn.Expires()
		tb.SetClosing(r.Conn, t0+1e9)
		if r.Conn.Expires() != exp || r.Conn.TCPState() != TCPNone {
			t.Fatal("SetClosing changed a UDP entry")
		}
		tb.Release(&r)
		tb.SetClosing(nil, t0)
	})

	t.Run("allocation-free", func(t *testing.T) {
		tb := newTable(t, nil)
		open(tb, 40005)
		r := tb.In(decode(t, hs[2].bytes(40005), t0+1e9), packet.PreRouting)
		defer tb.Release(&r)
		if n := testing.AllocsPerRun(100, func() { tb.SetClosing(r.Conn, t0+2e9) }); n != 0 {
			t.Fatalf("%v allocations", n)
		}
	})
}
