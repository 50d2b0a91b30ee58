package redisstore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/statestore"
)

// diffCounts tallies what a differential run exercised, so that the test
// shows (and asserts) that the interesting paths were hit.
type diffCounts struct {
	applies, matches, hotdrops   int
	byCmd                        [5]int
	reaps, rttl, inverts, window int
	commands, flushes, invalid   int
	requires, flushedByRequire   int
	evictions                    int // packets while the list was full
	listings                     int
	edges                        int // queries aimed at a window's edge
	maxLen                       int
}

// diffPool is the address pool of a sequence: a few hot addresses, many
// cold ones (more than ip_list_tot, so the LRU evicts), IPv6 and
// IPv4-mapped IPv6 ones (kept apart from IPv4 by the kernel).
func diffPool(r *rand.Rand) []netip.Addr {
	var p []netip.Addr
	for i := 0; i < 170; i++ {
		p = append(p, netip.AddrFrom4([4]byte{192, 0, byte(2 + i/100), byte(i % 100 * 2)}))
	}
	for i := 0; i < 20; i++ {
		p = append(p, netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::%x", i%3, i)))
	}
	for i := 0; i < 5; i++ {
		p = append(p, netip.AddrFrom16(netip.AddrFrom4([4]byte{192, 0, 2, byte(i * 2)}).As16()))
	}
	r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

var diffMasks = []netip.Addr{
	{}, // none: all ones
	netip.MustParseAddr("255.255.255.255"),
	netip.MustParseAddr("255.255.255.0"),
	netip.MustParseAddr("255.255.0.0"),
	netip.MustParseAddr("ffff:ffff:ffff:ffff::"),
}

// runDiff runs one random sequence against a memory list and two Redis
// list objects of the same name (two daemons), picking one of the two for
// each query, and fails at the first difference in an answer, a Len or a
// listing.
func runDiff(t *testing.T, seed uint64, steps int, mem statestore.Factory, a, b *Store, c *diffCounts) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	cfg := statestore.RecentConfig{Name: fmt.Sprintf("L%d", seed), Mask: diffMasks[r.IntN(len(diffMasks))]}
	if r.IntN(4) == 0 {
		cfg.Entries = []int{1, 5, 20}[r.IntN(3)]
	}
	ml, err := mem.NewRecentList(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var rl [2]statestore.RecentList
	for i, s := range []*Store{a, b} {
		if rl[i], err = s.NewRecentList(cfg); err != nil {
			t.Fatal(err)
		}
	}
	capacity := cfg.Entries
	if capacity == 0 {
		capacity = statestore.RecentListTot
	}
	pool := diffPool(r)
	hot := pool[:8]
	// Half the sequences are floods: mostly --set from cold addresses, few
	// removals, so that the list fills and the LRU evicts.
	flood := seed%2 == 1
	pHot, pRemove := 3, 4
	if flood {
		pHot, pRemove = 1, 12
	}
	ring := 1 << r.IntN(7)
	if f1, f2 := ml.Require(ring), rl[0].Require(ring); f1 != f2 {
		t.Fatalf("seed %d: first Require(%d): memory %v, redis %v", seed, ring, f1, f2)
	}
	rl[1].Require(ring)
	now := int64(1_700_000_000_123_456_789) + r.Int64N(1e9)
	steps_ := []int64{0, 1, 1_000_000, 3_999_999, 4_000_000, 100_000_000, 1e9, 3e9, 7e9, 61e9}
	var entM, entR []statestore.RecentEntry
	var past []int64 // the last steps' times, to aim at window edges
	for step := 0; step < steps; step++ {
		now += steps_[r.IntN(len(steps_))]
		if r.IntN(8) == 0 {
			now -= now % statestore.JiffyNS // on a jiffy boundary
		}
		past = append(past, now)
		if len(past) > 16 {
			past = past[1:]
		}
		l := rl[r.IntN(2)]
		addr := pool[r.IntN(len(pool))]
		if r.IntN(10) < pHot {
			addr = hot[r.IntN(len(hot))]
		}
		before := ml.Len()
		what := r.IntN(100)
		switch {
		case what < 85: // a packet
			q := statestore.RecentQuery{Addr: addr, TTL: []uint8{64, 64, 63, 65, 0}[r.IntN(5)], NowNS: now,
				Cmd: statestore.RecentCmd(1 + r.IntN(4)), Invert: r.IntN(5) == 0}
			if flood && q.Cmd == statestore.RecentRemove && r.IntN(pRemove) > 0 || flood && r.IntN(2) == 0 {
				q.Cmd = statestore.RecentSet
			}
			if q.Cmd == statestore.RecentCheck || q.Cmd == statestore.RecentUpdate {
				// what xt_recent's checkentry lets through
				if r.IntN(4) > 0 {
					q.Seconds = []uint32{1, 2, 5, 10, 60}[r.IntN(5)]
					q.Reap = !flood && r.IntN(3) == 0
				}
				if r.IntN(4) > 0 {
					q.Hits = uint32(1 + r.IntN(ring+1))
				}
				q.RTTL = r.IntN(4) == 0
				if q.Seconds != 0 && r.IntN(3) == 0 {
					// Aim at the window's edge: a recent stamp exactly
					// seconds (in jiffies) old, or one jiffy or one ns
					// either side. Time may go backwards here, as
					// between daemons whose clocks disagree.
					base := past[r.IntN(len(past))]
					j := statestore.Jiffy(base) + int64(q.Seconds)*statestore.HZ
					q.NowNS = j*statestore.JiffyNS + []int64{0, -1, 1, statestore.JiffyNS - 1, statestore.JiffyNS, -statestore.JiffyNS}[r.IntN(6)]
					now = q.NowNS
					c.edges++
				}
			}
			m1, h1 := ml.Apply(q)
			m2, h2 := l.Apply(q)
			if m1 != m2 || h1 != h2 {
				t.Fatalf("seed %d step %d: Apply(%+v): memory (%v,%v), redis (%v,%v)", seed, step, q, m1, h1, m2, h2)
			}
			c.applies++
			c.byCmd[q.Cmd]++
			if m1 {
				c.matches++
			}
			if h1 {
				c.hotdrops++
			}
			if q.Reap {
				c.reaps++
			}
			if q.RTTL {
				c.rttl++
			}
			if q.Invert {
				c.inverts++
			}
			if q.Seconds != 0 {
				c.window++
			}
		case what < 95 || flood: // a /proc write
			var cmd string
			switch k := r.IntN(20); {
			case k < 9:
				cmd = "+" + addr.String()
			case k < 17 && !flood:
				cmd = "-" + addr.String() + "\n"
			case k < 17:
				cmd = "+" + addr.String() + "\n"
			case k < 18 && !flood:
				cmd = "/"
				c.flushes++
			default:
				cmd = []string{"", "x1.2.3.4", "+1.2.3", "+fe80::1%eth0", "+nonsense", "-"}[r.IntN(6)]
				c.invalid++
			}
			e1 := ml.Command(cmd, now)
			e2 := l.Command(cmd, now)
			if (e1 == nil) != (e2 == nil) || e1 != nil && !errors.Is(e2, statestore.ErrInvalid) {
				t.Fatalf("seed %d step %d: Command(%q): memory %v, redis %v", seed, step, cmd, e1, e2)
			}
			c.commands++
		default: // a rule (re)build asking for a ring
			n := 1 << r.IntN(8)
			f1, f2 := ml.Require(n), l.Require(n)
			if f1 != f2 {
				t.Fatalf("seed %d step %d: Require(%d): memory %v, redis %v", seed, step, n, f1, f2)
			}
			if n > ring {
				ring = n
			}
			c.requires++
			if f1 {
				c.flushedByRequire++
			}
		}
		n1, n2 := ml.Len(), rl[r.IntN(2)].Len()
		if n1 != n2 {
			t.Fatalf("seed %d step %d: Len: memory %d, redis %d", seed, step, n1, n2)
		}
		if before == capacity && n1 == capacity && what < 85 {
			c.evictions++ // counted loosely: inserts into a full list
		}
		if n1 > c.maxLen && capacity == statestore.RecentListTot {
			c.maxLen = n1
		}
		entM = ml.Entries(entM[:0])
		entR, err = rl[r.IntN(2)].(*recentList).EntriesErr(entR[:0])
		if err != nil {
			t.Fatalf("seed %d step %d: Entries: %v", seed, step, err)
		}
		if !reflect.DeepEqual(entM, entR) {
			t.Fatalf("seed %d step %d: Entries differ:\nmemory %+v\nredis  %+v", seed, step, entM, entR)
		}
		c.listings++
	}
}

// TestDifferentialMemoryVsRedis runs the same random query sequences
// against the memory store and the Redis store and requires identical
// answers, counts and listings (same entries, same least-recently-recorded
// order, same ring contents and write index, same ns stamps).
func TestDifferentialMemoryVsRedis(t *testing.T) {
	seeds, steps := 40, 500
	if testing.Short() {
		seeds, steps = 8, 300
	}
	all := backends(t)
	for _, be := range all {
		seeds := seeds
		if be.name == "miniredis" && len(all) > 1 {
			seeds /= 4 // the real server ran the whole set
		}
		t.Run(be.name, func(t *testing.T) {
			mem := statestore.NewMemory(func() uint64 { return 42 })
			// Two stores with their own clients: two daemons.
			a := New(newClient(t, be.addr), Options{Prefix: "diff:", Timeout: 5 * time.Second})
			b := New(newClient(t, be.addr), Options{Prefix: "diff:", Timeout: 5 * time.Second})
			var c diffCounts
			for seed := 0; seed < seeds; seed++ {
				runDiff(t, uint64(seed), steps, mem, a, b, &c)
			}
			t.Logf("%s: %d sequences, %d applies (set %d, rcheck %d, update %d, remove %d; %d matched, %d with !, %d with --seconds, %d --reap, %d --rttl), %d /proc writes (%d flushes, %d invalid), %d Requires (%d flushed), %d packets on a full list, max len of a 100-entry list %d, %d listings compared, %d queries at a window edge",
				be.name, seeds, c.applies, c.byCmd[1], c.byCmd[2], c.byCmd[3], c.byCmd[4], c.matches, c.inverts, c.window, c.reaps, c.rttl,
				c.commands, c.flushes, c.invalid, c.requires, c.flushedByRequire, c.evictions, c.maxLen, c.listings, c.edges)
			// The sequences must reach the paths they are meant to test.
			if c.matches == 0 || c.matches == c.applies || c.flushedByRequire == 0 || c.evictions == 0 || c.maxLen < statestore.RecentListTot {
				t.Fatalf("the random sequences missed a path: %+v", c)
			}
			if st := a.Stats(); st.Errors != 0 || st.Calls == 0 {
				t.Fatalf("store stats %+v", st)
			}
		})
	}
}
