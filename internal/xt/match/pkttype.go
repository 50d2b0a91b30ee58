package match

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// pkttype (xt_pkttype): --pkt-type unicast|broadcast|multicast|otherhost
// ("host" is an alias of unicast; names are case-insensitive). The kernel
// looks at skb->pkt_type, which the link layer sets from the destination MAC;
// for locally generated (OUTPUT) packets it classifies by destination
// address instead. The runtime needs that link-layer classification.

// Packet types as the kernel numbers them (PACKET_HOST ...).
const (
	PacketHost      uint8 = 0
	PacketBroadcast uint8 = 1
	PacketMulticast uint8 = 2
	PacketOtherHost uint8 = 3
)

var pktTypeNames = []struct {
	name string
	typ  uint8
}{
	{"unicast", PacketHost}, {"broadcast", PacketBroadcast}, {"multicast", PacketMulticast},
	{"otherhost", PacketOtherHost}, {"host", PacketHost},
}

var pkttypeOpts = optTable{
	{name: "pkt-type", id: 0, arg: xt.RequiredArg, flags: optMand | optInvert},
}

// PktType is a configured pkttype match.
type PktType struct {
	seen   uint32
	Type   uint8
	Invert bool
}

var _ xt.Match = (*PktType)(nil)

func newPktTypeSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "pkttype", Options: pkttypeOpts.options(), New: func() xt.Match { return &PktType{} }}
}

// Parse implements xt.Match.
func (m *PktType) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if _, err := pkttypeOpts.begin("pkttype", &m.seen, opt, invert); err != nil {
		return err
	}
	for _, n := range pktTypeNames {
		if strings.EqualFold(n.name, arg) {
			m.Type, m.Invert = n.typ, invert
			return nil
		}
	}
	return xt.Errorf("Bad packet type '%s'", arg)
}

// Final implements xt.Match.
func (m *PktType) Final(*xt.ParseContext) error { return pkttypeOpts.fcheck("pkttype", m.seen) }

func (m *PktType) typeName() string {
	for _, n := range pktTypeNames {
		if n.typ == m.Type {
			return n.name
		}
	}
	return "unknown"
}

// Save implements xt.Match.
func (m *PktType) Save(b *strings.Builder) {
	saveNot(b, m.Invert)
	b.WriteString(" --pkt-type " + m.typeName())
}

// List implements xt.Match.
func (m *PktType) List(b *strings.Builder, _ bool) {
	if m.Invert {
		b.WriteString(" PKTTYPE != ")
	} else {
		b.WriteString(" PKTTYPE = ")
	}
	b.WriteString(m.typeName())
}

// MatchType is the test for a packet whose link-layer type is t.
func (m *PktType) MatchType(t uint8) bool { return (t == m.Type) != m.Invert }
