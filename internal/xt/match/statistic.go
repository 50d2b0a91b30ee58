package match

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/uptables/uptables/internal/xt"
)

// statistic (xt_statistic): --mode random --probability P matches when a
// random 31-bit number is below P*2^31; --mode nth --every N --packet P
// matches every Nth packet, the rule's counter starting at P. Both need
// state the packet does not carry (a random source; a per-rule counter
// shared by all CPUs), so the runtime builds them: ProbabilityRaw is the
// kernel's threshold, Every and Packet the nth parameters.

const (
	statMode = iota
	statProbability
	statEvery
	statPacket
)

// Statistic modes (XT_STATISTIC_MODE_*).
const (
	StatisticRandom uint8 = 0
	StatisticNth    uint8 = 1
)

var statisticOpts = optTable{
	{name: "mode", id: statMode, arg: xt.RequiredArg, flags: optMand},
	{name: "probability", id: statProbability, arg: xt.RequiredArg, flags: optInvert, excl: 1<<statEvery | 1<<statPacket},
	{name: "every", id: statEvery, arg: xt.RequiredArg, flags: optInvert, excl: 1 << statProbability, also: 1 << statPacket},
	{name: "packet", id: statPacket, arg: xt.RequiredArg, excl: 1 << statProbability, also: 1 << statEvery},
}

// Statistic is a configured statistic match.
type Statistic struct {
	seen uint32
	Mode uint8
	// ProbabilityRaw is lround(P * 2^31): the packet matches when
	// (random & 0x7fffffff) < ProbabilityRaw.
	ProbabilityRaw uint32
	// Every is N-1 (as the kernel stores it), Packet the initial count.
	Every, Packet uint32
	Invert        bool
}

var _ xt.Match = (*Statistic)(nil)
var _ xt.MatchBuilder = (*Statistic)(nil)

func newStatisticSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "statistic", Options: statisticOpts.options(), New: func() xt.Match { return &Statistic{} }}
}

// Parse implements xt.Match.
func (m *Statistic) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	e, err := statisticOpts.begin("statistic", &m.seen, opt, invert)
	if err != nil {
		return err
	}
	switch e.id {
	case statMode:
		switch arg {
		case "random":
			m.Mode = StatisticRandom
		case "nth":
			m.Mode = StatisticNth
		default:
			return xt.Errorf("Bad mode \"%s\"", arg)
		}
	case statProbability:
		p, ok := parseCDouble(arg)
		if !ok || p < 0 || p > 1 {
			return xt.Errorf("statistic: bad value for option \"--probability\", or out of range (0-1).\n")
		}
		m.ProbabilityRaw = uint32(math.Round(p * 0x80000000))
		m.Invert = m.Invert || invert
	case statEvery:
		v, err := parseUintOpt("statistic", opt, arg, 1, 0xffffffff)
		if err != nil {
			return err
		}
		m.Every = uint32(v - 1)
		m.Invert = m.Invert || invert
	case statPacket:
		v, err := parseUintOpt("statistic", opt, arg, 0, 0xffffffff)
		if err != nil {
			return err
		}
		m.Packet = uint32(v)
	}
	return nil
}

// parseCDouble reads a number as strtod does for the forms people write:
// decimal with optional exponent, and C hexadecimal ("0x1", "0x1.8p1").
// NaN is refused (iptables would store an undefined value).
func parseCDouble(s string) (float64, bool) {
	t := strings.TrimLeft(s, " \t\n")
	l := strings.ToLower(t)
	if strings.HasPrefix(l, "0x") || strings.HasPrefix(l, "+0x") || strings.HasPrefix(l, "-0x") {
		if !strings.Contains(l, "p") {
			t += "p0"
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || t == "" {
		return 0, false
	}
	return v, true
}

// Final implements xt.Match: iptables' own checks come before the generic ones.
func (m *Statistic) Final(*xt.ParseContext) error {
	switch m.Mode {
	case StatisticRandom:
		if m.seen&(1<<statProbability) == 0 {
			return xt.Errorf("--probability must be specified when using random mode")
		}
	case StatisticNth:
		if m.seen&(1<<statEvery|1<<statPacket) == 0 {
			return xt.Errorf("--every and --packet must be specified when using nth mode")
		}
		if m.Packet > m.Every {
			return xt.Errorf("the --packet p must be 0 <= p <= n-1")
		}
	}
	return statisticOpts.fcheck("statistic", m.seen)
}

func (m *Statistic) probability() string {
	return fmt.Sprintf("%.11f", float64(m.ProbabilityRaw)/0x80000000)
}

// Save implements xt.Match.
func (m *Statistic) Save(b *strings.Builder) {
	if m.Mode == StatisticRandom {
		b.WriteString(" --mode random")
		saveNot(b, m.Invert)
		b.WriteString(" --probability " + m.probability())
		return
	}
	b.WriteString(" --mode nth")
	saveNot(b, m.Invert)
	fmt.Fprintf(b, " --every %d --packet %d", uint64(m.Every)+1, m.Packet)
}

// List implements xt.Match.
func (m *Statistic) List(b *strings.Builder, _ bool) {
	if m.Mode == StatisticRandom {
		b.WriteString(" statistic mode random")
		saveNot(b, m.Invert)
		b.WriteString(" probability " + m.probability())
		return
	}
	b.WriteString(" statistic mode nth")
	saveNot(b, m.Invert)
	fmt.Fprintf(b, " every %d", uint64(m.Every)+1)
	if m.Packet != 0 {
		fmt.Fprintf(b, " packet %d", m.Packet)
	}
}

// MatchRandom is the random-mode test for a uniformly random r.
func (m *Statistic) MatchRandom(r uint32) bool {
	return (r&0x7fffffff < m.ProbabilityRaw) != m.Invert
}

// Build implements xt.MatchBuilder.
//
// nth: one counter per rule, shared by every worker and updated with a
// compare-and-swap as the kernel's atomic_cmpxchg loop. iptables stores the
// initial count as every-packet (both 0-based), so `--every 3 --packet 0`
// matches the 1st, 4th, 7th... packet and `--packet 1` the 2nd, 5th...
// (observed on 6.18). A rule kept across a ruleset change (env.Prev with
// the same parameters) keeps its counter, as an unchanged nft rule does.
//
// random: a per-rule splitmix64 generator over an atomic counter seeded
// from env.Rand, so that the per-packet draw is lock-free and allocates
// nothing; the low 31 bits are compared with the threshold as the kernel
// does with get_random_u32().
func (m *Statistic) Build(env *xt.Env) (xt.PacketMatcher, error) {
	if m.Mode == StatisticNth {
		start := m.Every - m.Packet
		if prev, ok := env.Prev.(*statisticNth); ok && prev.every == m.Every && prev.start == start {
			return &statisticNth{every: m.Every, start: start, invert: m.Invert, count: prev.count}, nil
		}
		r := &statisticNth{every: m.Every, start: start, invert: m.Invert, count: new(atomic.Uint32)}
		r.count.Store(start)
		return r, nil
	}
	if env.Rand == nil {
		return nil, errors.New("statistic: --mode random needs the engine's random source (Env.Rand)")
	}
	r := &statisticRandom{cfg: m}
	r.state.Store(uint64(env.Rand())<<32 | uint64(env.Rand()))
	return r, nil
}

// statisticNth is the runtime of --mode nth.
type statisticNth struct {
	every, start uint32
	invert       bool
	count        *atomic.Uint32
}

// Matches implements xt.PacketMatcher: the counter runs start, ..., every,
// 0, 1, ...; the packet that brings it back to 0 matches.
func (r *statisticNth) Matches(*xt.Ctx) bool {
	for {
		o := r.count.Load()
		n := o + 1
		if o == r.every {
			n = 0
		}
		if r.count.CompareAndSwap(o, n) {
			return (n == 0) != r.invert
		}
	}
}

// statisticRandom is the runtime of --mode random.
type statisticRandom struct {
	cfg   *Statistic
	state atomic.Uint64
}

// Matches implements xt.PacketMatcher.
func (r *statisticRandom) Matches(*xt.Ctx) bool {
	x := r.state.Add(0x9e3779b97f4a7c15)
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return r.cfg.MatchRandom(uint32(x))
}
