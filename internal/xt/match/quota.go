package match

import (
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/uptables/uptables/internal/xt"
)

// quota (xt_quota): --quota BYTES matches while the rule's byte budget lasts;
// each matching packet's length is subtracted. With "!" it matches once the
// budget is used up. The budget is per rule and shared by all CPUs, so the
// runtime needs a per-rule counter (state), not just the packet.

var quotaOpts = optTable{
	{name: "quota", id: 0, arg: xt.RequiredArg, flags: optMand | optInvert},
}

// Quota is a configured quota match.
type Quota struct {
	seen   uint32
	Bytes  uint64
	Invert bool
}

var _ xt.Match = (*Quota)(nil)
var _ xt.MatchBuilder = (*Quota)(nil)

func newQuotaSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "quota", Options: quotaOpts.options(), New: func() xt.Match { return &Quota{} }}
}

// Parse implements xt.Match.
func (m *Quota) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if _, err := quotaOpts.begin("quota", &m.seen, opt, invert); err != nil {
		return err
	}
	v, err := parseUintOpt("quota", opt, arg, 0, 1<<64-1)
	if err != nil {
		return err
	}
	m.Bytes, m.Invert = v, invert
	return nil
}

// Final implements xt.Match.
func (m *Quota) Final(*xt.ParseContext) error { return quotaOpts.fcheck("quota", m.seen) }

// Save implements xt.Match.
func (m *Quota) Save(b *strings.Builder) {
	saveNot(b, m.Invert)
	b.WriteString(" --quota " + strconv.FormatUint(m.Bytes, 10))
}

// List implements xt.Match: iptables does not show the "!" here.
func (m *Quota) List(b *strings.Builder, _ bool) {
	b.WriteString(" quota: " + strconv.FormatUint(m.Bytes, 10) + " bytes")
}

// Build implements xt.MatchBuilder: the budget is per rule, shared by all
// workers, and carried over from env.Prev when the same rule (same quota)
// survives a ruleset change, as an unchanged nft rule keeps its xt_quota
// state. `iptables -Z` does not refill it.
func (m *Quota) Build(env *xt.Env) (xt.PacketMatcher, error) {
	if prev, ok := env.Prev.(*quotaRuntime); ok && prev.initial == m.Bytes {
		return &quotaRuntime{initial: m.Bytes, invert: m.Invert, left: prev.left}, nil
	}
	r := &quotaRuntime{initial: m.Bytes, invert: m.Invert, left: new(atomic.Uint64)}
	r.left.Store(m.Bytes)
	return r, nil
}

// quotaRuntime is the per-rule state of a quota match.
type quotaRuntime struct {
	initial uint64
	invert  bool
	left    *atomic.Uint64
}

// Left returns the bytes remaining in the budget.
func (r *quotaRuntime) Left() uint64 { return r.left.Load() }

// Matches implements xt.PacketMatcher (quota_mt): a packet that fits in
// what is left (its L3 length, skb->len) is subtracted and matches; the
// first packet that does not fit empties the budget, so no smaller packet
// passes afterwards. "!" inverts the result, not the accounting.
func (r *quotaRuntime) Matches(c *xt.Ctx) bool {
	n := uint64(c.P.TotalLen)
	for {
		o := r.left.Load()
		if o >= n {
			if r.left.CompareAndSwap(o, o-n) {
				return !r.invert
			}
			continue
		}
		if o == 0 || r.left.CompareAndSwap(o, 0) {
			return r.invert
		}
	}
}
