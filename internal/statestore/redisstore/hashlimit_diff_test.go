package redisstore

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/statestore"
)

// Mode bits as match.Hashlimit* (not imported: match imports statestore).
const (
	hlDstIP   = 1
	hlDstPort = 2
	hlSrcIP   = 4
	hlSrcPort = 8
)

// hlCounts tallies what a hashlimit differential run exercised.
type hlCounts struct {
	steps, under, over, full  int
	listings, lens, collected int
	byteSeqs, v6Seqs, big     int
	backwards                 int
}

// randomHlConfig draws a table configuration the kernel accepts: packet
// mode rates from 10000/sec to 1/day with bursts up to 10^6 (credits well
// beyond 2^53), byte mode rates with 0-3 extra refills, every mode and
// several masks, tiny htable-max values so the table fills, expiry and gc
// intervals from 100 ms to a minute.
// The seed fixes the shape so that even a short run covers them all:
// byte mode every third seed, IPv6 every fourth, a 1000-packet burst
// (credits beyond 2^53) on the rest of the packet-mode seeds, at most 8
// buckets on every second seed.
func randomHlConfig(r *rand.Rand, seed uint64, name string) statestore.HashlimitConfig {
	c := statestore.HashlimitConfig{Name: name, IPv6: seed%4 == 1}
	bits := uint8(32)
	if c.IPv6 {
		bits = 128
	}
	c.Mode = uint8(r.IntN(16))
	c.SrcMask = []uint8{bits, bits, 24, 16, 0, bits - 1}[r.IntN(6)]
	c.DstMask = []uint8{bits, bits, 24, 8}[r.IntN(4)]
	if seed%3 == 0 {
		c.Bytes = true
		rate := []uint32{100, 1024, 10240, 1 << 20, 50000}[r.IntN(5)]
		c.Avg = uint64(0xFFFFFFFF / (rate>>4 + 1))
		c.Burst = uint64(r.IntN(4))
	} else {
		for {
			n := []uint64{1, 2, 5, 10, 100, 1000, 10000}[r.IntN(7)]
			secs := []uint64{1, 60, 3600, 86400}[r.IntN(4)]
			c.Avg = 1_000_000 * secs / n
			c.Burst = []uint64{1, 2, 5, 10, 1000, 1_000_000}[r.IntN(6)]
			if seed%3 == 1 {
				c.Burst = 1000
			}
			// xt_hashlimit's checkentry overflow test
			if c.Avg != 0 && statestore.HashlimitCredits(c.Avg*c.Burst) >= statestore.HashlimitCredits(c.Avg) {
				break
			}
		}
	}
	switch {
	case seed%2 == 0: // a table that fills up: a bucket per source
		c.Size, c.Max = 4, []uint32{0, 4, 8}[r.IntN(3)]
		c.Mode |= hlSrcIP
		c.SrcMask = bits
	case r.IntN(2) == 0:
		c.Max = 16
	}
	c.ExpireMS = []uint32{1000, 3000, 10000, 60000}[r.IntN(4)]
	c.GCIntervalMS = []uint32{100, 1000, 2500}[r.IntN(3)]
	return c
}

// hlPoolKey builds a key as match.HashlimitRuntime does: the mode's
// fields, addresses masked to the table's prefix lengths.
func hlPoolKey(c statestore.HashlimitConfig, src, dst netip.Addr, sp, dp uint16) statestore.HashlimitKey {
	var k statestore.HashlimitKey
	mask := func(dst *[16]byte, a netip.Addr, bits uint8) {
		p := netip.PrefixFrom(a, int(bits)).Masked().Addr()
		copy(dst[:], p.AsSlice())
	}
	if c.Mode&hlSrcIP != 0 {
		mask(&k.Src, src, c.SrcMask)
	}
	if c.Mode&hlDstIP != 0 {
		mask(&k.Dst, dst, c.DstMask)
	}
	if c.Mode&hlSrcPort != 0 {
		k.SrcPort = sp
	}
	if c.Mode&hlDstPort != 0 {
		k.DstPort = dp
	}
	return k
}

// hlListing is a table's /proc listing at now, lines sorted (the kernel
// prints in hash order, the stores in theirs).
func hlListing(t *testing.T, tb statestore.HashlimitTable, now int64) string {
	t.Helper()
	var lines []string
	ipv6 := tb.Config().IPv6
	each := func(e *statestore.HashlimitEntry) bool {
		lines = append(lines, string(statestore.AppendHashlimitProc(nil, e, ipv6)))
		return true
	}
	if rt, ok := tb.(*hlTable); ok {
		if err := rt.EntriesErr(now, each); err != nil {
			t.Fatalf("listing: %v", err)
		}
	} else {
		tb.Entries(now, each)
	}
	slices.Sort(lines)
	return strings.Join(lines, "")
}

// runHlDiff runs one random packet sequence against a memory table and two
// Redis table objects of the same name (two daemons), picking one of the
// two for each packet, and fails at the first difference in an answer, a
// Len or a listing.
func runHlDiff(t *testing.T, seed uint64, steps int, mem statestore.Factory, a, b *Store, c *hlCounts) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 0x41a5))
	cfg := randomHlConfig(r, seed, fmt.Sprintf("H%d", seed))
	mt, err := mem.NewHashlimitTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var rt [2]statestore.HashlimitTable
	for i, s := range []*Store{a, b} {
		if rt[i], err = s.NewHashlimitTable(cfg); err != nil {
			t.Fatal(err)
		}
		if got, want := rt[i].Config(), mt.Config(); got != want {
			t.Fatalf("seed %d: config %+v, memory %+v", seed, got, want)
		}
	}
	if cfg.Bytes {
		c.byteSeqs++
	}
	if cfg.IPv6 {
		c.v6Seqs++
	}
	if ic, _, _ := statestore.HashlimitInit(mt.Config()); ic > 1<<53 {
		c.big++
	}
	// A few hot clients, many cold ones.
	var srcs []netip.Addr
	for i := 0; i < 40; i++ {
		if cfg.IPv6 {
			srcs = append(srcs, netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::%x", i%5, i)))
		} else {
			srcs = append(srcs, netip.AddrFrom4([4]byte{192, 0, byte(2 + i%3), byte(i * 7)}))
		}
	}
	dst := []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")}
	if cfg.IPv6 {
		dst = []netip.Addr{netip.MustParseAddr("2001:db8:ffff::1"), netip.MustParseAddr("2001:db8:ffff::2")}
	}
	gaps := []int64{0, 1, 1_000_000, 3_999_999, 4_000_000, 20_000_000, 100_000_000, 400_000_000, 1e9, 3e9, 61e9}
	now := int64(1_700_000_000_000_000_000) + r.Int64N(1e9)
	for step := 0; step < steps; step++ {
		now += gaps[r.IntN(len(gaps))]
		if r.IntN(30) == 0 {
			now -= r.Int64N(20_000_000) // a daemon whose clock is behind
			c.backwards++
		}
		si := r.IntN(len(srcs))
		if r.IntN(2) == 0 {
			si = r.IntN(3)
		}
		k := hlPoolKey(cfg, srcs[si], dst[r.IntN(2)], uint16(40000+r.IntN(3)), []uint16{22, 80, 443}[r.IntN(3)])
		plen := []int{40, 60, 576, 1500, 9000, 65535}[r.IntN(6)]
		before := mt.Len()
		u1, ok1 := mt.Consume(k, plen, now)
		u2, ok2 := rt[r.IntN(2)].Consume(k, plen, now)
		if u1 != u2 || ok1 != ok2 {
			t.Fatalf("seed %d step %d (%+v): Consume(%v, %d, %d): memory (%v,%v), redis (%v,%v)", seed, step, cfg, k, plen, now, u1, ok1, u2, ok2)
		}
		c.steps++
		switch {
		case !ok1:
			c.full++
		case u1:
			c.under++
		default:
			c.over++
		}
		n1, n2 := mt.Len(), rt[r.IntN(2)].Len()
		if n1 != n2 {
			t.Fatalf("seed %d step %d: Len: memory %d, redis %d", seed, step, n1, n2)
		}
		c.lens++
		if n1 < before {
			c.collected += before - n1
		}
		if r.IntN(8) == 0 || step == steps-1 {
			// The listing refills every bucket and writes it back, as
			// the kernel's /proc reader: later answers must still agree.
			at := now + r.Int64N(2e9)
			l1, l2 := hlListing(t, mt, at), hlListing(t, rt[r.IntN(2)], at)
			if l1 != l2 {
				t.Fatalf("seed %d step %d: listings differ at %d:\nmemory\n%s\nredis\n%s", seed, step, at, l1, l2)
			}
			c.listings++
		}
	}
}

// TestHashlimitDifferentialMemoryVsRedis runs random packet sequences
// through the memory hashlimit table and through two daemons' Redis
// tables of the same name, and requires identical answers (under, over,
// table full), bucket counts and /proc listings (keys, seconds to expiry,
// credit, credit_cap, cost).
func TestHashlimitDifferentialMemoryVsRedis(t *testing.T) {
	seeds, steps := 60, 400
	if testing.Short() {
		seeds, steps = 12, 250
	}
	all := backends(t)
	for _, be := range all {
		seeds := seeds
		if be.name == "miniredis" && len(all) > 1 {
			seeds /= 4 // the real server ran the whole set
		}
		t.Run(be.name, func(t *testing.T) {
			mem := statestore.NewMemory(func() uint64 { return 7 })
			a := New(newClient(t, be.addr), Options{Prefix: "hldiff:", Timeout: 5 * time.Second})
			b := New(newClient(t, be.addr), Options{Prefix: "hldiff:", Timeout: 5 * time.Second})
			var c hlCounts
			for seed := 0; seed < seeds; seed++ {
				runHlDiff(t, uint64(seed), steps, mem, a, b, &c)
			}
			if !testing.Short() && be.name != "miniredis" {
				// One long sequence: 10,000 packets through one table.
				runHlDiff(t, 1001, 10_000, mem, a, b, &c)
				seeds++
			}
			t.Logf("%s: %d sequences (%d byte mode, %d IPv6, %d with credits beyond 2^53), %d packets: %d under, %d over, %d refused by a full table; %d buckets collected, %d Len and %d listings compared, %d steps back in time",
				be.name, seeds, c.byteSeqs, c.v6Seqs, c.big, c.steps, c.under, c.over, c.full, c.collected, c.lens, c.listings, c.backwards)
			if c.under == 0 || c.over == 0 || c.full == 0 || c.collected == 0 || c.byteSeqs == 0 || c.v6Seqs == 0 || c.big == 0 {
				t.Fatalf("the random sequences missed a path: %+v", c)
			}
			if st := a.Stats(); st.Errors != 0 || st.Calls == 0 {
				t.Fatalf("store stats %+v (%v)", st, a.LastError())
			}
		})
	}
}
