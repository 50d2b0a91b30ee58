// Package statestore holds the state of the stateful matches (recent lists,
// hashlimit tables, connlimit bookkeeping) behind small interfaces, with an
// in-memory implementation. The matches in internal/xt/match own the
// semantics of a packet; a store owns the data and makes every per-packet
// step atomic, so a shared store (Redis, with one script per step) can stand
// in for the memory one later without touching the matches.
//
// Time is data: every call takes the packet's timestamp in ns. Where the
// kernel counts jiffies (xt_recent stamps, hashlimit credits and expiry), the
// stores do too, at the reference machine's HZ=250, with Jiffy(ns) = ns/4ms.
//
// Memory is bounded by construction (xt_recent's ip_list_tot, hashlimit's
// htable-max, connlimit's cap) and the hashes that index attacker-chosen
// addresses are keyed with a per-object random key (SipHash-1-3).
package statestore

import (
	"errors"
	"net/netip"
)

// HZ is the kernel tick rate the state imitates (CONFIG_HZ=250 on the
// reference machine): xt_recent timestamps and hashlimit credits are jiffies.
const HZ = 250

// JiffyNS is the length of one jiffy in ns.
const JiffyNS = int64(1_000_000_000 / HZ)

// Jiffy converts a packet time (ns since the Unix epoch) to jiffies on an
// epoch-based clock. Only differences of jiffies matter to the algorithms,
// so the origin is arbitrary; flooring keeps the kernel's tick granularity.
func Jiffy(ns int64) int64 {
	if ns < 0 {
		return (ns - JiffyNS + 1) / JiffyNS
	}
	return ns / JiffyNS
}

// Factory makes the shared objects of the stateful matches. The memory
// implementation is Memory; an engine that wants another store registers its
// Factory in the xt.NamedState registry under kind "statestore", name
// "factory" before it compiles a ruleset (see match.StateFactory).
type Factory interface {
	NewRecentList(cfg RecentConfig) (RecentList, error)
	NewHashlimitTable(cfg HashlimitConfig) (HashlimitTable, error)
}

// ErrInvalid is returned for a malformed /proc write command (the kernel's
// EINVAL).
var ErrInvalid = errors.New("invalid argument")

// RecentCmd is what a recent rule does with its list.
type RecentCmd uint8

const (
	RecentSet    RecentCmd = iota + 1 // --set
	RecentCheck                       // --rcheck
	RecentUpdate                      // --update
	RecentRemove                      // --remove
)

// RecentConfig is what the first rule naming a list fixes for its
// lifetime.
type RecentConfig struct {
	Name string
	// Mask is ANDed to every packet address (the rule's --mask; an IPv4
	// mask leaves the rest of an IPv6 address zero, as the kernel's union).
	Mask netip.Addr
	// Entries is ip_list_tot, the capacity (0 = 100).
	Entries int
}

// RecentQuery is one packet's recent test (xt_recent's recent_mt).
type RecentQuery struct {
	Addr    netip.Addr // the packet's source or destination, unmasked
	TTL     uint8      // the packet's TTL as the kernel sees it (+1 when forwarded)
	RTTL    bool       // --rttl: the entry's TTL must match
	Cmd     RecentCmd
	Invert  bool
	Seconds uint32 // 0 = no window
	Hits    uint32 // --hitcount, 0 = any
	Reap    bool
	NowNS   int64
}

// RecentEntry is one address of a recent list as /proc/net/xt_recent/NAME
// shows it. Its fields are those of replay.RecentEntry, so a conversion
// between the two types is a plain Go conversion.
type RecentEntry struct {
	Addr netip.Addr
	TTL  uint8
	// LastSeenNS is the time of the last recorded packet.
	LastSeenNS int64
	// Index is the ring write index (the kernel prints it as "oldest_pkt").
	Index int
	// StampsNS are the valid timestamps in ring order, as the kernel prints them.
	StampsNS []int64
}

// RecentList is one xt_recent list, shared by name by all the rules that
// name it (IPv4 and IPv6 alike).
type RecentList interface {
	// Require is called once per rule build with the ring size the rule
	// needs (next power of two >= --hitcount, 32 without): a larger size
	// than the list has flushes the list and enlarges every entry's ring,
	// as xt_recent's checkentry does. It reports whether it flushed.
	Require(ring int) bool
	// Apply runs one packet's test atomically and returns the match result;
	// hotdrop is true when the entry could not be created. The query is
	// passed by value so that calls through the interface do not allocate.
	Apply(q RecentQuery) (match, hotdrop bool)
	// Entries appends the list's entries to dst, least recently recorded
	// first (the kernel prints in random hash-bucket order).
	Entries(dst []RecentEntry) []RecentEntry
	// Command runs one /proc/net/xt_recent/NAME write: "+ADDR" adds or
	// refreshes, "-ADDR" removes, "/" flushes; a trailing newline is fine.
	// Anything else is ErrInvalid.
	Command(cmd string, nowNS int64) error
	// Len returns the number of entries.
	Len() int
}

// HashlimitConfig is the configuration of a hashlimit table, fixed by the
// first rule that names it (spec §6).
type HashlimitConfig struct {
	Name    string
	IPv6    bool
	Mode    uint8 // match.Hashlimit* bits: 1 dstip, 2 dstport, 4 srcip, 8 srcport
	SrcMask uint8 // prefix lengths
	DstMask uint8
	Bytes   bool
	// Avg and Burst as the rule carries them: packet mode, 1e6 * seconds
	// per packet and a packet count; byte mode, the cost value and the
	// number of extra refills (credit_cap).
	Avg, Burst uint64
	// Size is the bucket count (0 = 8192, the kernel's value on a machine
	// with more than 1 GiB), Max the entry cap (0 = 8*Size); both at most
	// 1048576, Max never below Size.
	Size, Max              uint32
	GCIntervalMS, ExpireMS uint32
}

// HashlimitKey is one bucket's key: masked addresses and ports per the
// table's mode, zero where the mode does not use them.
type HashlimitKey struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
}

// HashlimitEntry is one bucket as /proc/net/ipt_hashlimit/NAME shows it.
type HashlimitEntry struct {
	Key                     HashlimitKey
	ExpiresInS              int64 // seconds until expiry, truncated
	Credit, CreditCap, Cost uint64
}

// HashlimitTable is one hashlimit table, shared by name and family.
type HashlimitTable interface {
	Config() HashlimitConfig
	// Consume refills the key's bucket and takes the packet's cost (pktLen
	// is the L3 length; used in byte mode). under is true when there was
	// enough credit (the kernel's "below the limit"); ok is false when the
	// table is full and the key is new (the kernel hot-drops).
	Consume(k HashlimitKey, pktLen int, nowNS int64) (under, ok bool)
	// Entries calls fn for every live bucket in bucket order, after the
	// same refill the kernel's /proc reader does, until fn returns false.
	// fn runs under the table's lock: it must not call the table.
	Entries(nowNS int64, fn func(e *HashlimitEntry) bool)
	// Len returns the number of buckets in use.
	Len() int
}
