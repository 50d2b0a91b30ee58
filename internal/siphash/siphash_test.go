package siphash

import (
	"encoding/binary"
	"testing"
)

// The reference vector of the SipHash paper (appendix A): key 00 01 .. 0f,
// message 00 01 .. 0e (15 bytes) gives a129ca6149be45e5. Our inputs are whole
// words, so check the 8- and 16-byte vectors of the reference
// implementation's table instead (vectors[8] and vectors[16] of
// SipHash-2-4's test vectors).
func TestSum24Vectors(t *testing.T) {
	k := Key{K0: 0x0706050403020100, K1: 0x0f0e0d0c0b0a0908}
	msg := make([]byte, 16)
	for i := range msg {
		msg[i] = byte(i)
	}
	words := []uint64{binary.LittleEndian.Uint64(msg[:8]), binary.LittleEndian.Uint64(msg[8:])}
	for _, tc := range []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{1, 0x93f5f5799a932462},
		{2, 0x3f2acc7f57c29bdb},
	} {
		if got := Sum24(k, words[:tc.n]); got != tc.want {
			t.Errorf("%d words: %#x, want %#x", tc.n, got, tc.want)
		}
	}
}

func TestSum13DiffersAndIsKeyed(t *testing.T) {
	m := []uint64{1, 2, 3}
	a, b := Sum13(Key{1, 2}, m), Sum13(Key{1, 3}, m)
	if a == b || a == Sum24(Key{1, 2}, m) {
		t.Fatal("SipHash-1-3 must depend on the key and differ from SipHash-2-4")
	}
	if n := testing.AllocsPerRun(100, func() { Sum13(Key{1, 2}, m) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}
