package match

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/uptables/uptables/internal/conntrack"
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
var _ xt.PacketMatcher = (*Conntrack)(nil)

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

// Matches implements xt.PacketMatcher (conntrack_mt, revision 3). Every
// given test must hold, each after its own "!":
//
//   - --ctstate: the packet's state bit, plus SNAT/DNAT when its connection
//     has source/destination NAT (in both directions).
//   - Without a connection (INVALID, UNTRACKED) the --ctstate test alone
//     decides; a match without --ctstate is false, whatever its "!"s
//     (spec §2.2: a stray FIN matched `--ctstate INVALID --ctproto 17`).
//   - --ctdir: the packet's direction; --ctproto: the connection's L4
//     protocol; addresses under their prefix length and ports (ICMP: the id
//     and type<<8|code) from the ORIGINAL and REPLY tuples.
//   - --ctstatus: any listed IPS_* bit set (so NONE never matches and
//     `! --ctstatus NONE` always does, observed).
//   - --ctexpire: the remaining lifetime in whole seconds at the packet's
//     time. An entry not yet confirmed (the first packet of a connection)
//     has 0, because the kernel stores its timeout relative until confirm
//     (observed: a first UDP packet matches --ctexpire 0, not 1:1000).
func (m *Conntrack) Matches(c *xt.Ctx) bool {
	r := &c.CT
	if m.Tests&CTTestState != 0 {
		bits := rtStateBit(r)
		if r.Conn != nil {
			st := r.Conn.Status()
			if st&conntrack.StatusSrcNAT != 0 {
				bits |= StateSNAT
			}
			if st&conntrack.StatusDstNAT != 0 {
				bits |= StateDNAT
			}
		}
		if (m.StateMask&bits != 0) == (m.Inv&CTTestState != 0) {
			return false
		}
	}
	ct := r.Conn
	if ct == nil {
		return m.Tests&CTTestState != 0
	}
	if m.Tests&CTTestDir != 0 && (r.Info.Dir == conntrack.Reply) != (m.Dir == CTDirReply) {
		return false
	}
	if m.Tests&(CTTestOrigSrc|CTTestOrigDst|CTTestReplSrc|CTTestReplDst|CTTestOrigSrcPort|CTTestOrigDstPort|CTTestReplSrcPort|CTTestReplDstPort) != 0 {
		o, rp := ct.Orig(), ct.ReplyTuple()
		if !m.addrTest(CTTestOrigSrc, o.Src, m.OrigSrc) || !m.addrTest(CTTestOrigDst, o.Dst, m.OrigDst) ||
			!m.addrTest(CTTestReplSrc, rp.Src, m.ReplSrc) || !m.addrTest(CTTestReplDst, rp.Dst, m.ReplDst) {
			return false
		}
		if !m.portTest(CTTestOrigSrcPort, o.SrcID, m.OrigSrcPort) || !m.portTest(CTTestOrigDstPort, o.DstID, m.OrigDstPort) ||
			!m.portTest(CTTestReplSrcPort, rp.SrcID, m.ReplSrcPort) || !m.portTest(CTTestReplDstPort, rp.DstID, m.ReplDstPort) {
			return false
		}
	}
	if m.Tests&CTTestProto != 0 && (ct.Proto() == m.Proto) == (m.Inv&CTTestProto != 0) {
		return false
	}
	if m.Tests&CTTestStatus != 0 && (uint32(ct.Status())&uint32(m.StatusMask) != 0) == (m.Inv&CTTestStatus != 0) {
		return false
	}
	if m.Tests&CTTestExpire != 0 {
		var secs uint64
		if ct.Status()&conntrack.StatusConfirmed != 0 {
			secs = uint64(ct.Timeout(c.P.TimeNS) / time.Second)
		}
		in := secs >= uint64(m.ExpireMin) && secs <= uint64(m.ExpireMax)
		if in == (m.Inv&CTTestExpire != 0) {
			return false
		}
	}
	return true
}

// addrTest is one address test: true when the test is absent or holds.
func (m *Conntrack) addrTest(bit uint16, a netip.Addr, want CTAddr) bool {
	if m.Tests&bit == 0 {
		return true
	}
	return rtPrefixEqual(a, want.Addr, want.Bits) != (m.Inv&bit != 0)
}

// portTest is one port (tuple id) test.
func (m *Conntrack) portTest(bit uint16, id uint16, r PortRange) bool {
	if m.Tests&bit == 0 {
		return true
	}
	return r.Contains(id) != (m.Inv&bit != 0)
}

// rtPrefixEqual reports whether a and b agree on their first bits bits
// (conntrack_addrcmp); addresses of different families never do.
func rtPrefixEqual(a, b netip.Addr, bits int) bool {
	if a.BitLen() != b.BitLen() || bits < 0 || bits > a.BitLen() {
		return false
	}
	pa, err1 := a.Prefix(bits)
	pb, err2 := b.Prefix(bits)
	return err1 == nil && err2 == nil && pa == pb
}
