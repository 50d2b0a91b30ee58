package match

import (
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/xt"
)

// TCP flag bits as in the TCP header's flag byte.
const (
	TCPFlagFIN = 0x01
	TCPFlagSYN = 0x02
	TCPFlagRST = 0x04
	TCPFlagPSH = 0x08
	TCPFlagACK = 0x10
	TCPFlagURG = 0x20
	// tcpFlagsAll is what the name ALL stands for (ECE/CWR are not nameable).
	tcpFlagsAll = 0x3F
)

// psTCPFlagNames are the flag names in the order iptables prints them.
var psTCPFlagNames = [...]struct {
	name string
	bit  uint8
}{
	{"FIN", TCPFlagFIN}, {"SYN", TCPFlagSYN}, {"RST", TCPFlagRST},
	{"PSH", TCPFlagPSH}, {"ACK", TCPFlagACK}, {"URG", TCPFlagURG},
}

// TCP is the tcp match (`-p tcp [--sport] [--dport] [--tcp-flags] [--syn]
// [--tcp-option]`), the kernel's xt_tcp / the native nft tcp expressions.
//
// iptables-nft translates the match to native payload comparisons unless a
// --tcp-option is given or the match is entirely default; then the xt_tcp
// module runs. The two differ: natively a full port range or a zero flag
// mask emits nothing (so `! --sport :` constrains nothing and vanishes from
// the listing), and a truncated header just fails to match, while xt_tcp
// honours the inversion and hot-drops truncated headers. Final records the
// path in Native and normalises the fields to what the kernel holds.
type TCP struct {
	SrcPorts, DstPorts PortRange
	InvSrc, InvDst     bool
	// needProto: a native match on a rule without its -p (ProtoError).
	needProto bool
	// Option is the TCP option kind that must be present (0 = none).
	Option    uint8
	InvOption bool
	// FlagMask/FlagComp: match when flags&FlagMask == FlagComp.
	FlagMask, FlagComp uint8
	InvFlags           bool
	// Native is true when iptables-nft uses payload expressions (no xt_tcp).
	Native bool

	seen uint8 // tcpSeen* bits: which options were given
}

const (
	tcpSeenSrc = 1 << iota
	tcpSeenDst
	tcpSeenFlags
	tcpSeenOption
)

var _ xt.Match = (*TCP)(nil)
var _ xt.Checker = (*TCP)(nil)
var _ Omitter = (*TCP)(nil)
var _ xt.PacketMatcher = (*TCP)(nil)

func newTCPSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name: "tcp",
		Options: []xt.Option{
			{Name: "source-port", Arg: xt.RequiredArg},
			{Name: "sport", Arg: xt.RequiredArg},
			{Name: "destination-port", Arg: xt.RequiredArg},
			{Name: "dport", Arg: xt.RequiredArg},
			{Name: "syn", Arg: xt.NoArg},
			{Name: "tcp-flags", Arg: xt.RequiredArg, Extra: 1},
			{Name: "tcp-option", Arg: xt.RequiredArg},
		},
		New: func() xt.Match { return &TCP{SrcPorts: psFullPorts, DstPorts: psFullPorts} },
	}
}

// psParseTCPPorts is libxt_tcp's port range parser (parsePortRange).
func psParseTCPPorts(s string) (PortRange, error) { return parsePortRange(s, "tcp") }

// parsePortRange is the port range parser libxt_tcp and libxt_sctp share:
// "a", "a:b", ":b", "a:", numbers (base as strtoul 0) or service names of
// proto; min > max is refused.
func parsePortRange(s, proto string) (PortRange, error) {
	lo, hi, has := strings.Cut(s, ":")
	if !has {
		p, err := xt.ParsePort(s, proto)
		if err != nil {
			return PortRange{}, err
		}
		return PortRange{p, p}, nil
	}
	r := psFullPorts
	var err error
	if lo != "" {
		if r.Min, err = xt.ParsePort(lo, proto); err != nil {
			return PortRange{}, err
		}
	}
	if hi != "" {
		if r.Max, err = xt.ParsePort(hi, proto); err != nil {
			return PortRange{}, err
		}
	}
	if r.Min > r.Max {
		return PortRange{}, xt.Errorf("invalid portrange (min > max)")
	}
	return r, nil
}

// psParseTCPFlags parses a comma list of flag names (case-insensitive).
// Empty items are skipped, as iptables' strtok does (measured: an empty
// argument, `,` and `SYN,` are accepted; an empty mask prints no
// --tcp-flags at all).
func psParseTCPFlags(s string) (uint8, error) {
	var v uint8
	for _, f := range strings.Split(s, ",") {
		if f == "" {
			continue
		}
		switch strings.ToUpper(f) {
		case "ALL":
			v |= tcpFlagsAll
		case "NONE":
		default:
			found := false
			for _, n := range psTCPFlagNames {
				if strings.EqualFold(f, n.name) {
					v |= n.bit
					found = true
					break
				}
			}
			if !found {
				return 0, xt.Errorf("Unknown TCP flag `%s'", f)
			}
		}
	}
	return v, nil
}

// Parse implements xt.Match.
func (m *TCP) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	switch opt {
	case "source-port", "sport", "destination-port", "dport":
		r, src, err := portOption(opt, arg, &m.seen, tcpSeenSrc, tcpSeenDst, psParseTCPPorts)
		if err != nil {
			return err
		}
		if src {
			m.SrcPorts, m.InvSrc = r, invert
		} else {
			m.DstPorts, m.InvDst = r, invert
		}
	case "syn":
		if m.seen&tcpSeenFlags != 0 {
			return xt.Errorf("Only one of `--syn' or `--tcp-flags'  allowed")
		}
		m.FlagMask = TCPFlagSYN | TCPFlagRST | TCPFlagACK | TCPFlagFIN
		m.FlagComp = TCPFlagSYN
		m.InvFlags = invert
		m.seen |= tcpSeenFlags
	case "tcp-flags":
		if m.seen&tcpSeenFlags != 0 {
			return xt.Errorf("Only one of `--syn' or `--tcp-flags'  allowed")
		}
		if len(extra) < 1 {
			return xt.Errorf("--tcp-flags requires two args.")
		}
		mask, err := psParseTCPFlags(arg)
		if err != nil {
			return err
		}
		comp, err := psParseTCPFlags(extra[0])
		if err != nil {
			return err
		}
		m.FlagMask, m.FlagComp, m.InvFlags = mask, comp, invert
		m.seen |= tcpSeenFlags
	case "tcp-option":
		if m.seen&tcpSeenOption != 0 {
			return xt.Errorf("Only one `--tcp-option' allowed")
		}
		v, ok := xt.ParseUint(arg, 1, 255)
		if !ok {
			return xt.Errorf("Bad TCP option \"%s\"", arg)
		}
		m.Option, m.InvOption = uint8(v), invert
		m.seen |= tcpSeenOption
	default:
		return psUnknownOpt(opt)
	}
	return nil
}

// isDefault reports whether the match is the all-default xt_tcp struct.
func (m *TCP) isDefault() bool {
	return m.SrcPorts.Full() && m.DstPorts.Full() && !m.InvSrc && !m.InvDst &&
		m.Option == 0 && !m.InvOption && m.FlagMask == 0 && m.FlagComp == 0 && !m.InvFlags
}

// ProtoError is the error iptables-nft reports when it builds the rule of
// a native tcp match without `-p tcp` (nil otherwise).
func (m *TCP) ProtoError() error {
	if m.needProto {
		return xt.Errorf("TCP match requires '-p tcp'")
	}
	return nil
}

// Final implements xt.Match. It decides the nft translation (native payload
// or xt_tcp) and refuses a native tcp match on a rule whose -p is not tcp,
// as iptables-nft does in user space ("! -p tcp" passes this check).
//
// Like udp's, the `-p tcp` requirement is reported by ProtoError when the
// rule is built, after every other check of the command.
func (m *TCP) Final(ctx *xt.ParseContext) error {
	m.Native = m.Option == 0 && !m.InvOption && !m.isDefault()
	m.needProto = false
	if !m.Native {
		return nil
	}
	if ctx.Proto != 6 {
		m.needProto = true
		return nil
	}
	// What the nft rule holds: a full range or a zero mask emits nothing.
	if m.SrcPorts.Full() {
		m.InvSrc = false
	}
	if m.DstPorts.Full() {
		m.InvDst = false
	}
	if m.FlagMask == 0 {
		m.FlagComp, m.InvFlags = 0, false
	}
	return nil
}

// Check implements xt.Checker: xt_tcp (the non-native form) is registered
// for protocol tcp, so the kernel refuses it unless the rule has `-p tcp`.
func (m *TCP) Check(ctx *xt.CheckContext) error {
	if !m.Native && (ctx.Proto != 6 || ctx.InvProto) {
		return xt.EINVAL("xt_tcp: only valid for protocol 6")
	}
	return nil
}

// Omitted implements Omitter: a native match whose every part emitted
// nothing leaves no trace in the rule.
func (m *TCP) Omitted() bool {
	return m.Native && m.SrcPorts.Full() && m.DstPorts.Full() && m.FlagMask == 0
}

// Save implements xt.Match, in libxt_tcp's order: sport, dport, option, flags.
func (m *TCP) Save(b *strings.Builder) {
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
	if m.Option != 0 || m.InvOption {
		psInv(b, m.InvOption)
		b.WriteString(" --tcp-option ")
		b.WriteString(strconv.Itoa(int(m.Option)))
	}
	if m.FlagMask != 0 || m.InvFlags {
		psInv(b, m.InvFlags)
		b.WriteString(" --tcp-flags ")
		psAppendTCPFlags(b, m.FlagMask)
		b.WriteByte(' ')
		psAppendTCPFlags(b, m.FlagComp)
	}
}

func psAppendTCPFlags(b *strings.Builder, v uint8) {
	if v&tcpFlagsAll == 0 {
		b.WriteString("NONE")
		return
	}
	first := true
	for _, n := range psTCPFlagNames {
		if v&n.bit != 0 {
			if !first {
				b.WriteByte(',')
			}
			b.WriteString(n.name)
			first = false
		}
	}
}

// psListPorts prints one port range as tcp_print/udp_print do
// ("spt:80", "dpts:!1:1000"); a full range is printed only when inverted.
func psListPorts(b *strings.Builder, name string, r PortRange, inv, numeric bool, proto string) {
	if r.Full() && !inv {
		return
	}
	b.WriteByte(' ')
	b.WriteString(name)
	if r.Min == r.Max {
		b.WriteByte(':')
	} else {
		b.WriteString("s:")
	}
	if inv {
		b.WriteByte('!')
	}
	b.WriteString(psPortName(r.Min, proto, numeric))
	if r.Min != r.Max {
		b.WriteByte(':')
		b.WriteString(psPortName(r.Max, proto, numeric))
	}
}

// List implements xt.Match ("tcp dpt:80 flags:0x17/0x02").
func (m *TCP) List(b *strings.Builder, numeric bool) {
	b.WriteString(" tcp")
	psListPorts(b, "spt", m.SrcPorts, m.InvSrc, numeric, "tcp")
	psListPorts(b, "dpt", m.DstPorts, m.InvDst, numeric, "tcp")
	if m.Option != 0 || m.InvOption {
		b.WriteString(" option=")
		if m.InvOption {
			b.WriteByte('!')
		}
		b.WriteString(strconv.Itoa(int(m.Option)))
	}
	if m.FlagMask != 0 || m.InvFlags {
		b.WriteString(" flags:")
		if m.InvFlags {
			b.WriteByte('!')
		}
		if numeric {
			psHex02(b, m.FlagMask)
			b.WriteByte('/')
			psHex02(b, m.FlagComp)
		} else {
			psAppendTCPFlags(b, m.FlagMask)
			b.WriteByte('/')
			psAppendTCPFlags(b, m.FlagComp)
		}
	}
}

// psHex02 writes v as C's "0x%02X".
func psHex02(b *strings.Builder, v uint8) {
	const digits = "0123456789ABCDEF"
	b.WriteString("0x")
	b.WriteByte(digits[v>>4])
	b.WriteByte(digits[v&15])
}

// rtL4 returns the bytes from the transport header offset to the end of the
// packet as the kernel's matches see them (par->thoff), and the fragment
// offset in the units of par->fragoff (IPv4: 8-byte units; IPv6: bytes, so
// never 1). ok is false when no transport offset is known: a packet whose IP
// header is bad, or an IPv6 non-first fragment (whose L4 offset uptables
// does not model; the xt matches return false there anyway).
func rtL4(p *packet.Packet) (l4 []byte, fragoff uint32, ok bool) {
	switch p.Status {
	case packet.BadL3:
		return nil, 0, false
	case packet.Fragment:
		if p.Version != 4 {
			return nil, uint32(p.FragOff) * 8, false
		}
		fragoff = uint32(p.FragOff)
	}
	if p.L4Off <= 0 || p.L4Off > len(p.Data) {
		return nil, fragoff, false
	}
	return p.Data[p.L4Off:], fragoff, true
}

// rtBE16 reads a big-endian 16-bit value at off; ok is false when the bytes
// are not all present.
func rtBE16(b []byte, off int) (uint16, bool) {
	if len(b) < off+2 {
		return 0, false
	}
	return uint16(b[off])<<8 | uint16(b[off+1]), true
}

// rtXTHeader is the common entry of the xt protocol matches (xt_tcp,
// xt_udp, xt_icmp, xt_multiport): a non-first fragment never matches (and
// an IPv4 fragment at offset 1 — 8 bytes, which could overwrite a TCP header
// — hot-drops, tcp only), and a header shorter than need hot-drops: the
// kernel cannot examine the packet it was asked to examine.
func rtXTHeader(c *xt.Ctx, need int, dropFrag1 bool) ([]byte, bool) {
	l4, fragoff, ok := rtL4(c.P)
	if fragoff != 0 {
		if dropFrag1 && fragoff == 1 && c.P.Version == 4 {
			c.HotDrop = true
		}
		return nil, false
	}
	if !ok || len(l4) < need {
		c.HotDrop = true
		return nil, false
	}
	return l4, true
}

// Matches implements xt.PacketMatcher.
//
// The xt form (xt_tcp: a --tcp-option was given, or the match is entirely
// default) needs the whole 20-byte header: without it, or on an IPv4
// fragment at offset 1, the packet is hot-dropped; other non-first fragments
// do not match. A data offset below 5, or options cut by the end of the
// packet, hot-drop when --tcp-option is tested.
//
// The native form (iptables-nft payload expressions) reads each field
// straight from the bytes at the transport offset, as nft's payload
// expression does: a field whose bytes are present is compared even in a
// truncated header or in a non-first IPv4 fragment (observed on 6.18: a
// 4-byte "TCP header" with dport 80 matches `--dport 80`, and so does an
// offset-1 fragment whose first bytes look like it), a field whose bytes are
// missing makes the rule not match, "!" included. Nothing is hot-dropped.
func (m *TCP) Matches(c *xt.Ctx) bool {
	if m.Native {
		l4, _, ok := rtL4(c.P)
		if !ok {
			return false
		}
		if !nativePorts(l4, m.SrcPorts, m.InvSrc, m.DstPorts, m.InvDst) {
			return false
		}
		if m.FlagMask != 0 {
			if len(l4) < 14 || (l4[13]&m.FlagMask == m.FlagComp) == m.InvFlags {
				return false
			}
		}
		return true
	}
	l4, ok := rtXTHeader(c, header.TCPMinLen, true)
	if !ok {
		return false
	}
	sp := uint16(l4[0])<<8 | uint16(l4[1])
	dp := uint16(l4[2])<<8 | uint16(l4[3])
	if m.SrcPorts.Contains(sp) == m.InvSrc || m.DstPorts.Contains(dp) == m.InvDst {
		return false
	}
	if (l4[13]&m.FlagMask == m.FlagComp) == m.InvFlags {
		return false
	}
	if m.Option == 0 {
		return true
	}
	doff := int(l4[12]>>4) * 4
	if doff < header.TCPMinLen || doff > len(l4) {
		c.HotDrop = true
		return false
	}
	return rtTCPHasOption(l4[header.TCPMinLen:doff], m.Option) != m.InvOption
}

// rtTCPHasOption walks the option bytes as tcp_find_option does: kinds 0
// (end) and 1 (nop) are one byte long, every other kind is followed by its
// length (a length of 0 advances by one byte); the walk does not stop at the
// end-of-options kind.
func rtTCPHasOption(opts []byte, kind uint8) bool {
	for i := 0; i < len(opts); {
		if opts[i] == kind {
			return true
		}
		if opts[i] < 2 || i+1 >= len(opts) {
			i++
			continue
		}
		n := int(opts[i+1])
		if n == 0 {
			n = 1
		}
		i += n
	}
	return false
}

// portOption reads --sport/--source-port or --dport/--destination-port for
// tcp and sctp (one of each, with iptables' "Only one" errors), parsing the
// value with the extension's own port parser, and reports which it was.
func portOption(opt, arg string, seen *uint8, srcBit, dstBit uint8, parse func(string) (PortRange, error)) (r PortRange, src bool, err error) {
	src = opt == "source-port" || opt == "sport"
	bit := dstBit
	if src {
		bit = srcBit
	}
	if *seen&bit != 0 {
		if src {
			return PortRange{}, src, xt.Errorf("Only one `--source-port' allowed")
		}
		return PortRange{}, src, xt.Errorf("Only one `--destination-port' allowed")
	}
	if r, err = parse(arg); err != nil {
		return PortRange{}, src, err
	}
	*seen |= bit
	return r, src, nil
}
