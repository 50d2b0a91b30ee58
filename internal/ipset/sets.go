package ipset

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/uptables/uptables/internal/siphash"
)

// Error is an ipset error: Msg is the text after "ipset v7.17: ", Code the
// tool's exit status (1 for the kernel's refusals and syntax errors, 2 for
// a wrong command line, which adds the "Try `ipset help'" line).
type Error struct {
	Msg  string
	Code int
	// Line is the restore line the error comes from (0: none).
	Line int
}

func (e *Error) Error() string { return e.Msg }

// The kernel's refusals, with ipset 7.17's texts.
const (
	errExists      = "Element cannot be added to the set: it's already added"
	errNotAdded    = "Element cannot be deleted from the set: it's not added"
	errFull        = "Hash is full, cannot add more elements"
	errNoSet       = "The set with the given name does not exist"
	errSetExists   = "Set cannot be created: set with the same name already exists"
	errRenameExist = "Set cannot be renamed: a set with the new name already exists"
	errSwapType    = "The sets cannot be swapped: their type does not match"
	errSwapSecond  = "Sets cannot be swapped: the second set does not exist"
	errRange       = "Element is out of the range of the set"
	errInUse       = "Set cannot be destroyed: it is in use by a kernel component"
)

func errf(msg string) error { return &Error{Msg: msg, Code: 1} }

func syntaxf(msg string) error { return &Error{Msg: "Syntax error: " + msg, Code: 1} }

// NameMax is the longest set name (IPSET_MAXNAMELEN - 1).
const NameMax = 31

// Ref is a stable handle on a set name as rules hold it: the kernel's set
// index. `ipset swap` exchanges the sets behind two refs, so a rule naming
// A sees the contents that were B's; `ipset rename` keeps the ref, so the
// rule follows the set. Refs allows lookups without the registry's lock.
type Ref struct {
	set  atomic.Pointer[Set]
	name atomic.Pointer[string]
	refs atomic.Int32
	// origin is the digest of the set as the sets file defined it (see
	// MarkOrigin), "" for a set made at run time. Guarded by Sets.mu.
	origin string
}

// Set returns the set behind the ref, nil once destroyed.
func (r *Ref) Set() *Set { return r.set.Load() }

// Name returns the set's current name.
func (r *Ref) Name() string { return *r.name.Load() }

// Hold counts one more rule referencing the set (References: in listings;
// a held set cannot be destroyed). Release undoes it.
func (r *Ref) Hold()    { r.refs.Add(1) }
func (r *Ref) Release() { r.refs.Add(-1) }

// References returns how many rule references hold the set.
func (r *Ref) References() int { return int(r.refs.Load()) }

// SetReferences sets every set's reference count to counts[name] (0 for a
// name not in counts). The owner of the rules recounts after each ruleset
// load (builtin.SetReferences), so "References:" follows rules being
// added and removed as the kernel's count does: one per --match-set and
// one per --add-set/--del-set of each rule.
func (ss *Sets) SetReferences(counts map[string]int) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, r := range ss.order {
		r.refs.Store(int32(counts[r.Name()]))
	}
}

// Sets is the registry of sets of one network namespace: what `ipset`
// manages and what rules look up by name. It has no package-level state;
// the engine, the CLI and the tests each make their own.
type Sets struct {
	mu    sync.RWMutex
	order []*Ref // creation order (the kernel's index order, which listings follow)
	rand  func() uint32
}

// New returns an empty registry. rnd supplies the hash keys and initvals
// (nil: a fixed key, for tests that want reproducible output).
func New(rnd func() uint32) *Sets {
	if rnd == nil {
		var x uint32 = 0x9e3779b9
		rnd = func() uint32 { x = x*1664525 + 1013904223; return x }
	}
	return &Sets{rand: rnd}
}

func (ss *Sets) key() siphash.Key {
	r := ss.rand
	return siphash.Key{K0: uint64(r())<<32 | uint64(r()), K1: uint64(r())<<32 | uint64(r())}
}

func (ss *Sets) refLocked(name string) *Ref {
	for _, r := range ss.order {
		if r.Name() == name {
			return r
		}
	}
	return nil
}

// Ref returns the handle of the set called name.
func (ss *Sets) Ref(name string) (*Ref, bool) {
	ss.mu.RLock()
	defer ss.mu.RUnlock()
	r := ss.refLocked(name)
	return r, r != nil
}

// Exists reports whether a set called name exists (iptables' check when
// it parses --match-set and --add-set).
func (ss *Sets) Exists(name string) bool {
	_, ok := ss.Ref(name)
	return ok
}

// Get returns the set called name.
func (ss *Sets) Get(name string) (*Set, bool) {
	r, ok := ss.Ref(name)
	if !ok {
		return nil, false
	}
	return r.Set(), true
}

// Names returns the set names in listing order.
func (ss *Sets) Names() []string {
	ss.mu.RLock()
	defer ss.mu.RUnlock()
	out := make([]string, len(ss.order))
	for i, r := range ss.order {
		out[i] = r.Name()
	}
	return out
}

// Create makes a new set. exist (-exist) accepts an existing set with the
// same type and options.
func (ss *Sets) Create(name string, t Type, o CreateOptions, exist bool) error {
	if len(name) > NameMax {
		return syntaxf("setname '" + name + "' is longer than 31 characters")
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if r := ss.refLocked(name); r != nil {
		old := r.Set()
		if exist && old.typ == t && sameCreate(old.opts, o) {
			return nil
		}
		return errf(errSetExists)
	}
	if o.Initval == 0 {
		o.Initval = ss.rand()
	}
	r := &Ref{}
	r.set.Store(newSet(t, o, ss.key()))
	r.name.Store(&name)
	ss.order = append(ss.order, r)
	return nil
}

func sameCreate(a, b CreateOptions) bool {
	b.Initval = a.Initval
	return a == b
}

// Destroy removes the named set, or every set when name is "".
func (ss *Sets) Destroy(name string) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if name == "" {
		for _, r := range ss.order {
			if r.refs.Load() > 0 {
				return errf(errInUse)
			}
		}
		for _, r := range ss.order {
			r.set.Store(nil)
		}
		ss.order = nil
		return nil
	}
	for i, r := range ss.order {
		if r.Name() == name {
			if r.refs.Load() > 0 {
				return errf(errInUse)
			}
			r.set.Store(nil)
			ss.order = append(ss.order[:i:i], ss.order[i+1:]...)
			return nil
		}
	}
	return errf(errNoSet)
}

// Rename gives a set a new name; rules referencing it follow it.
func (ss *Sets) Rename(from, to string) error {
	if len(to) > NameMax {
		return syntaxf("setname '" + to + "' is longer than 31 characters")
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	r := ss.refLocked(from)
	if r == nil {
		return errf(errNoSet)
	}
	if ss.refLocked(to) != nil {
		return errf(errRenameExist)
	}
	r.name.Store(&to)
	return nil
}

// Swap exchanges the contents of two sets of the same type (the names
// stay where they were in the listing order).
func (ss *Sets) Swap(a, b string) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ra := ss.refLocked(a)
	if ra == nil {
		return errf(errNoSet)
	}
	rb := ss.refLocked(b)
	if rb == nil {
		return errf(errSwapSecond)
	}
	sa, sb := ra.Set(), rb.Set()
	if sa.typ != sb.typ {
		return errf(errSwapType)
	}
	ra.set.Store(sb)
	rb.set.Store(sa)
	return nil
}

// Clone returns a deep copy (same keys and initvals): the CLI works on a
// copy so that a failing command changes nothing.
func (ss *Sets) Clone() *Sets {
	ss.mu.RLock()
	defer ss.mu.RUnlock()
	out := &Sets{rand: ss.rand}
	for _, r := range ss.order {
		s := r.Set()
		s.mu.RLock()
		c := &Set{typ: s.typ, opts: s.opts, key: s.key, n: s.n, cidrCount: s.cidrCount, cidrs: append([]uint8(nil), s.cidrs...)}
		c.keys = append([]uint64(nil), s.keys...)
		c.slots = make([]entry, len(s.slots))
		for i := range s.slots {
			moveEntry(&c.slots[i], &s.slots[i])
		}
		c.rebuildFilters()
		s.mu.RUnlock()
		nr := &Ref{origin: r.origin}
		nr.refs.Store(r.refs.Load())
		nr.set.Store(c)
		name := r.Name()
		nr.name.Store(&name)
		out.order = append(out.order, nr)
	}
	return out
}

// Replace makes ss hold other's sets in place (after a successful
// transaction on a clone). Refs held by rules stay valid: a set that
// exists in both keeps its Ref, now pointing at the new contents.
func (ss *Sets) Replace(other *Sets) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	other.mu.RLock()
	defer other.mu.RUnlock()
	var order []*Ref
	for _, nr := range other.order {
		name := nr.Name()
		r := ss.refLocked(name)
		if r == nil {
			r = &Ref{origin: nr.origin}
			r.name.Store(&name)
		}
		r.set.Store(nr.Set())
		order = append(order, r)
	}
	for _, r := range ss.order {
		keep := false
		for _, o := range order {
			keep = keep || o == r
		}
		if !keep {
			r.set.Store(nil)
		}
	}
	ss.order = order
}

func validName(name string) error {
	if name == "" || strings.ContainsAny(name, " \t\n") {
		return syntaxf("invalid setname '" + name + "'")
	}
	if len(name) > NameMax {
		return syntaxf("setname '" + name + "' is longer than 31 characters")
	}
	return nil
}
