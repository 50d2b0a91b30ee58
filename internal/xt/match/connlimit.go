package match

import (
	"net/netip"
	"strconv"
	"strings"
	"unsafe"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/xt"
)

// Connlimit is the connlimit match (xt_connlimit): it counts the
// connections that passed this rule, grouped by the source (or destination)
// address masked to PrefixLen bits, and matches when the count is above
// Limit (Above) or at most Limit (!Above). `! --connlimit-above N` is the
// same rule as `--connlimit-upto N`, and iptables prints it so.
type Connlimit struct {
	Limit     uint32
	Above     bool
	PrefixLen int  // 0..32 (IPv4) or 0..128 (IPv6); default the full length
	Daddr     bool // group by destination address instead of source

	family xt.Family
	flags  uint32
}

const (
	clOptUpto = iota
	clOptAbove
	clOptMask
	clOptSaddr
	clOptDaddr
)

var psConnlimitOpts = &psTable{ext: "connlimit", entries: []psOpt{
	{name: "connlimit-upto", id: clOptUpto, arg: xt.RequiredArg, invert: true, excl: 1 << clOptAbove},
	{name: "connlimit-above", id: clOptAbove, arg: xt.RequiredArg, invert: true, excl: 1 << clOptUpto},
	{name: "connlimit-mask", id: clOptMask, arg: xt.RequiredArg},
	{name: "connlimit-saddr", id: clOptSaddr, arg: xt.NoArg, excl: 1 << clOptDaddr},
	{name: "connlimit-daddr", id: clOptDaddr, arg: xt.NoArg, excl: 1 << clOptSaddr},
}}

var _ xt.Match = (*Connlimit)(nil)

func newConnlimitSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name:    "connlimit",
		Options: psConnlimitOpts.options(),
		New:     func() xt.Match { return &Connlimit{PrefixLen: -1} },
	}
}

// Parse implements xt.Match.
func (m *Connlimit) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := psConnlimitOpts.begin(m.flags, opt, invert)
	if err != nil {
		return err
	}
	m.family = ctx.Family
	switch e.id {
	case clOptUpto, clOptAbove:
		v, err := psConnlimitOpts.parseUintOpt(e, arg, 0, 0xFFFFFFFF)
		if err != nil {
			return err
		}
		m.Limit = uint32(v)
		m.Above = (e.id == clOptAbove) != invert
	case clOptMask:
		n, ok := psPlenMask(ctx.Family, arg)
		if !ok {
			return xt.Errorf("connlimit: bad value for option \"--connlimit-mask\", neither a valid network mask nor valid CIDR (0-%d).\n", psFamilyBits(ctx.Family))
		}
		m.PrefixLen = n
	case clOptSaddr:
		m.Daddr = false
	case clOptDaddr:
		m.Daddr = true
	}
	m.flags |= 1 << e.id
	return nil
}

// Final implements xt.Match.
func (m *Connlimit) Final(ctx *xt.ParseContext) error {
	m.family = ctx.Family
	if m.flags&(1<<clOptUpto|1<<clOptAbove) == 0 {
		return xt.Errorf("You must specify \"--connlimit-above\" or \"--connlimit-upto\".")
	}
	if m.PrefixLen < 0 {
		m.PrefixLen = psFamilyBits(ctx.Family)
	}
	return psConnlimitOpts.fcheck(m.flags)
}

// Save implements xt.Match: always limit, mask and side.
func (m *Connlimit) Save(b *strings.Builder) {
	if m.Above {
		b.WriteString(" --connlimit-above ")
	} else {
		b.WriteString(" --connlimit-upto ")
	}
	b.WriteString(strconv.FormatUint(uint64(m.Limit), 10))
	b.WriteString(" --connlimit-mask ")
	b.WriteString(strconv.Itoa(m.PrefixLen))
	if m.Daddr {
		b.WriteString(" --connlimit-daddr")
	} else {
		b.WriteString(" --connlimit-saddr")
	}
}

// List implements xt.Match ("#conn src/32 > 20", "#conn dst/24 <= 5").
func (m *Connlimit) List(b *strings.Builder, numeric bool) {
	b.WriteString(" #conn ")
	if m.Daddr {
		b.WriteString("dst/")
	} else {
		b.WriteString("src/")
	}
	b.WriteString(strconv.Itoa(m.PrefixLen))
	if m.Above {
		b.WriteString(" > ")
	} else {
		b.WriteString(" <= ")
	}
	b.WriteString(strconv.FormatUint(uint64(m.Limit), 10))
}

// ConnlimitRuntime is the packet-time side of one connlimit rule: its own
// nf_conncount bookkeeping (spec §3.2), carried over from the rule's
// previous runtime across reloads (iptables-nft keeps unchanged rules').
type ConnlimitRuntime struct {
	limit  uint32
	above  bool
	daddr  bool
	ipv6   bool
	plen   int
	mask   [16]byte
	counts *statestore.Conncount
}

var _ xt.MatchBuilder = (*Connlimit)(nil)
var _ xt.PacketMatcher = (*ConnlimitRuntime)(nil)

// Build implements xt.MatchBuilder.
func (m *Connlimit) Build(env *xt.Env) (xt.PacketMatcher, error) {
	fam := env.Family
	if fam == 0 {
		fam = m.family
	}
	bits := psFamilyBits(fam)
	plen := m.PrefixLen
	if plen < 0 || plen > bits {
		plen = bits
	}
	r := &ConnlimitRuntime{limit: m.Limit, above: m.Above, daddr: m.Daddr, ipv6: fam == xt.IPv6, plen: plen}
	copy(r.mask[:], xt.PrefixMask(fam, plen).AsSlice())
	if p, ok := env.Prev.(*ConnlimitRuntime); ok && p.ipv6 == r.ipv6 && p.mask == r.mask && p.daddr == r.daddr {
		r.counts = p.counts
	} else {
		r.counts = statestore.NewConncount(0, stSeed(env))
	}
	return r, nil
}

// Matches implements xt.PacketMatcher (xt_connlimit's connlimit_mt): the
// key is the packet's masked source (or destination) address and the
// connection's zone; the tuple counted is the connection's tuple in the
// packet's direction, or for a packet without a connection (INVALID,
// UNTRACKED) the packet's own tuple; a packet whose tuple cannot be read
// is hot-dropped, and so is one the bookkeeping has no room for.
func (r *ConnlimitRuntime) Matches(c *xt.Ctx) bool {
	p := c.P
	var tu conntrack.Tuple
	var key statestore.ConnKey
	var ref conntrack.ConnRef
	if conn := c.CT.Conn; conn != nil {
		tu = conn.Tuple(c.CT.Info.Dir)
		ref = conn.Ref(c.CT.Info.Dir)
		key.Zone = conn.Zone()
	} else if !clPacketTuple(p, &tu) {
		c.HotDrop = true
		return false
	}
	a := p.Src
	if r.daddr {
		a = p.Dst
	}
	key.IPv6 = r.ipv6
	if a.Is4() {
		b := a.As4()
		for i := 0; i < 4; i++ {
			key.Addr[i] = b[i] & r.mask[i]
		}
	} else {
		b := a.As16()
		for i := range b {
			key.Addr[i] = b[i] & r.mask[i]
		}
	}
	var ct statestore.ConnTable
	if c.Conntrack != nil {
		ct = c.Conntrack
	}
	// The Ctx belongs to one goroutine for its life: its address stands
	// for the kernel's cpu number in nf_conncount's grace rule.
	n, ok := r.counts.Add(&key, &tu, ref, uintptr(unsafe.Pointer(c)), ct, p.TimeNS)
	if !ok || n == 0 {
		c.HotDrop = true
		return false
	}
	return (n > int(r.limit)) == r.above
}

// clPacketTuple builds the tuple of a packet conntrack did not attach
// (nf_ct_get_tuplepr): ports for TCP/UDP/UDP-Lite, id/type/code for ICMP,
// zero ids otherwise; false when the L4 header is missing.
func clPacketTuple(p *packet.Packet, tu *conntrack.Tuple) bool {
	*tu = conntrack.Tuple{Src: p.Src, Dst: p.Dst, Proto: p.Proto}
	switch p.Proto {
	case conntrack.ProtoTCP, conntrack.ProtoUDP, conntrack.ProtoUDPLite:
		if p.Status != packet.OK {
			return false
		}
		tu.SrcID, tu.DstID = p.SrcPort, p.DstPort
	case conntrack.ProtoICMP, conntrack.ProtoICMPv6:
		if p.Status != packet.OK {
			return false
		}
		tu.SrcID = p.ICMPID
		tu.DstID = uint16(p.ICMPType)<<8 | uint16(p.ICMPCode)
	}
	return true
}

// ConnlimitCount is one address (or network) and the connections it holds
// in a connlimit rule's bookkeeping.
type ConnlimitCount struct {
	Prefix netip.Prefix
	Zone   uint16
	Count  int
}

// Counts returns how many connections each key holds ("how many
// connections an IP has"), key order unspecified. With a connection table
// the dead and closed entries are dropped first, so a count is what the
// key's next new connection would see before adding itself.
func (r *ConnlimitRuntime) Counts(ct *conntrack.Table, nowNS int64) []ConnlimitCount {
	var t statestore.ConnTable
	if ct != nil {
		t = ct
	}
	ks := r.counts.Counts(nil, t, nowNS)
	out := make([]ConnlimitCount, len(ks))
	for i, k := range ks {
		out[i] = ConnlimitCount{Prefix: k.Key.Prefix(r.plen), Zone: k.Key.Zone, Count: k.Count}
	}
	return out
}
