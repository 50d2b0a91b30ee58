package conntrack

import (
	"testing"
	"time"
	"unsafe"

	"github.com/uptables/uptables/internal/packet"
)

// lookupLiveness is the answer by hash lookup alone (what connlimit asked
// before ConnRef existed): ConnlimitAlive, then TupleTaken.
func lookupLiveness(tb *Table, tu Tuple, now int64) Liveness {
	switch {
	case tb.ConnlimitAlive(tu, now):
		return Alive
	case tb.TupleTaken(tu, now):
		return Closed
	}
	return Gone
}

// check asks ConnlimitCheck with *ref and reports whether the answer came
// from the ref alone; it fails the test unless the answer equals the
// lookup's.
func check(t *testing.T, tb *Table, ref *ConnRef, tu Tuple, now int64, want Liveness) bool {
	t.Helper()
	_, fast := ref.liveness(&tu, now)
	got := tb.ConnlimitCheck(ref, &tu, now)
	if got != want {
		t.Fatalf("ConnlimitCheck(%v) = %v, want %v", tu, got, want)
	}
	if l := lookupLiveness(tb, tu, now); l != got {
		t.Fatalf("ConnlimitCheck(%v) = %v, lookup says %v", tu, got, l)
	}
	return fast
}

// TestConnlimitCheck walks one tuple through the lives the bookkeeping
// meets: its own unconfirmed SYN, confirmed, closed, expired, deleted and
// re-created in the same slab slot (ABA), deleted while a packet still
// holds it and re-created elsewhere, and a reply-direction reference.
func TestConnlimitCheck(t *testing.T) {
	tb := newTable(t, nil)
	syn := seg{dir: "c", flags: S, seq: 1, win: 100}.bytes(40000)
	r := tb.In(decode(t, syn, t0), packet.PreRouting)
	c := r.Conn
	tu := c.Orig()
	ref := c.Ref(Original)
	if !ref.Valid() || c.Ref(Reply).Valid() {
		t.Fatal("an unconfirmed entry gives a ref for ORIGINAL only (NAT may still rewrite REPLY)")
	}
	// Its own packet, before Confirm: the lookup does not see it.
	if check(t, tb, &ref, tu, t0, Gone) {
		t.Fatal("unconfirmed entry answered from the ref")
	}
	ref = c.Ref(Original)
	tb.Confirm(&r)
	tb.Release(&r)
	if !check(t, tb, &ref, tu, t0, Alive) {
		t.Fatal("confirmed SYN_SENT not answered from the ref")
	}
	step(t, tb, seg{dir: "s", flags: S | A, seq: 500, ack: 2, win: 100}.bytes(40000), t0)
	step(t, tb, seg{dir: "c", flags: R, seq: 2}.bytes(40000), t0)
	if !check(t, tb, &ref, tu, t0, Closed) {
		t.Fatal("CLOSE not answered from the ref")
	}
	// Expired: the lookup removes it (lazy expiry), as before.
	later := t0 + int64(time.Hour)
	if check(t, tb, &ref, tu, later, Gone) || tb.Count() != 0 || ref.Valid() {
		t.Fatalf("expired entry: count %d, ref kept %v", tb.Count(), ref.Valid())
	}

	// ABA: same tuple, same slab slot, a new life.
	r = tb.In(decode(t, syn, later), packet.PreRouting)
	tb.Confirm(&r)
	slot := r.Conn
	stale := slot.Ref(Original)
	tb.Release(&r)
	if !tb.Delete(tu) {
		t.Fatal("delete")
	}
	if s1 := stale; check(t, tb, &s1, tu, later, Gone) || s1.Valid() {
		t.Fatal("deleted entry answered from the ref, or the ref kept")
	}
	r = tb.In(decode(t, syn, later), packet.PreRouting)
	tb.Confirm(&r)
	if r.Conn != slot || slot.Orig() != tu {
		t.Fatal("setup: the slot was not reused for the same tuple")
	}
	tb.Release(&r)
	s2 := stale
	if check(t, tb, &s2, tu, later, Alive) {
		t.Fatal("a recycled entry answered from a stale ref")
	}
	if s2.c != slot || s2.gen == stale.gen {
		t.Fatal("the lookup did not refresh the ref to the new life")
	}
	if !check(t, tb, &s2, tu, later, Alive) {
		t.Fatal("refreshed ref not used")
	}

	// Deleted while a packet holds it (dying, not recycled), and the same
	// tuple re-created: the kernel's lookup finds the new connection.
	held := tb.In(decode(t, syn, later), packet.PreRouting) // retransmitted SYN
	if held.Conn != slot {
		t.Fatalf("setup: packet of the live entry: %v %v", held.Info, held.Reason)
	}
	dyingRef := held.Conn.Ref(Original)
	tb.Delete(tu)
	r = tb.In(decode(t, syn, later), packet.PreRouting)
	tb.Confirm(&r)
	fresh := r.Conn
	tb.Release(&r)
	if fresh == slot {
		t.Fatal("setup: the held entry was recycled")
	}
	if check(t, tb, &dyingRef, tu, later, Alive) || dyingRef.c != fresh {
		t.Fatal("dying entry: not looked up, or ref not moved to the new connection")
	}
	tb.Release(&held)

	// A reply-direction ref of a confirmed entry answers for the reply tuple.
	r = tb.In(decode(t, seg{dir: "s", flags: S | A, seq: 900, ack: 2, win: 100}.bytes(40000), later), packet.PreRouting)
	if r.Conn != fresh || r.Info.Dir != Reply {
		t.Fatalf("setup: reply packet %v", r.Info)
	}
	rref := r.Conn.Ref(Reply)
	rtu := r.Conn.ReplyTuple()
	tb.Release(&r)
	if !check(t, tb, &rref, rtu, later, Alive) {
		t.Fatal("reply ref not answered from the ref")
	}
	// No ref at all: looked up, and the ref filled in.
	var none ConnRef
	if check(t, tb, &none, tu, later, Alive) || none.c != fresh {
		t.Fatal("zero ref not filled in by the lookup")
	}
	if n := testing.AllocsPerRun(100, func() { tb.ConnlimitCheck(&none, &tu, later) }); n != 0 {
		t.Fatalf("ConnlimitCheck allocates %v", n)
	}
}

// TestConnLayout: the words ConnlimitCheck reads stay within 24 bytes at
// the start of a Conn whose size is a multiple of 32, so in a page-aligned
// slab chunk they never straddle two cache lines.
func TestConnLayout(t *testing.T) {
	var c Conn
	for _, off := range []uintptr{unsafe.Offsetof(c.gen), unsafe.Offsetof(c.expires), unsafe.Offsetof(c.status), unsafe.Offsetof(c.pstate)} {
		if off >= 24 {
			t.Errorf("hot field at offset %d", off)
		}
	}
	if unsafe.Sizeof(c)%32 != 0 {
		t.Errorf("sizeof(Conn) = %d, not a multiple of 32", unsafe.Sizeof(c))
	}
}
