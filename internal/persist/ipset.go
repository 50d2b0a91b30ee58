package persist

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/xt/match"
)

// The engine's ipsets (pinned by the daemon under match.NamedSetsKind)
// are kept in their own file beside state.json, SetsFileName, in the
// format of ipset.Sets.WriteState: `ipset save` text whose entries carry
// their exact expiry time on the engine's clock, so that what SET targets
// added (a port-knocking list, a ban list with --timeout) and what
// `ipset` commands through the control socket changed survives a restart
// with the time it had left, as recent lists do. Saved and loaded with
// state.json (Save, Load, the Saver); written atomically the same way.
// Which saved sets are restored over the sets file the daemon loaded is
// ipset.Sets.RestoreState's rule: the file wins for a set it changed.

// SetsFileName is the ipset state file inside the directory.
const SetsFileName = "ipsets.state"

// SetsKind is the Outcome kind of an ipset.
const SetsKind = "ipset"

func engineSets(e *netfilter.Engine) *ipset.Sets {
	v, ok := e.Shared(match.NamedSetsKind, match.NamedSetsName)
	if !ok {
		return nil
	}
	s, _ := v.(*ipset.Sets)
	return s
}

// saveSets writes dir/SetsFileName when the engine has ipsets.
func saveSets(fsys fileSystem, dir string, e *netfilter.Engine, nowNS int64) error {
	sets := engineSets(e)
	if sets == nil {
		return nil
	}
	var b bytes.Buffer
	if err := sets.WriteState(&b, nowNS); err != nil {
		return fmt.Errorf("persist: encoding ipsets: %w", err)
	}
	if err := writeAtomicName(fsys, dir, SetsFileName, b.Bytes()); err != nil {
		return fmt.Errorf("persist: saving %s: %w", filepath.Join(dir, SetsFileName), err)
	}
	return nil
}

// loadSets restores dir/SetsFileName into the engine's ipsets (nothing
// when the engine has none or there is no file) and reports each set as
// an Outcome of kind SetsKind.
func loadSets(dir string, e *netfilter.Engine, nowNS int64, rep *Report) error {
	sets := engineSets(e)
	if sets == nil {
		return nil
	}
	path := filepath.Join(dir, SetsFileName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	defer f.Close()
	savedAt, outs, err := sets.RestoreState(io.LimitReader(f, MaxFileSize), nowNS)
	if err != nil {
		return fmt.Errorf("persist: %s: %w", path, err)
	}
	if rep.NoFile {
		rep.NoFile = false
		rep.File = path
		rep.SavedAt = time.Unix(0, savedAt)
	}
	for _, o := range outs {
		out := Outcome{Kind: SetsKind, Name: o.Name, Saved: o.Entries}
		if o.Restored {
			out.Restored = o.Entries
		} else {
			out.drop(o.Entries, "%s", o.Reason)
			if o.Entries == 0 {
				out.Dropped = append(out.Dropped, Drop{Reason: o.Reason})
			}
		}
		rep.Objects = append(rep.Objects, out)
	}
	return nil
}
