package ipset

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The state file keeps a daemon's sets across restarts (what SET targets
// and `ipset` commands through the control socket changed since the sets
// file was loaded). It is `ipset save` text with two differences, so that
// the restore is exact at any later time:
//
//	# uptables-ipsets 1 saved_at_ns 1700000000000000000
//	# origin knock 3f2a…                     (the set came from the sets file)
//	create knock hash:ip family inet hashsize 1024 maxelem 65536 timeout 10 bucketsize 12 initval 0x…
//	add knock 10.0.0.1 expires-ns 1700000007500000000
//
// every entry carries its absolute expiry time in ns on the engine's clock
// ("expires-ns 0": never) instead of its remaining whole seconds, which
// would round an entry with half a second left to "timeout 0", permanent.

// StateMagic starts a state file.
const StateMagic = "# uptables-ipsets 1"

// originDigest is the digest of a set as `ipset save` prints it at now,
// without its initval (drawn at random when the sets file gives none).
func (ss *Sets) originDigest(name string, now int64) string {
	var b strings.Builder
	ss.writeSave(&b, name, now)
	t := b.String()
	if i := strings.Index(t, " initval 0x"); i >= 0 && len(t) >= i+19 {
		t = t[:i] + t[i+19:]
	}
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:12])
}

// MarkOrigin records every set's current definition and contents as its
// origin: call it right after loading the sets file, with the now it was
// loaded with (timeouts in the file then list exactly as written, so the
// same file gives the same digests at every start). RestoreState restores
// a saved set only while its origin is unchanged: an edited sets file
// wins over what the previous run saved.
func (ss *Sets) MarkOrigin(now int64) {
	for _, name := range ss.Names() {
		d := ss.originDigest(name, now)
		ss.mu.Lock()
		if r := ss.refLocked(name); r != nil {
			r.origin = d
		}
		ss.mu.Unlock()
	}
}

// Origin returns the digest MarkOrigin recorded for the set ("" for a set
// made at run time, or unknown).
func (ss *Sets) Origin(name string) string {
	ss.mu.RLock()
	defer ss.mu.RUnlock()
	if r := ss.refLocked(name); r != nil {
		return r.origin
	}
	return ""
}

// WriteState writes every set in the state format (see StateMagic); now
// is the engine's clock. Each set is copied under its own lock.
func (ss *Sets) WriteState(w io.Writer, now int64) error {
	ss.mu.RLock()
	refs := append([]*Ref(nil), ss.order...)
	origins := make([]string, len(refs))
	for i, r := range refs {
		origins[i] = r.origin
	}
	ss.mu.RUnlock()
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s saved_at_ns %d\n", StateMagic, now)
	var b strings.Builder
	for i, r := range refs {
		s := r.Set()
		if s == nil {
			continue
		}
		name := r.Name()
		b.Reset()
		if origins[i] != "" {
			b.WriteString("# origin " + name + " " + origins[i] + "\n")
		}
		b.WriteString("create " + name + " " + s.typ.String() + " ")
		s.writeHeader(&b)
		b.WriteByte('\n')
		for _, el := range s.Elements(now) {
			b.WriteString("add " + name + " ")
			s.FormatKey(&b, el.Key)
			b.WriteString(" expires-ns " + strconv.FormatInt(el.Expires, 10))
			if el.NoMatch {
				b.WriteString(" nomatch")
			}
			if s.opts.Counters {
				b.WriteString(" packets " + strconv.FormatUint(el.Packets, 10) + " bytes " + strconv.FormatUint(el.Bytes, 10))
			}
			if s.opts.Comment && el.Comment != "" {
				b.WriteString(" comment \"" + el.Comment + "\"")
			}
			b.WriteByte('\n')
		}
		if _, err := bw.WriteString(b.String()); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// StateOutcome says what RestoreState did with one saved set.
type StateOutcome struct {
	Name     string
	Entries  int  // entries saved (not yet expired at the restore)
	Restored bool // false: dropped, Reason says why
	Reason   string
}

// readState parses a state file into a new registry with ss's random
// source; entries already expired at now are left out.
func (ss *Sets) readState(r io.Reader, now int64) (*Sets, int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("empty file, not an ipset state file")
	}
	rest, ok := strings.CutPrefix(sc.Text(), StateMagic+" saved_at_ns ")
	if !ok {
		return nil, 0, fmt.Errorf("line 1: not an uptables ipset state file (want %q)", StateMagic)
	}
	savedAt, err := strconv.ParseInt(rest, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("line 1: bad saved_at_ns %q", rest)
	}
	out := &Sets{rand: ss.rand}
	origins := map[string]string{}
	line := 1
	bad := func(msg string) (*Sets, int64, error) {
		return nil, 0, fmt.Errorf("line %d: %s", line, msg)
	}
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if o, ok := strings.CutPrefix(l, "# origin "); ok {
			name, d, ok := strings.Cut(o, " ")
			if !ok {
				return bad("bad origin line")
			}
			origins[name] = d
			continue
		}
		if l == "" || l[0] == '#' {
			continue
		}
		words, err := splitLine(l)
		if err != nil {
			return bad(err.Error())
		}
		var expires int64
		if words[0] == "add" {
			i := 0
			for i = range words {
				if words[i] == "expires-ns" {
					break
				}
			}
			if i < 3 || i+1 >= len(words) {
				return bad("add without expires-ns")
			}
			if expires, err = strconv.ParseInt(words[i+1], 10, 64); err != nil || expires < 0 {
				return bad("bad expires-ns " + words[i+1])
			}
			words = append(words[:i:i], words[i+2:]...)
			if expires != 0 && expires <= now {
				continue // expired meanwhile
			}
		} else if words[0] != "create" {
			return bad("unexpected command " + words[0])
		}
		if err := out.run(&env{}, words, nil, io.Discard, savedAt, line); err != nil {
			msg, _ := Report(err)
			return bad(strings.TrimSpace(msg))
		}
		if words[0] == "add" {
			s, _ := out.Get(words[1])
			keys, _ := s.ParseElem(words[2])
			s.mu.Lock()
			for _, k := range keys {
				if i := s.find(k); i >= 0 {
					s.slots[i].expires = expires
				}
			}
			s.mu.Unlock()
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	for _, r := range out.order {
		r.origin = origins[r.Name()]
	}
	return out, savedAt, nil
}

// RestoreState merges a state file written by WriteState into ss, whose
// sets were just loaded from the sets file (and marked with MarkOrigin).
// now is the engine's clock. As if the daemon had not stopped:
//
//   - a saved set whose origin matches the loaded set of that name (the
//     sets file did not change it) replaces its contents, entries with
//     their exact expiry and counters; rules holding the set keep it;
//   - a saved set whose origin differs (the file was edited since) is
//     dropped: the file's definition wins;
//   - a saved set with an origin that the file no longer defines is
//     dropped (it was removed from the file);
//   - a saved set made at run time (no origin) is created again.
//
// Nothing changes when the file cannot be parsed.
func (ss *Sets) RestoreState(r io.Reader, now int64) (savedAt int64, outcomes []StateOutcome, err error) {
	snap, savedAt, err := ss.readState(r, now)
	if err != nil {
		return 0, nil, err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, sr := range snap.order {
		name, set := sr.Name(), sr.Set()
		o := StateOutcome{Name: name, Entries: set.n}
		cur := ss.refLocked(name)
		switch {
		case cur == nil && sr.origin == "":
			nr := &Ref{}
			nr.name.Store(&name)
			nr.set.Store(set)
			ss.order = append(ss.order, nr)
			o.Restored = true
		case cur == nil:
			o.Reason = "the sets file no longer defines it"
		case cur.origin != sr.origin:
			o.Reason = "the sets file changed it since the save: the file's version is used"
		case cur.Set().typ != set.typ || !sameCreate(cur.Set().opts, set.opts):
			o.Reason = "its type or create options differ"
		default:
			cur.set.Store(set)
			o.Restored = true
		}
		outcomes = append(outcomes, o)
	}
	return savedAt, outcomes, nil
}
