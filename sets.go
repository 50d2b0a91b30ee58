package uptables

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// Sets are ipset sets (hash:ip, hash:net with nomatch entries,
// hash:ip,port, hash:net,port, bitmap:port; timeouts, counters, comments,
// maxelem) that rules test with `-m set --match-set NAME src` and fill
// with `-j SET --add-set NAME src`, as `uptables run --ipsets FILE` gives
// them to the daemon. Like the kernel's sets they live independently of
// the rules: a Firewall's Reload keeps them, and Add, Del and Exec change
// them while connections flow, without a reload. A rule refers to a set
// by name, as iptables does, and sees a `swap` or a `rename` as the
// kernel's rules do.
//
// Sets are safe for concurrent use. Packet lookups take a read lock on
// one set and allocate nothing; a hash:net set costs at most one probe per
// distinct prefix length, however many networks it holds.
type Sets struct {
	s   *ipset.Sets
	now func() time.Time

	mu   sync.Mutex
	next uint64
	// refs are the set references of each firewall's current rules (one
	// per --match-set, --add-set and --del-set, as the kernel counts
	// them), keyed by firewall: their sum is the "References:" of
	// listings, and `destroy` refuses a set whose sum is not 0.
	refs map[uint64]map[string]int
}

// NewSets returns an empty registry of sets, which Exec ("create ...")
// or Restore fill. Of the options only WithClock (the clock of set
// timeouts; use the firewall's) and WithSeed (the hash keys and initvals;
// default random) apply to sets; any other option is refused.
func NewSets(opts ...Option) (*Sets, error) {
	var o options
	for _, fn := range opts {
		fn(&o)
	}
	if o.logger != nil || o.iface != "" || o.trusted != nil || o.proxyTO != 0 || o.hold != 0 ||
		o.observer != nil || o.logLine != nil || o.maxHeld != 0 || o.sets != nil {
		return nil, errors.New("uptables: NewSets and LoadSets take only WithClock and WithSeed")
	}
	now := o.now
	if now == nil {
		now = time.Now
	}
	rnd := rand.Uint32
	if o.seed != 0 {
		// The registry calls its random source under its own lock, but
		// Clone shares it between registries; a mutex keeps the PCG sane.
		var mu sync.Mutex
		g := rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15))
		rnd = func() uint32 {
			mu.Lock()
			defer mu.Unlock()
			return g.Uint32()
		}
	}
	return &Sets{s: ipset.New(rnd), now: now, refs: map[uint64]map[string]int{}}, nil
}

// LoadSets reads sets in `ipset save` format ("create bl hash:net
// family inet hashsize 1024 maxelem 65536", "add bl 10.0.0.0/8", ...), as
// `ipset restore` reads them; timeouts count from now. The first error is
// ipset's own text with its line ("ipset v7.17: Error in line 2: The set
// with the given name does not exist"). Options as for NewSets.
func LoadSets(r io.Reader, opts ...Option) (*Sets, error) {
	ss, err := NewSets(opts...)
	if err != nil {
		return nil, err
	}
	if err := ss.Restore(r); err != nil {
		return nil, err
	}
	return ss, nil
}

// LoadSetsFile is LoadSets on the named file (the file `uptables ipset
// --sets FILE` writes and `uptables run --ipsets FILE` reads).
func LoadSetsFile(path string, opts ...Option) (*Sets, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ss, err := LoadSets(f, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ss, nil
}

// Exec runs one ipset 7.17 command line, without the leading "ipset"
// ("create", "add", "del", "test", "list", "save", "restore", "flush",
// "destroy", "rename", "swap", with -exist, -quiet, -output save ...):
// out receives what ipset prints on standard output (nil discards it),
// in is the input of restore. The error's text is what ipset prints on
// standard error, without the final newline ("ipset v7.17: Element cannot
// be added to the set: it's already added"); "test" of an element that is
// not in the set fails with "10.1.2.3 is NOT in set bl.", of one that is
// succeeds (the Test method reports both as a bool). As with the kernel, a
// restore or a range that fails half-way keeps what it did before.
func (ss *Sets) Exec(args []string, in io.Reader, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	if in == nil {
		in = strings.NewReader("")
	}
	err := ss.s.Exec(args, in, out, ss.now().UnixNano())
	var ie *ipset.Error
	if errors.As(err, &ie) && ie.Code == 0 {
		return nil // test's "Warning: ... is in set ..." is a success
	}
	if err == nil {
		return nil
	}
	msg, _ := ipset.Report(err)
	msg = strings.TrimSuffix(msg, "\n")
	if msg == "" { // test -quiet of a missing element
		msg = "ipset " + ipset.Version + ": element is not in the set"
	}
	return &SetsError{Text: msg, err: err}
}

// SetsError is an ipset failure: Text is what ipset prints on standard
// error, without the final newline.
type SetsError struct {
	Text string
	err  error
}

func (e *SetsError) Error() string { return e.Text }

// Restore adds the sets and elements of r, in `ipset save` format, to ss
// (ipset restore).
func (ss *Sets) Restore(r io.Reader) error {
	return ss.Exec([]string{"restore"}, io.LimitReader(r, 256<<20), nil)
}

// Add adds an element to the named set as `ipset add NAME ELEMENT
// OPTIONS...` does: element is "10.0.0.0/8", "192.0.2.1-192.0.2.9",
// "10.0.0.1,tcp:80" ... as the set's type wants, options are ipset's
// words ("timeout", "30", "nomatch", "comment", "text", "-exist"). The
// rules see it from their next packet.
func (ss *Sets) Add(set, element string, options ...string) error {
	return ss.Exec(append([]string{"add", set, element}, options...), nil, nil)
}

// Del removes an element from the named set (ipset del; "-exist" among
// options makes a missing element no error).
func (ss *Sets) Del(set, element string, options ...string) error {
	return ss.Exec(append([]string{"del", set, element}, options...), nil, nil)
}

// Test reports whether the named set holds element, as `ipset test`
// decides it (a hash:net set holds 10.1.2.3 when one of its networks
// covers it and no more specific nomatch entry excludes it). The error is
// for a missing set or an element the set's type cannot parse.
func (ss *Sets) Test(set, element string) (bool, error) {
	err := ss.s.Exec([]string{"test", set, element}, strings.NewReader(""), io.Discard, ss.now().UnixNano())
	var ie *ipset.Error
	if err == nil || errors.As(err, &ie) && ie.Code == 0 {
		return true, nil
	}
	if ie != nil && strings.HasSuffix(ie.Msg, " is NOT in set "+set+".") {
		return false, nil
	}
	msg, _ := ipset.Report(err)
	return false, &SetsError{Text: strings.TrimSuffix(msg, "\n"), err: err}
}

// Save writes every set in `ipset save` format (what LoadSets reads).
func (ss *Sets) Save(w io.Writer) error {
	var b bytes.Buffer
	if err := ss.Exec([]string{"save"}, nil, &b); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

// List writes `ipset list NAME` ("" = every set) as ipset 7.17 prints
// it: header, "References:" (the rules of the firewalls using ss that
// name the set), entries and members. Only "Size in memory" differs
// from the kernel's, which counts kernel allocations.
func (ss *Sets) List(w io.Writer, name string) error {
	args := []string{"list"}
	if name != "" {
		args = append(args, name)
	}
	var b bytes.Buffer
	if err := ss.Exec(args, nil, &b); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

// Names returns the set names in listing order (creation order).
func (ss *Sets) Names() []string { return ss.s.Names() }

// register gives a new firewall its key in refs; when the firewall is
// garbage collected its references go with it, so that a discarded
// firewall does not keep its sets from being destroyed.
func (ss *Sets) register(f *Firewall) uint64 {
	ss.mu.Lock()
	ss.next++
	id := ss.next
	ss.mu.Unlock()
	runtime.AddCleanup(f, func(id uint64) {
		ss.mu.Lock()
		delete(ss.refs, id)
		ss.mu.Unlock()
		ss.syncRefs()
	}, id)
	return id
}

// loaded records the references of the rules a firewall just loaded.
func (ss *Sets) loaded(id uint64, rs *ruleset.Ruleset) {
	counts := builtin.SetReferences(rs)
	ss.mu.Lock()
	ss.refs[id] = counts
	ss.mu.Unlock()
	ss.syncRefs()
}

// syncRefs gives the registry the sum of the firewalls' references. It
// runs when rules load (and a firewall goes away), not before each
// command: the count stays on the set, so that a set renamed after the
// load keeps the references of the rules that follow it, as in the
// kernel.
func (ss *Sets) syncRefs() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	sum := map[string]int{}
	for _, c := range ss.refs {
		for name, n := range c {
			sum[name] += n
		}
	}
	ss.s.SetReferences(sum)
}
