package scenario

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestSizeLimits: a small file cannot make gen allocate without bound;
// counts and rates that do not fit are refused with the line named, and
// the bound counts every line together.
func TestSizeLimits(t *testing.T) {
	cases := []struct{ text, want string }{
		{"at 0s tcp 10.0.0.1 -> 10.0.0.2:80 count 100000000 send 65000 recv 65000\n", "line 1: the scenario would generate"},
		{"at 0s synflood 10.0.0.0/8 -> 10.0.0.2:80 count 100000000\n", "line 1: the scenario would generate 100000000 packets or more, over the limit of 10000000"},
		{"at 0s udp 10.0.0.1 -> 10.0.0.2:53 count 50000 size 65000\n", "line 1: the scenario would generate 3103 MiB or more, over the limit of 2048 MiB"},
		{strings.Repeat("at 0s synflood 10.0.0.0/8 -> 10.0.0.2:80 count 4000000\n", 3), "line 3: the scenario would generate 12000000 packets"},
		{"at 0s udp 10.0.0.1 -> 10.0.0.2:53 rate NaN/s\n", "rate \"NaN/s\" out of range"},
		{"at 0s udp 10.0.0.1 -> 10.0.0.2:53 rate 1e-300/s\n", "rate \"1e-300/s\" out of range"},
		{"at 1e300d udp 10.0.0.1 -> 10.0.0.2:53\n", "duration \"1e300d\" out of range"},
		{"at NaNd udp 10.0.0.1 -> 10.0.0.2:53\n", "duration \"NaNd\" out of range"},
		{"at 0s udp 10.0.0.1 -> 10.0.0.2:53 every 1000000h\n", "duration \"1000000h\" out of range"},
		{"at 0s udp 10.0.0.1 -> 10.0.0.2:53 count 1000000 every 36500d\n", "line 1: traffic would last past"},
	}
	for _, c := range cases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Parse(c.text)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.text, err, c.want)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("%q: parsing allocated %d bytes", c.text, grew)
		}
	}
	// Just inside the bounds is fine.
	s, err := Parse("at 0s synflood 10.0.0.0/8 -> 10.0.0.2:80 count 10000000 rate 1000000/s\n")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Size(); p != MaxPackets {
		t.Errorf("Size %d packets, want %d", p, MaxPackets)
	}
}

// TestSizeIsUpperBound: Size never undercounts what Generate makes, on the
// shipped examples and every TCP ending.
func TestSizeIsUpperBound(t *testing.T) {
	files, _ := filepath.Glob("../../examples/scenarios/*.scn")
	var texts []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, string(b))
	}
	for _, end := range []string{"close", "reset", "open", "refused", "unanswered"} {
		texts = append(texts, "at 0s tcp 10.0.0.0/24 -> 10.0.0.2:80 count 7 send 3000 recv 1461 hold 1s "+end+"\n")
	}
	texts = append(texts, "at 0s ping ::1 -> ::2 count 3 size 1000\nat 1s udp 10.0.0.1 -> 10.0.0.2:5 count 4 size 10 reply 9\n")
	for _, text := range texts {
		s, err := Parse(text)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		checkSize(t, s)
	}
}

func checkSize(t *testing.T, s *Scenario) {
	t.Helper()
	wantP, wantB := s.Size()
	pkts := Generate(s)
	var b int64
	for i, p := range pkts {
		b += int64(len(p.Data))
		if p.Time.Before(s.Start) || (i > 0 && p.Time.Before(pkts[i-1].Time)) {
			t.Fatalf("packet %d at %v: before the start or out of order", i, p.Time)
		}
	}
	if int64(len(pkts)) > wantP || b > wantB {
		t.Fatalf("generated %d packets, %d bytes; Size said at most %d, %d", len(pkts), b, wantP, wantB)
	}
}

// FuzzParse: any scenario text parses or is refused with a line-numbered
// error, and what parses stays within the bounds; small ones are generated
// and checked against Size.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../examples/scenarios/*.scn")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("at 0s tcp 10.0.0.1 -> 10.0.0.2:80 count 3 send 100 recv 2000 reset\n")
	f.Add("host h 2001:db8::/64\nat 1d ping h -> ::1 size 8 count 2 rate 3/m noreply\n")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse(text)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		p, b := s.Size()
		if p > MaxPackets || b > MaxBytes || p < 1 {
			t.Fatalf("accepted a scenario of %d packets, %d bytes", p, b)
		}
		if p <= 2000 {
			checkSize(t, s)
		}
	})
}
