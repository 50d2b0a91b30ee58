package match

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// Conntrack status bits (the kernel's IPS_* bits the match can test).
const (
	CTStatusExpected  = 1 << 0
	CTStatusSeenReply = 1 << 1
	CTStatusAssured   = 1 << 2
	CTStatusConfirmed = 1 << 3
)

var psCTStatusParseOrder = [...]psStateName{
	{"NONE", 0}, {"EXPECTED", CTStatusExpected}, {"SEEN_REPLY", CTStatusSeenReply},
	{"ASSURED", CTStatusAssured}, {"CONFIRMED", CTStatusConfirmed},
}

// CTDir is the --ctdir value.
type CTDir uint8

const (
	CTDirAny CTDir = iota
	CTDirOriginal
	CTDirReply
)

// CTAddr is one of the --ctorigsrc/... address tests: (tuple address AND
// mask) == (Addr AND mask). Addr is kept as given, unmasked, as iptables
// stores and prints it.
type CTAddr struct {
	Addr netip.Addr
	Bits int
}

// Conntrack is the conntrack match, revision 3 (xt_conntrack_mtinfo3). Each
// test is active when its Has* bit is set in Tests; Inv holds the per-test
// negations with the same bits.
type Conntrack struct {
	Tests, Inv uint16

	StateMask                uint16 // State* bits
	Proto                    uint8
	OrigSrc                  CTAddr
	OrigDst                  CTAddr
	ReplSrc                  CTAddr
	ReplDst                  CTAddr
	OrigSrcPort, OrigDstPort PortRange
	ReplSrcPort, ReplDstPort PortRange
	StatusMask               uint16 // CTStatus* bits
	ExpireMin, ExpireMax     uint32 // remaining lifetime, seconds
	Dir                      CTDir

	family xt.Family
	flags  uint32
}

// Conntrack test bits (Tests/Inv), in the order iptables prints them.
const (
	CTTestState = 1 << iota
	CTTestProto
	CTTestOrigSrc
	CTTestOrigDst
	CTTestReplSrc
	CTTestReplDst
	CTTestOrigSrcPort
	CTTestOrigDstPort
	CTTestReplSrcPort
	CTTestReplDstPort
	CTTestStatus
	CTTestExpire
	CTTestDir
)

// Option ids equal the bit index of the test.
var psConntrackOpts = &psTable{ext: "conntrack", entries: []psOpt{
	{name: "ctstate", id: 0, arg: xt.RequiredArg, invert: true},
	{name: "ctproto", id: 1, arg: xt.RequiredArg, invert: true},
	{name: "ctorigsrc", id: 2, arg: xt.RequiredArg, invert: true},
	{name: "ctorigdst", id: 3, arg: xt.RequiredArg, invert: true},
	{name: "ctreplsrc", id: 4, arg: xt.RequiredArg, invert: true},
	{name: "ctrepldst", id: 5, arg: xt.RequiredArg, invert: true},
	{name: "ctorigsrcport", id: 6, arg: xt.RequiredArg, invert: true},
	{name: "ctorigdstport", id: 7, arg: xt.RequiredArg, invert: true},
	{name: "ctreplsrcport", id: 8, arg: xt.RequiredArg, invert: true},
	{name: "ctrepldstport", id: 9, arg: xt.RequiredArg, invert: true},
	{name: "ctstatus", id: 10, arg: xt.RequiredArg, invert: true},
	{name: "ctexpire", id: 11, arg: xt.RequiredArg, invert: true},
	{name: "ctdir", id: 12, arg: xt.RequiredArg},
}}

var psCTTestNames = [...]string{"ctstate", "ctproto", "ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst",
	"ctorigsrcport", "ctorigdstport", "ctreplsrcport", "ctrepldstport", "ctstatus", "ctexpire", "ctdir"}

var _ xt.Match = (*Conntrack)(nil)

func newConntrackSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name:    "conntrack",
		Options: psConntrackOpts.options(),
		New:     func() xt.Match { return &Conntrack{} },
	}
}

// psParseList parses "A,B,C" with prefix names as libxt_conntrack does;
// what names the error ("ctstate") and the remaining text are reported.
func psParseList(table []psStateName, allowed uint16, what, s string) (uint16, error) {
	var mask uint16
	rest := s
	for {
		i := strings.IndexByte(rest, ',')
		if i < 0 {
			break
		}
		bit, ok := psLookupPrefix(table, rest[:i], allowed)
		if i == 0 || !ok {
			return 0, xt.Errorf("Bad %s \"%s\"", what, rest)
		}
		mask |= bit
		rest = rest[i+1:]
	}
	bit, ok := psLookupPrefix(table, rest, allowed)
	if !ok {
		return 0, xt.Errorf("Bad %s \"%s\"", what, rest)
	}
	return mask | bit, nil
}

// Parse implements xt.Match.
func (m *Conntrack) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := psConntrackOpts.begin(m.flags, opt, invert)
	if err != nil {
		return err
	}
	m.family = ctx.Family
	switch e.id {
	case 0:
		m.StateMask, err = psParseList(psStateParseOrder[:], 0x1FF, "ctstate", arg)
	case 1:
		m.Proto, err = xt.ParseProtocol(arg)
	case 2, 3, 4, 5:
		var a netip.Addr
		var n int
		a, n, err = psConntrackOpts.parseHostMask(e, ctx.Family, arg)
		ca := CTAddr{a, n}
		switch e.id {
		case 2:
			m.OrigSrc = ca
		case 3:
			m.OrigDst = ca
		case 4:
			m.ReplSrc = ca
		case 5:
			m.ReplDst = ca
		}
	case 6, 7, 8, 9:
		var r PortRange
		r, err = psConntrackOpts.parsePortRC(e, arg)
		switch e.id {
		case 6:
			m.OrigSrcPort = r
		case 7:
			m.OrigDstPort = r
		case 8:
			m.ReplSrcPort = r
		case 9:
			m.ReplDstPort = r
		}
	case 10:
		m.StatusMask, err = psParseList(psCTStatusParseOrder[:], 0xFFFF, "ctstatus", arg)
	case 11:
		var lo, hi uint64
		lo, hi, _, err = psConntrackOpts.parseUintRange(e, arg, 0xFFFFFFFF)
		m.ExpireMin, m.ExpireMax = uint32(lo), uint32(hi)
	case 12:
		switch {
		case strings.EqualFold(arg, "ORIGINAL"):
			m.Dir = CTDirOriginal
		case strings.EqualFold(arg, "REPLY"):
			m.Dir = CTDirReply
		default:
			err = xt.Errorf("conntrack: Bad value for \"--ctdir\" option: \"%s\"", arg)
		}
	}
	if err != nil {
		return err
	}
	bit := uint16(1) << e.id
	m.Tests |= bit
	if invert {
		m.Inv |= bit
	}
	m.flags |= 1 << e.id
	return nil
}

// Final implements xt.Match.
func (m *Conntrack) Final(ctx *xt.ParseContext) error {
	if m.flags == 0 {
		return xt.Errorf("conntrack: At least one option is required")
	}
	return psConntrackOpts.fcheck(m.flags)
}

func (m *Conntrack) appendAddr(b *strings.Builder, a CTAddr, numeric bool) {
	if !numeric && a.Bits == 0 && a.Addr.IsUnspecified() {
		b.WriteString("anywhere")
		return
	}
	b.WriteString(a.Addr.String())
	if a.Bits != psFamilyBits(m.family) {
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(a.Bits))
	}
}

// write prints every active test; prefix is "--" for -S and "" for -L.
func (m *Conntrack) write(b *strings.Builder, prefix string, numeric bool) {
	for i, name := range psCTTestNames {
		bit := uint16(1) << i
		if m.Tests&bit == 0 {
			continue
		}
		psInv(b, m.Inv&bit != 0)
		b.WriteByte(' ')
		b.WriteString(prefix)
		b.WriteString(name)
		b.WriteByte(' ')
		switch bit {
		case CTTestState:
			psAppendNames(b, psStatePrintOrder[:], m.StateMask)
		case CTTestProto:
			b.WriteString(strconv.Itoa(int(m.Proto)))
		case CTTestOrigSrc:
			m.appendAddr(b, m.OrigSrc, numeric || prefix != "")
		case CTTestOrigDst:
			m.appendAddr(b, m.OrigDst, numeric || prefix != "")
		case CTTestReplSrc:
			m.appendAddr(b, m.ReplSrc, numeric || prefix != "")
		case CTTestReplDst:
			m.appendAddr(b, m.ReplDst, numeric || prefix != "")
		case CTTestOrigSrcPort:
			m.OrigSrcPort.appendSave(b)
		case CTTestOrigDstPort:
			m.OrigDstPort.appendSave(b)
		case CTTestReplSrcPort:
			m.ReplSrcPort.appendSave(b)
		case CTTestReplDstPort:
			m.ReplDstPort.appendSave(b)
		case CTTestStatus:
			if m.StatusMask == 0 {
				b.WriteString("NONE")
			} else {
				psAppendNames(b, psCTStatusParseOrder[1:], m.StatusMask)
			}
		case CTTestExpire:
			b.WriteString(strconv.FormatUint(uint64(m.ExpireMin), 10))
			if m.ExpireMin != m.ExpireMax {
				b.WriteByte(':')
				b.WriteString(strconv.FormatUint(uint64(m.ExpireMax), 10))
			}
		case CTTestDir:
			if m.Dir == CTDirReply {
				b.WriteString("REPLY")
			} else {
				b.WriteString("ORIGINAL")
			}
		}
	}
}

// Save implements xt.Match (numbers for --ctproto, state names reordered).
func (m *Conntrack) Save(b *strings.Builder) { m.write(b, "--", true) }

// List implements xt.Match ("ctstate NEW,DNAT ! ctproto 17 ctrepldst anywhere").
func (m *Conntrack) List(b *strings.Builder, numeric bool) { m.write(b, "", numeric) }
