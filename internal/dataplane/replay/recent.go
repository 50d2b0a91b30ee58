package replay

import (
	"github.com/uptables/uptables/internal/statestore"
	"io"
)

// Jiffies of the kernel this replay imitates (spec §4.1, §4.5): HZ 250,
// counted from INITIAL_JIFFIES; the statestore owns the conversion.
const (
	HZ             = statestore.HZ
	InitialJiffies = statestore.InitialJiffies
)

// RecentEntry is one address of a recent list (the statestore's type: the
// replay only formats it).
type RecentEntry = statestore.RecentEntry

// RecentLister is what `replay --recent NAME` needs from the recent match's
// runtime: the entries of the list called name, in the order
// /proc/net/xt_recent/NAME shows them. ok is false when no rule created a
// list of that name. The engine (or whoever owns the lists' named state)
// implements it; the replay only formats.
type RecentLister interface {
	RecentEntries(name string) (entries []RecentEntry, ok bool)
}

// Jiffies converts packet time to kernel jiffies; BootNS maps to
// InitialJiffies (the replay uses the first packet's timestamp).
type Jiffies = statestore.ProcJiffies

// WriteRecentProc writes entries in /proc/net/xt_recent/NAME format:
//
//	src=10.99.0.1 ttl: 64 last_seen: 4294993159 oldest_pkt: 6 4294990223, 4294990352
//
// IPv6 addresses are printed fully expanded with leading zeros, as %pI6.
func WriteRecentProc(w io.Writer, entries []RecentEntry, j Jiffies) error {
	var b []byte
	for i := range entries {
		b = statestore.AppendRecentProc(b, &entries[i], j)
	}
	_, err := w.Write(b)
	return err
}

// FirstTimeNS is the timestamp of the first frame replayed (0 before any),
// the origin of the jiffies clock for --recent.
func (r *Replayer) FirstTimeNS() int64 { return r.first }
