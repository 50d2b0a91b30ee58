package ruleset

import (
	"fmt"
	"net/netip"
	"syscall"

	"github.com/uptables/uptables/internal/xt"
)

// MaxJumpDepth is the nf_tables limit on nested chains: a base chain plus 15
// levels of user chains (NFT_JUMP_STACK_SIZE is 16). A 16th nested jump, and
// therefore every loop reachable from a base chain, fails with EMLINK
// ("Too many links"), which is also how iptables-nft reports loops.
const MaxJumpDepth = 16

// ValidationError is a kernel refusal found while committing rules: the
// table and chain of the rule whose addition failed, and the kernel error
// (an *xt.KernelError). iptables-nft prints it as
// "RULE_APPEND failed (<strerror>): rule in chain <Chain>".
type ValidationError struct {
	Table string
	Chain string
	Rule  *Rule // the rule being added; nil for whole-chain problems
	Err   error
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("table %s chain %s: %v", e.Table, e.Chain, e.Err)
}

func (e *ValidationError) Unwrap() error { return e.Err }

// Errno returns the kernel error number of the refusal (EINVAL when the
// extension returned a plain error).
func (e *ValidationError) Errno() syscall.Errno {
	if ke, ok := e.Err.(*xt.KernelError); ok {
		return ke.Errno
	}
	return syscall.EINVAL
}

// Validator checks rules the way the kernel does when they are committed,
// one at a time and in commit order, so that an error names the rule whose
// addition failed (as nf_tables reports the failing batch message):
//
//   - each match and target is checked (xt.Checker) with the table, the
//     hooks through which its chain is reachable from a built-in chain and
//     the rule's protocol;
//   - a jump makes the target chain reachable through more hooks: its rules
//     (and those of the chains it reaches) are checked again with the wider
//     mask;
//   - jumps to missing chains fail with ENOENT, nesting deeper than
//     MaxJumpDepth (and so every reachable loop) with EMLINK. Loops between
//     chains no base chain reaches are accepted, as by the kernel.
//
// The cost of adding a rule is its own checks plus, for a jump, a walk of
// the chains whose hook mask or depth grows; a chain's mask grows at most
// five times, so loading n rules is O(n) checks.
type Validator struct {
	family xt.Family
	tables map[string]*tableState
	ctx    xt.CheckContext // reused for every check (one allocation per validator)
}

type tableState struct {
	name   string
	chains map[string]*chainState
}

type chainState struct {
	hooks xt.HookMask
	depth int // nesting depth below a base chain; -1 = unreachable
	ext   []*Rule
	jumps []string
}

// NewValidator returns a validator that knows the chains of rs and has
// accepted its rules (in table and chain order).
func NewValidator(rs *Ruleset) (*Validator, error) {
	v := &Validator{family: rs.Family, tables: map[string]*tableState{}}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			v.DeclareChain(t.Name, c)
		}
	}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				if err := v.Add(t.Name, c.Name, r); err != nil {
					return nil, err
				}
			}
		}
	}
	return v, nil
}

// Validate checks a whole rule set as the kernel would when it is loaded
// with iptables-restore; nil means every rule would be accepted.
func Validate(rs *Ruleset) error {
	_, err := NewValidator(rs)
	return err
}

// DeclareChain makes a chain known (built-in chains are reachable through
// their hook at depth 0).
func (v *Validator) DeclareChain(table string, c *Chain) {
	ts := v.tables[table]
	if ts == nil {
		ts = &tableState{name: table, chains: map[string]*chainState{}}
		v.tables[table] = ts
	}
	if _, ok := ts.chains[c.Name]; ok {
		return
	}
	cs := &chainState{depth: -1}
	if c.BuiltIn {
		cs.hooks = xt.MaskOf(c.Hook)
		cs.depth = 0
	}
	ts.chains[c.Name] = cs
}

// Add validates rule r appended (or inserted) to chain in table and
// records it. The chain must have been declared.
func (v *Validator) Add(table, chain string, r *Rule) error {
	ts := v.tables[table]
	if ts == nil || ts.chains[chain] == nil {
		return &ValidationError{Table: table, Chain: chain, Rule: r, Err: &xt.KernelError{Errno: syscall.ENOENT, Why: "no such chain"}}
	}
	cs := ts.chains[chain]
	fail := func(err error) error {
		return &ValidationError{Table: table, Chain: chain, Rule: r, Err: err}
	}
	if r.Kind == TargetVerdict && r.Verdict == Queue {
		return fail(&xt.KernelError{Errno: syscall.ENOENT, Why: "QUEUE is not supported by nf_tables"})
	}
	// nft cannot express a negated match on a zero-length prefix
	// (`! -s 0/0`); the kernel refuses the payload expression.
	if (r.InvSrc && r.SrcMask.IsValid() && isZero(r.SrcMask)) || (r.InvDst && r.DstMask.IsValid() && isZero(r.DstMask)) {
		return fail(&xt.KernelError{Errno: syscall.EINVAL, Why: "negated match on a /0 address"})
	}
	if err := v.checkRule(table, cs.hooks, r); err != nil {
		return fail(err)
	}
	if r.Kind == TargetJump || r.Kind == TargetGoto {
		dst := ts.chains[r.Chain]
		if dst == nil {
			return fail(&xt.KernelError{Errno: syscall.ENOENT, Why: "jump to missing chain " + r.Chain})
		}
		// Record the edge first so that a jump to the chain itself (or
		// back up the path) is seen as the loop it is.
		cs.jumps = append(cs.jumps, r.Chain)
		if cs.depth >= 0 {
			if err := v.propagate(ts, dst, cs.depth+1, cs.hooks); err != nil {
				cs.jumps = cs.jumps[:len(cs.jumps)-1]
				return fail(err)
			}
		}
	}
	if len(r.Matches) > 0 || r.Kind == TargetExt {
		cs.ext = append(cs.ext, r)
	}
	return nil
}

func (v *Validator) propagate(ts *tableState, c *chainState, depth int, mask xt.HookMask) error {
	if depth >= MaxJumpDepth {
		return &xt.KernelError{Errno: syscall.EMLINK, Why: "jump depth exceeds 16 (loop?)"}
	}
	newMask := c.hooks | mask
	if depth <= c.depth && newMask == c.hooks {
		return nil
	}
	if newMask != c.hooks {
		for _, r := range c.ext {
			if err := v.checkRule(ts.name, newMask, r); err != nil {
				return err
			}
		}
		c.hooks = newMask
	}
	if depth > c.depth {
		c.depth = depth
	}
	for _, j := range c.jumps {
		if err := v.propagate(ts, ts.chains[j], c.depth+1, c.hooks); err != nil {
			return err
		}
	}
	return nil
}

func (v *Validator) checkRule(table string, hooks xt.HookMask, r *Rule) error {
	ctx := &v.ctx
	*ctx = xt.CheckContext{Family: v.family, Table: table, Hooks: hooks, Proto: r.Proto, InvProto: r.InvProto}
	for _, m := range r.Matches {
		if ck, ok := m.Match.(xt.Checker); ok {
			if err := ck.Check(ctx); err != nil {
				return asKernel(err)
			}
		}
	}
	if r.Kind == TargetExt {
		if ck, ok := r.Target.(xt.Checker); ok {
			if err := ck.Check(ctx); err != nil {
				return asKernel(err)
			}
		}
	}
	return nil
}

func asKernel(err error) error {
	if _, ok := err.(*xt.KernelError); ok {
		return err
	}
	return &xt.KernelError{Errno: syscall.EINVAL, Why: err.Error()}
}

func isZero(a netip.Addr) bool {
	for _, b := range a.AsSlice() {
		if b != 0 {
			return false
		}
	}
	return true
}
