// Package uptables enforces iptables rules in user space, without
// privileges: in front of a service (the uptables proxy) or inside a Go
// server, by wrapping its net.Listener or net.PacketConn.
//
// Every connection and datagram becomes the packets the Linux kernel would
// run through netfilter on the listening host (the SYN, the handshake, data
// segments, FIN or RST; each datagram), so stateful rules behave as in the
// kernel: connlimit counts live connections, recent counts new ones, limit
// and hashlimit meter them, state/conntrack and LOG work. The rules see the
// client's address (the real one behind a trusted PROXY protocol header)
// and the listening address and port.
//
// One difference from packet-level enforcement is unavoidable: by the time
// a user-space program sees a connection, its kernel has completed the TCP
// handshake. A DROP therefore cannot be a SYN that goes unanswered; the
// client sees its connect succeed and then the connection closed (after an
// optional silent hold, WithDropHold). REJECT --reject-with tcp-reset
// resets the connection (ECONNRESET); other REJECT types close it.
//
// Typical use:
//
//	rules, err := uptables.LoadRulesFile("/etc/uptables/rules.v4")
//	fw, err := uptables.New(rules)
//	ln, err := net.Listen("tcp", ":8080")
//	http.Serve(fw.Listener(ln), handler)
//
// Rules that use ipsets (-m set --match-set, -j SET) are loaded with the
// sets they name, which then live independently of the rules (Reload
// keeps them; Add, Del and Exec change them while traffic flows):
//
//	sets, err := uptables.LoadSetsFile("/etc/uptables/ipsets") // ipset save format
//	rules, err := uptables.LoadRulesFileWithSets("/etc/uptables/rules.v4", sets)
//	fw, err := uptables.New(rules)
//	err = sets.Add("blocklist", "198.51.100.0/24")
package uptables

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/uptables/uptables/internal/dataplane/proxy"
	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// Rules is a parsed, validated IPv4 rule set. It is immutable and may be
// given to several firewalls.
type Rules struct {
	rs *ruleset.Ruleset
	// sets are the sets the rules were parsed against (LoadRulesWithSets),
	// nil for LoadRules.
	sets *Sets
}

// LoadRules reads rules in iptables-save format ("*filter", ":INPUT DROP
// [0:0]", "-A INPUT ...", "COMMIT"), exactly as iptables-restore 1.8.9
// reads them (rule counters are not restored). When the first rule line
// does not start a table, the text is read as plain iptables commands
// instead, one per line ("-A INPUT -s 10.0.0.0/8 -j DROP", "-t nat -A
// ...", "-P INPUT DROP", optionally preceded by "iptables"; "#" starts a
// comment), each parsed and validated as iptables 1.8.9 would. The first
// error is returned with its line number. Rules with -m set or -j SET
// need LoadRulesWithSets.
func LoadRules(r io.Reader) (*Rules, error) {
	return LoadRulesWithSets(r, nil)
}

// LoadRulesWithSets is LoadRules for rules that name ipsets (-m set
// --match-set, -j SET --add-set/--del-set): as iptables does, it checks
// that every set named exists in sets, and fails otherwise with
// iptables' text ("Set bl doesn't exist."). Give the firewall the same
// sets (New uses them unless WithSets says otherwise). nil sets is
// LoadRules.
func LoadRulesWithSets(r io.Reader, sets *Sets) (*Rules, error) {
	data, err := io.ReadAll(io.LimitReader(r, 256<<20))
	if err != nil {
		return nil, err
	}
	var ips *ipset.Sets
	if sets != nil {
		ips = sets.s
	}
	rs, err := iptables.ReadRules(builtin.RegistryWithSets(ips), xt.IPv4, data, false)
	if err != nil {
		if e, ok := err.(*iptables.Error); ok {
			return nil, errors.New(e.TextHint("iptables-restore"))
		}
		return nil, err
	}
	return &Rules{rs: rs, sets: sets}, nil
}

// LoadRulesFile is LoadRules on the named file.
func LoadRulesFile(path string) (*Rules, error) {
	return LoadRulesFileWithSets(path, nil)
}

// LoadRulesFileWithSets is LoadRulesWithSets on the named file.
func LoadRulesFileWithSets(path string, sets *Sets) (*Rules, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := LoadRulesWithSets(f, sets)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// MustLoadRules is LoadRules on a string that must be valid (for tests and
// examples); it panics on error.
func MustLoadRules(text string) *Rules {
	r, err := LoadRules(strings.NewReader(text))
	if err != nil {
		panic(err)
	}
	return r
}

// Save writes the rules in iptables-save format (without counters).
func (r *Rules) Save(w io.Writer) error {
	return iptables.WriteSave(w, r.rs, iptables.SaveOptions{Now: time.Now()})
}

// Event describes one synthetic packet and its outcome (WithObserver).
// Its fields (Event is an alias, so go doc does not list them):
//
//	Time      time.Time       the packet's timestamp (WithClock)
//	Proto     uint8           6 TCP, 17 UDP
//	Kind      (fmt.Stringer)  "SYN", "SYN/ACK", "ACK", "DATA", "FIN", "RST" or "DGRAM"
//	FromPeer  bool            true: client to local (INPUT); false: local to client (OUTPUT)
//	Client    netip.AddrPort  the remote peer (the real client behind a trusted PROXY header)
//	Local     netip.AddrPort  the listening address as the rules see it
//	Len       int             payload bytes
//	Outcome   Outcome         what the data plane did with it
//	Decision  struct{Table, Chain string; Rule int; Verdict}
//	                          the rule that took the final verdict (Rule 0 =
//	                          the chain's policy); zero when no table had a
//	                          rule for the packet's path
type Event = proxy.Event

// Outcome is what happened to a connection or datagram: accept, drop,
// reset or close (the constants below; String gives the name).
type Outcome = proxy.Outcome

// The outcomes: Accepted, the packet goes on; Dropped, DROP or a DROP
// policy, so a connection is closed without a byte and a datagram
// discarded; Reset, REJECT --reject-with tcp-reset, so the connection is
// aborted and the client gets a RST; Closed, REJECT with an ICMP type,
// which user space cannot send without privileges, so a connection is
// closed (FIN) and a datagram discarded.
const (
	Accepted = proxy.Accepted
	Dropped  = proxy.Dropped
	Reset    = proxy.Reset
	Closed   = proxy.Closed
)

// Stats are the firewall's connection and datagram counters, all uint64
// and counted since New (Stats is an alias, so go doc does not list them):
// ConnsAccepted, ConnsDropped (DROP), ConnsReset (REJECT tcp-reset),
// ConnsClosed (REJECT with an ICMP type), ConnsCut (admitted, then closed
// because a later packet was refused), ConnsActive, UpstreamErrors,
// ProxyHeaderErrs, Overload (refused at MaxConns or MaxSessions),
// PacketsIn, PacketsOut, PacketsRefused (synthetic packets), DatagramsIn,
// DatagramsOut, DatagramsDrop and SessionsEvicted (UDP sessions without a
// reply ended to make room, as conntrack's early drop).
type Stats = proxy.Stats

// Option configures a Firewall.
type Option func(*options)

type options struct {
	logger   *slog.Logger
	iface    string
	trusted  []netip.Prefix
	proxyTO  time.Duration
	hold     time.Duration
	observer func(Event)
	now      func() time.Time
	seed     uint64
	logLine  func(level uint8, line []byte)
	maxHeld  int
	sets     *Sets
}

// WithLogger sets the logger for refusals (debug), upstream and PROXY
// header failures (warn) and LOG target lines (info) unless WithLogLines.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithInterface names the interface the rules see (-i on INPUT, -o on
// OUTPUT). By default: "lo" for clients on this host, otherwise the
// interface holding the local address.
func WithInterface(name string) Option { return func(o *options) { o.iface = name } }

// WithTrustedProxies makes connections from these source ranges start
// with a PROXY protocol header (v1 or v2, required from them); the rules
// then see the client it announces. timeout bounds the wait for the
// header (0 = 5 s).
func WithTrustedProxies(timeout time.Duration, prefixes ...netip.Prefix) Option {
	return func(o *options) { o.trusted, o.proxyTO = prefixes, timeout }
}

// WithDropHold holds a connection refused by DROP open, silent, for d
// before closing it (default 0: close at once). Held connections are
// bounded by WithMaxHeld.
func WithDropHold(d time.Duration) Option { return func(o *options) { o.hold = d } }

// WithMaxHeld bounds the connections held after a DROP per Listener
// (default 256); beyond it they are closed at once.
func WithMaxHeld(n int) Option { return func(o *options) { o.maxHeld = n } }

// WithObserver calls fn for every synthetic packet, on the connection's
// goroutine, with the outcome and the rule that decided (a trace). fn
// must not block.
func WithObserver(fn func(Event)) Option { return func(o *options) { o.observer = fn } }

// WithLogLines sends the LOG target's lines (kernel format, no newline,
// reused after the call) to fn instead of the logger.
func WithLogLines(fn func(level uint8, line []byte)) Option {
	return func(o *options) { o.logLine = fn }
}

// WithClock sets the clock that timestamps packets (limit, recent
// --seconds and conntrack timeouts run on it).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithSeed seeds the engine's random source (statistic, hash seeds).
func WithSeed(seed uint64) Option { return func(o *options) { o.seed = seed } }

// WithSets gives the firewall the ipsets its rules test and fill, as
// `uptables run --ipsets FILE` gives them to the daemon. Without it New
// uses the sets the rules were loaded with (LoadRulesWithSets), if any.
// Rules loaded with other sets than these are refused, by New and by
// Reload. Several firewalls may share one Sets, as the rules of one
// network namespace share the kernel's.
func WithSets(s *Sets) Option { return func(o *options) { o.sets = s } }

// Firewall is an engine with its state (counters, conntrack, recent lists,
// limit buckets) and the data-plane counters. It is safe for concurrent
// use; every Listener and PacketConn made from it shares the state.
type Firewall struct {
	eng  *netfilter.Engine
	gate *proxy.Gate
	o    options
	// setsID is the firewall's key in o.sets' reference counts.
	setsID uint64
}

// New builds a firewall running rules. It fails when the rules use a match
// or target the engine cannot run yet (the error names it).
func New(rules *Rules, opts ...Option) (*Firewall, error) {
	if rules == nil {
		return nil, fmt.Errorf("uptables: nil rules")
	}
	o := options{maxHeld: 256}
	for _, fn := range opts {
		fn(&o)
	}
	if o.sets == nil {
		o.sets = rules.sets
	}
	if err := checkSets(rules, o.sets); err != nil {
		return nil, err
	}
	eng := netfilter.New(netfilter.Config{Logger: o.logger, Seed: o.seed})
	if o.sets != nil {
		if err := builtin.PinSets(eng, o.sets.s); err != nil {
			return nil, fmt.Errorf("uptables: %w", err)
		}
	}
	if err := eng.Load(rules.rs); err != nil {
		return nil, fmt.Errorf("uptables: %w", err)
	}
	g := proxy.NewGate(proxy.GateConfig{Engine: eng, Logger: o.logger, Now: o.now, Iface: o.iface,
		Observer: o.observer, LogLine: o.logLine})
	f := &Firewall{eng: eng, gate: g, o: o}
	if o.sets != nil {
		f.setsID = o.sets.register(f)
		o.sets.loaded(f.setsID, rules.rs)
	}
	return f, nil
}

// checkSets refuses rules parsed against other sets than the firewall's:
// iptables checked the set names against those, and the rules would find
// different contents (or none) at run time.
func checkSets(rules *Rules, sets *Sets) error {
	if rules.sets != nil && rules.sets != sets {
		return errors.New("uptables: the rules were loaded with other sets than the firewall's (LoadRulesWithSets, WithSets)")
	}
	return nil
}

// Reload replaces the rules atomically. Counters and state of rules that
// did not change are kept, as with iptables-nft; on error nothing changes.
// The firewall's sets stay as they are (sets live apart from rules, as in
// the kernel); the new rules must have been loaded with them.
func (f *Firewall) Reload(rules *Rules) error {
	if rules == nil {
		return fmt.Errorf("uptables: nil rules")
	}
	if err := checkSets(rules, f.o.sets); err != nil {
		return err
	}
	if err := f.eng.Load(rules.rs); err != nil {
		return fmt.Errorf("uptables: %w", err)
	}
	if f.o.sets != nil {
		f.o.sets.loaded(f.setsID, rules.rs)
	}
	return nil
}

// Stats returns the connection and datagram counters.
func (f *Firewall) Stats() Stats { return f.gate.Stats() }

// RuleCounter is the packet and byte count of one rule or policy.
type RuleCounter struct {
	Table, Chain string
	// Rule is the 1-based rule number, 0 for the chain's policy.
	Rule int
	// Spec is the rule as iptables -S prints it ("-A INPUT -s 10.0.0.0/8
	// -j DROP"), or "-P INPUT ACCEPT" for a policy.
	Spec           string
	Packets, Bytes uint64
}

// Counters returns every rule's and built-in policy's counters, tables in
// iptables-save order.
func (f *Firewall) Counters() []RuleCounter {
	var out []RuleCounter
	for _, t := range f.eng.Ruleset().Tables {
		for _, ch := range t.Chains {
			if ch.BuiltIn {
				out = append(out, RuleCounter{Table: t.Name, Chain: ch.Name, Spec: "-P " + ch.Name + " " + ch.Policy.String(),
					Packets: ch.Counters.Packets, Bytes: ch.Counters.Bytes})
			}
			for i, r := range ch.Rules {
				out = append(out, RuleCounter{Table: t.Name, Chain: ch.Name, Rule: i + 1,
					Spec: iptables.FormatRule(ch.Name, r, false), Packets: r.Counters.Packets, Bytes: r.Counters.Bytes})
			}
		}
	}
	return out
}

// WriteList writes `iptables -L -n -v -t table` output with the current
// counters ("" = filter), byte for byte as iptables 1.8.9 prints it.
func (f *Firewall) WriteList(w io.Writer, table string) error {
	if table == "" {
		table = "filter"
	}
	rs := f.eng.Ruleset()
	t := rs.Table(table)
	if t == nil {
		var ok bool
		if t, ok = ruleset.NewTable(table); !ok {
			return fmt.Errorf("uptables: table '%s' does not exist", table)
		}
	}
	return iptables.WriteList(w, t, iptables.ListOptions{Numeric: true, Verbose: true})
}
