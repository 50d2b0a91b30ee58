package match

import (
	"strings"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/xt"
)

// UDP is the udp match (`-p udp [--sport] [--dport]`), xt_udp or native nft
// payload comparisons. As for tcp, iptables-nft goes native unless the
// match is entirely default; natively a full port range emits nothing, so
// an inverted full range constrains nothing and vanishes from the listing.
//
// The port parser is xtopt's (getaddrinfo on each component): decimal only,
// values wrap to 16 bits (70000 is 4464), a reversed range is kept as given
// (and never matches).
type UDP struct {
	SrcPorts, DstPorts PortRange
	InvSrc, InvDst     bool
	// needProto: a native match on a rule without its -p (ProtoError).
	needProto bool
	// Native is true when iptables-nft uses payload expressions (no xt_udp).
	Native bool

	flags uint32
}

const (
	udpOptSrc = iota
	udpOptDst
)

var psUDPOpts = &psTable{ext: "udp", entries: []psOpt{
	{name: "source-port", id: udpOptSrc, arg: xt.RequiredArg, invert: true},
	{name: "sport", id: udpOptSrc, arg: xt.RequiredArg, invert: true},
	{name: "destination-port", id: udpOptDst, arg: xt.RequiredArg, invert: true},
	{name: "dport", id: udpOptDst, arg: xt.RequiredArg, invert: true},
}}

var _ xt.Match = (*UDP)(nil)
var _ xt.Checker = (*UDP)(nil)
var _ Omitter = (*UDP)(nil)
var _ xt.PacketMatcher = (*UDP)(nil)

func newUDPSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name:    "udp",
		Options: psUDPOpts.options(),
		New:     func() xt.Match { return &UDP{SrcPorts: psFullPorts, DstPorts: psFullPorts} },
	}
}

// Parse implements xt.Match.
func (m *UDP) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := psUDPOpts.begin(m.flags, opt, invert)
	if err != nil {
		return err
	}
	r, err := psUDPOpts.parsePortRC(e, arg)
	if err != nil {
		return err
	}
	if e.id == udpOptSrc {
		m.SrcPorts, m.InvSrc = r, invert
	} else {
		m.DstPorts, m.InvDst = r, invert
	}
	m.flags |= 1 << e.id
	return nil
}

// Final implements xt.Match: a native udp match needs `-p udp` (checked in
// user space by iptables-nft, "! -p udp" passes). iptables-nft finds that
// out only when it builds the nft rule, after every check of the command
// line and the table (measured: "-m udp --dport 1 -j CONNMARK" complains
// about CONNMARK), so it is reported by ProtoError, not here.
func (m *UDP) Final(ctx *xt.ParseContext) error {
	m.Native = !(m.SrcPorts.Full() && m.DstPorts.Full() && !m.InvSrc && !m.InvDst)
	m.needProto = false
	if !m.Native {
		return nil
	}
	if ctx.Proto != 17 {
		m.needProto = true
		return nil
	}
	if m.SrcPorts.Full() {
		m.InvSrc = false
	}
	if m.DstPorts.Full() {
		m.InvDst = false
	}
	return nil
}

// ProtoError is the error iptables-nft reports when it builds the rule of
// a native udp match without `-p udp` (nil otherwise).
func (m *UDP) ProtoError() error {
	if m.needProto {
		return xt.Errorf("UDP match requires '-p udp'")
	}
	return nil
}

// Check implements xt.Checker: the xt_udp form needs `-p udp` in the kernel.
func (m *UDP) Check(ctx *xt.CheckContext) error {
	if !m.Native && (ctx.Proto != 17 || ctx.InvProto) {
		return xt.EINVAL("xt_udp: only valid for protocol 17")
	}
	return nil
}

// Omitted implements Omitter.
func (m *UDP) Omitted() bool {
	return m.Native && m.SrcPorts.Full() && m.DstPorts.Full()
}

// Save implements xt.Match.
func (m *UDP) Save(b *strings.Builder) {
	if !m.SrcPorts.Full() {
		psInv(b, m.InvSrc)
		b.WriteString(" --sport ")
		m.SrcPorts.appendSave(b)
	}
	if !m.DstPorts.Full() {
		psInv(b, m.InvDst)
		b.WriteString(" --dport ")
		m.DstPorts.appendSave(b)
	}
}

// List implements xt.Match ("udp spt:5 dpts:10:20").
func (m *UDP) List(b *strings.Builder, numeric bool) {
	b.WriteString(" udp")
	psListPorts(b, "spt", m.SrcPorts, m.InvSrc, numeric, "udp")
	psListPorts(b, "dpt", m.DstPorts, m.InvDst, numeric, "udp")
}

// Matches implements xt.PacketMatcher. The xt form (only for an all-default
// match) needs the 8-byte header: a shorter one hot-drops, a non-first
// fragment does not match. The native form compares each port from the
// bytes at the transport offset when they are present (truncated headers
// and non-first IPv4 fragments included, see TCP.Matches) and fails
// otherwise.
func (m *UDP) Matches(c *xt.Ctx) bool {
	if !m.Native {
		l4, ok := rtXTHeader(c, header.UDPLen, false)
		if !ok {
			return false
		}
		sp := uint16(l4[0])<<8 | uint16(l4[1])
		dp := uint16(l4[2])<<8 | uint16(l4[3])
		return m.SrcPorts.Contains(sp) != m.InvSrc && m.DstPorts.Contains(dp) != m.InvDst
	}
	l4, _, ok := rtL4(c.P)
	if !ok {
		return false
	}
	return nativePorts(l4, m.SrcPorts, m.InvSrc, m.DstPorts, m.InvDst)
}
