package match

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/xt"
)

// RecentCommand is what a recent rule does with its list.
type RecentCommand uint8

const (
	RecentSet    RecentCommand = iota + 1 // --set: record the address, always true
	RecentCheck                           // --rcheck: true if listed
	RecentUpdate                          // --update: as rcheck, and record on a hit
	RecentRemove                          // --remove: delete, true if it was listed
)

// RecentNameMax is the longest list name (the kernel's 200-byte buffer);
// iptables silently cuts longer names.
const RecentNameMax = 199

// RecentHitcountMax is the largest --hitcount this kernel (6.18) accepts.
const RecentHitcountMax = 65535

// Recent is the recent match, revision 1 (xt_recent with --mask).
type Recent struct {
	Command  RecentCommand
	Invert   bool
	Seconds  uint32 // 0 = no time window
	Reap     bool
	HitCount uint32 // 0 = any hit
	TTL      bool   // --rttl
	Name     string
	Mask     netip.Addr
	Dest     bool // --rdest: key on the destination address

	flags uint32
}

const (
	rcOptSet = iota
	rcOptCheck
	rcOptUpdate
	rcOptRemove
	rcOptSeconds
	rcOptReap
	rcOptHitcount
	rcOptTTL
	rcOptName
	rcOptRsource
	rcOptRdest
	rcOptMask
)

const rcCommands = 1<<rcOptSet | 1<<rcOptCheck | 1<<rcOptUpdate | 1<<rcOptRemove

var psRecentOpts = &psTable{ext: "recent", entries: []psOpt{
	{name: "set", id: rcOptSet, arg: xt.NoArg, invert: true, excl: rcCommands},
	{name: "rcheck", id: rcOptCheck, arg: xt.NoArg, invert: true, excl: rcCommands},
	{name: "update", id: rcOptUpdate, arg: xt.NoArg, invert: true, excl: rcCommands},
	{name: "remove", id: rcOptRemove, arg: xt.NoArg, invert: true, excl: rcCommands},
	{name: "seconds", id: rcOptSeconds, arg: xt.RequiredArg},
	{name: "reap", id: rcOptReap, arg: xt.NoArg, also: 1 << rcOptSeconds},
	{name: "hitcount", id: rcOptHitcount, arg: xt.RequiredArg},
	{name: "rttl", id: rcOptTTL, arg: xt.NoArg, excl: 1<<rcOptSet | 1<<rcOptRemove},
	{name: "name", id: rcOptName, arg: xt.RequiredArg},
	{name: "rsource", id: rcOptRsource, arg: xt.NoArg},
	{name: "rdest", id: rcOptRdest, arg: xt.NoArg},
	{name: "mask", id: rcOptMask, arg: xt.RequiredArg},
}}

var _ xt.Match = (*Recent)(nil)
var _ xt.Checker = (*Recent)(nil)

func newRecentSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name:    "recent",
		Options: psRecentOpts.options(),
		New:     func() xt.Match { return &Recent{Name: "DEFAULT"} },
	}
}

// Parse implements xt.Match.
func (m *Recent) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := psRecentOpts.begin(m.flags, opt, invert)
	if err != nil {
		return err
	}
	switch e.id {
	case rcOptSet, rcOptCheck, rcOptUpdate, rcOptRemove:
		m.Command = RecentCommand(e.id + 1)
		m.Invert = invert
	case rcOptSeconds:
		v, err := psRecentOpts.parseUintOpt(e, arg, 1, 0xFFFFFFFF)
		if err != nil {
			return err
		}
		m.Seconds = uint32(v)
	case rcOptReap:
		m.Reap = true
	case rcOptHitcount:
		v, err := psRecentOpts.parseUintOpt(e, arg, 0, 0xFFFFFFFF)
		if err != nil {
			return err
		}
		m.HitCount = uint32(v)
	case rcOptTTL:
		m.TTL = true
	case rcOptName:
		if len(arg) > RecentNameMax {
			arg = arg[:RecentNameMax]
		}
		m.Name = arg
	case rcOptRsource:
		m.Dest = false
	case rcOptRdest:
		m.Dest = true
	case rcOptMask:
		a, err := xt.ParseHost(ctx.Family, arg)
		if err != nil {
			return err
		}
		m.Mask = a
	}
	m.flags |= 1 << e.id
	return nil
}

// Final implements xt.Match.
func (m *Recent) Final(ctx *xt.ParseContext) error {
	if m.flags&rcCommands == 0 {
		return xt.Errorf("recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'")
	}
	if !m.Mask.IsValid() {
		m.Mask = xt.PrefixMask(ctx.Family, psFamilyBits(ctx.Family))
	}
	return psRecentOpts.fcheck(m.flags)
}

// Check implements xt.Checker with xt_recent's checkentry.
func (m *Recent) Check(ctx *xt.CheckContext) error {
	if (m.Command == RecentSet || m.Command == RecentRemove) && (m.Seconds != 0 || m.HitCount != 0 || m.TTL || m.Reap) {
		return xt.EINVAL("xt_recent: --seconds, --hitcount, --rttl and --reap only go with --rcheck or --update")
	}
	if m.Reap && m.Seconds == 0 {
		return xt.EINVAL("xt_recent: --reap needs --seconds")
	}
	if m.HitCount > RecentHitcountMax {
		return xt.EINVAL("xt_recent: hitcount (%d) is larger than allowed maximum (%d)", m.HitCount, RecentHitcountMax)
	}
	if !procEntryName(m.Name) {
		return xt.EINVAL("xt_recent: invalid list name %q", m.Name)
	}
	return nil
}

// procEntryName reports whether name can name a /proc/net entry
// (xt_recent/NAME, ipt_hashlimit/NAME): the kernel refuses the rule with
// EINVAL otherwise (measured for both: "", ".", "..", a '/' anywhere).
func procEntryName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsRune(name, '/')
}

var psRecentCmdSave = [...]string{"", " --set", " --rcheck", " --update", " --remove"}
var psRecentCmdList = [...]string{"", " recent: SET", " recent: CHECK", " recent: UPDATE", " recent: REMOVE"}

// Save implements xt.Match, in the order command, --seconds, --reap,
// --hitcount, --rttl, --name, --mask, side.
func (m *Recent) Save(b *strings.Builder) {
	psInv(b, m.Invert)
	b.WriteString(psRecentCmdSave[m.Command])
	if m.Seconds != 0 {
		b.WriteString(" --seconds ")
		b.WriteString(strconv.FormatUint(uint64(m.Seconds), 10))
	}
	if m.Reap {
		b.WriteString(" --reap")
	}
	if m.HitCount != 0 {
		b.WriteString(" --hitcount ")
		b.WriteString(strconv.FormatUint(uint64(m.HitCount), 10))
	}
	if m.TTL {
		b.WriteString(" --rttl")
	}
	b.WriteString(" --name ")
	b.WriteString(m.Name)
	b.WriteString(" --mask ")
	b.WriteString(m.Mask.String())
	if m.Dest {
		b.WriteString(" --rdest")
	} else {
		b.WriteString(" --rsource")
	}
}

// List implements xt.Match ("recent: UPDATE seconds: 100 hit_count: 10
// name: DEFAULT side: source mask: 255.255.255.255").
func (m *Recent) List(b *strings.Builder, numeric bool) {
	psInv(b, m.Invert)
	b.WriteString(psRecentCmdList[m.Command])
	if m.Seconds != 0 {
		b.WriteString(" seconds: ")
		b.WriteString(strconv.FormatUint(uint64(m.Seconds), 10))
	}
	if m.Reap {
		b.WriteString(" reap")
	}
	if m.HitCount != 0 {
		b.WriteString(" hit_count: ")
		b.WriteString(strconv.FormatUint(uint64(m.HitCount), 10))
	}
	if m.TTL {
		b.WriteString(" TTL-Match")
	}
	b.WriteString(" name: ")
	b.WriteString(m.Name)
	if m.Dest {
		b.WriteString(" side: dest")
	} else {
		b.WriteString(" side: source")
	}
	b.WriteString(" mask: ")
	b.WriteString(m.Mask.String())
}

// Kinds under which the stateful matches keep their shared objects in the
// engine's xt.NamedState registry.
const (
	// NamedStoreKind/NamedStoreName hold the statestore.Factory the matches
	// use; an engine registers another (Redis) there before compiling.
	NamedStoreKind = "statestore"
	NamedStoreName = "factory"
	// NamedRecentKind: recent lists by name (IPv4 and IPv6 share them).
	NamedRecentKind = "recent"
	// NamedHashlimitKind4/6: hashlimit tables by name, per family.
	NamedHashlimitKind4 = "hashlimit"
	NamedHashlimitKind6 = "hashlimit6"
)

// stSeed turns the engine's 32-bit random source into the stores' 64-bit
// one (nil stays nil: the store then draws a random key itself).
func stSeed(env *xt.Env) func() uint64 {
	if env == nil || env.Rand == nil {
		return nil
	}
	r := env.Rand
	return func() uint64 { return uint64(r())<<32 | uint64(r()) }
}

// StateFactory returns the store factory of env's registry, installing the
// memory store when none is registered. Without a registry (unit tests) it
// returns a private memory store.
func StateFactory(env *xt.Env) (statestore.Factory, error) {
	mk := func() (any, error) { return statestore.NewMemory(stSeed(env)), nil }
	if env == nil || env.Named == nil {
		return statestore.NewMemory(stSeed(env)), nil
	}
	v, err := env.Named.Shared(NamedStoreKind, NamedStoreName, mk)
	if err != nil {
		return nil, err
	}
	f, ok := v.(statestore.Factory)
	if !ok {
		return nil, xt.Errorf("state store registered as %T is not a statestore.Factory", v)
	}
	return f, nil
}

// stShared fetches or creates a named object (private when no registry).
func stShared(env *xt.Env, kind, name string, create func() (any, error)) (any, error) {
	if env.Named == nil {
		return create()
	}
	return env.Named.Shared(kind, name, create)
}

// errNotCreated makes a registry lookup fail instead of creating.
var errNotCreated = xt.Errorf("not created")

// RecentListByName returns the recent list called name, if a rule created
// it (for `uptables recent`, the replay's --recent and /proc writes).
func RecentListByName(named xt.NamedState, name string) (statestore.RecentList, bool) {
	v, err := named.Shared(NamedRecentKind, name, func() (any, error) { return nil, errNotCreated })
	if err != nil {
		return nil, false
	}
	l, ok := v.(statestore.RecentList)
	return l, ok
}

// RecentRing is the ring size a rule asks of its list: the next power of
// two >= --hitcount, 32 without one (xt_recent's checkentry with the
// default ip_pkt_list_tot=0).
func RecentRing(hitcount uint32) int {
	if hitcount == 0 {
		return 32
	}
	n := 1
	for uint32(n) < hitcount {
		n <<= 1
	}
	return n
}

// RecentRuntime is the packet-time side of one recent rule. The list
// lives in the named registry, shared by every rule naming it and kept
// across reloads (the kernel keeps it while a rule references it).
type RecentRuntime struct {
	list    statestore.RecentList
	cmd     statestore.RecentCmd
	invert  bool
	seconds uint32
	hits    uint32
	reap    bool
	rttl    bool
	dest    bool
	name    string
	// mask is this rule's --mask, with which Explain finds the packet's
	// entry (the list's own mask is its creating rule's, normally the same).
	mask netip.Addr
}

var _ xt.MatchBuilder = (*Recent)(nil)
var _ xt.PacketMatcher = (*RecentRuntime)(nil)

// Build implements xt.MatchBuilder: find or create the list (its mask is
// this rule's only if this rule creates it) and ask for this rule's ring
// size, which flushes the list when it grows.
func (m *Recent) Build(env *xt.Env) (xt.PacketMatcher, error) {
	f, err := StateFactory(env)
	if err != nil {
		return nil, err
	}
	mask := m.Mask
	if !mask.IsValid() {
		mask = xt.PrefixMask(env.Family, psFamilyBits(env.Family))
	}
	v, err := stShared(env, NamedRecentKind, m.Name, func() (any, error) {
		return f.NewRecentList(statestore.RecentConfig{Name: m.Name, Mask: mask})
	})
	if err != nil {
		return nil, err
	}
	l, ok := v.(statestore.RecentList)
	if !ok {
		return nil, xt.Errorf("recent: %q in the registry is a %T", m.Name, v)
	}
	l.Require(RecentRing(m.HitCount))
	return &RecentRuntime{list: l, cmd: statestore.RecentCmd(m.Command), invert: m.Invert,
		seconds: m.Seconds, hits: m.HitCount, reap: m.Reap, rttl: m.TTL, dest: m.Dest, name: m.Name, mask: mask}, nil
}

// Matches implements xt.PacketMatcher (xt_recent's recent_mt). The TTL is
// the one before forwarding: +1 when the hook has an output device and the
// packet has no local socket.
func (r *RecentRuntime) Matches(c *xt.Ctx) bool {
	p := c.P
	a := p.Src
	if r.dest {
		a = p.Dst
	}
	ttl := p.TTL
	if p.OutIface != "" && !p.HasOwner {
		ttl++
	}
	res, hot := r.list.Apply(statestore.RecentQuery{Addr: a, TTL: ttl, RTTL: r.rttl, Cmd: r.cmd,
		Invert: r.invert, Seconds: r.seconds, Hits: r.hits, Reap: r.reap, NowNS: p.TimeNS})
	if hot {
		c.HotDrop = true
		return false
	}
	return res
}

// List returns the rule's list (shared with the other rules naming it).
func (r *RecentRuntime) List() statestore.RecentList { return r.list }
