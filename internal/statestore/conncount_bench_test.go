package statestore

import (
	"net/netip"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// connlimitFlood builds what the replay benchmark's SYN flood leaves
// behind: keys /24s, each listing perKey confirmed SYN_SENT connections
// (20 = a --connlimit-above 20 rule's fill), in a table of that many
// entries, and the bookkeeping that listed them (with ConnRefs).
func connlimitFlood(tb testing.TB, keys, perKey int) (*conntrack.Table, *Conncount, []ConnKey, int64) {
	ct, err := conntrack.NewTable(conntrack.Config{Max: keys*perKey + 1024, HashKey: [2]uint64{5, 6}, NoChecksum: true})
	if err != nil {
		tb.Fatal(err)
	}
	cc := NewConncount(0, func() uint64 { return 9 })
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	syn := packettest.TCP(packettest.TCPOpts{Src: "100.64.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 80, Flags: packettest.SYN, Seq: 1, Window: 100})
	var p packet.Packet
	ks := make([]ConnKey, keys)
	for i := range ks {
		a := [4]byte{100, byte(64 + i>>16), byte(i >> 8), byte(i)}
		copy(ks[i].Addr[:3], a[:3])
		for j := 0; j < perKey; j++ {
			p.Decode(syn)
			p.SetSrcPort(uint16(1000 + j))
			p.Src = netip.AddrFrom4([4]byte{a[0], a[1], a[2], byte(j + 1)})
			p.TimeNS = now
			r := ct.In(&p, packet.PreRouting)
			if r.Conn == nil {
				tb.Fatalf("setup: %v", r.Reason)
			}
			tu := r.Conn.Orig()
			cc.Add(&ks[i], &tu, r.Conn.Ref(conntrack.Original), 1, ct, now)
			ct.Confirm(&r)
			ct.Release(&r)
		}
	}
	return ct, cc, ks, now
}

// BenchmarkConncount is one evaluation of a flooded /24 (20 live
// connections listed, plus the previous rejected SYN's tuple, gone): with
// the list's ConnRefs ("ref") and with a hash lookup per entry as before
// ("lookup").
func BenchmarkConncount(b *testing.B) {
	for _, mode := range []string{"ref", "lookup"} {
		b.Run(mode, func(b *testing.B) {
			ct, cc, ks, now := connlimitFlood(b, 8192, 20)
			var table ConnTable = ct
			if mode == "lookup" {
				table = lookupOnlyCT{ct}
			}
			tu := conntrack.Tuple{Dst: netip.MustParseAddr("10.0.0.2"), DstID: 80, Proto: conntrack.ProtoTCP}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := &ks[(i*7919)%len(ks)]
				tu.Src = netip.AddrFrom4([4]byte{k.Addr[0], k.Addr[1], k.Addr[2], 200})
				tu.SrcID = uint16(i)
				if n, ok := cc.Add(k, &tu, conntrack.ConnRef{}, 1, table, now); !ok || n < 21 {
					b.Fatalf("count %d %v", n, ok)
				}
			}
		})
	}
}

// TestConncountAddAllocs: an evaluation allocates nothing once the slabs
// exist, on both paths.
func TestConncountAddAllocs(t *testing.T) {
	ct, cc, ks, now := connlimitFlood(t, 64, 20)
	tu := conntrack.Tuple{Dst: netip.MustParseAddr("10.0.0.2"), DstID: 80, Proto: conntrack.ProtoTCP}
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		k := &ks[i%len(ks)]
		i++
		tu.Src = netip.AddrFrom4([4]byte{k.Addr[0], k.Addr[1], k.Addr[2], 200})
		tu.SrcID = uint16(i)
		if n, ok := cc.Add(k, &tu, conntrack.ConnRef{}, 1, ct, now); !ok || n != 21 {
			t.Fatalf("count %d %v, want 21", n, ok)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocs per evaluation", n)
	}
}
