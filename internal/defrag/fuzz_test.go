package defrag

import (
	"testing"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
)

// FuzzDefrag turns the input into a stream of IPv4 fragments (6 bytes
// each: offset, length, flags, id, TOS, protocol, hook, options, time
// steps) over a few datagrams and checks that Add never panics, that every
// reassembled datagram is a valid unfragmented IPv4 packet of at most 65535
// bytes whose data is what the fragments carried, that the accounted
// memory stays within HighThresh plus one fragment, and that GC eventually
// releases everything.
func FuzzDefrag(f *testing.F) {
	f.Add([]byte{0, 0, 12, 1, 0, 0, 6, 0, 12, 0, 0, 0})
	f.Add([]byte{6, 0, 13, 0, 0, 0, 0, 0, 12, 1, 0, 0, 2, 0, 4, 1, 0, 0})
	f.Add([]byte{0, 0, 255, 0x81, 0, 0, 32, 0, 255, 0x81, 0, 0, 64, 0, 3, 0x80, 0, 0})
	f.Add([]byte{0, 0, 12, 0x33, 0, 0, 6, 0, 12, 0x10, 0, 200, 0, 0, 12, 1, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		const high = 50000
		cfg := Config{HighThresh: high, MaxDist: 5, HashKey: [2]uint64{1, 2}}
		if len(in) > 0 && in[0]&0x40 != 0 {
			cfg.Evict = true
			cfg.LowThresh = high / 2
		}
		d := New(cfg)
		var p packet.Packet
		frame := make([]byte, 0, 60+2048)
		dstBuf := make([]byte, 0, 65536)
		now := int64(0)
		for len(in) >= 6 {
			r := in[:6]
			in = in[6:]
			off := int(r[0])
			if r[1]&0x80 != 0 {
				off = int(r[0]) | int(r[1]&0x1f)<<8 // anywhere up to 65528
			}
			n := int(r[2])*8 + int(r[1]>>5&3)
			flags := r[3]
			mf, df := flags&1 != 0, flags&2 != 0
			id := uint16(flags >> 2 & 3)
			tos := flags >> 4 & 3
			proto := uint8(17)
			if flags&0x40 != 0 {
				proto = 6
			}
			hook := packet.PreRouting
			if flags&0x80 != 0 {
				hook = packet.LocalOut
			}
			optLen := int(r[4]&0x0f) * 4
			if optLen > 40 {
				optLen = 40
			}
			now += int64(r[4]>>4) * 4 * sec
			ttl := r[5]
			hl := 20 + optLen
			frame = frame[:hl+n]
			for i := range frame[hl:] {
				frame[hl+i] = byte(off*8 + i) // data is a function of its position
			}
			for i := 20; i < hl; i++ {
				frame[i] = header.IPv4OptNOP
			}
			frame[0] = 0x40 | byte(hl/4)
			frame[1] = tos
			frame[2], frame[3] = byte((hl+n)>>8), byte(hl+n)
			frame[4], frame[5] = 0, byte(id)
			ff := uint16(off)
			if mf {
				ff |= header.IPv4FlagMF
			}
			if df {
				ff |= header.IPv4FlagDF
			}
			frame[6], frame[7] = byte(ff>>8), byte(ff)
			frame[8], frame[9] = ttl, proto
			copy(frame[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
			frame[10], frame[11] = 0, 0
			h := header.IPv4(frame)
			h.SetChecksum(h.CalculateChecksum())
			if p.Decode(frame) == packet.BadL3 {
				t.Fatalf("built frame does not decode: % x", frame)
			}
			p.TimeNS = now
			res, err := d.Add(&p, hook, uint16(ttl&1), dstBuf)
			if !IsFragment(&p) {
				if err != ErrNotFragment {
					t.Fatalf("non-fragment: %v", err)
				}
				continue
			}
			if res.Done {
				if err != nil {
					t.Fatalf("done with error %v", err)
				}
				checkOut(t, res.Out)
			}
			if m := d.Stats().Mem; m < 0 || m > high+3*65536+4096 {
				t.Fatalf("memory %d (high %d)", m, high)
			}
			if r[5]&0x0f == 0 {
				d.GC(now, func(e *Expired) {
					if e.Header != nil && (len(e.Header) < 20 || header.IPv4(e.Header).FragOff() != 0) {
						t.Fatalf("expired queue's first fragment header % x", e.Header)
					}
				})
			}
		}
		d.GC(now+int64(DefaultTimeout), nil)
		if s := d.Stats(); s.Queues != 0 || s.Mem != 0 {
			t.Fatalf("after GC: %d queues, %d bytes", s.Queues, s.Mem)
		}
	})
}

func checkOut(t *testing.T, out []byte) {
	h := header.IPv4(out)
	if len(out) > MaxDatagram || len(out) < 20 || int(h.TotalLen()) != len(out) || !h.ChecksumValid() ||
		h.FlagsFrag()&^header.IPv4FlagDF != 0 {
		t.Fatalf("bad reassembled datagram header % x", out[:min(len(out), 60)])
	}
	hl := h.HeaderLen()
	for i, b := range out[hl:] {
		if b != byte(i) {
			t.Fatalf("data byte %d is %d: not what the fragments carried", i, b)
		}
	}
}
