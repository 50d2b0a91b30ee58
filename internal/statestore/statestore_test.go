package statestore

import (
	"net/netip"
	"testing"

	"github.com/uptables/uptables/internal/conntrack"
)

// fakeCT reports every tuple alive (connections that never close).
type fakeCT struct{ alive bool }

func (f fakeCT) ConnlimitCheck(*conntrack.ConnRef, *conntrack.Tuple, int64) conntrack.Liveness {
	if f.alive {
		return conntrack.Alive
	}
	return conntrack.Gone
}

func tuple(i int) conntrack.Tuple {
	return conntrack.Tuple{Src: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Dst: netip.MustParseAddr("10.99.0.2"), SrcID: uint16(i), DstID: 22, Proto: 6}
}

// TestConncountBounded: with every connection alive the bookkeeping stops
// at its cap and refuses (the match hot-drops); once connections die the
// room comes back.
func TestConncountBounded(t *testing.T) {
	c := NewConncount(512, func() uint64 { return 42 })
	k := ConnKey{}
	for i := 0; i < 512; i++ {
		tu := tuple(i)
		k.Addr[0] = byte(i % 7)
		if n, ok := c.Add(&k, &tu, conntrack.ConnRef{}, 1, fakeCT{true}, 0); !ok || n < 1 {
			t.Fatalf("add %d refused", i)
		}
	}
	tu := tuple(9999)
	if _, ok := c.Add(&k, &tu, conntrack.ConnRef{}, 1, fakeCT{true}, 0); ok {
		t.Fatal("add beyond the cap accepted")
	}
	if c.Len() != 512 {
		t.Fatalf("len %d", c.Len())
	}
	// One evaluation removes at most 65 dead entries of its key (the
	// kernel's per-call collect bound); the next one finishes the job.
	if n, ok := c.Add(&k, &tu, conntrack.ConnRef{}, 1, fakeCT{false}, 0); !ok || n != 74-65+1 { // 74 tuples had key 0
		t.Fatalf("after all died, first walk: %d %v", n, ok)
	}
	tu2 := tuple(10000)
	if n, ok := c.Add(&k, &tu2, conntrack.ConnRef{}, 1, fakeCT{false}, 0); !ok || n != 1 {
		t.Fatalf("after all died, second walk: %d %v, want 1 true", n, ok)
	}
	// At the same instant a listing (not the adding worker) keeps what
	// conntrack does not know yet: it may be unconfirmed elsewhere (the
	// 2-jiffy grace). A second later everything dead is gone.
	if got := c.Counts(nil, fakeCT{false}, 0); len(got) != 7 {
		t.Fatalf("counts within the grace: %v", got)
	}
	if got := c.Counts(nil, fakeCT{false}, 1e9); len(got) != 0 || c.Len() != 0 {
		t.Fatalf("counts after death: %v (%d tuples)", got, c.Len())
	}
}

func TestJiffy(t *testing.T) {
	for _, c := range []struct{ ns, j int64 }{{0, 0}, {3_999_999, 0}, {4_000_000, 1}, {-1, -1}, {-4_000_000, -1}, {-4_000_001, -2}} {
		if got := Jiffy(c.ns); got != c.j {
			t.Errorf("Jiffy(%d) = %d, want %d", c.ns, got, c.j)
		}
	}
	if nextPow2(1) != 1 || nextPow2(3) != 4 || nextPow2(32) != 32 || nextPow2(100) != 128 {
		t.Error("nextPow2")
	}
}

// TestSipKeyed: different keys spread the same addresses differently, and
// the hash is the reference SipHash-1-3 structure (stable for a key).
func TestSipKeyed(t *testing.T) {
	a, b := sipKey{1, 2}, sipKey{3, 4}
	var x [16]byte
	same := 0
	for i := 0; i < 256; i++ {
		x[15] = byte(i)
		if a.addr(&x, 4)&127 == b.addr(&x, 4)&127 {
			same++
		}
		if a.addr(&x, 4) != a.addr(&x, 4) {
			t.Fatal("unstable hash")
		}
	}
	if same > 16 {
		t.Errorf("%d of 256 buckets agree under two keys", same)
	}
}

// TestHashlimitSizes: the kernel's size/max defaults and caps.
func TestHashlimitSizes(t *testing.T) {
	for _, c := range []struct{ size, max, wantSize, wantMax uint32 }{
		{0, 0, 8192, 65536}, {16, 0, 16, 128}, {1024, 10, 1024, 1024}, {1 << 21, 0, 1 << 20, 1 << 20},
	} {
		g := normalizeHashlimit(HashlimitConfig{Size: c.size, Max: c.max})
		if g.Size != c.wantSize || g.Max != c.wantMax {
			t.Errorf("size %d max %d -> %d/%d, want %d/%d", c.size, c.max, g.Size, g.Max, c.wantSize, c.wantMax)
		}
	}
}
