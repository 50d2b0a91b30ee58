package match

import (
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// MultiportMax is the number of port slots of xt_multiport (a range takes 2).
const MultiportMax = 15

// Multiport is the multiport match, revision 1 (xt_multiport_v1): up to 15
// port slots, single ports or ranges, tested against the source port, the
// destination port or either (Dir). Invert negates the whole list.
type Multiport struct {
	Dir    MultiportDir
	Ports  []PortRange // at most 15 slots (a range counts as two)
	Invert bool
	// proto is the -p protocol name used for service names in -L.
	proto string

	flags uint32
}

// MultiportDir says which port a multiport match tests.
type MultiportDir uint8

const (
	MultiportSource MultiportDir = iota + 1
	MultiportDestination
	MultiportEither
)

const (
	mpOptSrc = iota
	mpOptDst
	mpOptAny
)

var psMultiportOpts = &psTable{ext: "multiport", entries: []psOpt{
	{name: "source-ports", id: mpOptSrc, arg: xt.RequiredArg, invert: true, excl: 1<<mpOptDst | 1<<mpOptAny},
	{name: "sports", id: mpOptSrc, arg: xt.RequiredArg, invert: true, excl: 1<<mpOptDst | 1<<mpOptAny},
	{name: "destination-ports", id: mpOptDst, arg: xt.RequiredArg, invert: true, excl: 1<<mpOptSrc | 1<<mpOptAny},
	{name: "dports", id: mpOptDst, arg: xt.RequiredArg, invert: true, excl: 1<<mpOptSrc | 1<<mpOptAny},
	{name: "ports", id: mpOptAny, arg: xt.RequiredArg, invert: true, excl: 1<<mpOptSrc | 1<<mpOptDst},
}}

var _ xt.Match = (*Multiport)(nil)
var _ xt.PacketMatcher = (*Multiport)(nil)

func newMultiportSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name:    "multiport",
		Options: psMultiportOpts.options(),
		New:     func() xt.Match { return &Multiport{} },
	}
}

// psMultiportProto is check_proto of libxt_multiport: the rule's -p, seen
// at the time the option is parsed, must be a protocol with ports.
func psMultiportProto(ctx *xt.ParseContext) (string, error) {
	if ctx.InvProto {
		return "", xt.Errorf("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP")
	}
	switch ctx.Proto {
	case 0:
		return "", xt.Errorf("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'")
	case 6, 17, 136, 132, 33:
		return xt.ProtoName(ctx.Proto), nil
	}
	return "", xt.Errorf("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP")
}

// Parse implements xt.Match.
func (m *Multiport) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := psMultiportOpts.begin(m.flags, opt, invert)
	if err != nil {
		return err
	}
	proto, err := psMultiportProto(ctx)
	if err != nil {
		return err
	}
	var ports []PortRange
	slots := 0
	for _, item := range strings.Split(arg, ",") {
		if slots >= MultiportMax {
			return xt.Errorf("too many ports specified")
		}
		lo, hi, isRange := strings.Cut(item, ":")
		p, err := xt.ParsePort(lo, proto)
		if err != nil {
			return err
		}
		r := PortRange{p, p}
		slots++
		if isRange {
			if slots >= MultiportMax {
				return xt.Errorf("too many ports specified")
			}
			q, err := xt.ParsePort(hi, proto)
			if err != nil {
				return err
			}
			if p >= q {
				return xt.Errorf("invalid portrange specified")
			}
			r.Max = q
			slots++
		}
		ports = append(ports, r)
	}
	m.Ports, m.Invert, m.proto = ports, invert, proto
	m.Dir = MultiportDir(e.id + 1)
	m.flags |= 1 << e.id
	return nil
}

// Final implements xt.Match.
func (m *Multiport) Final(ctx *xt.ParseContext) error {
	if m.flags == 0 {
		return xt.Errorf("multiport expection an option")
	}
	return psMultiportOpts.fcheck(m.flags)
}

func (m *Multiport) dirName() string {
	switch m.Dir {
	case MultiportSource:
		return "sports"
	case MultiportDestination:
		return "dports"
	}
	return "ports"
}

func (m *Multiport) appendPorts(b *strings.Builder, numeric bool) {
	for i, r := range m.Ports {
		if i > 0 {
			b.WriteByte(',')
		}
		if numeric {
			b.WriteString(strconv.Itoa(int(r.Min)))
		} else {
			b.WriteString(psPortName(r.Min, m.proto, false))
		}
		if r.Min != r.Max {
			b.WriteByte(':')
			if numeric {
				b.WriteString(strconv.Itoa(int(r.Max)))
			} else {
				b.WriteString(psPortName(r.Max, m.proto, false))
			}
		}
	}
}

// Save implements xt.Match (always the short option names).
func (m *Multiport) Save(b *strings.Builder) {
	psInv(b, m.Invert)
	b.WriteString(" --")
	b.WriteString(m.dirName())
	b.WriteByte(' ')
	m.appendPorts(b, true)
}

// List implements xt.Match ("multiport dports  !22,80:90": iptables puts
// two spaces before the "!").
func (m *Multiport) List(b *strings.Builder, numeric bool) {
	b.WriteString(" multiport ")
	b.WriteString(m.dirName())
	b.WriteByte(' ')
	if m.Invert {
		b.WriteString(" !")
	}
	m.appendPorts(b, numeric)
}

// Matches implements xt.PacketMatcher (xt_multiport revision 1): a
// non-first fragment does not match; the 4 port bytes must be present, else
// the packet is hot-dropped; the first entry containing the tested port (or
// either port, for --ports) decides, "!" negates the whole list.
func (m *Multiport) Matches(c *xt.Ctx) bool {
	l4, ok := rtXTHeader(c, 4, false)
	if !ok {
		return false
	}
	sp := uint16(l4[0])<<8 | uint16(l4[1])
	dp := uint16(l4[2])<<8 | uint16(l4[3])
	for _, r := range m.Ports {
		switch m.Dir {
		case MultiportSource:
			if r.Contains(sp) {
				return !m.Invert
			}
		case MultiportDestination:
			if r.Contains(dp) {
				return !m.Invert
			}
		default:
			if r.Contains(sp) || r.Contains(dp) {
				return !m.Invert
			}
		}
	}
	return m.Invert
}
