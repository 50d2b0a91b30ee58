package match

import (
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/xt"
)

// Length is the length match (xt_length): the packet's L3 length (IPv4
// total length; IPv6 payload length + 40) in [Min, Max], inclusive. A
// reversed range is accepted as iptables does and never matches.
type Length struct {
	Min, Max uint16
	Invert   bool

	flags uint32
}

var psLengthOpts = &psTable{ext: "length", entries: []psOpt{
	{name: "length", id: 0, arg: xt.RequiredArg, invert: true, mand: true},
}}

var _ xt.Match = (*Length)(nil)
var _ xt.PacketMatcher = (*Length)(nil)

func newLengthSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name:    "length",
		Options: psLengthOpts.options(),
		New:     func() xt.Match { return &Length{} },
	}
}

// Parse implements xt.Match.
func (m *Length) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := psLengthOpts.begin(m.flags, opt, invert)
	if err != nil {
		return err
	}
	lo, hi, _, err := psLengthOpts.parseUintRange(e, arg, 65535)
	if err != nil {
		return err
	}
	m.Min, m.Max, m.Invert = uint16(lo), uint16(hi), invert
	m.flags |= 1 << e.id
	return nil
}

// Final implements xt.Match (--length is mandatory).
func (m *Length) Final(ctx *xt.ParseContext) error { return psLengthOpts.fcheck(m.flags) }

func (m *Length) appendRange(b *strings.Builder) {
	b.WriteString(strconv.Itoa(int(m.Min)))
	if m.Min != m.Max {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(int(m.Max)))
	}
}

// Save implements xt.Match (":60" was stored as 0:60 and prints so).
func (m *Length) Save(b *strings.Builder) {
	psInv(b, m.Invert)
	b.WriteString(" --length ")
	m.appendRange(b)
}

// List implements xt.Match ("length 5", "length !5:10").
func (m *Length) List(b *strings.Builder, numeric bool) {
	b.WriteString(" length ")
	if m.Invert {
		b.WriteByte('!')
	}
	m.appendRange(b)
}

// Matches implements xt.PacketMatcher (xt_length): the IPv4 total-length
// field, or the IPv6 payload-length field plus 40 computed in 16 bits as the
// kernel does (a payload length above 65495 wraps around). An IPv4 GSO
// aggregate beyond 64 KiB (total-length field 0, packet.Packet.Cut from
// NFQUEUE) has its real length compared in 32 bits, as skb_ip_totlen
// gives it to xt_length: measured on 6.18 loopback, `! --length 0:65535`
// matches such aggregates and `--length 0` does not.
func (m *Length) Matches(c *xt.Ctx) bool {
	p := c.P
	d := p.Data
	if p.Status == packet.BadL3 || len(d) < 6 {
		return false
	}
	var n uint32
	if p.Version == 6 {
		n = uint32(uint16(d[4])<<8 | uint16(d[5]) + 40)
	} else {
		n = uint32(d[2])<<8 | uint32(d[3])
		if n == 0 {
			n = uint32(p.TotalLen)
		}
	}
	return (n >= uint32(m.Min) && n <= uint32(m.Max)) != m.Invert
}
