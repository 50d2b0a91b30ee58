package match

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/xt"
)

// This file gives the match runtimes their xt.Explainer: what each match
// consulted for the packet it just judged, for `uptables replay --trace`.
// Everything here reads only: packet bytes, conntrack fields, and the
// stateful matches' state as Matches left it (a recent list, a connlimit
// count, a token bucket), never calling Matches, Apply, Add or Consume
// again. It runs in trace mode only, so it may allocate.

var (
	_ xt.Explainer = (*RecentRuntime)(nil)
	_ xt.Explainer = (*ConnlimitRuntime)(nil)
	_ xt.Explainer = (*LimitRuntime)(nil)
	_ xt.Explainer = (*HashlimitRuntime)(nil)
	_ xt.Explainer = (*State)(nil)
	_ xt.Explainer = (*Conntrack)(nil)
	_ xt.Explainer = (*TCP)(nil)
	_ xt.Explainer = (*UDP)(nil)
	_ xt.Explainer = (*ICMP)(nil)
	_ xt.Explainer = (*Multiport)(nil)
	_ xt.Explainer = (*Length)(nil)
	_ xt.Explainer = (*TTL)(nil)
	_ xt.Explainer = (*Mark)(nil)
	_ xt.Explainer = (*Connmark)(nil)
	_ xt.Explainer = (*IPRange)(nil)
	_ xt.Explainer = (*String)(nil)
	_ xt.Explainer = (*Time)(nil)
	_ xt.Explainer = (*statisticNth)(nil)
	_ xt.Explainer = (*statisticRandom)(nil)
	_ xt.Explainer = (*quotaRuntime)(nil)
	_ xt.Explainer = (*Comment)(nil)
)

// exWant appends " (want WHAT)" when the test failed.
func exWant(b []byte, failed bool, what string) []byte {
	if !failed {
		return b
	}
	return append(append(append(b, " (want "...), what...), ')')
}

// exRange prints a port range as the rule gives it, "!" first when inverted.
func exRange(r PortRange, inv bool) string {
	var s strings.Builder
	if inv {
		s.WriteByte('!')
	}
	r.appendSave(&s)
	return s.String()
}

// exPort appends "NAME V" and, when the test failed, what the rule wanted.
// A missing field (truncated header) is "NAME missing".
func exPort(b []byte, name string, v uint16, ok bool, r PortRange, inv, tested bool) []byte {
	b = append(b, name...)
	if !ok {
		b = append(b, " missing"...)
		return exWant(b, tested, exRange(r, inv))
	}
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(v), 10)
	return exWant(b, tested && r.Contains(v) == inv, exRange(r, inv))
}

// exTCPFlagOrder is the order iptables names TCP flags in.
var exTCPFlagOrder = [...]struct {
	bit  uint8
	name string
}{{0x01, "FIN"}, {0x02, "SYN"}, {0x04, "RST"}, {0x08, "PSH"}, {0x10, "ACK"}, {0x20, "URG"}, {0x40, "ECE"}, {0x80, "CWR"}}

func exFlags(f uint8) string {
	var s []string
	for _, x := range exTCPFlagOrder {
		if f&x.bit != 0 {
			s = append(s, x.name)
		}
	}
	if len(s) == 0 {
		return "NONE"
	}
	return strings.Join(s, ",")
}

// exL4 returns the transport header a protocol match read, or why there
// was none (a non-first fragment, a missing or, for the xt form, short
// header).
func exL4(p *packet.Packet, xtForm bool, need int, proto string) (l4 []byte, why string) {
	l4, fragoff, ok := rtL4(p)
	switch {
	case xtForm && fragoff != 0:
		return nil, "non-first fragment (offset " + strconv.FormatUint(uint64(fragoff), 10) + "): no " + proto + " header"
	case !ok:
		return nil, "no " + proto + " header"
	case xtForm && len(l4) < need:
		return nil, proto + " header cut at " + strconv.Itoa(len(l4)) + " bytes (needs " + strconv.Itoa(need) + ")"
	}
	return l4, ""
}

// Explain implements xt.Explainer: the ports and flags the rule tested,
// and which one failed.
func (m *TCP) Explain(c *xt.Ctx, _ bool, b []byte) []byte {
	l4, why := exL4(c.P, !m.Native, 20, "TCP")
	if why != "" {
		return append(b, why...)
	}
	sp, okS := rtBE16(l4, 0)
	dp, okD := rtBE16(l4, 2)
	b = exPort(b, "spt", sp, okS, m.SrcPorts, m.InvSrc, !m.Native || !m.SrcPorts.Full())
	b = append(b, ' ')
	failS := okS && (!m.Native || !m.SrcPorts.Full()) && m.SrcPorts.Contains(sp) == m.InvSrc
	testD := !failS && (!m.Native || !m.DstPorts.Full())
	b = exPort(b, "dpt", dp, okD, m.DstPorts, m.InvDst, testD)
	if len(l4) < 14 {
		b = append(b, " flags missing"...)
		return exWant(b, m.FlagMask != 0, "flags set")
	}
	b = append(b, " flags "...)
	b = append(b, exFlags(l4[13])...)
	if m.FlagMask != 0 && (l4[13]&m.FlagMask == m.FlagComp) == m.InvFlags {
		w := exFlags(m.FlagComp) + " of " + exFlags(m.FlagMask)
		if m.InvFlags {
			w = "not " + w
		}
		b = exWant(b, true, w)
	}
	if m.Option != 0 && !m.Native {
		doff := int(l4[12]>>4) * 4
		switch {
		case doff < 20 || doff > len(l4):
			b = append(b, ", bad data offset"...)
		case rtTCPHasOption(l4[20:doff], m.Option):
			b = fmt.Appendf(b, ", option %d present", m.Option)
			b = exWant(b, m.InvOption, "absent")
		default:
			b = fmt.Appendf(b, ", option %d absent", m.Option)
			b = exWant(b, !m.InvOption, "present")
		}
	}
	return b
}

// Explain implements xt.Explainer.
func (m *UDP) Explain(c *xt.Ctx, _ bool, b []byte) []byte {
	l4, why := exL4(c.P, !m.Native, 8, "UDP")
	if why != "" {
		return append(b, why...)
	}
	sp, okS := rtBE16(l4, 0)
	dp, okD := rtBE16(l4, 2)
	testS := !m.Native || !m.SrcPorts.Full()
	b = exPort(b, "spt", sp, okS, m.SrcPorts, m.InvSrc, testS)
	b = append(b, ' ')
	failS := testS && (!okS || m.SrcPorts.Contains(sp) == m.InvSrc)
	return exPort(b, "dpt", dp, okD, m.DstPorts, m.InvDst, !failS && (!m.Native || !m.DstPorts.Full()))
}

// Explain implements xt.Explainer.
func (m *ICMP) Explain(c *xt.Ctx, matched bool, b []byte) []byte {
	l4, why := exL4(c.P, true, 8, "ICMP")
	if why != "" {
		return append(b, why...)
	}
	b = fmt.Appendf(b, "type %d code %d", l4[0], l4[1])
	if matched {
		return b
	}
	var w strings.Builder
	if m.Invert {
		w.WriteString("not ")
	}
	if m.Type == 0xFF {
		w.WriteString("any type")
	} else {
		fmt.Fprintf(&w, "type %d", m.Type)
		if m.CodeMin == m.CodeMax {
			fmt.Fprintf(&w, " code %d", m.CodeMin)
		} else if m.CodeMin != 0 || m.CodeMax != 0xFF {
			fmt.Fprintf(&w, " code %d-%d", m.CodeMin, m.CodeMax)
		}
	}
	return exWant(b, true, w.String())
}

// Explain implements xt.Explainer: the port(s) tested and whether the
// list holds them.
func (m *Multiport) Explain(c *xt.Ctx, matched bool, b []byte) []byte {
	l4, why := exL4(c.P, true, 4, "port")
	if why != "" {
		return append(b, why...)
	}
	sp := uint16(l4[0])<<8 | uint16(l4[1])
	dp := uint16(l4[2])<<8 | uint16(l4[3])
	switch m.Dir {
	case MultiportSource:
		b = fmt.Appendf(b, "spt %d", sp)
	case MultiportDestination:
		b = fmt.Appendf(b, "dpt %d", dp)
	default:
		b = fmt.Appendf(b, "spt %d dpt %d", sp, dp)
	}
	if matched != m.Invert {
		b = append(b, " listed in "...)
	} else {
		b = append(b, " not in "...)
	}
	var s strings.Builder
	for i, r := range m.Ports {
		if i > 0 {
			s.WriteByte(',')
		}
		r.appendSave(&s)
	}
	b = append(b, s.String()...)
	if m.Invert {
		b = append(b, " (inverted)"...)
	}
	return b
}

// Explain implements xt.Explainer: the length field as xt_length reads it.
func (m *Length) Explain(c *xt.Ctx, matched bool, b []byte) []byte {
	p := c.P
	d := p.Data
	if p.Status == packet.BadL3 || len(d) < 6 {
		return append(b, "no IP header"...)
	}
	var n uint16
	if p.Version == 6 {
		n = (uint16(d[4])<<8 | uint16(d[5])) + 40
	} else {
		n = uint16(d[2])<<8 | uint16(d[3])
	}
	b = append(b, "length "...)
	b = strconv.AppendUint(b, uint64(n), 10)
	w := strconv.Itoa(int(m.Min))
	if m.Max != m.Min {
		w += ":" + strconv.Itoa(int(m.Max))
	}
	if m.Invert {
		w = "!" + w
	}
	return exWant(b, !matched, w)
}

// Explain implements xt.Explainer.
func (m *TTL) Explain(c *xt.Ctx, matched bool, b []byte) []byte {
	b = append(b, "ttl "...)
	b = strconv.AppendUint(b, uint64(c.P.TTL), 10)
	return exWant(b, !matched, [...]string{"==", "!=", "<", ">"}[m.Mode]+" "+strconv.Itoa(int(m.Value)))
}

// Explain implements xt.Explainer.
func (m *Mark) Explain(c *xt.Ctx, matched bool, b []byte) []byte {
	b = fmt.Appendf(b, "mark 0x%x", c.P.Mark)
	w := markString(m.Value, m.Mask)
	if m.Invert {
		w = "!" + w
	}
	return exWant(b, !matched, w)
}

// Explain implements xt.Explainer.
func (m *Connmark) Explain(c *xt.Ctx, matched bool, b []byte) []byte {
	if c.CT.Conn == nil {
		return append(b, "no connection"...)
	}
	b = fmt.Appendf(b, "ctmark 0x%x", c.CT.Conn.Mark())
	w := markString(m.Value, m.Mask)
	if m.Invert {
		w = "!" + w
	}
	return exWant(b, !matched, w)
}

// Explain implements xt.Explainer.
func (m *IPRange) Explain(c *xt.Ctx, _ bool, b []byte) []byte {
	rng := func(inv bool, lo, hi netip.Addr) string {
		s := lo.String() + "-" + hi.String()
		if inv {
			s = "!" + s
		}
		return s
	}
	failS := false
	if m.HasSrc {
		b = append(b, "src "...)
		b = c.P.Src.AppendTo(b)
		failS = inRange(c.P.Src, m.SrcMin, m.SrcMax) == m.InvSrc
		b = exWant(b, failS, rng(m.InvSrc, m.SrcMin, m.SrcMax))
	}
	if m.HasDst && !failS {
		if m.HasSrc {
			b = append(b, ' ')
		}
		b = append(b, "dst "...)
		b = c.P.Dst.AppendTo(b)
		b = exWant(b, inRange(c.P.Dst, m.DstMin, m.DstMax) == m.InvDst, rng(m.InvDst, m.DstMin, m.DstMax))
	}
	return b
}

// Explain implements xt.Explainer: where the pattern was found, if it was.
func (m *String) Explain(c *xt.Ctx, _ bool, b []byte) []byte {
	data := c.P.Data
	from, to := int(m.From), int(m.To)
	if to > len(data) {
		to = len(data)
	}
	b = strconv.AppendQuote(b, string(m.Pattern))
	at := -1
	if from < to {
		win := data[from:to]
		if !m.ICase {
			at = bytes.Index(win, m.Pattern)
		} else {
			up := func(x []byte) []byte {
				y := make([]byte, len(x))
				for i, ch := range x {
					y[i] = kernelToUpper(ch)
				}
				return y
			}
			at = bytes.Index(up(win), up(m.Pattern))
		}
	}
	if at >= 0 {
		b = fmt.Appendf(b, " found at offset %d", from+at)
	} else {
		b = fmt.Appendf(b, " not found in bytes %d-%d", from, to)
	}
	if m.Invert {
		b = append(b, " (inverted)"...)
	}
	return b
}

// Explain implements xt.Explainer: the packet's time as the match saw it
// (UTC) and, when it failed, the window the rule wants.
func (m *Time) Explain(c *xt.Ctx, matched bool, b []byte) []byte {
	t := time.Unix(0, c.P.TimeNS).UTC()
	b = t.AppendFormat(b, "2006-01-02 15:04:05 Mon UTC")
	if matched {
		return b
	}
	var w strings.Builder
	m.List(&w, true)
	return exWant(b, true, strings.TrimPrefix(w.String(), " TIME "))
}

// Explain implements xt.Explainer.
func (m *Comment) Explain(_ *xt.Ctx, _ bool, b []byte) []byte {
	return strconv.AppendQuote(b, m.Text)
}

// exStateNames names the state bits set in bits ("NEW", "ESTABLISHED,SNAT").
func exStateNames(bits uint16) string {
	var s []string
	for _, n := range psStatePrintOrder {
		if bits&n.bit != 0 {
			s = append(s, n.name)
		}
	}
	if len(s) == 0 {
		return "NONE"
	}
	return strings.Join(s, ",")
}

// Explain implements xt.Explainer.
func (m *State) Explain(c *xt.Ctx, matched bool, b []byte) []byte {
	b = append(b, "ctstate "...)
	b = append(b, exStateNames(rtStateBit(&c.CT))...)
	w := exStateNames(m.Mask)
	if m.Invert {
		w = "!" + w
	}
	return exWant(b, !matched, w)
}

// Explain implements xt.Explainer: each test the rule has, with the value
// the connection gave it, and the first one that failed.
func (m *Conntrack) Explain(c *xt.Ctx, _ bool, b []byte) []byte {
	r := &c.CT
	inv := func(bit uint16) string {
		if m.Inv&bit != 0 {
			return "!"
		}
		return ""
	}
	failed := false
	sep := func() {
		if len(b) > 0 && b[len(b)-1] != ' ' {
			b = append(b, ", "...)
		}
	}
	start := len(b)
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
		b = append(b, "ctstate "...)
		b = append(b, exStateNames(bits)...)
		failed = (m.StateMask&bits != 0) == (m.Inv&CTTestState != 0)
		b = exWant(b, failed, inv(CTTestState)+exStateNames(m.StateMask))
	}
	ct := r.Conn
	if failed {
		return b
	}
	if ct == nil {
		if len(b) > start {
			b = append(b, ", "...)
		}
		b = append(b, "no connection"...)
		if m.Tests&CTTestState == 0 {
			b = append(b, ": only --ctstate can match"...)
		}
		return b
	}
	if m.Tests&CTTestDir != 0 {
		sep()
		reply := r.Info.Dir == conntrack.Reply
		if reply {
			b = append(b, "ctdir REPLY"...)
		} else {
			b = append(b, "ctdir ORIGINAL"...)
		}
		if failed = reply != (m.Dir == CTDirReply); failed {
			return exWant(b, true, map[bool]string{true: "REPLY", false: "ORIGINAL"}[m.Dir == CTDirReply])
		}
	}
	o, rp := ct.Orig(), ct.ReplyTuple()
	addrs := [...]struct {
		bit  uint16
		name string
		a    netip.Addr
		want CTAddr
	}{{CTTestOrigSrc, "ctorigsrc", o.Src, m.OrigSrc}, {CTTestOrigDst, "ctorigdst", o.Dst, m.OrigDst},
		{CTTestReplSrc, "ctreplsrc", rp.Src, m.ReplSrc}, {CTTestReplDst, "ctrepldst", rp.Dst, m.ReplDst}}
	for _, x := range addrs {
		if m.Tests&x.bit == 0 {
			continue
		}
		sep()
		b = append(b, x.name...)
		b = append(b, ' ')
		b = x.a.AppendTo(b)
		if !m.addrTest(x.bit, x.a, x.want) {
			return exWant(b, true, inv(x.bit)+netip.PrefixFrom(x.want.Addr, x.want.Bits).String())
		}
	}
	ports := [...]struct {
		bit  uint16
		name string
		v    uint16
		want PortRange
	}{{CTTestOrigSrcPort, "ctorigsrcport", o.SrcID, m.OrigSrcPort}, {CTTestOrigDstPort, "ctorigdstport", o.DstID, m.OrigDstPort},
		{CTTestReplSrcPort, "ctreplsrcport", rp.SrcID, m.ReplSrcPort}, {CTTestReplDstPort, "ctrepldstport", rp.DstID, m.ReplDstPort}}
	for _, x := range ports {
		if m.Tests&x.bit == 0 {
			continue
		}
		sep()
		b = fmt.Appendf(b, "%s %d", x.name, x.v)
		if !m.portTest(x.bit, x.v, x.want) {
			return exWant(b, true, exRange(x.want, m.Inv&x.bit != 0))
		}
	}
	if m.Tests&CTTestProto != 0 {
		sep()
		b = fmt.Appendf(b, "ctproto %d", ct.Proto())
		if (ct.Proto() == m.Proto) == (m.Inv&CTTestProto != 0) {
			return exWant(b, true, inv(CTTestProto)+strconv.Itoa(int(m.Proto)))
		}
	}
	if m.Tests&CTTestStatus != 0 {
		sep()
		st := uint32(ct.Status())
		var names []string
		for _, n := range psCTStatusParseOrder[1:] {
			if st&uint32(n.bit) != 0 {
				names = append(names, n.name)
			}
		}
		if len(names) == 0 {
			names = []string{"NONE"}
		}
		b = append(b, "ctstatus "...)
		b = append(b, strings.Join(names, ",")...)
		if (st&uint32(m.StatusMask) != 0) == (m.Inv&CTTestStatus != 0) {
			var want []string
			for _, n := range psCTStatusParseOrder[1:] {
				if m.StatusMask&n.bit != 0 {
					want = append(want, n.name)
				}
			}
			if len(want) == 0 {
				want = []string{"NONE"}
			}
			return exWant(b, true, inv(CTTestStatus)+strings.Join(want, ","))
		}
	}
	if m.Tests&CTTestExpire != 0 {
		sep()
		var secs uint64
		if ct.Status()&conntrack.StatusConfirmed != 0 {
			secs = uint64(ct.Timeout(c.P.TimeNS) / time.Second)
		}
		b = fmt.Appendf(b, "ctexpire %d", secs)
		in := secs >= uint64(m.ExpireMin) && secs <= uint64(m.ExpireMax)
		if in == (m.Inv&CTTestExpire != 0) {
			return exWant(b, true, fmt.Sprintf("%s%d:%d", inv(CTTestExpire), m.ExpireMin, m.ExpireMax))
		}
	}
	return b
}

// Explain implements xt.Explainer: the list's entry for the packet's
// address (masked with the rule's --mask), its hits within the window as
// this packet found them, and its recorded TTL. The list is read after
// Matches, so when this packet was recorded (--set, or --update that
// matched) its own stamp is left out of the count; when the entry's ring
// was full, the stamp it overwrote is not known and the count may be one
// short.
func (r *RecentRuntime) Explain(c *xt.Ctx, matched bool, b []byte) []byte {
	p := c.P
	a := p.Src
	if r.dest {
		a = p.Dst
	}
	ttl := p.TTL
	if p.OutIface != "" && !p.HasOwner {
		ttl++
	}
	key := a
	if r.mask.IsValid() && r.mask.BitLen() == a.BitLen() {
		key = exAnd(a, r.mask)
	}
	b = append(b, r.name...)
	b = append(b, ' ')
	b = key.AppendTo(b)
	var e *statestore.RecentEntry
	ents := r.list.Entries(nil)
	for i := range ents {
		if ents[i].Addr == key && (!r.rttl || ents[i].TTL == ttl) {
			e = &ents[i]
			break
		}
	}
	recorded := r.cmd == statestore.RecentSet || r.cmd == statestore.RecentUpdate && matched
	switch r.cmd {
	case statestore.RecentSet:
		b = append(b, ": recorded"...)
		if e != nil {
			b = fmt.Appendf(b, ", %d stamp", len(e.StampsNS))
			if len(e.StampsNS) != 1 {
				b = append(b, 's')
			}
			b = fmt.Appendf(b, ", ttl %d", e.TTL)
		}
		return b
	case statestore.RecentRemove:
		if e != nil {
			return append(b, ": listed, not removed"...)
		}
		if matched != r.invert {
			return append(b, ": was listed, removed"...)
		}
		return append(b, ": not listed"...)
	}
	if e == nil {
		if matched != r.invert && r.reap {
			return append(b, ": listed, then reaped"...)
		}
		if r.rttl {
			return fmt.Appendf(b, ": not listed with ttl %d", ttl)
		}
		return append(b, ": not listed"...)
	}
	hits := 0
	nowJ := statestore.Jiffy(p.TimeNS)
	thresh := nowJ - int64(r.seconds)*statestore.HZ
	for _, s := range e.StampsNS {
		if r.seconds != 0 && statestore.Jiffy(s) < thresh {
			continue
		}
		hits++
	}
	if recorded && hits > 0 {
		hits--
	}
	b = fmt.Appendf(b, ": %d hit", hits)
	if hits != 1 {
		b = append(b, 's')
	}
	if r.seconds != 0 {
		b = fmt.Appendf(b, " within %ds", r.seconds)
	}
	if r.hits != 0 {
		b = fmt.Appendf(b, " (need %d)", r.hits)
	} else {
		b = append(b, " (need 1)"...)
	}
	b = fmt.Appendf(b, ", ttl %d", e.TTL)
	if r.rttl {
		b = fmt.Appendf(b, " (packet ttl %d)", ttl)
	}
	if recorded {
		b = append(b, ", this packet recorded"...)
	}
	if r.invert {
		b = append(b, " (inverted)"...)
	}
	return b
}

// exAnd masks a with m (same family).
func exAnd(a, m netip.Addr) netip.Addr {
	if a.Is4() {
		x, y := a.As4(), m.As4()
		for i := range x {
			x[i] &= y[i]
		}
		return netip.AddrFrom4(x)
	}
	x, y := a.As16(), m.As16()
	for i := range x {
		x[i] &= y[i]
	}
	return netip.AddrFrom16(x)
}

// connKey is the bookkeeping key Matches used for this packet.
func (r *ConnlimitRuntime) connKey(c *xt.Ctx) statestore.ConnKey {
	var key statestore.ConnKey
	if conn := c.CT.Conn; conn != nil {
		key.Zone = conn.Zone()
	}
	a := c.P.Src
	if r.daddr {
		a = c.P.Dst
	}
	key.IPv6 = r.ipv6
	if a.Is4() {
		x := a.As4()
		for i := 0; i < 4; i++ {
			key.Addr[i] = x[i] & r.mask[i]
		}
	} else {
		x := a.As16()
		for i := range x {
			key.Addr[i] = x[i] & r.mask[i]
		}
	}
	return key
}

// Explain implements xt.Explainer: how many connections the packet's
// address (or network) holds in this rule's bookkeeping, this one included,
// against the limit. The count is read without a conntrack table, so
// nothing is collected.
func (r *ConnlimitRuntime) Explain(c *xt.Ctx, matched bool, b []byte) []byte {
	key := r.connKey(c)
	n := 0
	for _, k := range r.counts.Counts(nil, nil, c.P.TimeNS) {
		if k.Key == key {
			n = k.Count
			break
		}
	}
	b = key.Prefix(r.plen).AppendTo(b)
	if key.Zone != 0 {
		b = fmt.Appendf(b, " zone %d", key.Zone)
	}
	if n == 0 {
		return append(b, " not counted (no room or no tuple)"...)
	}
	b = fmt.Appendf(b, " holds %d connection", n)
	if n != 1 {
		b = append(b, 's')
	}
	switch {
	case r.above && matched:
		return fmt.Appendf(b, " (above %d)", r.limit)
	case r.above:
		return fmt.Appendf(b, " (not above %d)", r.limit)
	case matched:
		return fmt.Appendf(b, " (upto %d)", r.limit)
	}
	return fmt.Appendf(b, " (more than %d)", r.limit)
}

// exTokens prints a token count with one decimal.
func exTokens(ns, cost int64) string {
	if cost <= 0 {
		return "?"
	}
	tenths := ns * 10 / cost
	if tenths%10 == 0 {
		return strconv.FormatInt(tenths/10, 10)
	}
	return strconv.FormatInt(tenths/10, 10) + "." + strconv.FormatInt(tenths%10, 10)
}

// Explain implements xt.Explainer: the bucket as this packet found it,
// after the refill (what is left now, plus the token it took if it took
// one), in packets.
func (r *LimitRuntime) Explain(_ *xt.Ctx, matched bool, b []byte) []byte {
	tokens, size := r.Tokens()
	if matched {
		tokens += r.cost
	}
	b = append(b, "bucket "...)
	b = append(b, exTokens(tokens, r.cost)...)
	b = append(b, " of burst "...)
	b = append(b, exTokens(size, r.cost)...)
	if matched {
		return append(b, " tokens, took 1"...)
	}
	return append(b, " tokens, 1 needed"...)
}

// Explain implements xt.Explainer: the packet's bucket, its credit as the
// packet found it (in packets, or raw credits in byte mode) and whether
// that was under the rate.
func (r *HashlimitRuntime) Explain(c *xt.Ctx, matched bool, b []byte) []byte {
	k, ok := r.hlKey(c)
	b = append(b, r.cfg.Name...)
	b = append(b, ' ')
	b = append(b, exHLKey(&k, r.cfg)...)
	if !ok {
		return append(b, ": ports unreadable"...)
	}
	var ent *statestore.HashlimitEntry
	r.tbl.Entries(c.P.TimeNS, func(e *statestore.HashlimitEntry) bool {
		if e.Key == k {
			x := *e
			ent = &x
			return false
		}
		return true
	})
	if ent == nil {
		return append(b, ": no bucket (table full)"...)
	}
	under := matched != r.above
	credit := ent.Credit
	if under {
		credit += ent.Cost
	}
	if r.cfg.Bytes {
		b = fmt.Appendf(b, ": credit %d, cost %d", credit, ent.Cost)
	} else {
		b = fmt.Appendf(b, ": %s of burst %s tokens", exTokens(int64(credit), int64(ent.Cost)), exTokens(int64(ent.CreditCap), int64(ent.Cost)))
	}
	if under {
		b = append(b, ", under the limit"...)
	} else {
		b = append(b, ", over the limit"...)
	}
	if r.above {
		b = append(b, " (--hashlimit-above)"...)
	}
	return b
}

// exHLKey names the fields of a hashlimit key its mode uses.
func exHLKey(k *statestore.HashlimitKey, cfg statestore.HashlimitConfig) string {
	addr := func(a *[16]byte) string {
		if cfg.IPv6 {
			return netip.AddrFrom16(*a).String()
		}
		return netip.AddrFrom4([4]byte(a[:4])).String()
	}
	var s []string
	if cfg.Mode&HashlimitSrcIP != 0 {
		s = append(s, "srcip "+addr(&k.Src))
	}
	if cfg.Mode&HashlimitSrcPort != 0 {
		s = append(s, "srcport "+strconv.Itoa(int(k.SrcPort)))
	}
	if cfg.Mode&HashlimitDstIP != 0 {
		s = append(s, "dstip "+addr(&k.Dst))
	}
	if cfg.Mode&HashlimitDstPort != 0 {
		s = append(s, "dstport "+strconv.Itoa(int(k.DstPort)))
	}
	if len(s) == 0 {
		return "(one bucket)"
	}
	return strings.Join(s, " ")
}

// Explain implements xt.Explainer: the rule's counter after this packet
// (the packet that brings it back to 0 matches).
func (r *statisticNth) Explain(_ *xt.Ctx, _ bool, b []byte) []byte {
	return fmt.Appendf(b, "nth: counter now %d of every %d (match at 0)", r.count.Load(), r.every+1)
}

// Explain implements xt.Explainer: the draw this packet got, recomputed
// from the generator's state as Matches left it, against the probability.
func (r *statisticRandom) Explain(_ *xt.Ctx, _ bool, b []byte) []byte {
	x := r.state.Load()
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	d := uint32(x) & 0x7fffffff
	b = fmt.Appendf(b, "random %.4f (want < %.4f)", float64(d)/(1<<31), float64(r.cfg.ProbabilityRaw)/(1<<31))
	if r.cfg.Invert {
		b = append(b, " (inverted)"...)
	}
	return b
}

// Explain implements xt.Explainer: the budget after this packet.
func (r *quotaRuntime) Explain(c *xt.Ctx, matched bool, b []byte) []byte {
	n := c.P.TotalLen
	left := r.left.Load()
	if matched != r.invert {
		b = fmt.Appendf(b, "%d-byte packet fits, %d of %d bytes left", n, left, r.initial)
	} else {
		b = fmt.Appendf(b, "%d-byte packet does not fit, %d of %d bytes left", n, left, r.initial)
	}
	if r.invert {
		b = append(b, " (inverted)"...)
	}
	return b
}
