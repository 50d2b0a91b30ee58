package match

import (
	"net/netip"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// pkttype (xt_pkttype): --pkt-type unicast|broadcast|multicast|otherhost
// ("host" is an alias of unicast; names are case-insensitive). The kernel
// looks at skb->pkt_type, which the link layer sets from the destination MAC;
// locally generated packets are PACKET_HOST. See pktTypeRuntime.classify.

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
var _ xt.MatchBuilder = (*PktType)(nil)

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

// Build implements xt.MatchBuilder: it collects the broadcast addresses of
// the host's IPv4 prefixes (env.LocalAddrs) for packets classified by their
// IP destination.
func (m *PktType) Build(env *xt.Env) (xt.PacketMatcher, error) {
	r := &pktTypeRuntime{m: m}
	for _, rt := range newLocalTable(rtHostAddrs(env)).routes {
		if rt.typ == rtnBroadcast {
			r.bcast = append(r.bcast, rt.dst.Addr())
		}
	}
	return r, nil
}

// pktTypeRuntime is a built pkttype match.
type pktTypeRuntime struct {
	m     *PktType
	bcast []netip.Addr
}

// Matches implements xt.PacketMatcher (pkttype_mt).
func (r *pktTypeRuntime) Matches(c *xt.Ctx) bool {
	return r.m.MatchType(r.classify(c))
}

// classify is skb->pkt_type as the kernel has it at the packet's hook:
//
//   - OUTPUT, POSTROUTING, FORWARD: host ("unicast"). Locally generated
//     packets are PACKET_HOST even to a broadcast or multicast address
//     (observed in OUTPUT and POSTROUTING), and ip_forward only forwards
//     PACKET_HOST packets.
//   - PREROUTING, INPUT with an Ethernet header in p.Link (and an input
//     interface other than "lo"): from the destination MAC, as
//     eth_type_trans: ff:ff:ff:ff:ff:ff broadcast, group bit multicast,
//     anything else host (PACKET_OTHERHOST is dropped by ip_rcv before
//     PREROUTING, so "otherhost" never matches).
//   - Otherwise (no link header, or the loopback, where multicast and
//     broadcast come back as PACKET_LOOPBACK copies): from the IP
//     destination: 224.0.0.0/4 and ff00::/8 multicast; 255.255.255.255 and
//     the broadcast address of a local IPv4 prefix broadcast (observed on a
//     veth: 10.9.0.255 arrives as broadcast); else host.
func (r *pktTypeRuntime) classify(c *xt.Ctx) uint8 {
	if c.Hook != xt.PreRouting && c.Hook != xt.LocalIn {
		return PacketHost
	}
	p := c.P
	if l := p.Link; len(l) >= 14 && p.InIface != "lo" {
		switch {
		case l[0]&l[1]&l[2]&l[3]&l[4]&l[5] == 0xff:
			return PacketBroadcast
		case l[0]&1 != 0:
			return PacketMulticast
		}
		return PacketHost
	}
	d := p.Dst
	if d.IsMulticast() {
		return PacketMulticast
	}
	if d.Is4() {
		if d == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return PacketBroadcast
		}
		for _, b := range r.bcast {
			if d == b {
				return PacketBroadcast
			}
		}
	}
	return PacketHost
}
