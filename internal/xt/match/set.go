package match

import (
	"net/netip"
	"strings"

	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/xt"
)

// set (xt_set revision 4): --match-set NAME src|dst[,...] tests the packet
// against an ipset. iptables looks the set up while it parses the option
// (SetLookup, from the registry the rule is parsed with: the sets of the
// CLI's --sets file or of the daemon); at run time the rule finds the set
// in the engine's named state (NamedSetsKind), where the daemon, replay or
// the library pinned its *ipset.Sets.

const (
	setMatchSet = iota
	setReturnNoMatch
	setUpdateCounters
	setUpdateSubcounters
	setPacketsEq
	setPacketsLt
	setPacketsGt
	setBytesEq
	setBytesLt
	setBytesGt
)

var setOpts = optTable{
	{name: "match-set", id: setMatchSet, arg: xt.RequiredArg, extra: 1, flags: optInvert},
	{name: "set", id: setMatchSet, arg: xt.RequiredArg, extra: 1, flags: optInvert},
	{name: "return-nomatch", id: setReturnNoMatch, arg: xt.NoArg},
	{name: "update-counters", id: setUpdateCounters, arg: xt.NoArg, flags: optInvert},
	{name: "update-subcounters", id: setUpdateSubcounters, arg: xt.NoArg, flags: optInvert},
	{name: "packets-eq", id: setPacketsEq, arg: xt.RequiredArg, flags: optInvert},
	{name: "packets-lt", id: setPacketsLt, arg: xt.RequiredArg},
	{name: "packets-gt", id: setPacketsGt, arg: xt.RequiredArg},
	{name: "bytes-eq", id: setBytesEq, arg: xt.RequiredArg, flags: optInvert},
	{name: "bytes-lt", id: setBytesLt, arg: xt.RequiredArg},
	{name: "bytes-gt", id: setBytesGt, arg: xt.RequiredArg},
}

const setNameMax = ipset.NameMax

// SetLookup tells whether an ipset exists (nil: none does).
type SetLookup func(name string) bool

// Counter comparison operators (IPSET_COUNTER_*).
const (
	setCmpNone uint8 = iota
	setCmpEq
	setCmpNe
	setCmpLt
	setCmpGt
)

// Set is a configured set match.
type Set struct {
	seen   uint32
	exists SetLookup
	Name   string
	Flags  string
	// Dirs[i] is true when dimension i takes the source side.
	Dirs          [ipset.MaxDim]bool
	NDirs         int
	Invert        bool
	ReturnNoMatch bool
	// NoUpdateCounters / NoUpdateSubcounters are the "!" forms.
	NoUpdateCounters    bool
	NoUpdateSubcounters bool
	PacketsOp, BytesOp  uint8
	Packets, Bytes      uint64
}

var _ xt.Match = (*Set)(nil)
var _ xt.MatchBuilder = (*Set)(nil)

func newSetSpec(lookup SetLookup) *xt.MatchSpec {
	return &xt.MatchSpec{Name: "set", Family: xt.IPv4, Options: setOpts.options(), New: func() xt.Match { return &Set{exists: lookup} }}
}

// parseSetDirs parses "src,dst,..." as libxt_set does.
func parseSetDirs(s string, dirs *[ipset.MaxDim]bool) (int, error) {
	parts := strings.Split(s, ",")
	if len(parts) > ipset.MaxDim {
		return 0, xt.Errorf("Can't be more src/dst options than %d.", ipset.MaxDim)
	}
	for i, p := range parts {
		switch p {
		case "src":
			dirs[i] = true
		case "dst":
		default:
			return 0, xt.Errorf("You must spefify (the comma separated list of) 'src' or 'dst'.")
		}
	}
	return len(parts), nil
}

// Parse implements xt.Match.
func (m *Set) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := setOpts.begin("set", &m.seen, opt, invert)
	if err != nil {
		return err
	}
	switch e.id {
	case setMatchSet:
		if len(extra) < 1 {
			return xt.Errorf("--%s requires two args.", opt)
		}
		if len(arg) > setNameMax {
			return xt.Errorf("setname `%s' too long, max %d characters.", arg, setNameMax)
		}
		if m.exists == nil || !m.exists(arg) {
			return &xt.ParamError{Msg: "Set " + arg + " doesn't exist.\n",
				Hint: "create it first: uptables ipset --sets FILE create " + arg + " TYPE (the rules must be loaded with the same sets)"}
		}
		n, err := parseSetDirs(extra[0], &m.Dirs)
		if err != nil {
			return err
		}
		m.Name, m.Flags, m.NDirs, m.Invert = arg, extra[0], n, invert
	case setReturnNoMatch:
		m.ReturnNoMatch = true
	case setUpdateCounters:
		m.NoUpdateCounters = invert
	case setUpdateSubcounters:
		m.NoUpdateSubcounters = invert
	case setPacketsEq, setPacketsLt, setPacketsGt, setBytesEq, setBytesLt, setBytesGt:
		v, err := parseUintOpt("set", opt, arg, 0, 1<<64-1)
		if err != nil {
			return err
		}
		op := [...]uint8{setCmpEq, setCmpLt, setCmpGt}[(e.id-setPacketsEq)%3]
		if op == setCmpEq && invert {
			op = setCmpNe
		}
		if e.id < setBytesEq {
			if m.PacketsOp != setCmpNone {
				return xt.Errorf("only one of the --packets-[eq|lt|gt] is allowed")
			}
			m.PacketsOp, m.Packets = op, v
		} else {
			if m.BytesOp != setCmpNone {
				return xt.Errorf("only one of the --bytes-[eq|lt|gt] is allowed")
			}
			m.BytesOp, m.Bytes = op, v
		}
	}
	return nil
}

// Final implements xt.Match.
func (m *Set) Final(*xt.ParseContext) error {
	if m.seen&(1<<setMatchSet) == 0 {
		return xt.Errorf("You must specify `--match-set' with proper arguments")
	}
	return setOpts.fcheck("set", m.seen)
}

func setCmpText(b *strings.Builder, prefix, what string, op uint8, v uint64) {
	if op == setCmpNone {
		return
	}
	if op == setCmpNe {
		b.WriteString(" !")
	}
	b.WriteString(" " + prefix + what + "-" + [...]string{"", "eq", "eq", "lt", "gt"}[op] + " ")
	b.WriteString(utoa(v))
}

func utoa(v uint64) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(buf[i:])
		}
	}
}

func (m *Set) text(b *strings.Builder, dash string) {
	if m.ReturnNoMatch {
		b.WriteString(" " + dash + "return-nomatch")
	}
	if m.NoUpdateCounters {
		b.WriteString(" ! " + dash + "update-counters")
	}
	if m.NoUpdateSubcounters {
		b.WriteString(" ! " + dash + "update-subcounters")
	}
	setCmpText(b, dash, "packets", m.PacketsOp, m.Packets)
	setCmpText(b, dash, "bytes", m.BytesOp, m.Bytes)
}

// Save implements xt.Match.
func (m *Set) Save(b *strings.Builder) {
	saveNot(b, m.Invert)
	b.WriteString(" --match-set " + m.Name + " " + m.Flags)
	m.text(b, "--")
}

// List implements xt.Match.
func (m *Set) List(b *strings.Builder, _ bool) {
	saveNot(b, m.Invert)
	b.WriteString(" match-set " + m.Name + " " + m.Flags)
	m.text(b, "")
}

// NamedSetsKind and NamedSetsName are where the engine's owner pins the
// *ipset.Sets the set match and the SET target use at run time.
const (
	NamedSetsKind = "ipset"
	NamedSetsName = "sets"
)

// SetsOf returns the *ipset.Sets pinned in env's named state.
func SetsOf(env *xt.Env) (*ipset.Sets, bool) {
	if env == nil || env.Named == nil {
		return nil, false
	}
	v, err := env.Named.Shared(NamedSetsKind, NamedSetsName, func() (any, error) { return nil, errNotCreated })
	if err != nil {
		return nil, false
	}
	s, ok := v.(*ipset.Sets)
	return s, ok
}

// SetRef finds the set a rule names when it is built: the error is
// iptables' own for a missing set.
func SetRef(env *xt.Env, ext, name string) (*ipset.Ref, error) {
	sets, ok := SetsOf(env)
	if !ok {
		return nil, xt.Errorf("%s: Set %s doesn't exist (no ipsets were loaded: --ipsets FILE)", ext, name)
	}
	r, ok := sets.Ref(name)
	if !ok {
		return nil, xt.Errorf("%s: Set %s doesn't exist.", ext, name)
	}
	return r, nil
}

// SetPacket fills the ipset view of a packet: addresses, and ports (or
// ICMP type/code) only for the first fragment of a protocol that has them,
// as the kernel's ip_set_get_ip4_port does.
func SetPacket(p *packet.Packet, out *ipset.Packet) {
	*out = ipset.Packet{Src: addr4(p.Src), Dst: addr4(p.Dst), Proto: p.Proto, Len: uint32(p.TotalLen)}
	if p.Status != packet.OK {
		return
	}
	switch p.Proto {
	case 6, 17, 132, 136:
		out.SrcPort, out.DstPort, out.PortOK = p.SrcPort, p.DstPort, true
	case 1:
		tc := uint16(p.ICMPType)<<8 | uint16(p.ICMPCode)
		out.SrcPort, out.DstPort, out.PortOK = tc, tc, true
	default:
		out.PortOK = true
	}
}

func addr4(a netip.Addr) uint32 {
	if !a.Is4() {
		return 0
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// SetRuntime is the packet-time side of one set match.
type SetRuntime struct {
	ref   *ipset.Ref
	m     *Set
	dirs  [ipset.MaxDim]bool
	count bool
}

var _ xt.PacketMatcher = (*SetRuntime)(nil)

// Build implements xt.MatchBuilder: the rule holds the set's Ref, so a
// swap or rename of the set is seen by the rule as in the kernel.
func (m *Set) Build(env *xt.Env) (xt.PacketMatcher, error) {
	r, err := SetRef(env, "set", m.Name)
	if err != nil {
		return nil, err
	}
	rt := &SetRuntime{ref: r, m: m, count: !m.NoUpdateCounters}
	// Dimensions beyond the flags given take the destination: the kernel
	// reads one src bit per dimension and an absent bit means dst.
	rt.dirs = m.Dirs
	return rt, nil
}

func setCmp(op uint8, have, want uint64) bool {
	switch op {
	case setCmpEq:
		return have == want
	case setCmpNe:
		return have != want
	case setCmpLt:
		return have < want
	case setCmpGt:
		return have > want
	}
	return true
}

// Matches implements xt.PacketMatcher (xt_set's set_match_v4).
func (r *SetRuntime) Matches(c *xt.Ctx) bool {
	s := r.ref.Set()
	if s == nil || c.P.Version != 4 {
		return r.m.Invert
	}
	var p ipset.Packet
	SetPacket(c.P, &p)
	res, pk, by := s.Lookup(&p, &r.dirs, c.P.TimeNS, r.count)
	var ok bool
	switch res {
	case ipset.Match:
		ok = !r.m.ReturnNoMatch
		if ok && s.Options().Counters && (r.m.PacketsOp != setCmpNone || r.m.BytesOp != setCmpNone) {
			ok = setCmp(r.m.PacketsOp, pk, r.m.Packets) && setCmp(r.m.BytesOp, by, r.m.Bytes)
		}
	case ipset.NoMatchEntry:
		ok = r.m.ReturnNoMatch
	}
	return ok != r.m.Invert
}
