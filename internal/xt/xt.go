// Package xt is the contract between the iptables grammar, the rule model and
// the extensions (matches and targets), named after the kernel's x_tables.
//
// An extension is registered in a Registry by name (`-m NAME`, `-j NAME`). For
// every occurrence in a rule the grammar asks the spec for a fresh instance,
// feeds it the options the user gave (Parse), lets it check the whole set
// (Final, iptables' final_check), and later asks it to print itself (Save for
// -S / iptables-save, List for -L). Check mirrors the kernel's checkentry: it
// runs when a rule is committed to a chain reachable from the given hooks, and
// its errors are kernel errors (errno), not parameter problems.
//
// The runtime side (matching packets) is added by the engine; the config
// values defined here are immutable once Final has succeeded.
package xt

import (
	"fmt"
	"sort"
	"strings"
	"syscall"

	"github.com/uptables/uptables/internal/packet"
)

// Family is the address family of a rule set: iptables (IPv4) or ip6tables.
type Family uint8

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// Hook is a netfilter hook point (defined in package packet, below
// conntrack, so that every layer can name hooks).
type Hook = packet.Hook

// The hooks, as the kernel numbers them.
const (
	PreRouting  = packet.PreRouting
	LocalIn     = packet.LocalIn
	Forward     = packet.Forward
	LocalOut    = packet.LocalOut
	PostRouting = packet.PostRouting
	NumHooks    = packet.NumHooks
)

// HookByChain maps a built-in chain name to its hook.
func HookByChain(name string) (Hook, bool) { return packet.HookByChain(name) }

// HookMask is a set of hooks (bit 1<<Hook).
type HookMask uint8

// Has reports whether h is in the mask.
func (m HookMask) Has(h Hook) bool { return m&(1<<h) != 0 }

// Only reports whether the mask is non-empty and contains only hooks in allowed.
// An empty mask (a chain not reachable from any hook) passes every check, as
// in the kernel, where validation runs only for reachable chains.
func (m HookMask) Only(allowed HookMask) bool { return m&^allowed == 0 }

// MaskOf builds a mask from hooks.
func MaskOf(hs ...Hook) HookMask {
	var m HookMask
	for _, h := range hs {
		m |= 1 << h
	}
	return m
}

// ArgKind says whether a long option takes an argument, as getopt_long.
type ArgKind uint8

const (
	NoArg ArgKind = iota
	RequiredArg
	OptionalArg // the argument is taken only if the next word does not start with '-'
)

// Option describes one long option an extension accepts.
type Option struct {
	Name string // without the leading "--"
	Arg  ArgKind
	// Extra is the number of further words the option consumes after its
	// argument (e.g. 1 for `--tcp-flags MASK COMP`). Words that start with
	// "-" or are "!" are not consumed; the extension sees fewer and reports
	// its own error ("--tcp-flags requires two args.").
	Extra int
}

// ParseContext is what an extension may know about the rule while parsing.
type ParseContext struct {
	Family   Family
	Table    string
	Chain    string
	Proto    uint8 // the rule's -p value, 0 for any
	InvProto bool  // -p was negated
}

// CheckContext is what the kernel knows when it validates an extension
// (checkentry): the table, the hooks through which the rule can be reached,
// and the rule's protocol.
type CheckContext struct {
	Family   Family
	Table    string
	Hooks    HookMask
	Proto    uint8
	InvProto bool
}

// Match is one configured match of one rule (`-m NAME opts`).
type Match interface {
	// Parse consumes one option. opt is the long name without "--", invert
	// says a "!" preceded it, arg is its argument ("" when none) and extra
	// holds the additional words requested by Option.Extra.
	Parse(ctx *ParseContext, opt string, invert bool, arg string, extra []string) error
	// Final checks the combination of options once the command line is read.
	Final(ctx *ParseContext) error
	// Save appends the canonical options exactly as iptables-save prints
	// them after "-m NAME", each with its leading space (" --dport 80").
	Save(b *strings.Builder)
	// List appends the text `iptables -L` prints in the last column, each
	// item with its leading space as iptables prints it. numeric is -n.
	List(b *strings.Builder, numeric bool)
}

// Target is one configured target extension (`-j NAME opts`).
type Target interface {
	Parse(ctx *ParseContext, opt string, invert bool, arg string, extra []string) error
	Final(ctx *ParseContext) error
	Save(b *strings.Builder)
	List(b *strings.Builder, numeric bool)
}

// Checker is implemented by matches and targets the kernel validates
// (table, hook and protocol restrictions, value ranges). The returned error
// should be a KernelError.
type Checker interface {
	Check(ctx *CheckContext) error
}

// MatchSpec registers a match extension.
type MatchSpec struct {
	Name    string
	Family  Family // 0 = both families
	Options []Option
	// SaveName is the name printed after -m when it differs from Name.
	SaveName string
	New      func() Match
}

// TargetSpec registers a target extension.
type TargetSpec struct {
	Name    string
	Family  Family
	Options []Option
	New     func() Target
}

// Registry holds the known extensions. It is built once at start-up and read
// concurrently afterwards; there is no package-level registry.
type Registry struct {
	matches map[string]*MatchSpec
	targets map[string]*TargetSpec
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{matches: map[string]*MatchSpec{}, targets: map[string]*TargetSpec{}}
}

// RegisterMatch adds a match; a duplicate name is a programming error.
func (r *Registry) RegisterMatch(s *MatchSpec) {
	if _, dup := r.matches[s.Name]; dup {
		panic("xt: duplicate match " + s.Name)
	}
	r.matches[s.Name] = s
}

// RegisterTarget adds a target; a duplicate name is a programming error.
func (r *Registry) RegisterTarget(s *TargetSpec) {
	if _, dup := r.targets[s.Name]; dup {
		panic("xt: duplicate target " + s.Name)
	}
	r.targets[s.Name] = s
}

// Match looks a match up by the name given to -m (case-sensitive, as iptables).
func (r *Registry) Match(name string) (*MatchSpec, bool) {
	s, ok := r.matches[name]
	return s, ok
}

// Target looks a target up by the name given to -j.
func (r *Registry) Target(name string) (*TargetSpec, bool) {
	s, ok := r.targets[name]
	return s, ok
}

// MatchNames returns the registered match names, sorted (for hints).
func (r *Registry) MatchNames() []string { return sortedKeys(r.matches) }

// TargetNames returns the registered target names, sorted.
func (r *Registry) TargetNames() []string { return sortedKeys(r.targets) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ParamError is an iptables "parameter problem" (exit code 2): the
// command line is wrong. The CLI prints it as iptables does:
//
//	iptables v1.8.9 (nf_tables): <Msg>
//	Try `iptables -h' or 'iptables --help' for more information.
//
// A Msg ending in "\n" produces the empty line some messages have.
type ParamError struct {
	Msg string
	// NoPrefix suppresses the "iptables v1.8.9 (nf_tables): " prefix, as for
	// "Bad argument `x'".
	NoPrefix bool
	// Hint is uptables' own advice, printed after the iptables text.
	Hint string
}

func (e *ParamError) Error() string { return e.Msg }

// Errorf returns a ParamError.
func Errorf(format string, a ...any) error {
	return &ParamError{Msg: fmt.Sprintf(format, a...)}
}

// BadArgument is the error iptables gives for a stray word.
func BadArgument(word string) error {
	return &ParamError{Msg: "Bad argument `" + word + "'", NoPrefix: true}
}

// KernelError is a refusal by the kernel (nft exit code 4 with
// "RULE_APPEND failed (<strerror>)"). Why says what dmesg would say.
type KernelError struct {
	Errno syscall.Errno
	Why   string
}

func (e *KernelError) Error() string {
	if e.Why != "" {
		return e.Errno.Error() + ": " + e.Why
	}
	return e.Errno.Error()
}

// EINVAL returns the common kernel refusal with the dmesg explanation.
func EINVAL(format string, a ...any) error {
	return &KernelError{Errno: syscall.EINVAL, Why: fmt.Sprintf(format, a...)}
}

// SaveString appends s the way xtables_save_string quotes strings: bare when
// it consists only of [A-Za-z0-9_-] (and is non-empty), otherwise in double
// quotes with ", ' and \ escaped by a backslash.
func SaveString(b *strings.Builder, s string) {
	bare := s != ""
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			bare = false
			break
		}
	}
	if bare {
		b.WriteString(s)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\'' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
}
