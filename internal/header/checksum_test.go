package header

import (
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// naiveChecksum is RFC 1071 written the slow, obvious way: 16-bit words,
// end-around carry after every addition.
func naiveChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		s += w
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func TestChecksumKnownValues(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want uint16
	}{
		// RFC 1071 §3: the sum of these bytes is 0xddf2.
		{"rfc1071", "0001f203f4f5f6f7", ^uint16(0xddf2)},
		// An IPv4 header (192.168.0.1 -> 192.168.0.199, UDP) with its
		// checksum field zeroed; the well-known checksum is 0xb861.
		{"ipv4", "450000730000400040110000c0a80001c0a800c7", 0xb861},
		{"empty", "", 0xffff},
		{"odd", "01", ^uint16(0x0100)},
		{"carry", "ffffffff0001", ^uint16(0x0001)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustHex(t, tt.hex)
			if got := Checksum(b, 0); got != tt.want {
				t.Errorf("Checksum = %#04x, want %#04x", got, tt.want)
			}
		})
	}
}

func TestIPv4HeaderChecksum(t *testing.T) {
	h := IPv4(mustHex(t, "45000073000040004011b861c0a80001c0a800c7"))
	if !h.ChecksumValid() {
		t.Fatal("valid header reported invalid")
	}
	if got := h.CalculateChecksum(); got != 0xb861 {
		t.Fatalf("CalculateChecksum = %#04x, want 0xb861", got)
	}
	h[IPv4TTLOff]++
	if h.ChecksumValid() {
		t.Fatal("corrupted header reported valid")
	}
}

func TestSumMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 200; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		if got, want := Checksum(b, 0), naiveChecksum(b); got != want {
			t.Fatalf("len %d: Checksum = %#04x, naive %#04x", n, got, want)
		}
		// Split at an even offset: the pieces chain.
		k := n / 2 &^ 1
		if got, want := ^Sum(b[k:], Sum(b[:k], 0)), naiveChecksum(b); got != want {
			t.Fatalf("len %d split %d: %#04x, want %#04x", n, k, got, want)
		}
	}
}

func TestPseudoHeaderSum(t *testing.T) {
	src, dst := []byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}
	// The pseudo-header laid out as bytes, summed naively.
	ph := append(append(append([]byte{}, src...), dst...), 0, 6, 0x01, 0x2c)
	if got, want := ^PseudoHeaderSum(src, dst, ProtoTCP, 300), naiveChecksum(ph); got != want {
		t.Fatalf("IPv4 pseudo: %#04x, want %#04x", got, want)
	}
	s6, d6 := make([]byte, 16), make([]byte, 16)
	s6[0], s6[15], d6[0], d6[15] = 0x20, 1, 0x20, 2
	ph6 := append(append(append([]byte{}, s6...), d6...), 0, 1, 0, 4, 0, 0, 0, 58)
	if got, want := ^PseudoHeaderSum(s6, d6, ProtoICMPv6, 0x10004), naiveChecksum(ph6); got != want {
		t.Fatalf("IPv6 pseudo: %#04x, want %#04x", got, want)
	}
}

// TestIncrementalEqualsRecompute changes random 16-bit words, 32-bit words
// and address-sized runs of random buffers and checks RFC 1624 against a full
// recomputation, including the 0x0000/0xffff corner.
func TestIncrementalEqualsRecompute(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for iter := 0; iter < 20000; iter++ {
		b := make([]byte, 2*(4+r.IntN(30)))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		if iter%7 == 0 { // force sums near 0xffff / 0x0000
			clear(b)
			b[0] = byte(r.UintN(2)) * 0xff
			b[1] = b[0]
		}
		b[0], b[1] = 0, 0 // checksum field at 0
		be.PutUint16(b, Checksum(b, 0))
		c := be.Uint16(b)
		switch iter % 3 {
		case 0:
			i := 2 + 2*r.IntN(len(b)/2-1)
			old := be.Uint16(b[i:])
			nw := uint16(r.UintN(65536))
			be.PutUint16(b[i:], nw)
			c = Update16(c, old, nw)
		case 1:
			i := 4 * (1 + r.IntN(len(b)/4-1))
			old := be.Uint32(b[i:])
			nw := r.Uint32()
			be.PutUint32(b[i:], nw)
			c = Update32(c, old, nw)
		case 2:
			i := 4 * (1 + r.IntN(len(b)/4-1))
			old := append([]byte(nil), b[i:i+4]...)
			nw := []byte{byte(r.UintN(256)), byte(r.UintN(256)), byte(r.UintN(256)), byte(r.UintN(256))}
			copy(b[i:], nw)
			c = UpdateBytes(c, old, nw)
		}
		b[0], b[1] = 0, 0
		if want := Checksum(b, 0); c != want {
			t.Fatalf("iter %d: incremental %#04x, recomputed %#04x", iter, c, want)
		}
	}
}

func TestChecksumAllocs(t *testing.T) {
	b := make([]byte, 1500)
	tcp := TCP(make([]byte, 40))
	tcp[TCPDataOffOff] = 10 << 4
	copy(tcp[20:], []byte{2, 4, 5, 0xb4})
	ip := IPv4(mustHex(t, "45000073000040004011b861c0a80001c0a800c7"))
	n := testing.AllocsPerRun(100, func() {
		_ = Checksum(b, PseudoHeaderSum(b[:4], b[4:8], ProtoTCP, len(b)))
		_ = Update16(1, 2, 3)
		_ = Update32(1, 2, 3)
		_ = UpdateBytes(1, b[:16], b[16:32])
		ip.SetTTL(ip.TTL() - 1)
		ip.SetTOS(0x10)
		ip.SetSrc([4]byte{1, 2, 3, 4})
		old := UpdateIPv4Addr(ip, IPv4DstOff, [4]byte{5, 6, 7, 8})
		UpdateL4ChecksumForAddr(ProtoTCP, tcp, old[:], []byte{5, 6, 7, 8})
		tcp.SetSrcPort(80)
		tcp.SetMSS(1400)
	})
	if n != 0 {
		t.Fatalf("allocs per run = %v, want 0", n)
	}
}

func BenchmarkChecksum1500(b *testing.B) {
	buf := make([]byte, 1500)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		_ = Checksum(buf, 0)
	}
}
