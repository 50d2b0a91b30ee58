package header

import (
	"math/rand/v2"
	"testing"
)

// sumWide must equal sumNarrow bit for bit (the value is stored in
// checksum fields), for every length, alignment and initial value,
// including the all-ones and all-zero words where one's complement
// arithmetic has its corner cases.
func TestSumWideMatchesNarrow(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 70000)
	fills := map[string]func(i int) byte{
		"zeros":  func(int) byte { return 0 },
		"ones":   func(int) byte { return 0xff },
		"random": func(int) byte { return byte(rnd.Uint32()) },
		"ramp":   func(i int) byte { return byte(i) },
	}
	lengths := []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 31, 32, 33, 63, 64, 65, 100, 1459, 1460, 32767, 32768, 65475, 65536}
	initials := []uint16{0, 1, 0x7fff, 0xfffe, 0xffff}
	for name, fill := range fills {
		for i := range buf {
			buf[i] = fill(i)
		}
		for _, n := range lengths {
			for _, off := range []int{0, 1, 3, 8} {
				b := buf[off : off+n]
				for _, in := range initials {
					if got, want := sumWide(b, in), sumNarrow(b, in); got != want {
						t.Fatalf("%s len %d off %d initial %#x: sumWide %#x, sumNarrow %#x", name, n, off, in, got, want)
					}
				}
			}
		}
	}
	for i := 0; i < 2000; i++ {
		n := rnd.IntN(3000)
		b := buf[:n]
		for j := range b {
			if rnd.IntN(4) == 0 {
				b[j] = 0xff
			} else {
				b[j] = byte(rnd.Uint32())
			}
		}
		in := uint16(rnd.Uint32())
		if got, want := sumWide(b, in), sumNarrow(b, in); got != want {
			t.Fatalf("random case %d (len %d, initial %#x): sumWide %#x, sumNarrow %#x", i, n, in, got, want)
		}
	}
}

func BenchmarkChecksum(b *testing.B) {
	buf := make([]byte, 65536)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	b.Run("narrow", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			sumNarrow(buf, 0)
		}
	})
	b.Run("wide", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			sumWide(buf, 0)
		}
	})
}
