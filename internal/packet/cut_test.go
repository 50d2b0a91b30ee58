package packet_test

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// copyRange is NFQUEUE's copy limit (NFQNL_MAX_COPY_RANGE).
const copyRange = 65531

// bigTCP builds an IPv4 TCP segment of wire bytes as the kernel queues it
// from NFQUEUE: the first min(wire, copyRange) bytes, and the total-length
// field set to tot (0 for a GSO aggregate beyond 64 KiB, as BIG TCP does).
func bigTCP(wire, tot int, proto uint8, flags uint8) []byte {
	hdr := 20 + 32 // IP + TCP with timestamps, as on loopback
	seg := packettest.TCP(packettest.TCPOpts{Src: "127.0.0.1", Dst: "127.0.0.1", SrcPort: 40000, DstPort: 5001,
		Flags: flags, Seq: 1000, Ack: 7, Window: 64, Options: packettest.Timestamps(1, 2),
		Payload: make([]byte, min(wire, copyRange)-hdr)})
	seg[9] = proto
	binary.BigEndian.PutUint16(seg[2:], uint16(tot))
	refix(seg)
	return seg
}

func bigUDP(wire int) []byte {
	b := packettest.UDP(packettest.UDPOpts{Src: "127.0.0.1", Dst: "127.0.0.1", SrcPort: 1, DstPort: 2, Payload: make([]byte, wire-28)})
	return b[:min(wire, copyRange)]
}

// TestDecodeCut: what the engine learns from a packet NFQUEUE could copy
// only in part, for the lengths the kernel produces (measured on 6.18
// loopback: full segments of 65532-65535 bytes, GSO aggregates up to
// ~130 KB at OUTPUT with tot_len 0) and for lengths it must refuse.
func TestDecodeCut(t *testing.T) {
	cases := []struct {
		name     string
		data     []byte
		wire     int
		status   packet.Status
		cut      bool
		totalLen int
		malf     bool
	}{
		{"aggregate tot_len 0", bigTCP(131000, 0, header.ProtoTCP, packettest.ACK), 131000, packet.OK, true, 131000, false},
		{"aggregate 64 KiB + 1", bigTCP(65536, 0, header.ProtoTCP, packettest.ACK), 65536, packet.OK, true, 65536, false},
		{"largest accepted", bigTCP(packet.MaxCutLen, 0, header.ProtoTCP, packettest.ACK), packet.MaxCutLen, packet.OK, true, packet.MaxCutLen, false},
		{"full loopback segment", bigTCP(65535, 65535, header.ProtoTCP, packettest.ACK), 65535, packet.OK, true, 65535, false},
		{"65532 bytes", bigTCP(65532, 65532, header.ProtoTCP, packettest.ACK), 65532, packet.OK, true, 65532, false},
		{"UDP 65535: length field checked against the real length", bigUDP(65535), 65535, packet.OK, true, 65535, false},
		{"not cut: wire = copy", bigTCP(copyRange, copyRange, header.ProtoTCP, packettest.ACK), copyRange, packet.OK, false, copyRange, false},
		{"not cut: wire below the buffer", bigTCP(copyRange, copyRange, header.ProtoTCP, packettest.ACK), 100, packet.OK, false, copyRange, false},
		{"tot_len 0 within 64 KiB", bigTCP(65535, 0, header.ProtoTCP, packettest.ACK), 65535, packet.BadL3, false, 0, false},
		{"tot_len 0 not TCP", bigTCP(131000, 0, header.ProtoUDP, packettest.ACK), 131000, packet.BadL3, false, 0, false},
		{"tot_len beyond the real length", bigTCP(65535, 65535, header.ProtoTCP, packettest.ACK), 65533, packet.BadL3, false, 0, false},
		{"real length beyond MaxCutLen", bigTCP(131000, 0, header.ProtoTCP, packettest.ACK), packet.MaxCutLen + 1, packet.BadL3, false, 0, false},
		{"hostile real length", bigTCP(131000, 0, header.ProtoTCP, packettest.ACK), 1<<62 + 5, packet.BadL3, false, 0, false},
		{"TCP header beyond the copy", bigTCP(131000, 0, header.ProtoTCP, packettest.ACK)[:30], 131000, packet.TruncatedL4, true, 131000, false},
		{"TCP options beyond the copy", bigTCP(131000, 0, header.ProtoTCP, packettest.ACK)[:45], 131000, packet.TruncatedL4, true, 131000, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p packet.Packet
			st := p.DecodeCut(tc.data, tc.wire)
			if st != tc.status || p.Status != st {
				t.Fatalf("status %v (field %v), want %v", st, p.Status, tc.status)
			}
			if st == packet.BadL3 {
				return
			}
			if p.Cut != tc.cut || p.TotalLen != tc.totalLen || p.L4Malformed != tc.malf {
				t.Errorf("Cut %v TotalLen %d L4Malformed %v, want %v %d %v", p.Cut, p.TotalLen, p.L4Malformed, tc.cut, tc.totalLen, tc.malf)
			}
			if p.Cut != (len(p.Data) < p.TotalLen) || len(p.Data) > len(tc.data) {
				t.Errorf("Cut %v with %d of %d bytes present (buffer %d)", p.Cut, len(p.Data), p.TotalLen, len(tc.data))
			}
			if st == packet.OK && p.Proto == header.ProtoTCP {
				if p.SrcPort != 40000 || p.DstPort != 5001 || p.Seq != 1000 || p.Ack != 7 || p.TCPFlags != packettest.ACK || p.PayloadOff != 52 {
					t.Errorf("TCP ports %d>%d seq %d ack %d flags %#x payload at %d", p.SrcPort, p.DstPort, p.Seq, p.Ack, p.TCPFlags, p.PayloadOff)
				}
				if got := len(p.Payload()); got != len(p.Data)-52 {
					t.Errorf("Payload %d bytes, want the %d present", got, len(p.Data)-52)
				}
			}
		})
	}
}

// TestDecodeBigBuffer: Decode applies the kernel's tot_len 0 rule to a
// whole TCP aggregate beyond 64 KiB held in one buffer (a capture taken
// on loopback with a large snap length), and refuses it below 64 KiB.
func TestDecodeBigBuffer(t *testing.T) {
	seg := packettest.TCP(packettest.TCPOpts{Src: "127.0.0.1", Dst: "127.0.0.1", SrcPort: 1, DstPort: 2, Flags: packettest.ACK, Payload: make([]byte, 70000)})
	binary.BigEndian.PutUint16(seg[2:], 0)
	refix(seg)
	var p packet.Packet
	if st := p.Decode(seg); st != packet.OK || p.TotalLen != len(seg) || p.Cut {
		t.Errorf("70040-byte aggregate: %v TotalLen %d Cut %v", st, p.TotalLen, p.Cut)
	}
	small := seg[:60000]
	if st := p.Decode(small); st != packet.BadL3 {
		t.Errorf("tot_len 0 in a 60000-byte buffer: %v, want BadL3", st)
	}
}

// TestWriteTCPResetCut: the RST answering a cut segment without ACK
// acknowledges its whole payload, as nf_send_reset computes from the
// skb's length, not just the bytes the copy holds.
func TestWriteTCPResetCut(t *testing.T) {
	var p packet.Packet
	seg := bigTCP(131000, 0, header.ProtoTCP, packettest.PSH)
	if p.DecodeCut(seg, 131000) != packet.OK {
		t.Fatal(p.Status)
	}
	buf := make([]byte, header.ICMPErrorMaxLen)
	n := p.WriteTCPReset(buf, 64)
	if n != header.IPv4TCPResetLen {
		t.Fatalf("reset length %d", n)
	}
	rst := header.TCP(buf[20:n])
	if want := uint32(1000 + 131000 - 52); rst.Ack() != want {
		t.Errorf("RST ack %d, want %d (seq + real payload)", rst.Ack(), want)
	}
}

// TestDecodeCutZeroAllocs: DecodeCut runs per packet in the NFQUEUE
// daemon.
func TestDecodeCutZeroAllocs(t *testing.T) {
	seg := bigTCP(131000, 0, header.ProtoTCP, packettest.ACK)
	var p packet.Packet
	if n := testing.AllocsPerRun(100, func() { p.DecodeCut(seg, 131000) }); n != 0 {
		t.Errorf("DecodeCut: %v allocs per run, want 0", n)
	}
}

// FuzzDecodeCut decodes arbitrary bytes claimed to be the first part of a
// packet of any real length, as a hostile or broken NFQA_CAP_LEN would
// give: no panic, offsets within the bytes present, Cut exactly when
// bytes are missing, and the accessors and rewrites stay in bounds.
func FuzzDecodeCut(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s, uint64(len(s)+4))
	}
	f.Add(bigTCP(131000, 0, header.ProtoTCP, packettest.ACK)[:200], uint64(131000))
	f.Add(bigTCP(65535, 65535, header.ProtoTCP, packettest.ACK)[:100], uint64(65535))
	f.Add(bigUDP(65535)[:64], uint64(65535))
	f.Add([]byte{0x45}, uint64(1<<40))
	f.Fuzz(func(t *testing.T, in []byte, wire uint64) {
		in = slices.Clone(in)
		w := int(min(wire, 1<<62))
		var p, q packet.Packet
		st := p.DecodeCut(in, w)
		if st != p.Status {
			t.Fatal("returned status differs from field")
		}
		q.DecodeCut(in, w)
		if !samePacket(&p, &q) {
			t.Fatal("decode not deterministic")
		}
		if len(p.Data) > len(in) || (len(p.Data) > 0 && &p.Data[0] != &in[0]) {
			t.Fatalf("Data is not a prefix of the input")
		}
		if st == packet.BadL3 {
			return
		}
		if !p.Cut {
			checkInvariants(t, &p, in, false)
			return
		}
		if p.TotalLen <= len(p.Data) || p.TotalLen > w || p.TotalLen > packet.MaxCutLen || len(p.Data) != len(in) {
			t.Fatalf("Cut with TotalLen %d, %d bytes present of %d, real length %d", p.TotalLen, len(p.Data), len(in), w)
		}
		if !(p.HdrLen <= p.L4Off && p.L4Off <= p.PayloadOff && p.PayloadOff <= len(p.Data)) {
			t.Fatalf("offsets out of order: hdr %d l4 %d payload %d len %d", p.HdrLen, p.L4Off, p.PayloadOff, len(p.Data))
		}
		_, _, _, _, _, _ = p.TCP(), p.TCPOptions(), p.UDP(), p.ICMP(), p.IPOptions(), p.Payload()
		buf := make([]byte, header.ICMPErrorMaxLen)
		p.WriteTCPReset(buf, 64)
		p.WriteICMPError(buf, 3, 3, 0, netip.MustParseAddr("10.0.0.9"), 1, 64)
		p.SetTTL(1)
		p.SetSrcPort(1)
		if p.Version == 4 {
			p.SetSrc(netip.MustParseAddr("10.0.0.9"))
			if !header.IPv4(p.Data).ChecksumValid() {
				t.Fatal("rewrites broke the IPv4 header checksum")
			}
		} else {
			p.SetDst(netip.MustParseAddr("::9"))
		}
	})
}
