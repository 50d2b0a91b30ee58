package ipset

import (
	"bytes"
	"strings"
	"testing"
)

func mustExec(t *testing.T, ss *Sets, now int64, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if err := ss.Exec(strings.Fields(l), nil, &bytes.Buffer{}, now); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
	}
}

func listing(t *testing.T, ss *Sets, now int64) string {
	t.Helper()
	var b bytes.Buffer
	if err := ss.Exec([]string{"save"}, nil, &b, now); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// fileSets is what loading the sets file gives at now.
func fileSets(t *testing.T, now int64, extra ...string) *Sets {
	ss := New(nil)
	mustExec(t, ss, now, append([]string{
		"create bl hash:net counters",
		"add bl 10.0.0.0/8",
		"add bl 10.1.0.0/16 nomatch",
		"create knock hash:ip timeout 10",
	}, extra...)...)
	ss.MarkOrigin(now)
	return ss
}

// TestStateRoundTrip: what SET targets and commands changed is saved with
// exact expiry times and comes back at a later start; entries expired
// meanwhile do not, one with half a second left is not made permanent.
func TestStateRoundTrip(t *testing.T) {
	t0 := int64(1_700_000_000e9)
	ss := fileSets(t, t0)
	mustExec(t, ss, t0+1e9, "add knock 10.0.0.1", "add knock 10.0.0.2 timeout 3", "add bl 192.0.2.0/24")
	s, _ := ss.Get("bl")
	var src [MaxDim]bool
	src[0] = true
	s.Lookup(&Packet{Src: 10<<24 | 5, Len: 60}, &src, t0+2e9, true)
	var buf bytes.Buffer
	if err := ss.WriteState(&buf, t0+3_500_000_000); err != nil {
		t.Fatal(err)
	}
	// Restart 2 s later: the same sets file, then the state.
	t1 := t0 + 5_500_000_000
	next := fileSets(t, t1)
	next.SetReferences(map[string]int{"knock": 1})
	ref, _ := next.Ref("knock")
	savedAt, outs, err := next.RestoreState(bytes.NewReader(buf.Bytes()), t1)
	if err != nil {
		t.Fatal(err)
	}
	if savedAt != t0+3_500_000_000 || len(outs) != 2 || !outs[0].Restored || !outs[1].Restored {
		t.Fatalf("savedAt %d outcomes %+v", savedAt, outs)
	}
	if r2, _ := next.Ref("knock"); r2 != ref || ref.References() != 1 {
		t.Fatal("the restored set must stay behind the Ref rules hold")
	}
	// 10.0.0.1 was added at t0+1s with timeout 10: 5.5 s left at t1, listed as 5.
	// 10.0.0.2 expired at t0+4s, before the restart.
	want := "create knock hash:ip family inet hashsize 1024 maxelem 65536 timeout 10 bucketsize 12 initval 0x"
	got := listing(t, next, t1)
	if !strings.Contains(got, want) || !strings.Contains(got, "add knock 10.0.0.1 timeout 5\n") || strings.Contains(got, "10.0.0.2") {
		t.Fatalf("after restore:\n%s", got)
	}
	if !strings.Contains(got, "add bl 192.0.2.0/24 packets 0 bytes 0\n") || !strings.Contains(got, "add bl 10.0.0.0/8 packets 1 bytes 60\n") ||
		!strings.Contains(got, "add bl 10.1.0.0/16 nomatch packets 0 bytes 0\n") {
		t.Fatalf("after restore:\n%s", got)
	}
	// Exact expiry: gone at t0+11s, not a nanosecond later.
	k, _ := next.Get("knock")
	if k.Len(t0+11e9-1) != 1 || k.Len(t0+11e9) != 0 {
		t.Fatal("expiry not exact")
	}
}

// TestStateFileWins: a set the sets file changed since the save takes the
// file's contents; one the file no longer has is dropped; one made at run
// time comes back.
func TestStateFileWins(t *testing.T) {
	t0 := int64(1_700_000_000e9)
	ss := fileSets(t, t0)
	mustExec(t, ss, t0, "add knock 10.0.0.9", "add bl 192.0.2.0/24", "create adhoc hash:ip", "add adhoc 198.51.100.1")
	var buf bytes.Buffer
	if err := ss.WriteState(&buf, t0); err != nil {
		t.Fatal(err)
	}
	next := New(nil)
	mustExec(t, next, t0+1e9, "create bl hash:net counters", "add bl 10.0.0.0/8", "add bl 172.16.0.0/12")
	next.MarkOrigin(t0 + 1e9)
	_, outs, err := next.RestoreState(&buf, t0+1e9)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, o := range outs {
		got[o.Name] = o.Restored
	}
	if got["bl"] || got["knock"] || !got["adhoc"] {
		t.Fatalf("outcomes %+v", outs)
	}
	l := listing(t, next, t0+1e9)
	if !strings.Contains(l, "add bl 172.16.0.0/12") || strings.Contains(l, "192.0.2.0") || strings.Contains(l, "knock") ||
		!strings.Contains(l, "add adhoc 198.51.100.1") {
		t.Fatalf("after restore:\n%s", l)
	}
}

// TestStateCorrupt: a damaged file is an error naming the line, and
// nothing changes.
func TestStateCorrupt(t *testing.T) {
	for _, in := range []string{"", "create x hash:ip\n", StateMagic + " saved_at_ns 1\ncreate x hash:nope\n",
		StateMagic + " saved_at_ns 1\ncreate x hash:ip\nadd x 1.2.3.4\n", StateMagic + " saved_at_ns 1\nflush\n"} {
		ss := fileSets(t, 0)
		before := listing(t, ss, 0)
		if _, _, err := ss.RestoreState(strings.NewReader(in), 0); err == nil {
			t.Errorf("%q: no error", in)
		}
		if listing(t, ss, 0) != before {
			t.Errorf("%q: sets changed", in)
		}
	}
}

// TestReferencesAndDestroy: References: counts what SetReferences says; a
// referenced set cannot be destroyed, with the kernel's text, also not by
// destroying every set; a clone keeps the counts.
func TestReferencesAndDestroy(t *testing.T) {
	ss := fileSets(t, 0)
	ss.SetReferences(map[string]int{"bl": 4})
	if l := listing(t, ss, 0); l == "" {
		t.Fatal("empty")
	}
	var b bytes.Buffer
	if err := ss.Exec([]string{"list", "-t", "bl"}, nil, &b, 0); err != nil || !strings.Contains(b.String(), "\nReferences: 4\n") {
		t.Fatalf("%v\n%s", err, b.String())
	}
	for _, args := range [][]string{{"destroy", "bl"}, {"destroy"}} {
		msg, code := Report(ss.Clone().Exec(args, nil, &b, 0))
		if code != 1 || msg != "ipset v7.17: Set cannot be destroyed: it is in use by a kernel component\n" {
			t.Fatalf("%v: %q %d", args, msg, code)
		}
	}
	if err := ss.Exec([]string{"destroy", "knock"}, nil, &b, 0); err != nil {
		t.Fatal(err)
	}
	ss.SetReferences(nil)
	if err := ss.Exec([]string{"destroy", "bl"}, nil, &b, 0); err != nil {
		t.Fatal(err)
	}
}
