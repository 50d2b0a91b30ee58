package ruleset

import (
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

// hookTarget is a test target allowed only in the given hooks, the way
// REJECT is only allowed in INPUT/FORWARD/OUTPUT.
type hookTarget struct{ allowed xt.HookMask }

func (h *hookTarget) Parse(*xt.ParseContext, string, bool, string, []string) error { return nil }
func (h *hookTarget) Final(*xt.ParseContext) error                                 { return nil }
func (h *hookTarget) Save(*strings.Builder)                                        {}
func (h *hookTarget) List(*strings.Builder, bool)                                  {}
func (h *hookTarget) Check(ctx *xt.CheckContext) error {
	if !ctx.Hooks.Only(h.allowed) {
		return xt.EINVAL("hook mask %#x not allowed", ctx.Hooks)
	}
	return nil
}

var _ xt.Checker = (*hookTarget)(nil)

func filterWith(chains ...string) *Ruleset {
	rs := New(xt.IPv4)
	t, _ := rs.EnsureTable("filter")
	for _, c := range chains {
		t.Chains = append(t.Chains, &Chain{Name: c})
	}
	return rs
}

func jump(to string) *Rule { return &Rule{Kind: TargetJump, Chain: to} }

func add(rs *Ruleset, chain string, r *Rule) {
	c := rs.Table("filter").Chain(chain)
	c.Rules = append(c.Rules, r)
}

func errno(err error) syscall.Errno {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Errno()
	}
	return 0
}

// TestJumpDepth: nf_tables accepts INPUT -> c1 -> ... -> c15 and refuses
// the 16th nested chain with EMLINK (spec §1.6).
func TestJumpDepth(t *testing.T) {
	var names []string
	for i := 1; i <= 16; i++ {
		names = append(names, "c"+strconv.Itoa(i))
	}
	rs := filterWith(names...)
	add(rs, "INPUT", jump("c1"))
	for i := 1; i < 15; i++ {
		add(rs, names[i-1], jump(names[i]))
	}
	if err := Validate(rs); err != nil {
		t.Fatalf("15 nested chains refused: %v", err)
	}
	add(rs, "c15", jump("c16"))
	err := Validate(rs)
	if errno(err) != syscall.EMLINK {
		t.Fatalf("16th nested chain: got %v, want EMLINK", err)
	}
	var ve *ValidationError
	if errors.As(err, &ve); ve.Chain != "c15" {
		t.Errorf("blamed chain %q, want c15 (the rule being added)", ve.Chain)
	}
}

func TestLoops(t *testing.T) {
	rs := filterWith("a", "b")
	add(rs, "a", jump("b"))
	add(rs, "b", jump("a"))
	if err := Validate(rs); err != nil {
		t.Fatalf("unreachable loop refused: %v", err)
	}
	add(rs, "INPUT", jump("a"))
	if err := Validate(rs); errno(err) != syscall.EMLINK {
		t.Fatalf("reachable loop: got %v, want EMLINK", err)
	}
	self := filterWith("s")
	add(self, "INPUT", jump("s"))
	add(self, "s", &Rule{Kind: TargetGoto, Chain: "s"})
	if err := Validate(self); errno(err) != syscall.EMLINK {
		t.Fatalf("goto itself: got %v, want EMLINK", err)
	}
}

// TestHookPropagation: a user chain is checked with the hooks of every
// built-in chain that reaches it, also when the jump comes later.
func TestHookPropagation(t *testing.T) {
	onlyIn := &Rule{Kind: TargetExt, Target: &hookTarget{allowed: xt.MaskOf(xt.LocalIn)}, TSpec: &xt.TargetSpec{Name: "T"}}
	rs := filterWith("u")
	add(rs, "u", onlyIn)
	add(rs, "INPUT", jump("u"))
	if err := Validate(rs); err != nil {
		t.Fatalf("INPUT only: %v", err)
	}
	add(rs, "OUTPUT", jump("u"))
	err := Validate(rs)
	if errno(err) != syscall.EINVAL {
		t.Fatalf("reached from OUTPUT: got %v, want EINVAL", err)
	}
	// unreachable chains pass every hook check, as in the kernel
	un := filterWith("u")
	add(un, "u", onlyIn)
	if err := Validate(un); err != nil {
		t.Fatalf("unreachable chain checked: %v", err)
	}
}

func TestValidatorErrors(t *testing.T) {
	rs := filterWith()
	add(rs, "INPUT", &Rule{Kind: TargetVerdict, Verdict: Queue})
	if err := Validate(rs); errno(err) != syscall.ENOENT {
		t.Errorf("QUEUE: got %v, want ENOENT (nft has no QUEUE)", err)
	}
	rs = filterWith()
	add(rs, "INPUT", jump("missing"))
	if err := Validate(rs); errno(err) != syscall.ENOENT {
		t.Errorf("jump to missing chain: got %v, want ENOENT", err)
	}
}

func TestTablesOrderAndClone(t *testing.T) {
	rs := New(xt.IPv4)
	for _, n := range []string{"nat", "filter", "raw", "security", "mangle"} {
		if _, ok := rs.EnsureTable(n); !ok {
			t.Fatal(n)
		}
	}
	var got []string
	for _, tb := range rs.Tables {
		got = append(got, tb.Name)
	}
	if strings.Join(got, " ") != "mangle security raw filter nat" {
		t.Errorf("table order %v", got)
	}
	if _, ok := rs.EnsureTable("bogus"); ok {
		t.Error("bogus table created")
	}
	c := rs.Clone()
	c.Table("filter").Chain("INPUT").Rules = append(c.Table("filter").Chain("INPUT").Rules, jump("x"))
	if len(rs.Table("filter").Chain("INPUT").Rules) != 0 {
		t.Error("clone shares rule slices")
	}
}
