package match

import (
	"strings"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/xt"
)

// Connection state bits, as xt_conntrack numbers them (the state match is
// sent to the kernel as conntrack revision 3, so both share these bits).
const (
	StateInvalid     = 1 << 0
	StateEstablished = 1 << 1
	StateRelated     = 1 << 2
	StateNew         = 1 << 3
	StateSNAT        = 1 << 6 // conntrack only: the connection is source-NATed
	StateDNAT        = 1 << 7 // conntrack only: the connection is destination-NATed
	StateUntracked   = 1 << 8
)

// psStateName maps a state name to its bit.
type psStateName struct {
	name string
	bit  uint16
}

// psStateParseOrder is the order iptables tries names in; a name may be
// abbreviated to any prefix, the first name it prefixes wins ("E" is
// ESTABLISHED, "S" is SNAT).
var psStateParseOrder = [...]psStateName{
	{"INVALID", StateInvalid}, {"NEW", StateNew}, {"ESTABLISHED", StateEstablished},
	{"RELATED", StateRelated}, {"UNTRACKED", StateUntracked}, {"SNAT", StateSNAT}, {"DNAT", StateDNAT},
}

// psStatePrintOrder is the order -S and -L print the names in.
var psStatePrintOrder = [...]psStateName{
	{"INVALID", StateInvalid}, {"NEW", StateNew}, {"RELATED", StateRelated},
	{"ESTABLISHED", StateEstablished}, {"UNTRACKED", StateUntracked}, {"SNAT", StateSNAT}, {"DNAT", StateDNAT},
}

// psLookupPrefix finds the first name in table that s (non-empty) is a
// case-insensitive prefix of; allowed limits the candidates by bit.
func psLookupPrefix(table []psStateName, s string, allowed uint16) (uint16, bool) {
	if s == "" {
		return 0, false
	}
	for _, n := range table {
		if n.bit&allowed == 0 && !(n.bit == 0 && allowed == 0xFFFF) {
			continue
		}
		if len(s) <= len(n.name) && strings.EqualFold(n.name[:len(s)], s) {
			return n.bit, true
		}
	}
	return 0, false
}

// psAppendNames writes the names of the bits set in v, comma separated.
func psAppendNames(b *strings.Builder, table []psStateName, v uint16) {
	first := true
	for _, n := range table {
		if v&n.bit != 0 {
			if !first {
				b.WriteByte(',')
			}
			b.WriteString(n.name)
			first = false
		}
	}
}

// State is the state match (`-m state [!] --state LIST`): true when the
// packet's conntrack state bit is in Mask (with Invert: when it is not).
type State struct {
	Mask   uint16
	Invert bool

	flags uint32
}

const stateAllowed = StateInvalid | StateNew | StateEstablished | StateRelated | StateUntracked

var psStateOpts = &psTable{ext: "state", entries: []psOpt{
	{name: "state", id: 0, arg: xt.RequiredArg, invert: true, mand: true},
}}

var _ xt.Match = (*State)(nil)
var _ xt.PacketMatcher = (*State)(nil)

func newStateSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name:    "state",
		Options: psStateOpts.options(),
		New:     func() xt.Match { return &State{} },
	}
}

// Parse implements xt.Match.
func (m *State) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := psStateOpts.begin(m.flags, opt, invert)
	if err != nil {
		return err
	}
	var mask uint16
	rest := arg
	for {
		i := strings.IndexByte(rest, ',')
		if i < 0 {
			break
		}
		bit, ok := psLookupPrefix(psStateParseOrder[:], rest[:i], stateAllowed)
		if i == 0 || !ok {
			return xt.Errorf("Bad state \"%s\"", rest)
		}
		mask |= bit
		rest = rest[i+1:]
	}
	if rest == "" {
		return xt.Errorf("\"--state\" requires a list of states with no spaces, e.g. ESTABLISHED,RELATED")
	}
	bit, ok := psLookupPrefix(psStateParseOrder[:], rest, stateAllowed)
	if !ok {
		return xt.Errorf("Bad state \"%s\"", rest)
	}
	m.Mask, m.Invert = mask|bit, invert
	m.flags |= 1 << e.id
	return nil
}

// Final implements xt.Match (--state is mandatory).
func (m *State) Final(ctx *xt.ParseContext) error {
	return psStateOpts.fcheck(m.flags)
}

// Save implements xt.Match.
func (m *State) Save(b *strings.Builder) {
	psInv(b, m.Invert)
	b.WriteString(" --state ")
	psAppendNames(b, psStatePrintOrder[:], m.Mask)
}

// List implements xt.Match ("state NEW,ESTABLISHED", "! state INVALID").
func (m *State) List(b *strings.Builder, numeric bool) {
	psInv(b, m.Invert)
	b.WriteString(" state ")
	psAppendNames(b, psStatePrintOrder[:], m.Mask)
}

// rtStateBit is the packet's state as the xt_conntrack/xt_state bit
// (State*): the ctinfo of an attached connection (NEW, ESTABLISHED or
// RELATED, whatever the direction), UNTRACKED for a NOTRACK packet, and
// INVALID when nothing is attached (including in the raw table, which runs
// before conntrack).
func rtStateBit(r *conntrack.Result) uint16 {
	if r.Conn == nil {
		if r.Info.State == conntrack.Untracked {
			return StateUntracked
		}
		return StateInvalid
	}
	switch r.Info.State {
	case conntrack.New:
		return StateNew
	case conntrack.Established:
		return StateEstablished
	case conntrack.Related:
		return StateRelated
	case conntrack.Untracked:
		return StateUntracked
	}
	return StateInvalid
}

// Matches implements xt.PacketMatcher. iptables-nft sends -m state as
// xt_conntrack revision 3 with only the state test: the state bit must be
// in Mask, "!" negates; a packet without conntrack is INVALID (so
// `! --state NEW` matches it).
func (m *State) Matches(c *xt.Ctx) bool {
	return (m.Mask&rtStateBit(&c.CT) != 0) != m.Invert
}
