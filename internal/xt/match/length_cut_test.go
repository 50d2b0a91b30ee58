package match

import (
	"encoding/binary"
	"testing"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

// TestLengthCut: xt_length on packets NFQUEUE copied in part. Measured on
// 6.18 loopback with the kernel's iptables during a bulk transfer: GSO
// aggregates at OUTPUT beyond 64 KiB (IPv4 total length 0) match
// `! --length 0:65535` and never `--length 0`; full segments of
// 65531-65535 bytes match their own length.
func TestLengthCut(t *testing.T) {
	agg := func(real, tot int) *packet.Packet {
		b := packettest.TCP(packettest.TCPOpts{Src: "127.0.0.1", Dst: "127.0.0.1", SrcPort: 1, DstPort: 2, Flags: packettest.ACK,
			Payload: make([]byte, 65531-40)})
		binary.BigEndian.PutUint16(b[2:], uint16(tot))
		h := header.IPv4(b)
		h.SetChecksum(h.CalculateChecksum())
		p := new(packet.Packet)
		if st := p.DecodeCut(b, real); st != packet.OK || !p.Cut {
			t.Fatalf("DecodeCut(%d): %v", real, st)
		}
		return p
	}
	big, full := agg(128787, 0), agg(65535, 65535)
	cases := []struct {
		name string
		m    Length
		p    *packet.Packet
		want bool
	}{
		{"aggregate: ! 0:65535", Length{Min: 0, Max: 65535, Invert: true}, big, true},
		{"aggregate: 0:65535", Length{Min: 0, Max: 65535}, big, false},
		{"aggregate: 0", Length{Min: 0, Max: 0}, big, false},
		{"aggregate: 1001:65535", Length{Min: 1001, Max: 65535}, big, false},
		{"65535 bytes: 65531:65535", Length{Min: 65531, Max: 65535}, full, true},
		{"65535 bytes: 65535", Length{Min: 65535, Max: 65535}, full, true},
		{"65535 bytes: ! 0:65535", Length{Min: 0, Max: 65535, Invert: true}, full, false},
	}
	for _, tc := range cases {
		if got := tc.m.Matches(&xt.Ctx{P: tc.p}); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
