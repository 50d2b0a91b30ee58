package defrag

import (
	"encoding/binary"
	"testing"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

const (
	src = "10.77.0.1"
	dst = "10.77.0.2"
	sec = int64(1e9)
)

// fragSpec is one crafted fragment of a datagram, as the kernel oracle
// (testdata/kernel/oracle.py) sends them: L4 bytes [a, b) of the datagram at
// offset a.
type fragSpec struct {
	a, b   int
	mf     bool
	alt    bool  // fill with 0xEE instead of the datagram's bytes
	proto  uint8 // 0: the datagram's
	tos    uint8
	ttl    int
	df     bool
	opts   []byte
	rawLen int // > 0: this many bytes of 'x' at offset a instead of [a,b)
}

// l4 is the datagram the oracle fragments: UDP 4000 -> 9999 with 92 payload
// bytes (i*7+3), 100 bytes of L4.
func l4Datagram(t testing.TB) []byte {
	pl := make([]byte, 92)
	for i := range pl {
		pl[i] = byte(i*7 + 3)
	}
	pkt := packettest.UDP(packettest.UDPOpts{Src: src, Dst: dst, SrcPort: 4000, DstPort: 9999, Payload: pl})
	return pkt[20:]
}

// ipFrag builds one IPv4 fragment carrying data at byte offset off.
func ipFrag(data []byte, off int, mf bool, id uint16, proto uint8, tos uint8, ttl int, df bool, opts []byte) []byte {
	return packettest.Raw(packettest.RawOpts{Src: src, Dst: dst, Proto: proto, Payload: data,
		IP: packettest.IP{ID: id, MF: mf, DF: df, FragOff: uint16(off / 8), TOS: tos, TTL: ttl, Options: opts}})
}

func (f fragSpec) build(d []byte, id uint16) []byte {
	var data []byte
	if f.rawLen == 0 {
		data = d[f.a:f.b]
	}
	if f.alt {
		data = make([]byte, f.b-f.a)
		for i := range data {
			data[i] = 0xEE
		}
	}
	if f.rawLen > 0 {
		data = make([]byte, f.rawLen)
		for i := range data {
			data[i] = 'x'
		}
	}
	proto := f.proto
	if proto == 0 {
		proto = header.ProtoUDP
	}
	return ipFrag(data, f.a, f.mf, id, proto, f.tos, f.ttl, f.df, f.opts)
}

// decode decodes b with the metadata the engine would set.
func decode(t testing.TB, b []byte, now int64) *packet.Packet {
	t.Helper()
	var p packet.Packet
	if st := p.Decode(b); st == packet.BadL3 {
		t.Fatalf("fragment does not decode: % x", b)
	}
	p.TimeNS = now
	return &p
}

// feed offers frames in order at time now and returns the outputs of every
// Add that completed a datagram and the errors seen.
func feed(t testing.TB, d *Defrag, frames [][]byte, now int64) (outs [][]byte, errs []error) {
	t.Helper()
	for _, f := range frames {
		r, err := d.Add(decode(t, f, now), packet.PreRouting, 0, nil)
		errs = append(errs, err)
		if r.Done {
			outs = append(outs, append([]byte(nil), r.Out...))
		}
	}
	return outs, errs
}

// checkDatagram verifies that out is a valid, unfragmented IPv4 datagram.
func checkDatagram(t testing.TB, out []byte) {
	t.Helper()
	h := header.IPv4(out)
	if int(h.TotalLen()) != len(out) {
		t.Errorf("total length %d, have %d bytes", h.TotalLen(), len(out))
	}
	if !h.ChecksumValid() {
		t.Errorf("bad header checksum")
	}
	if h.MoreFragments() || h.FragOff() != 0 {
		t.Errorf("reassembled header still fragmented: flags %#04x", h.FlagsFrag())
	}
	var p packet.Packet
	if st := p.Decode(out); st != packet.OK {
		t.Errorf("reassembled datagram decodes as %v", st)
	}
	if p.Proto == header.ProtoUDP && p.Status == packet.OK {
		u := out[p.L4Off:]
		c := header.Checksum(u, header.PseudoHeaderSum(out[12:16], out[16:20], header.ProtoUDP, len(u)))
		if binary.BigEndian.Uint16(u[6:]) != 0 && c != 0 && c != 0xffff {
			t.Errorf("UDP checksum does not verify (%#04x)", c)
		}
	}
}
