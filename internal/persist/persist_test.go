package persist

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/xt"
)

// rulesRT exercises every kind of saved state: a list with a --hitcount
// rule (ring 32, shared with a --set rule), a list wrapped many times, a
// list checked with --rttl (the TTL must survive), a packet-mode hashlimit table with partial
// buckets and a byte-mode one.
const rulesRT = `
-A INPUT -p tcp --dport 22 -m recent --name SSH --rcheck --seconds 60 --hitcount 4 -j DROP
-A INPUT -p tcp --dport 22 -m recent --name SSH --set
-A INPUT -p tcp --dport 23 -m recent --name SCAN --set -j DROP
-A INPUT -p tcp --dport 24 -m recent --name TTL --rcheck --rttl -j ACCEPT
-A INPUT -p tcp --dport 24 -m recent --name TTL --set -j DROP
-A INPUT -p udp --dport 53 -m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 10 --hashlimit-mode srcip,dstport --hashlimit-name HL -j ACCEPT
-A INPUT -p udp --dport 53 -j DROP
-A INPUT -p udp --dport 123 -m hashlimit --hashlimit-above 2kb/s --hashlimit-burst 3kb --hashlimit-mode srcip --hashlimit-name HB -j DROP
`

// drive sends a mixed history from now on and returns the time after it.
func drive(r *rig, now int64) int64 {
	step := func(d time.Duration) { now += d.Nanoseconds() }
	for i := 0; i < 3; i++ {
		r.tcp("192.0.2.1", 22, 64, now)
		step(5 * time.Second)
	}
	for i := 0; i < 45; i++ { // ring of 32 wraps: index 13
		r.tcp("198.51.100.7", 23, 64, now)
		step(100 * time.Millisecond)
	}
	for i := 0; i < 5; i++ {
		r.tcp(fmt.Sprintf("198.51.100.%d", 20+i), 23, 64, now)
		step(time.Second)
	}
	r.tcp("203.0.113.5", 24, 64, now) // entry ttl 64
	step(time.Second)
	r.tcp("203.0.113.5", 24, 50, now) // --rttl misses; --set records ttl 50
	step(time.Second)
	for i := 0; i < 14; i++ { // HL: 10.x drained (burst 10), others partial
		r.udp("10.1.0.1", 53, 10, now)
		if i%3 == 0 {
			r.udp("10.1.0.2", 53, 10, now)
		}
		r.udp("10.1.0.3", 123, 600, now)
		step(30 * time.Millisecond)
	}
	return now
}

func TestRoundTrip(t *testing.T) {
	a := newRig(t, 1, rulesRT)
	now := drive(a, t0)
	dir := t.TempDir()
	if err := Save(dir, a.e, at(now)); err != nil {
		t.Fatal(err)
	}
	b := newRig(t, 2, rulesRT) // other seed: other hash keys
	rep, err := Load(dir, b.e, at(now))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Dropped() != 0 || rep.Clamped != 0 {
		t.Fatalf("round trip dropped or clamped:\n%s", rep.String())
	}
	wantRestored := 0
	for _, n := range []int{1, 6, 1, 2, 1} { // SSH, SCAN, TTL, HL, HB
		wantRestored += n
	}
	if rep.Restored() != wantRestored {
		t.Errorf("restored %d entries, want %d:\n%s", rep.Restored(), wantRestored, rep.String())
	}
	ra, rb := procRecent(a.e), procRecent(b.e)
	if ra != rb {
		t.Fatalf("/proc/net/xt_recent differs after Load:\n%s\nvs\n%s", ra, rb)
	}
	if !strings.Contains(ra, "src=198.51.100.7 ttl: 64") || !strings.Contains(ra, "oldest_pkt: 13 ") {
		t.Fatalf("history not as expected (a wrapped ring):\n%s", ra)
	}
	if !strings.Contains(ra, "src=203.0.113.5 ttl: 50 ") {
		t.Fatalf("want the TTL of the last --set:\n%s", ra)
	}
	ha, hb := procHashlimit(a.e, now), procHashlimit(b.e, now)
	if ha != hb {
		t.Fatalf("/proc/net/ipt_hashlimit differs after Load:\n%s\nvs\n%s", ha, hb)
	}
	// Both engines now answer every packet alike and end in the same state.
	for i := 0; i < 60; i++ {
		now += 40 * time.Millisecond.Nanoseconds()
		src := fmt.Sprintf("10.1.0.%d", 1+i%4)
		if va, vb := a.udp(src, 53, 10, now), b.udp(src, 53, 10, now); va != vb {
			t.Fatalf("HL packet %d from %s: original %v, restored %v", i, src, va, vb)
		}
		if va, vb := a.udp("10.1.0.3", 123, 400, now), b.udp("10.1.0.3", 123, 400, now); va != vb {
			t.Fatalf("HB packet %d: original %v, restored %v", i, va, vb)
		}
		if va, vb := a.tcp("192.0.2.1", 22, 64, now), b.tcp("192.0.2.1", 22, 64, now); va != vb {
			t.Fatalf("SSH packet %d: original %v, restored %v", i, va, vb)
		}
		for _, ttl := range []int{64, 50, 40} {
			if va, vb := a.tcp("203.0.113.5", 24, ttl, now), b.tcp("203.0.113.5", 24, ttl, now); va != vb {
				t.Fatalf("TTL packet %d ttl %d: original %v, restored %v", i, ttl, va, vb)
			}
		}
	}
	if ra, rb := procRecent(a.e), procRecent(b.e); ra != rb {
		t.Fatalf("recent lists diverged:\n%s\nvs\n%s", ra, rb)
	}
	if ha, hb := procHashlimit(a.e, now), procHashlimit(b.e, now); ha != hb {
		t.Fatalf("hashlimit tables diverged:\n%s\nvs\n%s", ha, hb)
	}
}

// TestAging: a --seconds 60 ban survives a 30-second restart and is gone
// after a 10-minute one; a drained hashlimit bucket stays drained across a
// quick restart and is full again after its expiry, as after a reboot.
func TestAging(t *testing.T) {
	const rules = `
-A INPUT -p tcp --dport 22 -m recent --name BAN --rcheck --seconds 60 -j DROP
-A INPUT -p tcp --dport 23 -m recent --name BAN --set -j DROP
-A INPUT -p udp -m hashlimit --hashlimit-upto 1/min --hashlimit-burst 1 --hashlimit-mode srcip --hashlimit-name HL --hashlimit-htable-expire 120000 -j ACCEPT
-A INPUT -p udp -j DROP
`
	a := newRig(t, 1, rules)
	a.tcp("192.0.2.9", 23, 64, t0) // knock: banned for 60 s
	if v := a.udp("192.0.2.9", 53, 1, t0); v != xt.VerdictAccept {
		t.Fatal("first datagram limited")
	}
	dir := t.TempDir()
	if err := Save(dir, a.e, at(t0)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		after      time.Duration
		restore    bool
		ssh, udp   xt.Verdict
		hlRestored int
	}{
		{30 * time.Second, true, xt.VerdictDrop, xt.VerdictDrop, 1},
		{30 * time.Second, false, xt.VerdictAccept, xt.VerdictAccept, 0}, // what a restart loses today
		{10 * time.Minute, true, xt.VerdictAccept, xt.VerdictAccept, 0},
	} {
		b := newRig(t, 3, rules)
		now := t0 + c.after.Nanoseconds()
		if c.restore {
			rep, err := Load(dir, b.e, at(now))
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range rep.Objects {
				if o.Kind == "hashlimit" && o.Restored != c.hlRestored {
					t.Errorf("after %v: hashlimit restored %d, want %d:\n%s", c.after, o.Restored, c.hlRestored, rep.String())
				}
			}
		}
		if v := b.tcp("192.0.2.9", 22, 64, now); v != c.ssh {
			t.Errorf("after %v (restore %v): ssh %v, want %v", c.after, c.restore, v, c.ssh)
		}
		if v := b.udp("192.0.2.9", 53, 1, now); v != c.udp {
			t.Errorf("after %v (restore %v): udp %v, want %v", c.after, c.restore, v, c.udp)
		}
	}
}

func findOutcome(t *testing.T, rep Report, kind, name string) Outcome {
	t.Helper()
	for _, o := range rep.Objects {
		if o.Kind == kind && o.Name == name {
			return o
		}
	}
	t.Fatalf("no outcome for %s %s:\n%s", kind, name, rep.String())
	return Outcome{}
}

func reasons(o Outcome) string {
	var s []string
	for _, d := range o.Dropped {
		s = append(s, fmt.Sprintf("%d:%s", d.Count, d.Reason))
	}
	return strings.Join(s, "|")
}

// TestRulesChanged: what survives when the ruleset differs at Load.
func TestRulesChanged(t *testing.T) {
	const saved = `
-A INPUT -p tcp --dport 22 -m recent --name KEEP --set
-A INPUT -p tcp --dport 23 -m recent --name GONE --set
-A INPUT -p tcp --dport 24 -m recent --name GROW --set
-A INPUT -p tcp --dport 25 -m recent --name MASK --set
-A INPUT -p tcp --dport 26 -m recent --name SHRINK --set
-A INPUT -p udp --dport 53 -m hashlimit --hashlimit-upto 5/sec --hashlimit-mode srcip --hashlimit-name RATE
-A INPUT -p udp --dport 54 -m hashlimit --hashlimit-upto 5/sec --hashlimit-mode srcip --hashlimit-name SIZE
`
	a := newRig(t, 1, saved)
	now := t0
	for i := 0; i < 40; i++ {
		for _, port := range []uint16{22, 23, 24, 25, 26} {
			a.tcp(fmt.Sprintf("192.0.2.%d", i%3), port, 64, now)
		}
		a.udp(fmt.Sprintf("192.0.2.%d", i%3), 53, 1, now)
		a.udp(fmt.Sprintf("192.0.2.%d", i%3), 54, 1, now)
		now += 50 * time.Millisecond.Nanoseconds()
	}
	dir := t.TempDir()
	if err := Save(dir, a.e, at(now)); err != nil {
		t.Fatal(err)
	}
	const changed = `
-A INPUT -p tcp --dport 22 -m recent --name KEEP --set
-A INPUT -p tcp --dport 24 -m recent --name GROW --rcheck --hitcount 40
-A INPUT -p tcp --dport 25 -m recent --name MASK --set --mask 255.255.255.0
-A INPUT -p tcp --dport 26 -m recent --name SHRINK --rcheck --hitcount 8 -j DROP
-A INPUT -p udp --dport 53 -m hashlimit --hashlimit-upto 10/sec --hashlimit-mode srcip --hashlimit-name RATE
-A INPUT -p udp --dport 54 -m hashlimit --hashlimit-upto 5/sec --hashlimit-mode srcip --hashlimit-name SIZE --hashlimit-htable-size 64
`
	for _, keep := range []bool{false, true} {
		b := newRig(t, 2, changed)
		rep, err := LoadWith(dir, b.e, at(now), LoadOptions{KeepOnRingGrowth: keep})
		if err != nil {
			t.Fatal(err)
		}
		check := func(kind, name string, restored int, reason string) {
			t.Helper()
			o := findOutcome(t, rep, kind, name)
			if o.Saved != 3 || o.Restored != restored || !strings.Contains(reasons(o), reason) {
				t.Errorf("keep=%v %s %s: saved %d restored %d dropped %q; want restored %d, reason %q",
					keep, kind, name, o.Saved, o.Restored, reasons(o), restored, reason)
			}
		}
		check("recent", "KEEP", 3, "")
		check("recent", "GONE", 0, "3:no rule names this list")
		check("recent", "MASK", 0, "3:the list's --mask changed")
		check("recent", "SHRINK", 3, "")
		check("hashlimit", "RATE", 0, "3:the table's mode, masks or rate changed")
		check("hashlimit", "SIZE", 3, "")
		if keep {
			check("recent", "GROW", 3, "")
		} else {
			check("recent", "GROW", 0, "3:its rules now need a ring of 64 stamps, it had 32")
		}
		// The shrunken list keeps the saved ring of 32: all 14 stamps of
		// 192.0.2.0, and an --hitcount 8 check sees them.
		if !strings.Contains(procRecent(b.e), "== SHRINK\n") {
			t.Fatal("SHRINK not listed")
		}
		if v := b.tcp("192.0.2.0", 26, 64, now); v != xt.VerdictDrop {
			t.Errorf("keep=%v: SHRINK lost its stamps", keep)
		}
		pa, pb := procRecent(a.e), procRecent(b.e)
		if sa, sb := section(pa, "KEEP"), section(pb, "KEEP"); sa != sb {
			t.Errorf("KEEP differs:\n%s\nvs\n%s", sa, sb)
		}
		if sa, sb := section(pa, "SHRINK"), section(pb, "SHRINK"); sa != sb {
			t.Errorf("SHRINK differs:\n%s\nvs\n%s", sa, sb)
		}
		if keep {
			// Wider ring, same stamps in time order: the saved ring had not
			// wrapped (14 stamps), so /proc is the same.
			if sa, sb := section(pa, "GROW"), section(pb, "GROW"); sa != sb {
				t.Errorf("GROW differs:\n%s\nvs\n%s", sa, sb)
			}
		}
	}
}

// TestKeepOnRingGrowthWrapped: a wrapped ring moves into a larger one
// oldest first, and a --hitcount rule counts all the stamps.
func TestKeepOnRingGrowthWrapped(t *testing.T) {
	a := newRig(t, 1, `-A INPUT -p tcp --dport 22 -m recent --name L --set`)
	now := t0
	for i := 0; i < 40; i++ {
		a.tcp("192.0.2.1", 22, 64, now)
		now += 1e9
	}
	dir := t.TempDir()
	if err := Save(dir, a.e, at(now)); err != nil {
		t.Fatal(err)
	}
	b := newRig(t, 2, `-A INPUT -p tcp --dport 22 -m recent --name L --rcheck --seconds 100 --hitcount 33 -j DROP
-A INPUT -p tcp --dport 22 -m recent --name L --set`)
	if _, err := LoadWith(dir, b.e, at(now), LoadOptions{KeepOnRingGrowth: true}); err != nil {
		t.Fatal(err)
	}
	p := procRecent(b.e)
	if !strings.Contains(p, "oldest_pkt: 32 ") || strings.Count(p, ",") != 31 {
		t.Fatalf("want the 32 saved stamps, index 32:\n%s", p)
	}
	// 32 stamps within 100 s: the 33rd packet is counted after its --set.
	if v := b.tcp("192.0.2.1", 22, 64, now); v != xt.VerdictAccept {
		t.Fatal("33 hits too early")
	}
	if v := b.tcp("192.0.2.1", 22, 64, now+1e9); v != xt.VerdictDrop {
		t.Fatal("33 hits not seen: stamps lost in the ring growth")
	}
}

func TestMaxAgeAndFutureClamp(t *testing.T) {
	const rules = `-A INPUT -p tcp --dport 22 -m recent --name L --set`
	a := newRig(t, 1, rules)
	a.tcp("192.0.2.1", 22, 64, t0)
	a.tcp("192.0.2.2", 22, 64, t0+3600e9)
	dir := t.TempDir()
	if err := Save(dir, a.e, at(t0+3600e9)); err != nil {
		t.Fatal(err)
	}
	b := newRig(t, 2, rules)
	rep, err := LoadWith(dir, b.e, at(t0+3600e9+60e9), LoadOptions{MaxAge: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if o := findOutcome(t, rep, "recent", "L"); o.Restored != 1 || !strings.Contains(reasons(o), "1:last seen more than 30m0s ago") {
		t.Fatalf("MaxAge: %s", rep.String())
	}
	// The clock went back a day (no RTC): stamps clamped to now.
	c := newRig(t, 3, rules)
	back := t0 - 86400e9
	rep, err = Load(dir, c.e, at(back))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Clamped != 2 {
		t.Fatalf("clamped %d, want 2:\n%s", rep.Clamped, rep.String())
	}
	for _, en := range mustList(t, c, "L") {
		if en.LastSeenNS != back {
			t.Errorf("%v last seen %d, want now %d", en.Addr, en.LastSeenNS, back)
		}
	}
}

func TestNoFile(t *testing.T) {
	r := newRig(t, 1, `-A INPUT -m recent --name L --set`)
	rep, err := Load(t.TempDir(), r.e, at(t0))
	if err != nil || !rep.NoFile || !strings.Contains(rep.String(), "no saved state") {
		t.Fatalf("missing file: %v %+v", err, rep)
	}
}

func TestDirErrors(t *testing.T) {
	r := newRig(t, 1, `-A INPUT -m recent --name L --set`)
	missing := filepath.Join(t.TempDir(), "nope")
	if err := Save(missing, r.e, at(t0)); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("save into a missing directory: %v", err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, FileName), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, r.e, at(t0)); err == nil {
		t.Error("state.json is a directory: loaded")
	}
	if err := Save(dir, r.e, at(t0)); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("rename over a directory: %v", err)
	}
}
