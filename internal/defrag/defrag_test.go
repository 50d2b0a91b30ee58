package defrag

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + 7)
	}
	return b
}

// realPackets are whole datagrams of each kind the engine meets.
func realPackets() map[string][]byte {
	return map[string][]byte{
		"udp-3000": packettest.UDP(packettest.UDPOpts{Src: src, Dst: dst, SrcPort: 5353, DstPort: 53,
			Payload: payload(3000), IP: packettest.IP{ID: 0x1234}}),
		"tcp-1400-df": packettest.TCP(packettest.TCPOpts{Src: src, Dst: dst, SrcPort: 40000, DstPort: 80,
			Flags: packettest.ACK | packettest.PSH, Seq: 1, Ack: 2, Window: 512, Payload: payload(1400),
			IP: packettest.IP{ID: 7, DF: true, TTL: 33, TOS: 0x10}}),
		"icmp-echo-9000": packettest.ICMP(packettest.ICMPOpts{Src: src, Dst: dst, Type: 8, ID: 9, Seq: 1,
			Payload: payload(9000), IP: packettest.IP{ID: 0xfffe}}),
		"udp-65507": packettest.UDP(packettest.UDPOpts{Src: src, Dst: dst, SrcPort: 1, DstPort: 2,
			Payload: payload(65507), IP: packettest.IP{ID: 1}}),
		"proto253-17": packettest.Raw(packettest.RawOpts{Src: src, Dst: dst, Proto: 253, Payload: payload(17),
			IP: packettest.IP{ID: 2, TOS: 0x02}}),
	}
}

// TestRoundTrip fragments real packets with packettest.Fragments, offers
// the fragments in several orders with duplicates, and expects the
// original bytes back, exactly (header checksum and L4 checksum included).
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for name, pkt := range realPackets() {
		for _, size := range []int{8, 64, 552, 1480, 8192} {
			frags := packettest.Fragments(pkt, size)
			if len(frags) < 2 {
				continue
			}
			orders := map[string][]int{"in-order": nil, "reverse": nil, "shuffled": nil, "dups": nil}
			for o := range orders {
				idx := make([]int, len(frags))
				for i := range idx {
					idx[i] = i
				}
				switch o {
				case "reverse":
					for i, j := 0, len(idx)-1; i < j; i, j = i+1, j-1 {
						idx[i], idx[j] = idx[j], idx[i]
					}
				case "shuffled":
					rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
				case "dups":
					// Shuffle, then repeat a few fragments before the last.
					rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
					last := idx[len(idx)-1]
					body := idx[:len(idx)-1]
					for range 3 {
						body = append(body, body[rng.IntN(len(body))])
					}
					idx = append(body, last)
				}
				orders[o] = idx
			}
			for o, idx := range orders {
				t.Run(fmt.Sprintf("%s/%d/%s", name, size, o), func(t *testing.T) {
					// 8-byte fragments of 64 KiB cost the kernel ~6.8 MB,
					// above the default 4 MiB: raise the threshold.
					d := New(Config{HashKey: [2]uint64{3, 4}, HighThresh: 64 << 20})
					var frames [][]byte
					for _, i := range idx {
						frames = append(frames, frags[i])
					}
					outs, errs := feed(t, d, frames, sec)
					for _, e := range errs {
						if e != nil && !errors.Is(e, ErrDuplicate) {
							t.Fatalf("unexpected error %v", e)
						}
					}
					if len(outs) != 1 {
						t.Fatalf("%d datagrams out of %d fragments", len(outs), len(frames))
					}
					if !bytes.Equal(outs[0], pkt) {
						t.Fatalf("reassembled datagram differs from the original (len %d vs %d)", len(outs[0]), len(pkt))
					}
					checkDatagram(t, outs[0])
					if s := d.Stats(); s.Queues != 0 || s.Mem != 0 || s.ReasmOKs != 1 {
						t.Errorf("after reassembly: %+v", s)
					}
				})
			}
		}
	}
}

// TestMaxFragSize reports the largest fragment, the size a forwarded
// datagram is re-fragmented to.
func TestMaxFragSize(t *testing.T) {
	pkt := realPackets()["udp-3000"]
	d := New(Config{})
	var res Result
	for _, f := range packettest.Fragments(pkt, 1000) {
		r, err := d.Add(decode(t, f, sec), packet.PreRouting, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		res = r
	}
	if !res.Done || res.MaxFragSize != 1020 {
		t.Errorf("done %v, MaxFragSize %d, want 1020", res.Done, res.MaxFragSize)
	}
}

// TestDstBuffer: the datagram is written into the caller's buffer when it
// fits, and into a new one otherwise.
func TestDstBuffer(t *testing.T) {
	pkt := realPackets()["udp-3000"]
	for _, c := range []int{0, 100, len(pkt), 65536} {
		d := New(Config{})
		buf := make([]byte, 0, c)
		var res Result
		for _, f := range packettest.Fragments(pkt, 1480) {
			res, _ = d.Add(decode(t, f, sec), packet.PreRouting, 0, buf)
		}
		if !bytes.Equal(res.Out, pkt) {
			t.Fatalf("cap %d: wrong datagram", c)
		}
		inBuf := c > 0 && &buf[:1][0] == &res.Out[0]
		if inBuf != (c >= len(pkt)) {
			t.Errorf("cap %d: written in the caller's buffer %v", c, inBuf)
		}
	}
}

// TestUsers: fragments seen in PREROUTING and in OUTPUT, or in two
// conntrack zones, belong to different queues (the kernel's defrag user).
func TestUsers(t *testing.T) {
	frags := packettest.Fragments(realPackets()["udp-3000"], 1480)
	for _, tc := range []struct {
		hook  [2]packet.Hook
		zone  [2]uint16
		joins bool
	}{
		{[2]packet.Hook{packet.PreRouting, packet.PreRouting}, [2]uint16{0, 0}, true},
		{[2]packet.Hook{packet.PreRouting, packet.LocalOut}, [2]uint16{0, 0}, false},
		{[2]packet.Hook{packet.LocalOut, packet.LocalOut}, [2]uint16{1, 1}, true},
		{[2]packet.Hook{packet.PreRouting, packet.PreRouting}, [2]uint16{0, 1}, false},
	} {
		d := New(Config{})
		done := false
		for i, f := range frags {
			j := min(i, 1)
			r, err := d.Add(decode(t, f, sec), tc.hook[j], tc.zone[j], nil)
			if err != nil {
				t.Fatal(err)
			}
			done = done || r.Done
		}
		if done != tc.joins {
			t.Errorf("hooks %v zones %v: reassembled %v, want %v", tc.hook, tc.zone, done, tc.joins)
		}
	}
}

// TestTimeout: a queue lives Timeout from its first fragment, later
// fragments do not extend it, and GC reports expired queues with the first
// fragment when it had arrived (for the ICMP time exceeded the kernel
// sends).
func TestTimeout(t *testing.T) {
	frags := packettest.Fragments(realPackets()["udp-3000"], 1480) // 3 fragments
	d := New(Config{Timeout: 30e9})
	feed(t, d, frags[:1], 0)
	feed(t, d, frags[1:2], 29*sec)
	if n := d.GC(30*sec-1, nil); n != 0 {
		t.Fatalf("GC before the deadline expired %d", n)
	}
	outs, _ := feed(t, d, frags[2:], 30*sec) // the deadline: too late
	if len(outs) != 0 {
		t.Fatal("reassembled after the lifetime")
	}
	if s := d.Stats(); s.Queues != 2 {
		t.Fatalf("%d queues, want the dead one and the new one", s.Queues)
	}
	var got []Expired
	var firsts [][]byte
	n := d.GC(30*sec, func(e *Expired) {
		got = append(got, *e)
		firsts = append(firsts, e.AppendFirst(nil))
	})
	if n != 1 || len(got) != 1 || got[0].Hook != packet.PreRouting {
		t.Fatalf("GC at the deadline: %d expired %+v", n, got)
	}
	if !bytes.Equal(firsts[0], frags[0]) {
		t.Errorf("expired queue's first fragment differs:\n% x\n% x", firsts[0][:40], frags[0][:40])
	}
	got = got[:0]
	d.GC(60*sec, func(e *Expired) { got = append(got, *e) })
	if len(got) != 1 || got[0].Header != nil {
		t.Errorf("queue without its first fragment: %+v, want Header nil (no ICMP)", got)
	}
	if s := d.Stats(); s.Queues != 0 || s.Mem != 0 || s.ReasmTimeout != 2 {
		t.Errorf("after GC: %+v", s)
	}
	// Within the lifetime it completes.
	outs, _ = feed(t, d, [][]byte{frags[0], frags[1]}, 100*sec)
	outs2, _ := feed(t, d, frags[2:], 130*sec-1)
	if len(outs)+len(outs2) != 1 {
		t.Error("not reassembled within the lifetime")
	}
}

// TestRefused: what Add refuses without touching any queue.
func TestRefused(t *testing.T) {
	d := New(Config{})
	whole := realPackets()["udp-3000"]
	v6 := packettest.UDP(packettest.UDPOpts{Src: "fd00::1", Dst: "fd00::2", SrcPort: 1, DstPort: 2, Payload: payload(100),
		IP: packettest.IP{MF: true, ID: 5}})
	for _, tc := range []struct {
		b    []byte
		want error
	}{{whole, ErrNotFragment}, {v6, ErrIPv6}} {
		if _, err := d.Add(decode(t, tc.b, 0), packet.PreRouting, 0, nil); !errors.Is(err, tc.want) {
			t.Errorf("got %v, want %v", err, tc.want)
		}
	}
	if _, err := d.Add(decode(t, packettest.Fragments(whole, 1480)[0], 0), packet.Forward, 0, nil); !errors.Is(err, ErrHook) {
		t.Errorf("FORWARD: %v", err)
	}
	var bad packet.Packet
	if _, err := d.Add(&bad, packet.PreRouting, 0, nil); !errors.Is(err, ErrNotFragment) {
		t.Errorf("zero packet: %v", err)
	}
}

// TestMaxFrags: the optional per-datagram fragment limit.
func TestMaxFrags(t *testing.T) {
	pkt := realPackets()["udp-3000"]
	frags := packettest.Fragments(pkt, 256) // 12 fragments
	for _, tc := range []struct {
		max int
		ok  bool
	}{{0, true}, {12, true}, {11, false}} {
		d := New(Config{MaxFrags: tc.max})
		outs, errs := feed(t, d, frags, sec)
		if (len(outs) == 1) != tc.ok {
			t.Errorf("MaxFrags %d: reassembled %v", tc.max, len(outs) == 1)
		}
		if !tc.ok && !errors.Is(errs[11], ErrTooManyFrags) {
			t.Errorf("MaxFrags %d: error %v", tc.max, errs[11])
		}
	}
}

// floodFrame builds a first fragment of size data bytes with id id from
// source s, for the flood tests.
func floodFrame(s string, id uint16, size int) []byte {
	return packettest.Raw(packettest.RawOpts{Src: s, Dst: dst, Proto: 17, Payload: make([]byte, size),
		IP: packettest.IP{ID: id, MF: true}})
}

// TestFloodBounded: a flood of first fragments with random ids (and random
// sources, sizes and offsets) never takes the accounted memory past
// HighThresh by more than one fragment, and the Go heap stays within a
// small multiple of it. With the kernel's policy the flood then blocks
// reassembly until queues expire; with Evict, new datagrams still get
// through.
func TestFloodBounded(t *testing.T) {
	const high = 1 << 20
	for _, evict := range []bool{false, true} {
		t.Run(fmt.Sprintf("evict=%v", evict), func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			d := New(Config{HighThresh: high, LowThresh: high / 2, Evict: evict, HashKey: [2]uint64{5, 6}})
			rng := rand.New(rand.NewPCG(7, 8))
			var pk packet.Packet
			buf := make([]byte, 1600)
			base := floodFrame(src, 0, 1480)
			maxMem := int64(0)
			for i := range 100000 {
				// Mutate one template instead of building 100k packets.
				n := 8 + rng.IntN(1472)
				f := buf[:20+n]
				copy(f, base[:20])
				f[2], f[3] = byte((20+n)>>8), byte(20+n)
				f[4], f[5] = byte(rng.Uint32()), byte(rng.Uint32())
				off := uint16(rng.IntN(4)) * uint16(rng.IntN(8000))
				f[6], f[7] = 0x20|byte(off>>8&0x1f), byte(off)
				f[14], f[15] = byte(i>>8), byte(i)
				f[10], f[11] = 0, 0
				c := ipv4HeaderChecksum(f[:20])
				f[10], f[11] = byte(c>>8), byte(c)
				if pk.Decode(f) == packet.BadL3 {
					t.Fatal("bad flood frame")
				}
				pk.TimeNS = sec
				d.Add(&pk, packet.PreRouting, 0, nil)
				maxMem = max(maxMem, d.Stats().Mem)
			}
			if maxMem > high+4000 {
				t.Errorf("memory reached %d, high threshold %d", maxMem, high)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 3*high {
				t.Errorf("heap grew by %d bytes under the flood (threshold %d)", grow, high)
			}
			s := d.Stats()
			if s.Queues == 0 || s.Queues > high/1000 {
				t.Errorf("%d queues held", s.Queues)
			}
			frags := packettest.Fragments(realPackets()["udp-3000"], 1480)
			outs, errs := feed(t, d, frags, sec)
			if evict {
				if len(outs) != 1 {
					t.Errorf("evictor: a datagram after the flood was not reassembled: %v", errs)
				}
				if s.Evicted == 0 {
					t.Error("nothing evicted")
				}
			} else if len(outs) != 0 || !errors.Is(errs[0], ErrNoMemory) {
				t.Errorf("kernel policy: datagram after the flood: %d out, %v", len(outs), errs)
			}
			d.GC(1000*sec, nil)
			if s := d.Stats(); s.Queues != 0 || s.Mem != 0 {
				t.Errorf("after GC: %d queues, %d bytes charged", s.Queues, s.Mem)
			}
			outs, _ = feed(t, d, frags, 1001*sec)
			if len(outs) != 1 {
				t.Error("not reassembled after the flood expired")
			}
		})
	}
}

func ipv4HeaderChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// TestManyRuns: 8-byte fragments offered from the end backwards make one
// run each (the worst case for the run list), and still reassemble.
func TestManyRuns(t *testing.T) {
	pkt := realPackets()["udp-65507"]
	frags := packettest.Fragments(pkt, 8)
	d := New(Config{HighThresh: 64 << 20})
	var out []byte
	for i := len(frags) - 1; i >= 0; i-- {
		r, err := d.Add(decode(t, frags[i], sec), packet.PreRouting, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Done {
			out = r.Out
		}
	}
	if !bytes.Equal(out, pkt) {
		t.Fatal("8191 reversed 8-byte fragments did not reassemble")
	}
}

// TestConcurrent: goroutines reassembling different datagrams at once,
// interleaved in one Defrag (run with -race).
func TestConcurrent(t *testing.T) {
	d := New(Config{HashKey: [2]uint64{9, 10}, HighThresh: 64 << 20}) // all 2400 datagrams may be in flight at once
	const workers, per = 8, 300
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One source per datagram: with ~300 datagrams of one source
			// in flight the MaxDist check (64) would restart them, as the
			// kernel does.
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var pk packet.Packet
			dstBuf := make([]byte, 0, 65536)
			pending := map[int][][]byte{}
			want := map[int][]byte{}
			for i := range per {
				s := fmt.Sprintf("10.%d.%d.%d", w+1, i/200, i%200+1)
				pkt := packettest.UDP(packettest.UDPOpts{Src: s, Dst: dst, SrcPort: uint16(i), DstPort: 9,
					Payload: payload(600 + rng.IntN(3000)), IP: packettest.IP{ID: uint16(i)}})
				want[i] = pkt
				pending[i] = packettest.Fragments(pkt, 512)
			}
			got := 0
			for len(pending) > 0 {
				for i, fr := range pending { // random map order interleaves datagrams
					pk.Decode(fr[0])
					pk.TimeNS = sec
					r, err := d.Add(&pk, packet.PreRouting, 0, dstBuf)
					if err != nil {
						t.Errorf("worker %d datagram %d: %v", w, i, err)
						return
					}
					if r.Done {
						if !bytes.Equal(r.Out, want[i]) {
							t.Errorf("worker %d datagram %d differs", w, i)
						}
						got++
					}
					if pending[i] = fr[1:]; len(pending[i]) == 0 {
						delete(pending, i)
					}
				}
			}
			if got != per {
				t.Errorf("worker %d: %d of %d reassembled", w, got, per)
			}
		}()
	}
	wg.Add(1)
	go func() { // GC running alongside, with nothing expired
		defer wg.Done()
		for range 200 {
			d.GC(sec, nil)
			runtime.Gosched()
		}
	}()
	wg.Wait()
	if s := d.Stats(); s.ReasmOKs != workers*per || s.Queues != 0 || s.Mem != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestAllocs: the common case, a datagram in two fragments, allocates
// nothing once queues and buffers are recycled.
func TestAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are meaningless under -cover/-race")
	}
	pkt := packettest.UDP(packettest.UDPOpts{Src: src, Dst: dst, SrcPort: 1, DstPort: 2, Payload: payload(2500),
		IP: packettest.IP{ID: 1}})
	frags := packettest.Fragments(pkt, 1480)
	var p1, p2 packet.Packet
	p1.Decode(frags[0])
	p2.Decode(frags[1])
	d := New(Config{})
	buf := make([]byte, 0, 65536)
	run := func() {
		if _, err := d.Add(&p2, packet.PreRouting, 0, buf); err != nil {
			t.Fatal(err)
		}
		r, err := d.Add(&p1, packet.PreRouting, 0, buf)
		if err != nil || !r.Done {
			t.Fatal("not reassembled", err)
		}
	}
	for range 32 {
		run()
	}
	if a := testing.AllocsPerRun(1000, run); a != 0 {
		t.Errorf("%v allocations per 2-fragment datagram", a)
	}
	// Three fragments of a 4000-byte datagram also fit the recycled buffers.
	big := packettest.Fragments(packettest.UDP(packettest.UDPOpts{Src: src, Dst: dst, SrcPort: 1, DstPort: 2,
		Payload: payload(4000), IP: packettest.IP{ID: 2}}), 1480)
	ps := make([]packet.Packet, len(big))
	for i := range big {
		ps[i].Decode(big[i])
	}
	run3 := func() {
		for i := range ps {
			d.Add(&ps[i], packet.PreRouting, 0, buf)
		}
	}
	for range 32 {
		run3()
	}
	if a := testing.AllocsPerRun(1000, run3); a != 0 {
		t.Errorf("%v allocations per 3-fragment datagram", a)
	}
}

func BenchmarkAdd2Fragments(b *testing.B) {
	pkt := packettest.UDP(packettest.UDPOpts{Src: src, Dst: dst, SrcPort: 1, DstPort: 2, Payload: payload(2500),
		IP: packettest.IP{ID: 1}})
	frags := packettest.Fragments(pkt, 1480)
	var p1, p2 packet.Packet
	p1.Decode(frags[0])
	p2.Decode(frags[1])
	d := New(Config{})
	buf := make([]byte, 0, 65536)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		d.Add(&p1, packet.PreRouting, 0, buf)
		d.Add(&p2, packet.PreRouting, 0, buf)
	}
}

func BenchmarkAdd2FragmentsParallel(b *testing.B) {
	d := New(Config{HashKey: [2]uint64{1, 1}})
	var n sync.Mutex
	next := 0
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		n.Lock()
		w := next
		next++
		n.Unlock()
		pkt := packettest.UDP(packettest.UDPOpts{Src: fmt.Sprintf("10.2.%d.%d", w/250, w%250+1), Dst: dst,
			SrcPort: 1, DstPort: 2, Payload: payload(2500), IP: packettest.IP{ID: 1}})
		frags := packettest.Fragments(pkt, 1480)
		var p1, p2 packet.Packet
		p1.Decode(frags[0])
		p2.Decode(frags[1])
		buf := make([]byte, 0, 65536)
		for pb.Next() {
			d.Add(&p1, packet.PreRouting, 0, buf)
			d.Add(&p2, packet.PreRouting, 0, buf)
		}
	})
}

// TestHashKeyRandomByDefault: a Defrag made without a key (as the engine
// makes its own) hashes with a fresh random key, never the public zero
// key, so a sender cannot aim fragment ids at one bucket chain.
func TestHashKeyRandomByDefault(t *testing.T) {
	a, b := New(Config{}), New(Config{})
	if a.k0 == 0 && a.k1 == 0 {
		t.Fatal("zero hash key")
	}
	if a.k0 == b.k0 && a.k1 == b.k1 {
		t.Fatal("two instances share a hash key")
	}
	if c := New(Config{HashKey: [2]uint64{3, 4}}); c.k0 != 3 || c.k1 != 4 {
		t.Fatalf("given key not kept: %d %d", c.k0, c.k1)
	}
}
