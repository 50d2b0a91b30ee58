package match

import (
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// AH is the IPv4 ah match (`-p ah [!] --ahspi spi[:spi]`), the kernel's
// ipt_ah through xt compat (iptables-nft 1.8.9 keeps it an xt match). The
// IPv4 extension knows only --ahspi; --ahlen and --ahres belong to
// ip6tables' ah and are unknown options here, as in iptables.
//
// The range is an xtopt UINT32RC: "a", "a:b", ":b", "a:", "" (0); a
// reversed range is kept and never matches.
type AH struct {
	SPIMin, SPIMax uint32
	InvSPI         bool

	flags uint32
}

const ahOptSPI = 0

var psAHOpts = &psTable{ext: "ah", entries: []psOpt{
	{name: "ahspi", id: ahOptSPI, arg: xt.RequiredArg, invert: true},
}}

var _ xt.Match = (*AH)(nil)
var _ xt.Checker = (*AH)(nil)
var _ xt.PacketMatcher = (*AH)(nil)

func newAHSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name:    "ah",
		Family:  xt.IPv4,
		Options: psAHOpts.options(),
		New:     func() xt.Match { return &AH{SPIMax: ^uint32(0)} },
	}
}

// Parse implements xt.Match.
func (m *AH) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := psAHOpts.begin(m.flags, opt, invert)
	if err != nil {
		return err
	}
	lo, hi, _, err := psAHOpts.parseUintRange(e, arg, 1<<32-1)
	if err != nil {
		return err
	}
	m.SPIMin, m.SPIMax, m.InvSPI = uint32(lo), uint32(hi), invert
	m.flags |= 1 << e.id
	return nil
}

// Final implements xt.Match.
func (m *AH) Final(ctx *xt.ParseContext) error { return psAHOpts.fcheck(m.flags) }

// Check implements xt.Checker: ipt_ah is registered for protocol 51.
func (m *AH) Check(ctx *xt.CheckContext) error {
	if ctx.Proto != 51 || ctx.InvProto {
		return xt.EINVAL("ipt_ah: only valid for protocol 51")
	}
	return nil
}

func (m *AH) full() bool { return m.SPIMin == 0 && m.SPIMax == ^uint32(0) }

// Save implements xt.Match: a full range is not printed, even inverted.
func (m *AH) Save(b *strings.Builder) {
	if m.full() {
		return
	}
	psInv(b, m.InvSPI)
	b.WriteString(" --ahspi ")
	b.WriteString(strconv.FormatUint(uint64(m.SPIMin), 10))
	if m.SPIMin != m.SPIMax {
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(uint64(m.SPIMax), 10))
	}
}

// List implements xt.Match ("ah spis:!5:10"); iptables prints " ah " with
// a trailing blank, and nothing after it for an uninverted full range.
func (m *AH) List(b *strings.Builder, numeric bool) {
	b.WriteString(" ah ")
	if m.full() && !m.InvSPI {
		return
	}
	b.WriteString("spi")
	if m.SPIMin == m.SPIMax {
		b.WriteByte(':')
	} else {
		b.WriteString("s:")
	}
	if m.InvSPI {
		b.WriteByte('!')
	}
	b.WriteString(strconv.FormatUint(uint64(m.SPIMin), 10))
	if m.SPIMin != m.SPIMax {
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(uint64(m.SPIMax), 10))
	}
}

// ahHdrLen is sizeof(struct ip_auth_hdr): next header, length, reserved,
// SPI, sequence number; the kernel wants all of it.
const ahHdrLen = 12

// Matches implements xt.PacketMatcher as ipt_ah: a non-first fragment
// never matches, a header shorter than 12 bytes hot-drops, then the SPI
// (bytes 4..7, big-endian) is compared with the range.
func (m *AH) Matches(c *xt.Ctx) bool {
	h, ok := rtXTHeader(c, ahHdrLen, false)
	if !ok {
		return false
	}
	spi := uint32(h[4])<<24 | uint32(h[5])<<16 | uint32(h[6])<<8 | uint32(h[7])
	return (spi >= m.SPIMin && spi <= m.SPIMax) != m.InvSPI
}
