package defrag

import (
	"bytes"
	"errors"
	"testing"

	"github.com/uptables/uptables/internal/header"
)

// TestKernelScenarios replays the scenarios of testdata/kernel/oracle.py and
// expects what Linux 6.18 did with them (testdata/kernel/observed.txt and
// observed-mem.txt): whether the raw table saw a reassembled datagram, its
// length, TOS, TTL, DF and options, and that the data is the first copy
// received.
func TestKernelScenarios(t *testing.T) {
	type want struct {
		ok   bool
		len  int   // 0: 120
		tos  uint8 // reassembled TOS
		ttl  uint8 // 0: 64
		df   bool
		opts []byte
		err  error // an error some fragment must have returned
	}
	nrr := []byte{7, 7, 4, 0, 0, 0, 0, 0}
	tests := []struct {
		name  string
		frags []fragSpec
		want  want
	}{
		{"in order", []fragSpec{{a: 0, b: 48, mf: true}, {a: 48, b: 100}}, want{ok: true}},
		{"reverse order", []fragSpec{{a: 48, b: 100}, {a: 0, b: 48, mf: true}}, want{ok: true}},
		{"exact duplicate of first", []fragSpec{{a: 0, b: 48, mf: true}, {a: 0, b: 48, mf: true}, {a: 48, b: 100}},
			want{ok: true, err: ErrDuplicate}},
		{"duplicate with other bytes: first copy wins", []fragSpec{{a: 0, b: 48, mf: true}, {a: 8, b: 48, mf: true, alt: true}, {a: 48, b: 100}},
			want{ok: true, err: ErrDuplicate}},
		{"tail overlap", []fragSpec{{a: 0, b: 24, mf: true}, {a: 16, b: 100}}, want{err: ErrOverlap}},
		{"overlap then the missing piece", []fragSpec{{a: 0, b: 24, mf: true}, {a: 16, b: 40, mf: true}, {a: 24, b: 100}},
			want{err: ErrOverlap}},
		{"contained in an in-order run is a duplicate",
			[]fragSpec{{a: 0, b: 16, mf: true}, {a: 16, b: 32, mf: true}, {a: 8, b: 24, mf: true, alt: true}, {a: 32, b: 100}},
			want{ok: true, err: ErrDuplicate}},
		{"same bytes across two runs is an overlap",
			[]fragSpec{{a: 16, b: 32, mf: true}, {a: 0, b: 16, mf: true}, {a: 8, b: 24, mf: true, alt: true}, {a: 32, b: 100}},
			want{err: ErrOverlap}},
		{"complete before a late fragment (which starts a new queue)",
			[]fragSpec{{a: 32, b: 100}, {a: 0, b: 16, mf: true}, {a: 16, b: 32, mf: true}, {a: 20, b: 28, mf: true, alt: true}},
			want{ok: true}},
		{"empty MF fragment", []fragSpec{{a: 0, b: 16, mf: true}, {a: 16, b: 16, mf: true}, {a: 16, b: 100}}, want{err: ErrEmpty}},
		{"MF fragment not a multiple of 8 is cut", []fragSpec{{a: 0, b: 20, mf: true}, {a: 16, b: 100}}, want{ok: true}},
		{"MF fragment beyond the last",
			[]fragSpec{{a: 16, b: 100}, {a: 96, rawLen: 8, mf: true}, {a: 0, b: 16, mf: true}}, want{err: ErrBadEnd}},
		{"two different last fragments", []fragSpec{{a: 16, b: 100}, {a: 16, b: 96}, {a: 0, b: 16, mf: true}}, want{err: ErrBadEnd}},
		{"last fragment twice", []fragSpec{{a: 16, b: 100}, {a: 16, b: 100}, {a: 0, b: 16, mf: true}}, want{ok: true, err: ErrDuplicate}},
		{"last fragment again over its pieces",
			[]fragSpec{{a: 16, b: 48, mf: true}, {a: 48, b: 100}, {a: 16, b: 100}, {a: 0, b: 16, mf: true}}, want{ok: true, err: ErrDuplicate}},
		{"fragment covering two earlier runs",
			[]fragSpec{{a: 16, b: 24, mf: true}, {a: 32, b: 40, mf: true}, {a: 8, b: 48, mf: true}, {a: 0, b: 8, mf: true}, {a: 48, b: 100}},
			want{err: ErrOverlap}},
		{"last fragment ending on an odd byte", []fragSpec{{a: 0, b: 16, mf: true}, {a: 16, b: 99}}, want{ok: true, len: 119}},
		{"last fragment before data already seen",
			[]fragSpec{{a: 0, b: 48, mf: true}, {a: 48, b: 56, mf: true}, {a: 8, b: 40}}, want{err: ErrBadEnd}},
		{"TTL and TOS of the first fragment, sent last",
			[]fragSpec{{a: 48, b: 100, ttl: 60, tos: 0x10}, {a: 0, b: 48, mf: true, ttl: 50, tos: 0x20}},
			want{ok: true, tos: 0x20, ttl: 50}},
		{"ECN ECT(0) + Not-ECT", []fragSpec{{a: 0, b: 48, mf: true, tos: 2}, {a: 48, b: 100, tos: 0}}, want{err: ErrECN}},
		{"ECN ECT(0) + CE", []fragSpec{{a: 0, b: 48, mf: true, tos: 2}, {a: 48, b: 100, tos: 3}}, want{ok: true, tos: 3}},
		{"ECN CE + ECT(1)", []fragSpec{{a: 0, b: 48, mf: true, tos: 3}, {a: 48, b: 100, tos: 1}}, want{ok: true, tos: 3}},
		{"DF on the smaller fragment only", []fragSpec{{a: 0, b: 48, mf: true, df: true}, {a: 48, b: 100}}, want{ok: true}},
		{"DF on the larger fragment only", []fragSpec{{a: 0, b: 48, mf: true}, {a: 48, b: 100, df: true}}, want{ok: true, df: true}},
		{"DF on both", []fragSpec{{a: 0, b: 48, mf: true, df: true}, {a: 48, b: 100, df: true}}, want{ok: true, df: true}},
		{"options of the first fragment",
			[]fragSpec{{a: 0, b: 48, mf: true, opts: nrr}, {a: 48, b: 100, opts: []byte{1, 1, 1, 0}}},
			want{ok: true, len: 128, opts: nrr}},
		{"same id, other protocol", []fragSpec{{a: 0, b: 48, mf: true}, {a: 48, b: 100, proto: 253}}, want{}},
		{"a duplicate last fragment still sets the end",
			[]fragSpec{{a: 0, b: 48, mf: true}, {a: 16, b: 48}, {a: 48, b: 100}}, want{err: ErrBadEnd}},
		{"control: the same duplicate with MF", []fragSpec{{a: 0, b: 48, mf: true}, {a: 16, b: 48, mf: true}, {a: 48, b: 100}},
			want{ok: true, err: ErrDuplicate}},
		{"other protocol with the same id does not interfere",
			[]fragSpec{{a: 0, b: 48, mf: true}, {a: 0, b: 48, mf: true, proto: 253}, {a: 48, b: 100}}, want{ok: true}},
	}
	l4 := l4Datagram(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(Config{HashKey: [2]uint64{1, 2}})
			id := uint16(101 + i)
			var frames [][]byte
			for _, f := range tt.frags {
				frames = append(frames, f.build(l4, id))
			}
			outs, errs := feed(t, d, frames, sec)
			if tt.want.err != nil {
				found := false
				for _, e := range errs {
					found = found || errors.Is(e, tt.want.err)
				}
				if !found {
					t.Errorf("errors %v, want one %v", errs, tt.want.err)
				}
			}
			if !tt.want.ok {
				if len(outs) != 0 {
					t.Fatalf("reassembled % x; the kernel dropped it", outs[0])
				}
				return
			}
			if len(outs) != 1 {
				t.Fatalf("%d datagrams reassembled, want 1 (errors %v)", len(outs), errs)
			}
			out := outs[0]
			wl := tt.want.len
			if wl == 0 {
				wl = 120
			}
			if len(out) != wl {
				t.Fatalf("length %d, kernel saw %d", len(out), wl)
			}
			h := header.IPv4(out)
			hl := h.HeaderLen()
			if !bytes.Equal(out[hl:], l4[:wl-hl]) {
				t.Errorf("data differs from the first copies received:\n got % x\nwant % x", out[hl:], l4[:wl-hl])
			}
			if wl == 120 || wl == 128 {
				checkDatagram(t, out)
			}
			wttl := tt.want.ttl
			if wttl == 0 {
				wttl = 64
			}
			if h.TOS() != tt.want.tos || h.TTL() != wttl || h.DontFragment() != tt.want.df || h.ID() != id {
				t.Errorf("header tos %#x ttl %d df %v id %d, want tos %#x ttl %d df %v id %d",
					h.TOS(), h.TTL(), h.DontFragment(), h.ID(), tt.want.tos, wttl, tt.want.df, id)
			}
			if !bytes.Equal(h.Options(), tt.want.opts) && !(len(h.Options()) == 0 && tt.want.opts == nil) {
				t.Errorf("options % x, want % x", h.Options(), tt.want.opts)
			}
		})
	}
}

// TestKernelSizes: 65536 bytes of data never reassemble (the kernel dropped
// them at completion), 65512 bytes give a 65532-byte datagram.
func TestKernelSizes(t *testing.T) {
	for _, tc := range []struct {
		n    int
		ok   bool
		want error
	}{{65536, false, ErrOversize}, {65512, true, nil}, {65515, true, nil}, {65516, false, ErrOversize}} {
		d := New(Config{})
		big := make([]byte, tc.n)
		for i := range big {
			big[i] = byte(i)
		}
		var frames [][]byte
		for off := 0; off < tc.n; off += 1480 {
			end := min(off+1480, tc.n)
			frames = append(frames, ipFrag(big[off:end], off, end < tc.n, 201, 253, 0, 0, false, nil))
		}
		outs, errs := feed(t, d, frames, sec)
		if tc.ok != (len(outs) == 1) {
			t.Errorf("%d bytes: reassembled %d, want ok=%v (errors %v)", tc.n, len(outs), tc.ok, errs[len(errs)-1])
			continue
		}
		if tc.ok {
			if len(outs[0]) != tc.n+20 || !bytes.Equal(outs[0][20:], big) {
				t.Errorf("%d bytes: wrong datagram (len %d)", tc.n, len(outs[0]))
			}
			checkDatagram(t, outs[0])
		} else if !errors.Is(errs[len(errs)-1], tc.want) {
			t.Errorf("%d bytes: last error %v, want %v", tc.n, errs[len(errs)-1], tc.want)
		}
		if s := d.Stats(); s.Queues != 0 || s.Mem != 0 {
			t.Errorf("%d bytes: %d queues, %d bytes left", tc.n, s.Queues, s.Mem)
		}
	}
}

// TestKernelMaxDist: with 60 fragments from the same source to other queues
// in between, the kernel reassembled; with 64 or more (ipfrag_max_dist 64)
// the queue was restarted and the datagram lost.
func TestKernelMaxDist(t *testing.T) {
	l4 := l4Datagram(t)
	for _, tc := range []struct {
		cfg  Config
		k    int
		want bool
	}{
		{Config{}, 60, true}, {Config{}, 63, true}, {Config{}, 64, false}, {Config{}, 65, false}, {Config{}, 70, false},
		{Config{MaxDist: -1}, 500, true}, {Config{MaxDist: 10}, 9, true}, {Config{MaxDist: 10}, 10, false},
	} {
		d := New(tc.cfg)
		frames := [][]byte{ipFrag(l4[:48], 0, true, 300, 17, 0, 0, false, nil)}
		for i := range tc.k {
			frames = append(frames, ipFrag(bytes.Repeat([]byte("z"), 16), 0, true, uint16(1000+i), 253, 0, 0, false, nil))
		}
		frames = append(frames, ipFrag(l4[48:], 48, false, 300, 17, 0, 0, false, nil))
		outs, _ := feed(t, d, frames, sec)
		if (len(outs) == 1) != tc.want {
			t.Errorf("max_dist %d, %d in between: reassembled=%v, want %v", tc.cfg.MaxDist, tc.k, len(outs) == 1, tc.want)
		}
		if !tc.want && d.Stats().Reinits != 1 {
			t.Errorf("max_dist %d, %d in between: %d reinits", tc.cfg.MaxDist, tc.k, d.Stats().Reinits)
		}
	}
}

// TestKernelMemory: above the high threshold every fragment is refused,
// including one that would complete a datagram queued before (the kernel
// with ipfrag_high_thresh=100000 kept 41 queues / 101640 bytes and dropped
// the rest). The charges match the kernel's: 1032 bytes for a queue with one
// small fragment, 2504 with one 1500-byte fragment.
func TestKernelMemory(t *testing.T) {
	l4 := l4Datagram(t)
	d := New(Config{HighThresh: 100000})
	feed(t, d, [][]byte{ipFrag(bytes.Repeat([]byte("q"), 8), 0, true, 1, 253, 0, 0, false, nil)}, sec)
	if m := d.Stats().Mem; m != 1032 {
		t.Errorf("one 28-byte fragment charged %d, kernel 1032", m)
	}
	feed(t, d, [][]byte{ipFrag(bytes.Repeat([]byte("q"), 8), 8, true, 1, 253, 0, 0, false, nil)}, sec)
	if m := d.Stats().Mem; m != 1032+832 {
		t.Errorf("a second small fragment: %d, kernel 1864", m)
	}
	feed(t, d, [][]byte{ipFrag(bytes.Repeat([]byte("q"), 1480), 0, true, 2, 253, 0, 0, false, nil)}, sec)
	if m := d.Stats().Mem; m != 1864+2504 {
		t.Errorf("a queue of one 1500-byte fragment: %d, kernel +2504", m-1864)
	}
	feed(t, d, [][]byte{ipFrag(l4[:48], 0, true, 3, 17, 0, 0, false, nil)}, sec)
	var errs []error
	for i := range 60 {
		_, e := feed(t, d, [][]byte{ipFrag(bytes.Repeat([]byte("q"), 1480), 0, true, uint16(100+i), 253, 0, 0, false, nil)}, sec)
		errs = append(errs, e...)
	}
	s := d.Stats()
	if s.Mem <= 100000 || s.Mem > 100000+2504 {
		t.Errorf("memory %d after the flood, want just above 100000", s.Mem)
	}
	if !errors.Is(errs[len(errs)-1], ErrNoMemory) {
		t.Errorf("flood: last error %v", errs[len(errs)-1])
	}
	outs, e := feed(t, d, [][]byte{ipFrag(l4[48:], 48, false, 3, 17, 0, 0, false, nil)}, sec)
	if len(outs) != 0 || !errors.Is(e[0], ErrNoMemory) {
		t.Errorf("completing fragment above the threshold: %d out, %v; the kernel dropped it", len(outs), e[0])
	}
}
