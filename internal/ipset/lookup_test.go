package ipset

import (
	"math/rand/v2"
	"testing"
)

// naiveNet is the reference model of hash:net: a list of networks, the
// most specific one containing the address decides.
type naiveNet map[Key]bool // key -> nomatch

func (m naiveNet) lookup(addr uint32) Result {
	for c := 32; c >= 0; c-- {
		if nm, ok := m[Key{Addr: addr & maskOf(uint8(c)), CIDR: uint8(c)}]; ok {
			if nm {
				return NoMatchEntry
			}
			return Match
		}
	}
	return NoMatch
}

// TestHashNetDifferential adds and deletes random nested networks (some
// nomatch) and compares every lookup with the naive model, through
// growth, deletions (backward shifts), prefix lengths emptying and
// filling again, and a flush.
func TestHashNetDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ss := New(nil)
	if err := ss.Create("n", HashNet, CreateOptions{HashSize: 1024, MaxElem: 1 << 20}, false); err != nil {
		t.Fatal(err)
	}
	s, _ := ss.Get("n")
	model := naiveNet{}
	// Addresses cluster in a few /8s so that networks nest and lookups hit.
	randAddr := func() uint32 { return uint32(10+rng.IntN(4))<<24 | rng.Uint32()&0xffffff }
	var src [MaxDim]bool
	src[0] = true
	check := func(round int) {
		for range 2000 {
			a := randAddr()
			if rng.IntN(4) == 0 {
				a = rng.Uint32()
			}
			got, _, _ := s.Lookup(&Packet{Src: a}, &src, 0, false)
			if want := model.lookup(a); got != want {
				t.Fatalf("round %d: lookup %s = %v, model says %v", round, addrString(a), got, want)
			}
		}
	}
	for round := range 40 {
		for range 300 {
			c := uint8(rng.IntN(33))
			if rng.IntN(3) > 0 {
				c = uint8(8 + rng.IntN(17))
			}
			k := Key{Addr: randAddr() & maskOf(c), CIDR: c}
			if rng.IntN(3) == 0 && len(model) > 0 {
				for mk := range model { // delete an existing one
					if err := s.Del([]Key{mk}, false, 0); err != nil {
						t.Fatalf("del %v: %v", mk, err)
					}
					delete(model, mk)
					break
				}
				continue
			}
			nm := rng.IntN(5) == 0
			if err := s.Add([]Key{k}, AddFlags{Exist: true, NoMatch: nm}, 0); err != nil {
				t.Fatal(err)
			}
			model[k] = nm
		}
		check(round)
		if s.Len(0) != len(model) {
			t.Fatalf("round %d: %d entries, model %d", round, s.Len(0), len(model))
		}
		if round == 20 {
			s.Flush()
			clear(model)
			check(round)
		}
	}
}

// TestHashNetExpiredDoesNotShadow: an expired /24 no longer decides, the
// /16 under it does; the bitmap filter does not hide it.
func TestHashNetExpiredDoesNotShadow(t *testing.T) {
	ss := New(nil)
	if err := ss.Exec([]string{"create", "n", "hash:net", "timeout", "0"}, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	s, _ := ss.Get("n")
	for _, c := range []struct {
		net string
		f   AddFlags
	}{{"10.1.0.0/16", AddFlags{}}, {"10.1.2.0/24", AddFlags{NoMatch: true, HasTimeout: true, Timeout: 5}}} {
		keys, err := s.ParseElem(c.net)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Add(keys, c.f, 0); err != nil {
			t.Fatal(err)
		}
	}
	var src [MaxDim]bool
	src[0] = true
	p := &Packet{Src: 10<<24 | 1<<16 | 2<<8 | 3}
	for _, c := range []struct {
		now  int64
		want Result
	}{{0, NoMatchEntry}, {4_999_999_999, NoMatchEntry}, {5e9, Match}} {
		if got, _, _ := s.Lookup(p, &src, c.now, false); got != c.want {
			t.Errorf("at %d ns: %v, want %v", c.now, got, c.want)
		}
	}
}

// TestLookupAllocs: a miss and a hit in a large hash:net allocate nothing.
func TestLookupAllocs(t *testing.T) {
	s := country(t, 60000)
	var src [MaxDim]bool
	src[0] = true
	for _, a := range []uint32{203<<24 | 113<<8 | 9, countryAddr(77)} {
		p := &Packet{Src: a}
		if n := testing.AllocsPerRun(1000, func() { s.Lookup(p, &src, 0, true) }); n != 0 {
			t.Fatalf("%v allocs per lookup", n)
		}
	}
}

// countryAddr is an address inside the i-th network of country.
func countryAddr(i int) uint32 {
	c := 12 + i%13
	return uint32(i)*2654435761&maskOf(uint8(c)) | 1
}

// country is a synthetic country list of n networks, prefix lengths 12
// to 24 spread evenly (as in BenchmarkSetMatchCountry60k of the match).
func country(tb testing.TB, n int) *Set {
	ss := New(nil)
	if err := ss.Create("bl", HashNet, CreateOptions{HashSize: 1024, MaxElem: 1 << 20}, false); err != nil {
		tb.Fatal(err)
	}
	s, _ := ss.Get("bl")
	for i := range n {
		c := uint8(12 + i%13)
		_ = s.Add([]Key{{Addr: uint32(i) * 2654435761 & maskOf(c), CIDR: c}}, AddFlags{Exist: true}, 0)
	}
	return s
}

// BenchmarkLookupCountry60k: 60,000 networks over 13 prefix lengths, an
// address in none of them (the common case for a blocklist) and one in
// the list.
func BenchmarkLookupCountry60k(b *testing.B) {
	s := country(b, 60000)
	var src [MaxDim]bool
	src[0] = true
	b.Run("miss", func(b *testing.B) {
		p := &Packet{Src: 203<<24 | 113<<8 | 9}
		b.ReportAllocs()
		for b.Loop() {
			s.Lookup(p, &src, 0, true)
		}
	})
	b.Run("miss-random", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(3, 4))
		addrs := make([]uint32, 4096)
		for i := range addrs {
			addrs[i] = rng.Uint32()
		}
		p := &Packet{}
		i := 0
		for b.Loop() {
			p.Src = addrs[i&4095]
			i++
			s.Lookup(p, &src, 0, true)
		}
	})
	b.Run("hit", func(b *testing.B) {
		p := &Packet{Src: countryAddr(77)}
		for b.Loop() {
			s.Lookup(p, &src, 0, true)
		}
	})
}
