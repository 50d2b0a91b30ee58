package statestore

// The derivations below are xt_hashlimit's (rateinfo_init,
// rateinfo_recalc, hashlimit_byte_cost, the table defaults), exported so
// that a shared store (internal/statestore/redisstore) computes with the
// very numbers of the memory store: the stores differ in where a bucket
// lives, never in what it holds.

// HashlimitByteLimit is the credit of a full byte-mode bucket: one second
// of credits (CPJ_bytes * HZ).
const HashlimitByteLimit = hlCPJBytes * HZ

// HashlimitCPJ is the credit a packet-mode bucket gains per jiffy
// (2^39 at HZ=250); HashlimitByteCPJ is the byte-mode one (2^24).
const (
	HashlimitCPJ     = hlCPJ
	HashlimitByteCPJ = hlCPJBytes
)

// NormalizeHashlimit applies the kernel's defaults and caps to a table's
// sizes and intervals (htable-size 8192, htable-max 8*size and never
// below size, both at most 1048576; gcinterval and expire 1000 ms when
// unset): the Config a table reports.
func NormalizeHashlimit(cfg HashlimitConfig) HashlimitConfig { return normalizeHashlimit(cfg) }

// HashlimitTiming is a normalized table's gc interval and expiry in
// jiffies (msecs_to_jiffies, rounding up; the interval at least 1).
func HashlimitTiming(cfg HashlimitConfig) (gcEvery, expire int64) {
	gcEvery = msToJiffies(cfg.GCIntervalMS)
	if gcEvery < 1 {
		gcEvery = 1
	}
	return gcEvery, msToJiffies(cfg.ExpireMS)
}

// HashlimitInit is rateinfo_init: what a new bucket starts with. Packet
// mode: a full bucket of burst packets (credit = credit_cap), each packet
// costing one period. Byte mode: one second of credit, the per-chunk
// cost, and credit_cap = the number of extra refills (the burst).
func HashlimitInit(cfg HashlimitConfig) (credit, creditCap, cost uint64) {
	if cfg.Bytes {
		return HashlimitByteLimit, cfg.Burst, hashlimitByteCredits(cfg.Avg)
	}
	credit = HashlimitCredits(cfg.Avg * cfg.Burst)
	return credit, credit, HashlimitCredits(cfg.Avg)
}

// HashlimitRefill is rateinfo_recalc's credit for d jiffies elapsed
// (d <= 0 changes nothing). Packet mode adds CPJ per jiffy up to
// credit_cap, saturating where the kernel's 64-bit sum would wrap (after
// ~37 idle hours, long after the default expiry). Byte mode refills to at
// most one second's credit. The function is path independent: refilling
// for d1 then d2 jiffies gives the credit of one refill for d1+d2, which
// lets a listing refill without writing back.
func HashlimitRefill(bytes bool, credit, creditCap uint64, d int64) uint64 {
	if d <= 0 {
		return credit
	}
	if bytes {
		add := hlCPJBytes * uint64(d)
		if d > int64(HZ) || credit+add < credit || credit+add > HashlimitByteLimit {
			return HashlimitByteLimit
		}
		return credit + add
	}
	if uint64(d) > ^uint64(0)/hlCPJ || credit+uint64(d)*hlCPJ < credit {
		return creditCap
	}
	credit += uint64(d) * hlCPJ
	if credit > creditCap {
		credit = creditCap
	}
	return credit
}
