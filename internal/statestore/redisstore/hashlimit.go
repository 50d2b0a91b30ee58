package redisstore

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/uptables/uptables/internal/statestore"
)

// A hashlimit table NAME of family F (4 or 6) lives in three keys under
// the hashlimit prefix H (see Options.HashlimitPrefix), in one Cluster
// slot:
//
//	H{NAME}:F:meta  hash: cfg (the creating daemon's configuration), gc
//	                (jiffy of the next garbage collection, + jiffyBias)
//	H{NAME}:F:ent   hash: bucket id -> bucket (fixed-width decimal)
//	H{NAME}:F:exp   sorted set: bucket id -> expiry jiffy (+ jiffyBias)
//
// A bucket id is the key as /proc prints it, in netip's AddrPort form:
// "192.0.2.0:0->198.51.100.1:22", "[2001:db8::]:0->[::]:0". A bucket is
// 88 characters: expiry and last refill (14 digits each, jiffies +
// jiffyBias) then credit, credit_cap and cost as two 10-digit 32-bit
// halves each, because Lua's numbers are doubles (exact to 2^53) and the
// kernel's packet-mode credits use all 64 bits.

// jiffyBias keeps every jiffy positive and at most 14 digits: a packet
// time's jiffies are within ±2.4e12.
const jiffyBias = 10_000_000_000_000

// hlLib is rateinfo_recalc on the bucket fields: the same arithmetic as
// statestore.HashlimitRefill, on 32-bit halves in packet mode (byte-mode
// credits stay below 2^33, exact in a double).
const hlLib = `
local T = 4294967296
local BL = 4194304000
local function split(x) local h = math.floor(x / T) return h, x - h * T end
local function refill(bytes, d, chi, clo, phi, plo)
  if d <= 0 then return chi, clo end
  if bytes then
    local c = chi * T + clo + 16777216 * d
    if d > 250 or c > BL then return split(BL) end
    return split(c)
  end
  if d > 33554431 then return phi, plo end
  local h = chi + d * 128
  if h >= T then return phi, plo end
  if h > phi or (h == phi and clo > plo) then return phi, plo end
  return h, clo
end
local function fmt(e, p, chi, clo, phi, plo, ohi, olo)
  return string.format('%014.0f%014.0f%010.0f%010.0f%010.0f%010.0f%010.0f%010.0f', e, p, chi, clo, phi, plo, ohi, olo)
end
local function num(s, i, j) return tonumber(string.sub(s, i, j)) end
`

// hlFixed is the length of consumeScript's fixed argument fields.
const hlFixed = 120

// consumeScript is one packet's hashlimit_mt_common, the memory table's
// Consume: the gc tick that is due (htable_selective_cleanup of the
// buckets whose expiry has passed), lookup, rateinfo_init for a new bucket
// (refused when the table holds htable-max buckets) or rateinfo_recalc for
// a known one, the new expiry, and the charge (hashlimit_byte_cost in byte
// mode). It refreshes the keys' TTLs so that an abandoned table leaves
// Redis.
//
// KEYS: meta, ent, exp. ARGV[1], fixed-width decimal, then the bucket id:
//
//	1-14 now (jiffies + bias), 15-24 expire (jiffies), 25-34 gc interval
//	(jiffies), 35-41 htable-max, 42 byte mode, 43-52 packet length,
//	53-72 initial credit, 73-92 credit_cap, 93-112 cost (32-bit halves),
//	113-120 TTL (s), 121- bucket id
//
// Returns 1 (under the limit), 0 (over) or 2 (table full: hot-drop).
var consumeScript = redis.NewScript(hlLib + `
local meta, ent, exz = KEYS[1], KEYS[2], KEYS[3]
local a = ARGV[1]
local now, expire, gce, max = num(a, 1, 14), num(a, 15, 24), num(a, 25, 34), num(a, 35, 41)
local bytes = string.sub(a, 42, 42) == '1'
local plen = num(a, 43, 52)
local ttl = num(a, 113, 120)
local id = string.sub(a, 121)
local gcn = tonumber(redis.call('HGET', meta, 'gc'))
if not gcn then
  redis.call('HSET', meta, 'gc', string.format('%.0f', now + gce))
elseif now >= gcn then
  local tick = gcn + math.floor((now - gcn) / gce) * gce
  redis.call('HSET', meta, 'gc', string.format('%.0f', tick + gce))
  local ts = string.format('%.0f', tick)
  local old = redis.call('ZRANGEBYSCORE', exz, '-inf', ts)
  for i = 1, #old, 1000 do
    redis.call('HDEL', ent, unpack(old, i, math.min(i + 999, #old)))
  end
  if #old > 0 then redis.call('ZREMRANGEBYSCORE', exz, '-inf', ts) end
end
local v = redis.call('HGET', ent, id)
local prev, chi, clo, phi, plo, ohi, olo = now
if not v then
  if redis.call('HLEN', ent) >= max then return 2 end
  chi, clo, phi, plo, ohi, olo = num(a, 53, 62), num(a, 63, 72), num(a, 73, 82), num(a, 83, 92), num(a, 93, 102), num(a, 103, 112)
else
  prev = num(v, 15, 28)
  chi, clo, phi, plo, ohi, olo = num(v, 29, 38), num(v, 39, 48), num(v, 49, 58), num(v, 59, 68), num(v, 69, 78), num(v, 79, 88)
  chi, clo = refill(bytes, now - prev, chi, clo, phi, plo)
  if now > prev then prev = now end
end
local under = 0
if bytes then
  local c, cap, cost = chi * T + clo, phi * T + plo, ohi * T + olo
  local k = (math.floor(plen / 16) + 1) * cost
  if k > BL then k = BL end
  if c < k and cap > 0 then cap = cap - 1; c = BL end
  if c >= k then c = c - k; under = 1 end
  chi, clo = split(c)
  phi, plo = split(cap)
elseif chi > ohi or (chi == ohi and clo >= olo) then
  local h, l = chi - ohi, clo - olo
  if l < 0 then l = l + T; h = h - 1 end
  chi, clo, under = h, l, 1
end
local exp = now + expire
redis.call('HSET', ent, id, fmt(exp, prev, chi, clo, phi, plo, ohi, olo))
redis.call('ZADD', exz, string.format('%.0f', exp), id)
redis.call('EXPIRE', meta, ttl)
redis.call('EXPIRE', ent, ttl)
redis.call('EXPIRE', exz, ttl)
return under
`)

// hlEntriesScript is the /proc reader (dl_seq_real_show): every bucket
// refilled to now and written back, as the kernel's reader does under the
// bucket's lock. KEYS: meta, ent, exp. ARGV: now (jiffies + bias), byte
// mode (0/1). Returns {id1, bucket1, id2, bucket2, ...}.
var hlEntriesScript = redis.NewScript(hlLib + `
local now, bytes = tonumber(ARGV[1]), ARGV[2] == '1'
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local v = all[i + 1]
  local prev = num(v, 15, 28)
  if now > prev then
    local chi, clo = refill(bytes, now - prev, num(v, 29, 38), num(v, 39, 48), num(v, 49, 58), num(v, 59, 68))
    v = fmt(num(v, 1, 14), now, chi, clo, num(v, 49, 58), num(v, 59, 68), num(v, 69, 78), num(v, 79, 88))
    redis.call('HSET', KEYS[2], all[i], v)
    all[i + 1] = v
  end
end
return all
`)

// hlConfigScript records the creating daemon's configuration on first use
// and returns the table's. KEYS: meta, ent, exp. ARGV: configuration, TTL
// (s). Returns the stored configuration.
var hlConfigScript = redis.NewScript(`
redis.call('HSETNX', KEYS[1], 'cfg', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return redis.call('HGET', KEYS[1], 'cfg')
`)

// hlLenScript returns the bucket count. KEYS: meta, ent, exp.
var hlLenScript = redis.NewScript(`return redis.call('HLEN', KEYS[2])`)

// hlTable is a statestore.HashlimitTable whose buckets live in Redis; the
// Go value holds the keys and the precomputed argument fields.
type hlTable struct {
	s     *Store
	cfg   statestore.HashlimitConfig
	keys  []string // meta, ent, exp; never modified
	fixed [hlFixed]byte
	ttlS  int64
}

var _ statestore.HashlimitTable = (*hlTable)(nil)

// hlConfigString is a normalized configuration without name and family,
// as the meta key stores it.
func hlConfigString(c statestore.HashlimitConfig) string {
	return fmt.Sprintf("v1 mode=%d srcmask=%d dstmask=%d bytes=%d avg=%d burst=%d size=%d max=%d gc=%d expire=%d",
		c.Mode, c.SrcMask, c.DstMask, b01(c.Bytes), c.Avg, c.Burst, c.Size, c.Max, c.GCIntervalMS, c.ExpireMS)
}

// parseHlConfig reads hlConfigString's output into c (name and family
// kept).
func parseHlConfig(s string, c statestore.HashlimitConfig) (statestore.HashlimitConfig, error) {
	var bytes int
	n, err := fmt.Sscanf(s, "v1 mode=%d srcmask=%d dstmask=%d bytes=%d avg=%d burst=%d size=%d max=%d gc=%d expire=%d",
		&c.Mode, &c.SrcMask, &c.DstMask, &bytes, &c.Avg, &c.Burst, &c.Size, &c.Max, &c.GCIntervalMS, &c.ExpireMS)
	if err != nil || n != 10 || bytes > 1 || hlConfigString(statestore.NormalizeHashlimit(c)) != s {
		return c, fmt.Errorf("malformed table configuration %q", s)
	}
	c.Bytes = bytes == 1
	return c, nil
}

// hlTTL is how long (s) a table's keys outlive its last packet step or
// configuration read: its expiry plus two gc intervals and a minute, so
// that keys vanish only when every bucket would have been collected.
func hlTTL(c statestore.HashlimitConfig) int64 {
	return (int64(c.ExpireMS)+2*int64(c.GCIntervalMS))/1000 + 61
}

func newHlTable(s *Store, cfg statestore.HashlimitConfig) *hlTable {
	cfg = statestore.NormalizeHashlimit(cfg)
	fam := "4"
	if cfg.IPv6 {
		fam = "6"
	}
	base := s.opt.HashlimitPrefix + "{" + cfg.Name + "}:" + fam + ":"
	t := &hlTable{s: s, keys: []string{base + "meta", base + "ent", base + "exp"}}
	t.setConfig(cfg)
	// The first daemon's configuration is the table's (a kernel table
	// keeps its creating rule's): adopt the stored one.
	v, err := s.control(hlConfigScript, t.keys, hlConfigString(cfg), t.ttlS)
	if err != nil {
		return t
	}
	stored, _ := v.(string)
	if stored == hlConfigString(cfg) {
		return t
	}
	sc, err := parseHlConfig(stored, cfg)
	if err != nil {
		s.failed(fmt.Errorf("redisstore: hashlimit %q: %w", cfg.Name, err), false)
		return t
	}
	s.opt.Logger.Warn("redisstore: hashlimit table keeps the configuration of the daemon that created it",
		"table", cfg.Name, "table_config", stored, "rule_config", hlConfigString(cfg))
	t.setConfig(sc)
	return t
}

// setConfig fixes the table's configuration and the argument fields that
// derive from it.
func (t *hlTable) setConfig(cfg statestore.HashlimitConfig) {
	t.cfg = cfg
	t.ttlS = hlTTL(cfg)
	gc, exp := statestore.HashlimitTiming(cfg)
	credit, cc, cost := statestore.HashlimitInit(cfg)
	b := t.fixed[:]
	putUint(b[14:24], uint64(exp))
	putUint(b[24:34], uint64(gc))
	putUint(b[34:41], uint64(cfg.Max))
	putUint(b[41:42], uint64(b01(cfg.Bytes)))
	putUint(b[52:62], credit>>32)
	putUint(b[62:72], credit&0xffffffff)
	putUint(b[72:82], cc>>32)
	putUint(b[82:92], cc&0xffffffff)
	putUint(b[92:102], cost>>32)
	putUint(b[102:112], cost&0xffffffff)
	putUint(b[112:120], uint64(t.ttlS))
}

// Keys returns the table's meta, bucket and expiry keys.
func (t *hlTable) Keys() (meta, ent, exp string) { return t.keys[0], t.keys[1], t.keys[2] }

// Config implements statestore.HashlimitTable: the table's configuration,
// the creating daemon's when another daemon created it.
func (t *hlTable) Config() statestore.HashlimitConfig { return t.cfg }

// appendID appends the bucket id of k.
func (t *hlTable) appendID(b []byte, k *statestore.HashlimitKey) []byte {
	addr := func(a *[16]byte) netip.Addr {
		if t.cfg.IPv6 {
			return netip.AddrFrom16(*a)
		}
		return netip.AddrFrom4([4]byte(a[:4]))
	}
	b = netip.AddrPortFrom(addr(&k.Src), k.SrcPort).AppendTo(b)
	b = append(b, "->"...)
	return netip.AddrPortFrom(addr(&k.Dst), k.DstPort).AppendTo(b)
}

// parseID is appendID's inverse.
func (t *hlTable) parseID(id string) (statestore.HashlimitKey, error) {
	var k statestore.HashlimitKey
	s, d, ok := strings.Cut(id, "->")
	if !ok {
		return k, fmt.Errorf("%w %q", errCorrupt, id)
	}
	sa, err1 := netip.ParseAddrPort(s)
	da, err2 := netip.ParseAddrPort(d)
	if err1 != nil || err2 != nil || sa.Addr().Is4() == t.cfg.IPv6 || da.Addr().Is4() == t.cfg.IPv6 {
		return k, fmt.Errorf("%w %q", errCorrupt, id)
	}
	if t.cfg.IPv6 {
		k.Src, k.Dst = sa.Addr().As16(), da.Addr().As16()
	} else {
		s4, d4 := sa.Addr().As4(), da.Addr().As4()
		copy(k.Src[:], s4[:])
		copy(k.Dst[:], d4[:])
	}
	k.SrcPort, k.DstPort = sa.Port(), da.Port()
	return k, nil
}

// Consume implements statestore.HashlimitTable: one EVALSHA. Without
// Redis, FailOpen lets the packet through as under the limit and
// FailClosed hot-drops it.
func (t *hlTable) Consume(k statestore.HashlimitKey, pktLen int, nowNS int64) (under, ok bool) {
	var buf [hlFixed + 100]byte
	b := buf[:hlFixed]
	copy(b, t.fixed[:])
	putUint(b[0:14], uint64(statestore.Jiffy(nowNS)+jiffyBias))
	l := uint64(pktLen)
	if pktLen < 0 || l > 9_999_999_999 {
		l = 9_999_999_999 // costs a full second's credit, as the kernel's overflow check
	}
	putUint(b[42:52], l)
	v, err := t.s.run(consumeScript, t.keys, string(t.appendID(b, &k)))
	if err != nil {
		return t.failAnswer()
	}
	n, isInt := v.(int64)
	if !isInt || n < 0 || n > 2 {
		t.s.failed(fmt.Errorf("redisstore: hashlimit %q: unexpected reply %v", t.cfg.Name, v), true)
		return t.failAnswer()
	}
	return n == 1, n != 2
}

func (t *hlTable) failAnswer() (bool, bool) {
	if t.s.opt.Fail == FailClosed {
		t.s.hotdrops.Add(1)
		return false, false
	}
	return true, true
}

// Entries implements statestore.HashlimitTable, in the order Redis
// returns the buckets (the kernel's is its hash order). A Redis failure
// lists nothing; EntriesErr reports it.
func (t *hlTable) Entries(nowNS int64, fn func(e *statestore.HashlimitEntry) bool) {
	_ = t.EntriesErr(nowNS, fn)
}

// EntriesErr is Entries with the Redis error.
func (t *hlTable) EntriesErr(nowNS int64, fn func(e *statestore.HashlimitEntry) bool) error {
	nowJ := statestore.Jiffy(nowNS)
	v, err := t.s.control(hlEntriesScript, t.keys, strconv.FormatInt(nowJ+jiffyBias, 10), b01(t.cfg.Bytes))
	if err != nil {
		return err
	}
	r, isList := v.([]any)
	if !isList || len(r)%2 != 0 {
		err := fmt.Errorf("redisstore: hashlimit %q: unexpected reply %T", t.cfg.Name, v)
		t.s.failed(err, false)
		return err
	}
	ents := make([]statestore.HashlimitEntry, 0, len(r)/2)
	for i := 0; i < len(r); i += 2 {
		id, _ := r[i].(string)
		val, _ := r[i+1].(string)
		e, err := t.decode(id, val, nowJ)
		if err != nil {
			err = fmt.Errorf("redisstore: hashlimit %q: %w", t.cfg.Name, err)
			t.s.failed(err, false)
			return err
		}
		ents = append(ents, e)
	}
	for i := range ents {
		if !fn(&ents[i]) {
			break
		}
	}
	return nil
}

// decode parses one bucket.
func (t *hlTable) decode(id, v string, nowJ int64) (statestore.HashlimitEntry, error) {
	var e statestore.HashlimitEntry
	k, err := t.parseID(id)
	if err != nil {
		return e, err
	}
	if len(v) != 88 {
		return e, fmt.Errorf("%w %q", errCorrupt, id)
	}
	var f [8]uint64
	widths := [8]int{14, 14, 10, 10, 10, 10, 10, 10}
	p := 0
	for i, w := range widths {
		u, err := strconv.ParseUint(v[p:p+w], 10, 64)
		if err != nil || i >= 2 && u > 0xffffffff {
			return e, fmt.Errorf("%w %q", errCorrupt, id)
		}
		f[i] = u
		p += w
	}
	exp := int64(f[0]) - jiffyBias
	e.Key = k
	e.ExpiresInS = (exp - nowJ) / statestore.HZ
	e.Credit, e.CreditCap, e.Cost = f[2]<<32|f[3], f[4]<<32|f[5], f[6]<<32|f[7]
	return e, nil
}

// Len implements statestore.HashlimitTable (0 when Redis fails; LenErr
// reports the error).
func (t *hlTable) Len() int {
	n, _ := t.LenErr()
	return n
}

// LenErr is Len with the Redis error.
func (t *hlTable) LenErr() (int, error) {
	v, err := t.s.control(hlLenScript, t.keys)
	if err != nil {
		return 0, err
	}
	n, _ := v.(int64)
	return int(n), nil
}
