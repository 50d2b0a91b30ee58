package match

import (
	"strconv"
	"strings"
	"sync"

	"github.com/uptables/uptables/internal/xt"
)

// LimitScale is xt_limit's time unit: avg is in 1/10000 s per packet.
const LimitScale = 10000

// psRateUnit is one unit iptables prints rates in.
type psRateUnit struct {
	name string
	mult uint64 // scale * unit seconds
	secs uint64
}

// psRateUnits returns the print units for a scale, longest first.
func psRateUnits(scale uint64) [4]psRateUnit {
	return [4]psRateUnit{
		{"day", scale * 86400, 86400}, {"hour", scale * 3600, 3600},
		{"min", scale * 60, 60}, {"sec", scale, 1},
	}
}

// psPrintRate re-derives the printed rate from a period as iptables'
// print_rate does: scan hour, min, sec and stop at the first unit that
// divides badly; print over the previous unit. It returns the count, the
// unit and the unit's length in seconds.
func psPrintRate(period, scale uint64) (n uint64, unit string, secs uint64) {
	u := psRateUnits(scale)
	i := 1
	for ; i < len(u); i++ {
		if period > u[i].mult || u[i].mult/period < u[i].mult%period {
			break
		}
	}
	return u[i-1].mult / period, u[i-1].name, u[i-1].secs
}

// psParseRate parses "N[/unit]" as libxt_limit/libxt_hashlimit do: N read
// by atoi/atoll (decimal prefix, trailing junk ignored), unit any prefix of
// second, minute, hour, day. ok is false for a bad rate; n and secs are the
// count and unit length.
func psParseRate(s string) (n int64, secs uint64, ok bool) {
	secs = 1
	if i := strings.IndexByte(s, '/'); i >= 0 {
		u := s[i+1:]
		if u == "" {
			return 0, 0, false
		}
		switch {
		case psPrefixFold(u, "second"):
			secs = 1
		case psPrefixFold(u, "minute"):
			secs = 60
		case psPrefixFold(u, "hour"):
			secs = 3600
		case psPrefixFold(u, "day"):
			secs = 86400
		default:
			return 0, 0, false
		}
	}
	return psAtoll(s), secs, true
}

// psPrefixFold reports whether s is a case-insensitive prefix of word.
func psPrefixFold(s, word string) bool {
	return len(s) <= len(word) && strings.EqualFold(word[:len(s)], s)
}

// psAtoll is C's atoll: optional blanks and sign, decimal digits, stops at
// the first other byte; saturates on overflow as strtoll does.
func psAtoll(s string) int64 {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] >= '\t' && s[i] <= '\r') {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	var v uint64
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		v = v*10 + uint64(s[i]-'0')
		if v > 1<<63 {
			v = 1 << 63
		}
	}
	if neg {
		return -int64(v)
	}
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}

// Limit is the limit match. iptables-nft 1.8.9 does not use xt_limit: it
// turns the rule into the nft limit expression "rate R/unit burst B", with
// R/unit the rate re-derived for printing (so 86401/day becomes 1/second).
// Final stores what the kernel then holds: Rate per UnitSeconds, and the
// nft token bucket in nanoseconds: each packet costs CostNS, the bucket
// holds BurstNS = Burst*CostNS and starts full.
type Limit struct {
	Avg         uint32 // 1/10000 s per packet, as printed back
	Burst       uint32 // packets; 0 on the command line means the kernel's 5
	Rate        uint64
	UnitSeconds uint64
	CostNS      uint64
	BurstNS     uint64

	flags uint32
}

const (
	limOptLimit = iota
	limOptBurst
)

// LimitBurstDefault is the burst when --limit-burst is not given.
const LimitBurstDefault = 5

var psLimitOpts = &psTable{ext: "limit", entries: []psOpt{
	{name: "limit", id: limOptLimit, arg: xt.RequiredArg},
	{name: "limit-burst", id: limOptBurst, arg: xt.RequiredArg},
}}

var _ xt.Match = (*Limit)(nil)

func newLimitSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name:    "limit",
		Options: psLimitOpts.options(),
		New: func() xt.Match {
			return &Limit{Avg: LimitScale * 3600 / 3, Burst: LimitBurstDefault}
		},
	}
}

// Parse implements xt.Match.
func (m *Limit) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	e, err := psLimitOpts.begin(m.flags, opt, invert)
	if err != nil {
		return err
	}
	switch e.id {
	case limOptLimit:
		n, secs, ok := psParseRate(arg)
		r := uint32(n) // iptables keeps the count in a uint32
		if !ok || r == 0 {
			return xt.Errorf("bad rate \"%s\"'", arg)
		}
		avg := uint32(LimitScale*secs) / r
		if avg == 0 {
			return xt.Errorf("Rate too fast \"%s\"", arg)
		}
		m.Avg = avg
	case limOptBurst:
		v, err := psLimitOpts.parseUintOpt(e, arg, 0, 10000)
		if err != nil {
			return err
		}
		m.Burst = uint32(v)
	}
	m.flags |= 1 << e.id
	return nil
}

// Final implements xt.Match: derive the nft limit expression.
func (m *Limit) Final(ctx *xt.ParseContext) error {
	if m.Burst == 0 {
		m.Burst = LimitBurstDefault // nft_limit's default for burst 0
	}
	n, _, secs := psPrintRate(uint64(m.Avg), LimitScale)
	m.Rate, m.UnitSeconds = n, secs
	m.Avg = uint32(LimitScale * secs / n)
	m.CostNS = secs * 1e9 / n
	m.BurstNS = m.CostNS * uint64(m.Burst)
	return nil
}

func (m *Limit) appendRate(b *strings.Builder) {
	n, unit, _ := psPrintRate(uint64(m.Avg), LimitScale)
	b.WriteString(strconv.FormatUint(n, 10))
	b.WriteByte('/')
	b.WriteString(unit)
}

// Save implements xt.Match (burst 5 is never printed).
func (m *Limit) Save(b *strings.Builder) {
	b.WriteString(" --limit ")
	m.appendRate(b)
	if m.Burst != LimitBurstDefault {
		b.WriteString(" --limit-burst ")
		b.WriteString(strconv.FormatUint(uint64(m.Burst), 10))
	}
}

// List implements xt.Match ("limit: avg 5/sec burst 20").
func (m *Limit) List(b *strings.Builder, numeric bool) {
	b.WriteString(" limit: avg ")
	m.appendRate(b)
	b.WriteString(" burst ")
	b.WriteString(strconv.FormatUint(uint64(m.Burst), 10))
}

// LimitRuntime is the packet-time side of one limit rule: the nft limit
// expression's token bucket in nanoseconds (spec §5.3). Tokens start full
// (Burst*CostNS); each evaluation adds the time elapsed since the previous
// one, caps at the bucket size, and takes CostNS when that many are there.
// The bucket is shared with the rule's previous runtime across reloads
// (env.Prev), as iptables-nft leaves unchanged rules' limits alone.
type LimitRuntime struct {
	cost, max int64
	b         *limitBucket
}

// limitBucket is the mutable part (the kernel's nft_limit with its lock).
type limitBucket struct {
	mu      sync.Mutex
	tokens  int64
	last    int64
	started bool
}

var _ xt.MatchBuilder = (*Limit)(nil)
var _ xt.PacketMatcher = (*LimitRuntime)(nil)

// Build implements xt.MatchBuilder.
func (m *Limit) Build(env *xt.Env) (xt.PacketMatcher, error) {
	if m.CostNS == 0 || m.BurstNS == 0 || m.BurstNS > 1<<62 {
		return nil, xt.Errorf("limit: rate %d/%ds burst %d cannot be run", m.Rate, m.UnitSeconds, m.Burst)
	}
	r := &LimitRuntime{cost: int64(m.CostNS), max: int64(m.BurstNS)}
	if p, ok := env.Prev.(*LimitRuntime); ok && p.cost == r.cost && p.max == r.max {
		r.b = p.b
	} else {
		r.b = &limitBucket{tokens: r.max}
	}
	return r, nil
}

// Matches implements xt.PacketMatcher (nft_limit_eval for packets). Time
// that runs backwards (out-of-order captures) adds no tokens and does not
// move the bucket's clock back.
func (r *LimitRuntime) Matches(c *xt.Ctx) bool {
	now := c.P.TimeNS
	b := r.b
	b.mu.Lock()
	if !b.started {
		b.started, b.last = true, now
	}
	d := now - b.last
	if d < 0 {
		d = 0
	} else {
		b.last = now
	}
	if d > r.max {
		d = r.max
	}
	tokens := b.tokens + d
	if tokens > r.max {
		tokens = r.max
	}
	ok := tokens >= r.cost
	if ok {
		tokens -= r.cost
	}
	b.tokens = tokens
	b.mu.Unlock()
	return ok
}

// Tokens returns the bucket's content in ns as of the last packet and the
// bucket size (for status displays).
func (r *LimitRuntime) Tokens() (tokens, size int64) {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	return r.b.tokens, r.max
}
