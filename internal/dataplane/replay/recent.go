package replay

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/uptables/uptables/internal/statestore"
	"io"
	"net/netip"
	"strconv"
)

// Jiffies of the kernel this replay imitates (spec §4.1, §4.5): HZ is 250
// on the reference machine, and jiffies start at INITIAL_JIFFIES, 300 s
// before the 32-bit wrap, so /proc values near 2^32 are normal.
const (
	HZ             = 250
	InitialJiffies = uint64(1<<32) - 300*HZ
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

// ErrRecentUnavailable is returned when no RecentLister is wired in.
var ErrRecentUnavailable = errors.New("--recent: not available yet: the recent match's runtime does not expose its lists to the replay (needs a replay.RecentLister)")

// Jiffies converts packet time to kernel jiffies. BootNS is the time that
// maps to InitialJiffies; the replay uses the first packet's timestamp, so
// values count from the kernel's initial jiffies at the start of the capture.
type Jiffies struct{ BootNS int64 }

// At returns the jiffies value at t.
func (j Jiffies) At(tNS int64) uint64 {
	d := tNS - j.BootNS
	if d < 0 {
		d = 0
	}
	return InitialJiffies + uint64(d/(1_000_000_000/HZ))
}

// WriteRecentProc writes entries in /proc/net/xt_recent/NAME format:
//
//	src=10.99.0.1 ttl: 64 last_seen: 4294993159 oldest_pkt: 6 4294990223, 4294990352
//
// IPv6 addresses are printed fully expanded with leading zeros, as %pI6.
func WriteRecentProc(w io.Writer, entries []RecentEntry, j Jiffies) error {
	bw := bufio.NewWriter(w)
	var b []byte
	for _, e := range entries {
		b = append(b[:0], "src="...)
		b = appendAddrProc(b, e.Addr)
		b = append(b, " ttl: "...)
		b = strconv.AppendUint(b, uint64(e.TTL), 10)
		b = append(b, " last_seen: "...)
		b = strconv.AppendUint(b, j.At(e.LastSeenNS), 10)
		b = append(b, " oldest_pkt: "...)
		b = strconv.AppendInt(b, int64(e.Index), 10)
		for i, s := range e.StampsNS {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, ' ')
			b = strconv.AppendUint(b, j.At(s), 10)
		}
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func appendAddrProc(b []byte, a netip.Addr) []byte {
	if a.Is4() || a.Is4In6() {
		return a.Unmap().AppendTo(b)
	}
	x := a.As16()
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			b = append(b, ':')
		}
		b = fmt.Appendf(b, "%02x%02x", x[i], x[i+1])
	}
	return b
}

// FirstTimeNS is the timestamp of the first frame replayed (0 before any),
// the origin of the jiffies clock for --recent.
func (r *Replayer) FirstTimeNS() int64 { return r.first }
