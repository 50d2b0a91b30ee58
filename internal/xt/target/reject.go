package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// RejectType is what REJECT sends back (ipt_REJECT's reject_with).
type RejectType uint8

const (
	RejectNetUnreach      RejectType = iota // ICMP 3/0
	RejectHostUnreach                       // ICMP 3/1
	RejectProtoUnreach                      // ICMP 3/2
	RejectPortUnreach                       // ICMP 3/3, the default
	RejectNetProhibited                     // ICMP 3/9
	RejectHostProhibited                    // ICMP 3/10
	RejectTCPReset                          // TCP RST
	RejectAdminProhibited                   // ICMP 3/13
)

type rejectName struct {
	name, alias string
	typ         RejectType
	icmpCode    uint8
}

// rejectNames in the order `iptables -j REJECT --help` lists them.
var rejectNames = [...]rejectName{
	{"icmp-net-unreachable", "net-unreach", RejectNetUnreach, 0},
	{"icmp-host-unreachable", "host-unreach", RejectHostUnreach, 1},
	{"icmp-proto-unreachable", "proto-unreach", RejectProtoUnreach, 2},
	{"icmp-port-unreachable", "port-unreach", RejectPortUnreach, 3},
	{"icmp-net-prohibited", "net-prohib", RejectNetProhibited, 9},
	{"icmp-host-prohibited", "host-prohib", RejectHostProhibited, 10},
	{"tcp-reset", "tcp-rst", RejectTCPReset, 0},
	{"icmp-admin-prohibited", "admin-prohib", RejectAdminProhibited, 13},
}

// String returns the canonical name iptables prints.
func (t RejectType) String() string {
	for _, n := range rejectNames {
		if n.typ == t {
			return n.name
		}
	}
	return "?"
}

// ICMPCode returns the destination-unreachable code the type sends; ok is
// false for tcp-reset.
func (t RejectType) ICMPCode() (code uint8, ok bool) {
	for _, n := range rejectNames {
		if n.typ == t {
			return n.icmpCode, t != RejectTCPReset
		}
	}
	return 0, false
}

var rejectOpts = []optDef{{name: "reject-with", arg: xt.RequiredArg}}

// Reject is `-j REJECT`: drop the packet and answer with an ICMP error or a
// TCP RST (§8). The runtime builds the reply from With.
type Reject struct {
	With     RejectType
	warnings []string
	opts     tracker
}

var (
	_ xt.Target  = (*Reject)(nil)
	_ xt.Checker = (*Reject)(nil)
	_ Warner     = (*Reject)(nil)
)

func newReject() xt.Target {
	return &Reject{With: RejectPortUnreach, opts: tracker{target: "REJECT", defs: rejectOpts}}
}

// Parse reads --reject-with; names are compared case-insensitively, as
// iptables does (`TCP-RESET` is tcp-reset).
func (r *Reject) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if err := r.opts.mark(opt, invert); err != nil {
		return err
	}
	// strncasecmp over the length of the word: any prefix of a name or
	// alias picks the first entry it starts (measured: "ic" and "" are
	// icmp-net-unreachable, "tcp" is tcp-reset)
	prefix := func(name string) bool { return len(arg) <= len(name) && strings.EqualFold(name[:len(arg)], arg) }
	for _, n := range rejectNames {
		if prefix(n.name) || prefix(n.alias) {
			r.With = n.typ
			return nil
		}
	}
	if strings.EqualFold(arg, "echo-reply") || strings.EqualFold(arg, "echoreply") {
		r.warnings = append(r.warnings, "--reject-with echo-reply no longer supported")
	}
	return xt.Errorf("unknown reject type \"%s\"", arg)
}

// Final has nothing to check: every option is optional.
func (r *Reject) Final(*xt.ParseContext) error { return r.opts.final() }

// Save always names the reply type, the default included.
func (r *Reject) Save(b *strings.Builder) {
	b.WriteString(" --reject-with ")
	b.WriteString(r.With.String())
}

// List prints " reject-with TYPE" with or without -n.
func (r *Reject) List(b *strings.Builder, _ bool) {
	b.WriteString(" reject-with ")
	b.WriteString(r.With.String())
}

// Warnings returns what iptables printed on stderr while parsing.
func (r *Reject) Warnings() []string { return r.warnings }

// Check mirrors ipt_REJECT's checkentry: filter table, INPUT/FORWARD/OUTPUT
// only, and tcp-reset only for rules restricted to (non-negated) TCP.
func (r *Reject) Check(ctx *xt.CheckContext) error {
	if err := checkTable(ctx, "REJECT", "filter"); err != nil {
		return err
	}
	if err := checkHooks(ctx, "REJECT", xt.MaskOf(xt.LocalIn, xt.Forward, xt.LocalOut)); err != nil {
		return err
	}
	if r.With == RejectTCPReset && (ctx.Proto != 6 || ctx.InvProto) {
		return xt.EINVAL("ipt_REJECT: TCP_RESET invalid for non-tcp")
	}
	return nil
}

func registerReject(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "REJECT", Family: xt.IPv4, Options: options(rejectOpts), New: newReject})
}
