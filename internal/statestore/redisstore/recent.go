package redisstore

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/uptables/uptables/internal/statestore"
)

// Script operations (ARGV[2] of applyScript).
const (
	// opSet..opRemove are statestore.RecentCmd values (1..4).
	opRemove = int(statestore.RecentRemove)
	// opAdd is the /proc write "+ADDR": insert with TTL 0, or record a
	// stamp without touching the entry's TTL.
	opAdd = 5
)

// An entry value is a 15-character header, TTL (3 digits), ring write
// index (6) and stamp count (6), followed by the stamps in ring order, 20
// characters each: the ns time as uint64(ns) XOR 1<<63 in zero-padded
// decimal, so that the order of the numbers is the order of the strings and
// Lua (whose numbers are doubles, exact to 2^53 only) can compare two stamps
// as two 10-digit halves.
const (
	hdrLen   = 15
	stampLen = 20
)

// luaLib is shared by the scripts that read entries.
const luaLib = `
local function older(s, hi, lo)
  local h = tonumber(string.sub(s, 1, 10))
  if h ~= hi then return h < hi end
  return tonumber(string.sub(s, 11, 20)) < lo
end
`

// applyScript is one packet's step of spec §4.2 (and the /proc writes "+"
// and "-"): the same algorithm as statestore's recentList.Apply.
//
// KEYS: meta, lru, ent. ARGV[1] is one string (one allocation on the Go
// side instead of a dozen), fixed-width decimal fields then the entry id:
//
//	1 op, 2 invert, 3-5 TTL the entry must have (0 = any), 6-8 packet TTL,
//	9-28 now (stamp), 29 window, 30-49 threshold (stamp), 50-59 hitcount,
//	60 reap, 61-67 capacity, 68- entry id
//
// Returns 1 (match) or 0.
var applyScript = redis.NewScript(luaLib + `
local meta, lru, ent = KEYS[1], KEYS[2], KEYS[3]
local a = ARGV[1]
local op = tonumber(string.sub(a, 1, 1))
local res = string.sub(a, 2, 2) == '1'
local want, ttl, now = tonumber(string.sub(a, 3, 5)), tonumber(string.sub(a, 6, 8)), string.sub(a, 9, 28)
local id = string.sub(a, 68)
local function b(x) if x then return 1 end return 0 end
local function del(k) redis.call('HDEL', ent, k); redis.call('ZREM', lru, k) end
local function touch(k) redis.call('ZADD', lru, redis.call('HINCRBY', meta, 'seq', 1), k) end
local ring = tonumber(redis.call('HGET', meta, 'ring'))
if not ring then ring = 32; redis.call('HSET', meta, 'ring', 32) end
local v = redis.call('HGET', ent, id)
if v and want ~= 0 then
  local et = tonumber(string.sub(v, 1, 3))
  if et ~= 0 and et ~= want then v = false end
end
if not v then
  if op ~= 1 and op ~= 5 then return b(res) end
  if redis.call('ZCARD', lru) >= tonumber(string.sub(a, 61, 67)) then
    local o = redis.call('ZRANGE', lru, 0, 0)[1]
    if o then del(o) end
  end
  redis.call('HSET', ent, id, string.format('%03d%06d%06d', ttl, 1, 1) .. now)
  touch(id)
  return b(not res)
end
if op == 1 or op == 5 then
  res = not res
elseif op == 4 then
  del(id)
  return b(not res)
else
  local win = string.sub(a, 29, 29) == '1'
  local hi, lo = tonumber(string.sub(a, 30, 39)), tonumber(string.sub(a, 40, 49))
  local need = tonumber(string.sub(a, 50, 59))
  local n = tonumber(string.sub(v, 10, 15))
  local hits = 0
  for s = 0, n - 1 do
    local p = 16 + 20 * s
    if not (win and older(string.sub(v, p, p + 19), hi, lo)) then
      hits = hits + 1
      if need == 0 or hits >= need then res = not res; break end
    end
  end
  if win and string.sub(a, 60, 60) == '1' then
    local o = redis.call('ZRANGE', lru, 0, 0)[1]
    if o and not (o == id and op == 3 and res) then
      local ov = v
      if o ~= id then ov = redis.call('HGET', ent, o) end
      local p = 16 + 20 * ((tonumber(string.sub(ov, 4, 9)) - 1) % ring)
      if older(string.sub(ov, p, p + 19), hi, lo) then
        del(o)
        if o == id then return b(res) end
      end
    end
  end
end
if op == 1 or op == 5 or (op == 3 and res) then
  local t = tonumber(string.sub(v, 1, 3))
  if op ~= 5 then t = ttl end
  local idx = tonumber(string.sub(v, 4, 9)) % ring
  local n = tonumber(string.sub(v, 10, 15))
  local p = 16 + 20 * idx
  local st = string.sub(v, 16, p - 1) .. now .. string.sub(v, p + 20)
  idx = idx + 1
  if idx > n then n = idx end
  redis.call('HSET', ent, id, string.format('%03d%06d%06d', t, idx, n) .. st)
  touch(id)
end
return b(res)
`)

// requireScript is xt_recent's checkentry sizing: a larger ring than the
// list has flushes it. It also stores the list's mask on first use and
// returns the stored one. KEYS: meta, lru, ent. ARGV: ring, mask (hex).
// Returns {flushed (0/1), mask}.
var requireScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'ring')) or 0
local m = redis.call('HGET', KEYS[1], 'mask')
if not m then m = ARGV[2]; redis.call('HSET', KEYS[1], 'mask', m) end
local want = tonumber(ARGV[1])
if want <= cur then return {0, m} end
redis.call('HSET', KEYS[1], 'ring', want)
redis.call('DEL', KEYS[2], KEYS[3])
if cur ~= 0 then return {1, m} end
return {0, m}
`)

// entriesScript returns {id1, value1, id2, value2, ...}, least recently
// recorded first. KEYS: meta, lru, ent.
var entriesScript = redis.NewScript(`
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or ''
end
return out
`)

// flushScript is the /proc write "/". KEYS: meta, lru, ent.
var flushScript = redis.NewScript(`redis.call('DEL', KEYS[2], KEYS[3]) return 0`)

// lenScript returns the entry count. KEYS: meta, lru, ent.
var lenScript = redis.NewScript(`return redis.call('ZCARD', KEYS[2])`)

// recentList is a RecentList whose data lives in Redis; the Go value only
// holds the keys, the capacity and the mask.
type recentList struct {
	s    *Store
	name string
	keys []string // meta, lru, ent; never modified (go-redis only reads it)
	cap  int
	// mask is the list's mask, the stored one once Require has seen it.
	mask atomic.Pointer[[16]byte]
}

var _ statestore.RecentList = (*recentList)(nil)

func newRecentList(s *Store, cfg statestore.RecentConfig) *recentList {
	n := cfg.Entries
	if n <= 0 {
		n = statestore.RecentListTot
	}
	base := s.opt.Prefix + "{" + cfg.Name + "}:"
	l := &recentList{s: s, name: cfg.Name, keys: []string{base + "meta", base + "lru", base + "ent"}, cap: n}
	// As the memory store: all ones, an IPv4 mask overwriting the first
	// four bytes.
	var m [16]byte
	for i := range m {
		m[i] = 0xff
	}
	if cfg.Mask.IsValid() {
		copy(m[:], cfg.Mask.AsSlice())
	}
	l.mask.Store(&m)
	return l
}

// Keys returns the list's meta, LRU and entry keys (for operators and
// tests).
func (l *recentList) Keys() (meta, lru, ent string) { return l.keys[0], l.keys[1], l.keys[2] }

// Require implements statestore.RecentList. On a Redis failure the ring
// stays as Redis has it (32 when the list is new) and Require reports no
// flush.
func (l *recentList) Require(ring int) bool {
	if ring <= 0 {
		ring = 32
	}
	m := l.mask.Load()
	v, err := l.s.control(requireScript, l.keys, nextPow2(ring), hex.EncodeToString(m[:]))
	if err != nil {
		return false
	}
	r, ok := v.([]any)
	if !ok || len(r) != 2 {
		l.s.failed(fmt.Errorf("redisstore: require %q: unexpected reply %v", l.name, v), false)
		return false
	}
	if ms, ok := r[1].(string); ok {
		if b, err := hex.DecodeString(ms); err == nil && len(b) == 16 && [16]byte(b) != *m {
			stored := [16]byte(b)
			l.s.opt.Logger.Warn("redisstore: recent list keeps the mask of the daemon that created it",
				"list", l.name, "mask", hex.EncodeToString(b), "rule_mask", hex.EncodeToString(m[:]))
			l.mask.Store(&stored)
		}
	}
	f, _ := r[0].(int64)
	return f == 1
}

// stamp is a time in the entries' stamp encoding.
func stamp(ns int64) uint64 { return uint64(ns) ^ 1<<63 }

// putUint writes u in decimal, zero-padded to fill b.
func putUint(b []byte, u uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + u%10)
		u /= 10
	}
}

// threshold returns the stamp before which a stamp is outside a --seconds
// window: Jiffy(s) < nowJ - seconds*HZ exactly when s < (nowJ -
// seconds*HZ) * JiffyNS, Jiffy being a floor.
func threshold(nowNS int64, seconds uint32) uint64 {
	t := statestore.Jiffy(nowNS) - int64(seconds)*statestore.HZ
	ns := int64(math.MinInt64)
	if t >= math.MinInt64/statestore.JiffyNS {
		ns = t * statestore.JiffyNS
	}
	return stamp(ns)
}

// applyArg is applyScript's argument: the fixed fields, then the id.
const applyFixed = 67

type applyArgs struct {
	op, want, ttl uint8
	invert, reap  bool
	nowNS         int64
	seconds, hits uint32
	capacity      int
}

func (x *applyArgs) encode(buf *[applyFixed + 48]byte, id netip.Addr) string {
	b := buf[:applyFixed]
	putUint(b[0:1], uint64(x.op))
	putUint(b[1:2], uint64(b01(x.invert)))
	putUint(b[2:5], uint64(x.want))
	putUint(b[5:8], uint64(x.ttl))
	putUint(b[8:28], stamp(x.nowNS))
	var th uint64
	if x.seconds != 0 {
		th = threshold(x.nowNS, x.seconds)
	}
	putUint(b[28:29], uint64(b01(x.seconds != 0)))
	putUint(b[29:49], th)
	putUint(b[49:59], uint64(x.hits))
	putUint(b[59:60], uint64(b01(x.reap)))
	putUint(b[60:67], uint64(x.capacity))
	return string(id.AppendTo(b))
}

// masked returns a masked with the list's mask.
func (l *recentList) masked(a netip.Addr) netip.Addr {
	m := l.mask.Load()
	if a.Is4() {
		b := a.As4()
		for i := range b {
			b[i] &= m[i]
		}
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	for i := range b {
		b[i] &= m[i]
	}
	return netip.AddrFrom16(b)
}

// Apply implements statestore.RecentList: one EVALSHA.
func (l *recentList) Apply(q statestore.RecentQuery) (match, hotdrop bool) {
	x := applyArgs{op: uint8(q.Cmd), invert: q.Invert, ttl: q.TTL, nowNS: q.NowNS, seconds: q.Seconds,
		hits: q.Hits, reap: q.Reap, capacity: l.cap}
	if q.RTTL {
		x.want = q.TTL
	}
	var buf [applyFixed + 48]byte
	v, err := l.s.run(applyScript, l.keys, x.encode(&buf, l.masked(q.Addr)))
	if err != nil {
		return l.failAnswer(q)
	}
	n, ok := v.(int64)
	if !ok {
		l.s.failed(fmt.Errorf("redisstore: apply %q: unexpected reply %v", l.name, v), true)
		return l.failAnswer(q)
	}
	return n == 1, false
}

// failAnswer is Apply's answer without Redis (see FailMode).
func (l *recentList) failAnswer(q statestore.RecentQuery) (bool, bool) {
	if l.s.opt.Fail == FailClosed {
		l.s.hotdrops.Add(1)
		return false, true
	}
	if q.Cmd == statestore.RecentSet {
		return !q.Invert, false
	}
	return q.Invert, false
}

func b01(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Entries implements statestore.RecentList, least recently recorded
// first like the memory store. On a Redis failure it returns dst as it
// was (the failure is counted and logged); EntriesErr reports it.
func (l *recentList) Entries(dst []statestore.RecentEntry) []statestore.RecentEntry {
	out, _ := l.EntriesErr(dst)
	return out
}

// EntriesErr is Entries with the Redis error.
func (l *recentList) EntriesErr(dst []statestore.RecentEntry) ([]statestore.RecentEntry, error) {
	v, err := l.s.control(entriesScript, l.keys)
	if err != nil {
		return dst, err
	}
	r, ok := v.([]any)
	if !ok || len(r)%2 != 0 {
		err := fmt.Errorf("redisstore: entries %q: unexpected reply %T", l.name, v)
		l.s.failed(err, false)
		return dst, err
	}
	n := len(dst)
	for i := 0; i < len(r); i += 2 {
		id, _ := r[i].(string)
		val, _ := r[i+1].(string)
		e, err := decodeEntry(id, val)
		if err != nil {
			err = fmt.Errorf("redisstore: entries %q: %w", l.name, err)
			l.s.failed(err, false)
			return dst[:n], err
		}
		dst = append(dst, e)
	}
	return dst, nil
}

var errCorrupt = errors.New("malformed entry")

// decodeEntry parses one entry value.
func decodeEntry(id, v string) (statestore.RecentEntry, error) {
	var e statestore.RecentEntry
	a, err := netip.ParseAddr(id)
	if err != nil || len(v) < hdrLen || (len(v)-hdrLen)%stampLen != 0 {
		return e, fmt.Errorf("%w %q", errCorrupt, id)
	}
	ttl, err1 := strconv.ParseUint(v[0:3], 10, 8)
	idx, err2 := strconv.ParseUint(v[3:9], 10, 32)
	n, err3 := strconv.ParseUint(v[9:15], 10, 32)
	if err1 != nil || err2 != nil || err3 != nil || int(n) != (len(v)-hdrLen)/stampLen || idx < 1 || idx > n {
		return e, fmt.Errorf("%w %q", errCorrupt, id)
	}
	e.Addr, e.TTL, e.Index = a, uint8(ttl), int(idx)
	e.StampsNS = make([]int64, n)
	for i := range e.StampsNS {
		s := v[hdrLen+i*stampLen : hdrLen+(i+1)*stampLen]
		u, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return e, fmt.Errorf("%w %q", errCorrupt, id)
		}
		e.StampsNS[i] = int64(u ^ 1<<63)
	}
	e.LastSeenNS = e.StampsNS[idx-1]
	return e, nil
}

// Len implements statestore.RecentList (0 when Redis fails; LenErr
// reports the error).
func (l *recentList) Len() int {
	n, _ := l.LenErr()
	return n
}

// LenErr is Len with the Redis error.
func (l *recentList) LenErr() (int, error) {
	v, err := l.s.control(lenScript, l.keys)
	if err != nil {
		return 0, err
	}
	n, _ := v.(int64)
	return int(n), nil
}

// Command implements statestore.RecentList: the /proc writes "+ADDR",
// "-ADDR" and "/" with the memory store's parsing; a Redis failure is
// returned as an error.
func (l *recentList) Command(cmd string, nowNS int64) error {
	if cmd == "" {
		return statestore.ErrInvalid
	}
	op := cmd[0]
	if op == '/' {
		_, err := l.s.control(flushScript, l.keys)
		return wrap(err)
	}
	if op != '+' && op != '-' {
		return statestore.ErrInvalid
	}
	s := strings.TrimSuffix(cmd[1:], "\n")
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || strings.Contains(s, ":") != a.Is6() {
		return statestore.ErrInvalid
	}
	if a.Is4() && strings.Count(s, ".") != 3 {
		return statestore.ErrInvalid
	}
	o := opRemove
	if op == '+' {
		o = opAdd
	}
	x := applyArgs{op: uint8(o), nowNS: nowNS, capacity: l.cap}
	var buf [applyFixed + 48]byte
	_, err = l.s.control(applyScript, l.keys, x.encode(&buf, a.WithZone("")))
	return wrap(err)
}

func wrap(err error) error {
	if err == nil || errors.Is(err, errBackoff) {
		return err
	}
	return fmt.Errorf("redisstore: %w", err)
}

// nextPow2 returns the smallest power of two >= n (n >= 1).
func nextPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}
