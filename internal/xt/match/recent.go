package match

import (
	"net/netip"
	"strconv"
	"strings"

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
		a, err := xt.ParseAddr(ctx.Family, arg)
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
	if m.Name == "" || m.Name == "." || m.Name == ".." || strings.ContainsRune(m.Name, '/') {
		return xt.EINVAL("xt_recent: invalid list name %q", m.Name)
	}
	return nil
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
