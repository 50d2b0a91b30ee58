// Package persist keeps the engine's named state across restarts: the
// recent lists (every entry with its TTL, whole ring of timestamps and
// write index; the list's mask, capacity and ring size) and the hashlimit
// tables (configuration, every bucket's credit, cap, cost, last refill and
// expiry, and the garbage collector's schedule). The kernel keeps these in
// memory and loses them at reboot; users patch that today with scripts that
// dump /proc/net/xt_recent and write addresses back, which loses the rings
// (a restored address has one stamp, "now") and the TTLs.
//
// What is not kept, on purpose: conntrack (the kernel loses it too, and a
// restored table would hold connections whose peers have moved on; TCP
// picks them up again as the kernel's does), limit buckets and connlimit
// bookkeeping (limit refills on restart as after a reboot; connlimit counts
// conntrack entries), rule counters (iptables-save -c and restore -c are
// the tool for those), quota and statistic counters.
//
// # Clocks
//
// The engine's time is the packets' timestamps. For a live daemon (NFQUEUE,
// proxy) these are ns since the Unix epoch, the wall clock, so the file
// stores times exactly as the engine holds them and Load ages them by
// comparing with now: restore ten minutes later and a --seconds 60 rule no
// longer sees the old stamps, as if the daemon had run idle. Pass now as
// the engine's current time (time.Now() for a live daemon). An engine on
// another clock (a replay of an old capture) may save and load too, as
// long as now is given on that same clock. Times later than now when
// loading (the clock went back, no RTC) are clamped to now, so that a
// stamp from the future cannot keep an address banned.
//
// # Rules that changed
//
// Load behaves as if the daemon had not stopped and the new ruleset had been
// loaded over the saved state, as in a kernel where a list or table lives
// as long as a rule names it:
//   - a list or table no rule names is dropped (the kernel destroys it
//     with its last rule); so is one in a store that cannot restore (Redis
//     keeps its own state);
//   - a recent list whose rules now need a larger ring (a higher
//     --hitcount) is flushed, as xt_recent's checkentry flushes a list
//     whose ring grows; LoadOptions.KeepOnRingGrowth keeps its entries
//     instead, stamps moved into the larger ring oldest first;
//   - a recent list whose rules need a smaller ring keeps the saved ring
//     (a kernel list never shrinks its ring while it lives);
//   - a recent list whose --mask changed is flushed (its entries were
//     keyed by the old mask and would never match again);
//   - a hashlimit table whose mode, masks or rate changed is dropped
//     (credits in other units); one whose htable-size, htable-max,
//     gcinterval or expire changed keeps its buckets (the latest expiring
//     up to htable-max);
//   - hashlimit buckets the garbage collector would have removed by now
//     are removed (so a restart after the expiry starts with full
//     buckets, as after a reboot); recent entries are never aged out by
//     themselves (the kernel does not either) unless LoadOptions.MaxAge
//     asks for it.
//
// Every such drop is counted in the Report with its reason.
package persist

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/match"
)

// Save writes the engine's recent lists and hashlimit tables to
// dir/state.json atomically: a temporary file in dir, written, fsynced,
// renamed over the old file, then dir fsynced, so that a crash or a failed
// write leaves the previous file whole. Each list and table is copied under
// its own lock (packets may flow meanwhile; the file is not one instant
// across lists). now is the engine's current time (see the package doc).
// The file is readable by its owner only: it holds client addresses.
func Save(dir string, e *netfilter.Engine, now time.Time) error {
	return save(osFS{}, dir, e, now)
}

func save(fsys fileSystem, dir string, e *netfilter.Engine, now time.Time) error {
	st := snapshot(e, now.UnixNano())
	data, err := encode(st)
	if err != nil {
		return fmt.Errorf("persist: encoding state: %w", err)
	}
	if err := writeAtomic(fsys, dir, data); err != nil {
		return fmt.Errorf("persist: saving %s: %w", filepath.Join(dir, FileName), err)
	}
	return saveSets(fsys, dir, e, now.UnixNano())
}

// snapshot copies every restorable list and table of e.
func snapshot(e *netfilter.Engine, nowNS int64) *state {
	st := &state{SavedAtNS: nowNS}
	named := e.Named()
	for _, name := range e.SharedNames(match.NamedRecentKind) {
		l, ok := match.RecentListByName(named, name)
		if !ok {
			continue // removed by a reload meanwhile
		}
		ss, ok := l.(statestore.RecentSnapshotter)
		if !ok {
			continue // a store that persists itself
		}
		s := ss.Snapshot()
		if s.Ring == 0 {
			continue // never used by a rule
		}
		st.Recent = append(st.Recent, s)
	}
	for _, fam := range []xt.Family{xt.IPv4, xt.IPv6} {
		kind := match.NamedHashlimitKind4
		if fam == xt.IPv6 {
			kind = match.NamedHashlimitKind6
		}
		for _, name := range e.SharedNames(kind) {
			t, ok := match.HashlimitTableByName(named, fam, name)
			if !ok {
				continue
			}
			if ss, ok := t.(statestore.HashlimitSnapshotter); ok {
				st.Hashlimit = append(st.Hashlimit, ss.Snapshot())
			}
		}
	}
	return st
}

// LoadOptions change what Load keeps; the zero value is the kernel's
// semantics.
type LoadOptions struct {
	// KeepOnRingGrowth keeps the entries of a recent list whose rules now
	// need a larger ring than it had, instead of flushing it as xt_recent
	// does. The stamps move into the larger ring oldest first.
	KeepOnRingGrowth bool
	// MaxAge, when positive, drops recent entries whose newest stamp is
	// older than now-MaxAge (a restart after a long outage need not bring
	// back week-old entries that rules without --seconds would still see).
	MaxAge time.Duration
}

// Drop counts entries left out of a restore for one reason.
type Drop struct {
	Count  int
	Reason string
}

// Outcome is what happened to one saved list or table.
type Outcome struct {
	// Kind is the registry kind: "recent", "hashlimit" (IPv4) or
	// "hashlimit6".
	Kind     string
	Name     string
	Saved    int // entries in the file
	Restored int // entries in the engine after Load
	Dropped  []Drop
	// Err is set when restoring this object failed (only possible when a
	// ruleset load ran concurrently with Load).
	Err error
}

// Report describes a Load.
type Report struct {
	File string
	// NoFile is true when there was no state file (a first start): nothing
	// was restored and Load returned no error.
	NoFile  bool
	SavedAt time.Time
	Objects []Outcome
	// Clamped counts times found later than now and set to now.
	Clamped int
}

// Restored and Dropped total the entries over all objects.
func (r *Report) Restored() int {
	n := 0
	for i := range r.Objects {
		n += r.Objects[i].Restored
	}
	return n
}

// Dropped totals the entries left out.
func (r *Report) Dropped() int {
	n := 0
	for i := range r.Objects {
		for _, d := range r.Objects[i].Dropped {
			n += d.Count
		}
	}
	return n
}

// String is a multi-line summary for logs.
func (r *Report) String() string {
	if r.NoFile {
		return fmt.Sprintf("%s: no saved state", r.File)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (saved %s): %d entries restored, %d dropped", r.File,
		r.SavedAt.UTC().Format(time.RFC3339), r.Restored(), r.Dropped())
	if r.Clamped > 0 {
		fmt.Fprintf(&b, ", %d future times clamped to now", r.Clamped)
	}
	for _, o := range r.Objects {
		fmt.Fprintf(&b, "\n  %s %s: %d of %d restored", o.Kind, o.Name, o.Restored, o.Saved)
		for _, d := range o.Dropped {
			fmt.Fprintf(&b, "; %d dropped: %s", d.Count, d.Reason)
		}
		if o.Err != nil {
			fmt.Fprintf(&b, "; error: %v", o.Err)
		}
	}
	return b.String()
}

func (o *Outcome) drop(n int, format string, args ...any) {
	if n > 0 {
		o.Dropped = append(o.Dropped, Drop{Count: n, Reason: fmt.Sprintf(format, args...)})
	}
}

// Load restores what Save wrote into e with the kernel's semantics; see
// LoadWith.
func Load(dir string, e *netfilter.Engine, now time.Time) (Report, error) {
	return LoadWith(dir, e, now, LoadOptions{})
}

// LoadWith restores dir/state.json into e. Call it after e's ruleset is
// loaded (a list exists only when a rule names it) and before packets flow
// (each restored list or table replaces what it holds); not concurrently
// with e.Load. What is kept when the rules changed is described in the
// package doc and reported per object.
//
// A missing file is a first start: NoFile is set, the error is nil. A file
// that cannot be read, is truncated or corrupt, holds values of the wrong
// type or state the algorithms cannot produce, or comes from a newer
// format version is an error naming the file and the problem, and nothing
// is changed.
func LoadWith(dir string, e *netfilter.Engine, now time.Time, opts LoadOptions) (Report, error) {
	rep, err := loadWith(dir, e, now, opts)
	if err != nil {
		return rep, err
	}
	return rep, loadSets(dir, e, now.UnixNano(), &rep)
}

func loadWith(dir string, e *netfilter.Engine, now time.Time, opts LoadOptions) (Report, error) {
	path := filepath.Join(dir, FileName)
	rep := Report{File: path}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		rep.NoFile = true
		return rep, nil
	}
	if err != nil {
		return rep, fmt.Errorf("persist: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return rep, fmt.Errorf("persist: reading %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return rep, fmt.Errorf("persist: %s: larger than %d bytes, not a state file this uptables wrote", path, MaxFileSize)
	}
	st, err := decode(data)
	if err != nil {
		return rep, fmt.Errorf("persist: %s: %w", path, err)
	}
	rep.SavedAt = time.Unix(0, st.SavedAtNS)
	if err := apply(st, e, now.UnixNano(), opts, &rep); err != nil {
		return rep, fmt.Errorf("persist: %s: %w", path, err)
	}
	return rep, nil
}

type recentPlan struct {
	ss  statestore.RecentSnapshotter
	s   *statestore.RecentSnapshot
	out int
}

type hlPlan struct {
	t   statestore.HashlimitTable
	ss  statestore.HashlimitSnapshotter
	s   *statestore.HashlimitSnapshot
	out int
}

// apply adapts a decoded state to e's current rules and restores it. The
// plan is made completely before the first object is touched.
func apply(st *state, e *netfilter.Engine, nowNS int64, opts LoadOptions, rep *Report) error {
	named := e.Named()
	var rp []recentPlan
	var hp []hlPlan
	for i := range st.Recent {
		s := &st.Recent[i]
		rep.Objects = append(rep.Objects, Outcome{Kind: match.NamedRecentKind, Name: s.Name, Saved: len(s.Entries)})
		o := &rep.Objects[len(rep.Objects)-1]
		all := len(s.Entries)
		l, ok := match.RecentListByName(named, s.Name)
		if !ok {
			o.drop(all, "no rule names this list any more")
			continue
		}
		ss, ok := l.(statestore.RecentSnapshotter)
		if !ok {
			o.drop(all, "the list's store (%T) cannot be restored", l)
			continue
		}
		lay := ss.Layout()
		switch {
		case lay.Mask != s.Mask:
			o.drop(all, "the list's --mask changed: entries keyed by the old mask, flushed")
			continue
		case s.Ring < lay.Ring && !opts.KeepOnRingGrowth:
			o.drop(all, "its rules now need a ring of %d stamps, it had %d: flushed as xt_recent flushes a list whose ring grows (LoadOptions.KeepOnRingGrowth keeps the entries)", lay.Ring, s.Ring)
			continue
		case s.Ring < lay.Ring:
			s.Resize(lay.Ring)
		}
		for j := range s.Entries {
			for k, t := range s.Entries[j].StampsNS {
				if t > nowNS {
					s.Entries[j].StampsNS[k] = nowNS
					rep.Clamped++
				}
			}
		}
		if opts.MaxAge > 0 {
			limit := nowNS - opts.MaxAge.Nanoseconds()
			o.drop(s.Filter(func(e *statestore.RecentSnapEntry) bool { return e.LastNS() >= limit }),
				"last seen more than %v ago (LoadOptions.MaxAge)", opts.MaxAge)
		}
		o.drop(s.KeepNewest(lay.Capacity), "beyond the list's capacity of %d (least recently seen)", lay.Capacity)
		s.Capacity = lay.Capacity
		rp = append(rp, recentPlan{ss: ss, s: s, out: len(rep.Objects) - 1})
	}
	for i := range st.Hashlimit {
		s := &st.Hashlimit[i]
		fam, kind := xt.IPv4, match.NamedHashlimitKind4
		if s.Config.IPv6 {
			fam, kind = xt.IPv6, match.NamedHashlimitKind6
		}
		rep.Objects = append(rep.Objects, Outcome{Kind: kind, Name: s.Config.Name, Saved: len(s.Entries)})
		o := &rep.Objects[len(rep.Objects)-1]
		all := len(s.Entries)
		t, ok := match.HashlimitTableByName(named, fam, s.Config.Name)
		if !ok {
			o.drop(all, "no rule names this table any more")
			continue
		}
		ss, ok := t.(statestore.HashlimitSnapshotter)
		if !ok {
			o.drop(all, "the table's store (%T) cannot be restored", t)
			continue
		}
		cur := t.Config()
		if !statestore.HashlimitCompatible(s.Config, cur) {
			o.drop(all, "the table's mode, masks or rate changed: its credits mean something else now")
			continue
		}
		s.Config = cur
		expire := int64(cur.ExpireMS) * 1_000_000
		gc := int64(cur.GCIntervalMS) * 1_000_000
		for j := range s.Entries {
			en := &s.Entries[j]
			if en.LastNS > nowNS {
				en.LastNS = nowNS
				rep.Clamped++
			}
			if en.ExpiresNS > nowNS+expire {
				en.ExpiresNS = nowNS + expire
				rep.Clamped++
			}
		}
		if s.GCNextNS > nowNS+gc {
			s.GCNextNS = nowNS + gc
			rep.Clamped++
		}
		if len(s.Entries) > int(cur.Max) {
			sort.SliceStable(s.Entries, func(a, b int) bool { return s.Entries[a].ExpiresNS > s.Entries[b].ExpiresNS })
			o.drop(len(s.Entries)-int(cur.Max), "beyond htable-max %d (earliest expiring)", cur.Max)
			s.Entries = s.Entries[:cur.Max]
		}
		hp = append(hp, hlPlan{t: t, ss: ss, s: s, out: len(rep.Objects) - 1})
	}
	var errs []error
	for _, p := range rp {
		o := &rep.Objects[p.out]
		if err := p.ss.Restore(p.s); err != nil {
			o.Err = err
			o.drop(len(p.s.Entries), "restore failed")
			errs = append(errs, err)
			continue
		}
		o.Restored = len(p.s.Entries)
	}
	for _, p := range hp {
		o := &rep.Objects[p.out]
		if err := p.ss.Restore(p.s, nowNS); err != nil {
			o.Err = err
			o.drop(len(p.s.Entries), "restore failed")
			errs = append(errs, err)
			continue
		}
		o.Restored = min(p.t.Len(), len(p.s.Entries))
		o.drop(len(p.s.Entries)-o.Restored, "expired: the garbage collector would have removed them by now")
	}
	return errors.Join(errs...)
}
