package match

import (
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/xt"
)

// Hashlimit mode bits (the kernel's XT_HASHLIMIT_HASH_*).
const (
	HashlimitDstIP   = 1 << 0
	HashlimitDstPort = 1 << 1
	HashlimitSrcIP   = 1 << 2
	HashlimitSrcPort = 1 << 3
)

const (
	// HashlimitScale is the time unit of packet-mode Avg (1/1e6 s per packet).
	HashlimitScale = 1000000
	// HashlimitBurstMax is the largest packet burst iptables accepts.
	HashlimitBurstMax = 1000000
	// hashlimitByteShift: byte costs count 16-byte chunks.
	hashlimitByteShift = 4
	// hashlimitHZ and hashlimitCPJ are the kernel's HZ (250 on the oracle
	// machine) and credits per jiffy for 64-bit credits (2^39 at HZ=250).
	hashlimitHZ  = 250
	hashlimitCPJ = 1 << 39
)

// Hashlimit is the hashlimit match, revision 3 (xt_hashlimit_mtinfo3): one
// token bucket per key (addresses/ports per Mode, masked), in a table
// shared by every rule with the same Name (and family).
//
// Packet mode: Avg is 1e6 * seconds per packet and Burst a packet count.
// Byte mode (Bytes): Avg is a cost, UINT32_MAX / (bytes per second / 16 + 1),
// and Burst a multiple of the rate (0 = none). The runtime derives credits
// with HashlimitCredits as the kernel does.
type Hashlimit struct {
	Name       string
	Above      bool // match while over the rate (--hashlimit-above)
	Bytes      bool
	Avg        uint64
	Burst      uint64
	Mode       uint8 // Hashlimit* bits
	SrcMask    uint8 // prefix lengths; 255 (from a non-contiguous mask) is refused by the kernel
	DstMask    uint8
	Size       uint32 // buckets; 0 = kernel default
	Max        uint32 // entries; 0 = kernel default
	GCInterval uint32 // ms
	Expire     uint32 // ms
	RateMatch  bool
	Interval   uint32 // seconds, for rate-match

	family xt.Family
	mult   uint64 // unit of the given rate in seconds (byte mode: 15)
	flags  uint32
}

const (
	hlOptUpto = iota
	hlOptAbove
	hlOptBurst
	hlOptSize
	hlOptMax
	hlOptGC
	hlOptExpire
	hlOptSrcMask
	hlOptDstMask
	hlOptMode
	hlOptName
	hlOptRateMatch
	hlOptInterval
)

var psHashlimitOpts = &psTable{ext: "hashlimit", entries: []psOpt{
	{name: "hashlimit-upto", id: hlOptUpto, arg: xt.RequiredArg, invert: true, excl: 1 << hlOptAbove},
	{name: "hashlimit-above", id: hlOptAbove, arg: xt.RequiredArg, invert: true, excl: 1 << hlOptUpto},
	{name: "hashlimit", id: hlOptUpto, arg: xt.RequiredArg, invert: true, excl: 1 << hlOptAbove},
	{name: "hashlimit-srcmask", id: hlOptSrcMask, arg: xt.RequiredArg},
	{name: "hashlimit-dstmask", id: hlOptDstMask, arg: xt.RequiredArg},
	{name: "hashlimit-burst", id: hlOptBurst, arg: xt.RequiredArg},
	{name: "hashlimit-htable-size", id: hlOptSize, arg: xt.RequiredArg},
	{name: "hashlimit-htable-max", id: hlOptMax, arg: xt.RequiredArg},
	{name: "hashlimit-htable-gcinterval", id: hlOptGC, arg: xt.RequiredArg},
	{name: "hashlimit-htable-expire", id: hlOptExpire, arg: xt.RequiredArg},
	{name: "hashlimit-mode", id: hlOptMode, arg: xt.RequiredArg},
	{name: "hashlimit-name", id: hlOptName, arg: xt.RequiredArg, mand: true},
	{name: "hashlimit-rate-match", id: hlOptRateMatch, arg: xt.NoArg},
	{name: "hashlimit-rate-interval", id: hlOptInterval, arg: xt.RequiredArg},
}}

var _ xt.Match = (*Hashlimit)(nil)
var _ xt.Checker = (*Hashlimit)(nil)

// hashlimitNameMax is the longest table name (the kernel's 256-byte buffer).
const hashlimitNameMax = 255

func newHashlimitSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name:    "hashlimit",
		Options: psHashlimitOpts.options(),
		New: func() xt.Match {
			return &Hashlimit{Burst: 5, GCInterval: 1000, Interval: 1, SrcMask: 32, DstMask: 32}
		},
	}
}

// hashlimitBytesToCost is the byte-mode cost of a rate in bytes/s.
func hashlimitBytesToCost(bytes uint32) uint64 {
	r := bytes >> hashlimitByteShift
	return uint64(0xFFFFFFFF / (r + 1))
}

// hashlimitCostToBytes inverts hashlimitBytesToCost (rounded as iptables).
func hashlimitCostToBytes(cost uint64) uint64 {
	r := uint64(0xFFFFFFFF)
	if cost != 0 {
		r = 0xFFFFFFFF / cost
	}
	return (r - 1) << hashlimitByteShift
}

// HashlimitCredits is the kernel's user2credits for revision >= 2 at
// HZ=250: a packet-mode period (1e6 units per second) in token credits,
// user * (HZ*CPJ / 1e6), wrapping at 64 bits as the kernel's does (its
// overflow check relies on that wrap).
func HashlimitCredits(user uint64) uint64 {
	const perUnit = hashlimitHZ * hashlimitCPJ / HashlimitScale
	return user * perUnit
}

// parseBytes is libxt_hashlimit's parse_bytes: "N[k|m]b/s".
func (m *Hashlimit) parseBytes(s string) (bool, error) {
	i := strings.Index(s, "b/s")
	if i <= 0 {
		return false, nil
	}
	r := uint64(psAtoll(s))
	if r == 0 {
		return false, nil
	}
	factor := uint64(1)
	switch c := s[i-1]; {
	case c == 'm':
		factor = 1 << 20
	case c == 'k':
		factor = 1 << 10
	case c < '0' || c > '9':
		return false, nil
	}
	cost := hashlimitBytesToCost(uint32(r * factor))
	if cost == 0 {
		return false, xt.Errorf("Rate too high \"%s\"\n", s)
	}
	m.Avg, m.Bytes, m.mult = cost, true, 15
	return true, nil
}

// Parse implements xt.Match.
func (m *Hashlimit) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := psHashlimitOpts.begin(m.flags, opt, invert)
	if err != nil {
		return err
	}
	m.family = ctx.Family
	switch e.id {
	case hlOptUpto, hlOptAbove:
		m.Above = (e.id == hlOptAbove) != invert
		ok, err := m.parseBytes(arg)
		if err != nil {
			return err
		}
		if !ok {
			n, secs, ok := psParseRate(arg)
			if !ok || n == 0 {
				return xt.Errorf("hashlimit: Bad value for \"--%s\" option: \"%s\"", e.name, arg)
			}
			avg := uint64(HashlimitScale) * secs / uint64(n)
			if avg == 0 {
				return xt.Errorf("Rate too fast \"%s\"", arg)
			}
			m.Avg, m.Bytes, m.mult = avg, false, secs
		}
	case hlOptBurst:
		v, rest, ok := xt.ParseUintPrefix(arg)
		if !ok || v < 1 || rest == "" && v > HashlimitBurstMax {
			return xt.Errorf("bad value for option \"--hashlimit-burst\", or out of range (1-%d).", HashlimitBurstMax)
		}
		if rest != "" {
			switch rest[0] {
			case 'm', 'M':
				v <<= 20
			case 'k', 'K':
				v <<= 10
			}
		}
		m.Burst = v
	case hlOptSize, hlOptMax, hlOptGC, hlOptExpire:
		v, err := psHashlimitOpts.parseUintOpt(e, arg, 0, 0xFFFFFFFF)
		if err != nil {
			return err
		}
		switch e.id {
		case hlOptSize:
			m.Size = uint32(v)
		case hlOptMax:
			m.Max = uint32(v)
		case hlOptGC:
			m.GCInterval = uint32(v)
		case hlOptExpire:
			m.Expire = uint32(v)
		}
	case hlOptSrcMask, hlOptDstMask:
		n, ok := psPlenMaskRaw(ctx.Family, arg)
		if !ok {
			return xt.Errorf("hashlimit: bad value for option \"--%s\", neither a valid network mask nor valid CIDR (0-%d).\n", e.name, psFamilyBits(ctx.Family))
		}
		if n < 0 {
			n = 255
		}
		if e.id == hlOptSrcMask {
			m.SrcMask = uint8(n)
		} else {
			m.DstMask = uint8(n)
		}
	case hlOptMode:
		var mode uint8
		for _, w := range strings.Split(arg, ",") {
			switch w {
			case "":
			case "srcip":
				mode |= HashlimitSrcIP
			case "srcport":
				mode |= HashlimitSrcPort
			case "dstip":
				mode |= HashlimitDstIP
			case "dstport":
				mode |= HashlimitDstPort
			default:
				return xt.Errorf("hashlimit: Bad value for \"--hashlimit-mode\" option: \"%s\"", arg)
			}
		}
		m.Mode = mode
	case hlOptName:
		if arg == "" {
			return xt.Errorf("Argument must have a minimum length of 1 characters\n")
		}
		if len(arg) > hashlimitNameMax {
			arg = arg[:hashlimitNameMax]
		}
		m.Name = arg
	case hlOptRateMatch:
		m.RateMatch = true
	case hlOptInterval:
		v, ok := xt.ParseUint(arg, 1, 0xFFFFFFFF)
		if !ok {
			return xt.Errorf("hashlimit: Bad value for \"--hashlimit-rate-interval\" option: \"%s\"", arg)
		}
		m.Interval = uint32(v)
	}
	m.flags |= 1 << e.id
	return nil
}

// Final implements xt.Match, as libxt_hashlimit's final check: default
// expiry = one rate unit, byte bursts turned into multiples of the rate,
// rate-match rates scaled to a per-second average over Interval.
func (m *Hashlimit) Final(ctx *xt.ParseContext) error {
	m.family = ctx.Family
	if m.flags&(1<<hlOptUpto|1<<hlOptAbove) == 0 {
		return xt.Errorf("You have to specify --hashlimit")
	}
	if m.flags&(1<<hlOptSrcMask) == 0 {
		m.SrcMask = uint8(psFamilyBits(ctx.Family))
	}
	if m.flags&(1<<hlOptDstMask) == 0 {
		m.DstMask = uint8(psFamilyBits(ctx.Family))
	}
	if m.flags&(1<<hlOptExpire) == 0 {
		m.Expire = uint32(m.mult * 1000)
	}
	if m.Bytes {
		var burst uint64
		if m.flags&(1<<hlOptBurst) != 0 {
			rb := hashlimitCostToBytes(m.Avg)
			if rb == 0 {
				// iptables 1.8.9 dies of a division by zero here
				// (SIGFPE); refuse the rule with an explanation instead.
				return &xt.ParamError{Msg: "hashlimit: the byte rate is too low to give a burst",
					Hint: "iptables 1.8.9 crashes on this rule (Floating point exception); use a higher --hashlimit rate or drop --hashlimit-burst"}
			}
			if m.Burst < rb {
				return xt.Errorf("burst cannot be smaller than %db", rb)
			}
			burst = (m.Burst + rb - 1) / rb
			if m.flags&(1<<hlOptExpire) == 0 {
				m.Expire = 60 * 1000
			}
		}
		m.Burst = burst
	} else if m.Burst > HashlimitBurstMax {
		return xt.Errorf("bad value for option \"--hashlimit-burst\", or out of range (1-%d).", HashlimitBurstMax)
	}
	if m.RateMatch && !m.Bytes {
		if m.flags&(1<<hlOptInterval) == 0 {
			m.Interval = uint32(m.mult)
		}
		m.Avg /= m.mult
	}
	return psHashlimitOpts.fcheck(m.flags)
}

// Check implements xt.Checker with xt_hashlimit's checkentry.
func (m *Hashlimit) Check(ctx *xt.CheckContext) error {
	if !procEntryName(m.Name) {
		return xt.EINVAL("xt_hashlimit: invalid table name %q", m.Name)
	}
	if m.GCInterval == 0 || m.Expire == 0 {
		return xt.EINVAL("xt_hashlimit: gcinterval and expire must not be 0")
	}
	bits := uint8(psFamilyBits(ctx.Family))
	if m.SrcMask > bits || m.DstMask > bits {
		return xt.EINVAL("xt_hashlimit: mask longer than %d bits", bits)
	}
	erange := func(why string) error { return &xt.KernelError{Errno: syscall.ERANGE, Why: why} }
	switch {
	case m.RateMatch:
		if m.Avg == 0 || m.Avg > 0xFFFFFFFF {
			return erange("xt_hashlimit: invalid rate")
		}
		if m.Interval == 0 {
			return xt.EINVAL("xt_hashlimit: invalid interval")
		}
	case m.Bytes:
		if m.Avg == 0 {
			return xt.EINVAL("xt_hashlimit: overflow, rate too high")
		}
	default:
		if m.Burst == 0 || HashlimitCredits(m.Avg*m.Burst) < HashlimitCredits(m.Avg) {
			return erange("xt_hashlimit: overflow, try lower: " + strconv.FormatUint(m.Avg, 10) + "/" + strconv.FormatUint(m.Burst, 10))
		}
	}
	return nil
}

var psByteUnits = [...]struct {
	name   string
	thresh uint64
}{{"m", 1 << 20}, {"k", 1 << 10}, {"", 1}}

// appendRate prints the rate (and in byte mode the burst) and returns the
// default expiry in ms the printed unit implies.
func (m *Hashlimit) appendRate(b *strings.Builder, burstPrefix string, period uint64) uint64 {
	if !m.Bytes {
		n, unit, secs := psPrintRate(period, HashlimitScale)
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(n, 10))
		b.WriteByte('/')
		b.WriteString(unit)
		return secs * 1000
	}
	r := hashlimitCostToBytes(m.Avg)
	i := 0
	for ; i < len(psByteUnits)-1; i++ {
		u := psByteUnits[i]
		if r >= u.thresh && hashlimitBytesToCost(uint32(r&^(u.thresh-1))) == m.Avg {
			break
		}
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatUint(r/psByteUnits[i].thresh, 10))
	b.WriteString(psByteUnits[i].name)
	b.WriteString("b/s")
	if m.Burst == 0 {
		return 15 * 1000
	}
	r *= m.Burst
	for i = 0; i < len(psByteUnits)-1; i++ {
		if r >= psByteUnits[i].thresh {
			break
		}
	}
	b.WriteByte(' ')
	b.WriteString(burstPrefix)
	b.WriteString("burst ")
	b.WriteString(strconv.FormatUint(r/psByteUnits[i].thresh, 10))
	b.WriteString(psByteUnits[i].name)
	b.WriteByte('b')
	return 60 * 1000
}

func (m *Hashlimit) appendMode(b *strings.Builder, sep byte) {
	first := true
	for _, x := range [...]struct {
		bit  uint8
		name string
	}{{HashlimitSrcIP, "srcip"}, {HashlimitSrcPort, "srcport"}, {HashlimitDstIP, "dstip"}, {HashlimitDstPort, "dstport"}} {
		if m.Mode&x.bit != 0 {
			if !first {
				b.WriteByte(sep)
			}
			b.WriteString(x.name)
			first = false
		}
	}
}

// write prints the options; save selects -S spelling ("--hashlimit-" prefix).
func (m *Hashlimit) write(b *strings.Builder, save bool) {
	p := " "
	if save {
		p = " --hashlimit-"
		if m.Above {
			b.WriteString(" --hashlimit-above")
		} else {
			b.WriteString(" --hashlimit-upto")
		}
	} else if m.Above {
		b.WriteString(" limit: above")
	} else {
		b.WriteString(" limit: up to")
	}
	period := m.Avg
	if !save {
		period *= uint64(m.Interval) // iptables -L shows the rate over the interval
	}
	var quantum uint64
	if m.Bytes {
		quantum = m.appendRate(b, strings.TrimPrefix(p, " "), period)
	} else {
		quantum = m.appendRate(b, "", period)
		b.WriteString(p)
		b.WriteString("burst ")
		b.WriteString(strconv.FormatUint(m.Burst, 10))
	}
	if m.Mode != 0 {
		b.WriteString(p)
		b.WriteString("mode ")
		if save {
			m.appendMode(b, ',')
		} else {
			m.appendMode(b, '-')
		}
	}
	if save {
		b.WriteString(" --hashlimit-name ")
		b.WriteString(m.Name)
	}
	num := func(name string, v uint64) {
		b.WriteString(p)
		b.WriteString(name)
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(v, 10))
	}
	if m.Size != 0 {
		num("htable-size", uint64(m.Size))
	}
	if m.Max != 0 {
		num("htable-max", uint64(m.Max))
	}
	if m.GCInterval != 1000 {
		num("htable-gcinterval", uint64(m.GCInterval))
	}
	if uint64(m.Expire) != quantum {
		num("htable-expire", uint64(m.Expire))
	}
	full := uint8(psFamilyBits(m.family))
	if m.SrcMask != full {
		num("srcmask", uint64(m.SrcMask))
	}
	if m.DstMask != full {
		num("dstmask", uint64(m.DstMask))
	}
	if m.RateMatch {
		b.WriteString(p)
		b.WriteString("rate-match")
		if m.Interval != 1 {
			num("rate-interval", uint64(m.Interval))
		}
	}
}

// Save implements xt.Match.
func (m *Hashlimit) Save(b *strings.Builder) { m.write(b, true) }

// List implements xt.Match ("limit: up to 5/sec burst 5 mode srcip-dstport").
func (m *Hashlimit) List(b *strings.Builder, numeric bool) { m.write(b, false) }

// HashlimitRuntime is the packet-time side of one hashlimit rule. The
// table lives in the named registry under (name, family) and its
// configuration is that of the rule that created it; only the upto/above
// sense is this rule's own (spec §6).
type HashlimitRuntime struct {
	tbl   statestore.HashlimitTable
	cfg   statestore.HashlimitConfig
	above bool
	smask [16]byte
	dmask [16]byte
}

var _ xt.MatchBuilder = (*Hashlimit)(nil)
var _ xt.PacketMatcher = (*HashlimitRuntime)(nil)

// hashlimitKind returns the registry kind of a family's tables.
func hashlimitKind(fam xt.Family) string {
	if fam == xt.IPv6 {
		return NamedHashlimitKind6
	}
	return NamedHashlimitKind4
}

// HashlimitTableByName returns the table of that family and name if a rule
// created it (for /proc/net/ipt_hashlimit/NAME listings).
func HashlimitTableByName(named xt.NamedState, fam xt.Family, name string) (statestore.HashlimitTable, bool) {
	v, err := named.Shared(hashlimitKind(fam), name, func() (any, error) { return nil, errNotCreated })
	if err != nil {
		return nil, false
	}
	t, ok := v.(statestore.HashlimitTable)
	return t, ok
}

// Build implements xt.MatchBuilder.
func (m *Hashlimit) Build(env *xt.Env) (xt.PacketMatcher, error) {
	if m.RateMatch {
		return nil, xt.Errorf("hashlimit: --hashlimit-rate-match is not supported by the uptables runtime")
	}
	fam := env.Family
	if fam == 0 {
		fam = m.family
	}
	f, err := StateFactory(env)
	if err != nil {
		return nil, err
	}
	cfg := statestore.HashlimitConfig{Name: m.Name, IPv6: fam == xt.IPv6, Mode: m.Mode,
		SrcMask: m.SrcMask, DstMask: m.DstMask, Bytes: m.Bytes, Avg: m.Avg, Burst: m.Burst,
		Size: m.Size, Max: m.Max, GCIntervalMS: m.GCInterval, ExpireMS: m.Expire}
	v, err := stShared(env, hashlimitKind(fam), m.Name, func() (any, error) { return f.NewHashlimitTable(cfg) })
	if err != nil {
		return nil, err
	}
	t, ok := v.(statestore.HashlimitTable)
	if !ok {
		return nil, xt.Errorf("hashlimit: %q in the registry is a %T", m.Name, v)
	}
	r := &HashlimitRuntime{tbl: t, cfg: t.Config(), above: m.Above}
	bits := psFamilyBits(fam)
	sm, dm := int(r.cfg.SrcMask), int(r.cfg.DstMask)
	if sm > bits {
		sm = bits
	}
	if dm > bits {
		dm = bits
	}
	copy(r.smask[:], xt.PrefixMask(fam, sm).AsSlice())
	copy(r.dmask[:], xt.PrefixMask(fam, dm).AsSlice())
	return r, nil
}

// hlPortsOffset is proto_ports_offset: where the two 16-bit "ports" are
// in the L4 header, or -1 for protocols without them.
func hlPortsOffset(proto uint8) int {
	switch proto {
	case 6, 17, 33, 50, 132, 136: // TCP, UDP, DCCP, ESP, SCTP, UDP-Lite
		return 0
	case 51: // AH
		return 4
	}
	return -1
}

func hlMask(dst *[16]byte, a netip.Addr, m *[16]byte) {
	if a.Is4() {
		b := a.As4()
		for i := 0; i < 4; i++ {
			dst[i] = b[i] & m[i]
		}
		return
	}
	b := a.As16()
	for i := range b {
		dst[i] = b[i] & m[i]
	}
}

// Matches implements xt.PacketMatcher (hashlimit_mt_common): build the key
// from the table's mode and masks, refill and charge the key's bucket; a
// packet whose ports cannot be read, or whose key is new while the table
// is full, is hot-dropped.
func (r *HashlimitRuntime) Matches(c *xt.Ctx) bool {
	k, ok := r.hlKey(c)
	if !ok {
		c.HotDrop = true
		return false
	}
	under, ok := r.tbl.Consume(k, c.P.TotalLen, c.P.TimeNS)
	if !ok {
		c.HotDrop = true
		return false
	}
	return under != r.above
}

// hlKey builds the packet's key from the table's mode and masks; ok is
// false when the mode needs ports the packet does not carry in full (the
// kernel hot-drops it). A non-first fragment's first bytes are read as
// ports, as the kernel does.
func (r *HashlimitRuntime) hlKey(c *xt.Ctx) (statestore.HashlimitKey, bool) {
	p := c.P
	var k statestore.HashlimitKey
	mode := r.cfg.Mode
	if mode&HashlimitDstIP != 0 {
		hlMask(&k.Dst, p.Dst, &r.dmask)
	}
	if mode&HashlimitSrcIP != 0 {
		hlMask(&k.Src, p.Src, &r.smask)
	}
	if mode&(HashlimitSrcPort|HashlimitDstPort) != 0 {
		if off := hlPortsOffset(p.Proto); off >= 0 {
			l4 := p.L4Off
			switch {
			case p.Status == packet.Fragment && p.Version == 4:
				l4 = p.HdrLen
			case p.Status == packet.Fragment:
				l4 = p.FragHdrOff + 8
			case p.Status == packet.BadL3:
				l4 = -1
			}
			o := l4 + off
			if l4 < 0 || o+4 > len(p.Data) {
				return k, false
			}
			if mode&HashlimitSrcPort != 0 {
				k.SrcPort = uint16(p.Data[o])<<8 | uint16(p.Data[o+1])
			}
			if mode&HashlimitDstPort != 0 {
				k.DstPort = uint16(p.Data[o+2])<<8 | uint16(p.Data[o+3])
			}
		}
	}
	return k, true
}

// Table returns the rule's table (shared with the other rules naming it).
func (r *HashlimitRuntime) Table() statestore.HashlimitTable { return r.tbl }
