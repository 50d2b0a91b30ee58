package replay

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/ruleset"
)

// FuzzReplay feeds whole capture files (pcap and pcapng of every supported
// link type, then mutated) through a Replayer. A capture from a stranger is
// hostile input: whatever the bytes, the replay must end with nil or an
// error that says where (which frame, which byte), and never panic.
func FuzzReplay(f *testing.F) {
	eth := mixedFrames(true)
	ip := mixedFrames(false)
	for _, lt := range []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2, layers.LinkTypeRaw} {
		fs := ip
		if lt == layers.LinkTypeEthernet {
			fs = eth
		}
		f.Add(pcapBytes(f, lt, fs))
		f.Add(pcapngBytes(f, lt, "wan0", fs[:2]))
	}
	// One engine for every input: building it per input made the target
	// slow enough to trip Go 1.26's fuzz-deadline race; its state stays
	// bounded (conntrack and the REJECT limiter have fixed sizes).
	e := engine(f, filter(
		&ruleset.Chain{Name: "INPUT", Rules: []*ruleset.Rule{
			logRule("in "),
			reject(header.ProtoTCP, true, dport(22)),
		}},
	))
	f.Fuzz(func(t *testing.T, data []byte) {
		var log bytes.Buffer
		r := New(e, Config{Local: prefixes(host), Log: &log, Observer: &recorder{}})
		err := r.Replay(bytes.NewReader(data))
		if err != nil {
			msg := err.Error()
			if msg == "" || strings.Contains(msg, "%!") {
				t.Fatalf("unclear error %q", msg)
			}
		}
		st := r.Stats()
		if st.Processed+st.SkippedTotal() != st.Frames {
			t.Fatalf("frames %d != processed %d + skipped %d", st.Frames, st.Processed, st.SkippedTotal())
		}
	})
}

// TestCorruptCaptures: every way a capture file can be cut or lie about its
// lengths gives an error naming the frame (and for pcap the byte offset of
// its record), and a file cut anywhere but between two records is never
// taken for a shorter, complete capture.
func TestCorruptCaptures(t *testing.T) {
	pc := pcapBytes(t, layers.LinkTypeEthernet, mixedFrames(true))
	ng := pcapngBytes(t, layers.LinkTypeEthernet, "wan0", mixedFrames(true))
	le := binary.LittleEndian
	with := func(b []byte, edit func([]byte)) []byte {
		b = append([]byte(nil), b...)
		edit(b)
		return b
	}
	// hugeRec is a pcap file header plus one record header claiming n
	// bytes, and nothing else.
	hugeRec := func(snap, n uint32) []byte {
		return with(pc[:pcapFileHdrLen+pcapRecHdrLen], func(b []byte) {
			le.PutUint32(b[16:], snap)
			le.PutUint32(b[pcapFileHdrLen+8:], n)
			le.PutUint32(b[pcapFileHdrLen+12:], n)
		})
	}
	rec2 := pcapFileHdrLen + pcapRecHdrLen + len(linkFrame(layers.LinkTypeEthernet, mixedFrames(true)[0]))
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a capture file"},
		{"not a capture", []byte("GET / HTTP/1.1\r\n"), "not a pcap or pcapng file (magic"},
		{"pcap header cut", pc[:20], "pcap: unexpected EOF"},
		{"record header cut", pc[:30], "frame 1 (record at byte 24): capture truncated"},
		{"record data missing", pc[:40], "frame 1 (record at byte 24): capture truncated: record of 54 bytes"},
		{"second record data missing", pc[:rec2+pcapRecHdrLen], "frame 2 (record at byte 94): capture truncated"},
		{"last record cut", pc[:len(pc)-5], "frame 8 (record at byte 524): capture truncated"},
		{"4 GiB record, 4 GiB snaplen", hugeRec(0xffffffff, 0xfffffff0), "frame 1 (record at byte 24): capture length exceeds snap length: 4294967280 > 262144"},
		{"2 GiB record", hugeRec(65535, 0x7fffffff), "frame 1 (record at byte 24): capture length exceeds snap length"},
		{"caplen over length", with(pc, func(b []byte) { le.PutUint32(b[pcapFileHdrLen+12:], 10) }), "frame 1 (record at byte 24): capture length exceeds original packet length: 54 > 10"},
		{"unsupported link type", with(pc, func(b []byte) { le.PutUint32(b[20:], 147) }), "pcap: unsupported link type 147"},
		{"pcapng header cut", ng[:10], "pcapng: unexpected EOF"},
		{"pcapng block cut", ng[:len(ng)-5], "frame 8: capture truncated"},
		{"pcapng 2 GiB section", with(ng, func(b []byte) { le.PutUint32(b[4:], 0x7ffffff0) }), "pcapng: unexpected EOF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := engine(t, filter())
			r := New(e, Config{})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := r.Replay(bytes.NewReader(c.data))
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			// A few hundred KiB of readers and buffers, whatever the
			// lengths in the file claim.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
				t.Errorf("allocated %d bytes for a %d-byte file", grew, len(c.data))
			}
		})
	}

	// Cut anywhere: nil only at a record boundary, with the frames before
	// the cut replayed.
	for _, c := range []struct {
		name string
		data []byte
	}{{"pcap", pc}, {"pcapng", ng}} {
		boundaries := map[int]uint64{}
		for n := 0; n <= len(c.data); n++ {
			r := New(engine(t, filter()), Config{})
			if err := r.Replay(bytes.NewReader(c.data[:n])); err == nil {
				boundaries[n] = r.Stats().Frames
			}
		}
		// 8 frames: 9 places where a cut leaves a whole capture (after the
		// header, then after each record; pcapng's interface block adds
		// one with no frame).
		want := 9
		if c.name == "pcapng" {
			want = 10
		}
		if len(boundaries) != want {
			t.Errorf("%s: %d cut points give a clean replay, want %d: %v", c.name, len(boundaries), want, boundaries)
		}
		if boundaries[len(c.data)] != 8 {
			t.Errorf("%s: whole file replayed %d frames, want 8", c.name, boundaries[len(c.data)])
		}
	}
}

// TestReplayFileNamesFile: the command line's error names the file.
func TestReplayFileNamesFile(t *testing.T) {
	pc := pcapBytes(t, layers.LinkTypeEthernet, mixedFrames(true))
	path := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(path, pc[:40], 0o644); err != nil {
		t.Fatal(err)
	}
	err := New(engine(t, filter()), Config{}).ReplayFile(path)
	want := path + ": frame 1 (record at byte 24): capture truncated"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %v, want prefix %q", err, want)
	}
}

// TestOversizeFrames: a record longer than libpcap's largest snap length is
// refused, in both formats, even when the file really holds its bytes.
func TestOversizeFrames(t *testing.T) {
	big := frame{raw: make([]byte, maxFrameLen+1)}
	big.raw[12], big.raw[13] = 0x08, 0x00
	for _, c := range []struct {
		name, want string
		data       []byte
	}{
		{"pcap", "frame 1 (record at byte 24): capture length exceeds snap length: 262145 > 65535", pcapBytes(t, layers.LinkTypeEthernet, []frame{big})},
		{"pcapng", "frame 1: pcapng: frame of 262145 bytes, longer than any capture tool writes (262144)", pcapngBytes(t, layers.LinkTypeEthernet, "eth0", []frame{big})},
	} {
		r := New(engine(t, filter()), Config{})
		err := r.Replay(bytes.NewReader(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		if r.Stats().Frames != 0 {
			t.Errorf("%s: %d frames replayed", c.name, r.Stats().Frames)
		}
	}
}

// FuzzParseFilter: any --trace-filter text parses or gives an error naming
// the trace filter; what parses matches packets without panicking.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"host 10.0.0.1 and port 22", "src 2001:db8::/32 and proto udp", "dst 0.0.0.0/0 and proto 6 and port 0", "and", "port"} {
		f.Add(s)
	}
	var p packet.Packet
	p.Decode(syn(client, host, 40000, 22, 1))
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "trace filter: ") {
				t.Fatalf("error %q does not name the trace filter", err)
			}
			return
		}
		flt.Match(&p)
	})
}
