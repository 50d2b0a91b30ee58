package iptables

import (
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// RuleSpec appends the rule specification as iptables -S prints it after
// "-A CHAIN" (each part with its leading space): the generic part in the
// fixed order -s -d -i -o -p -f, the matches in command-line order, then
// " -c P B" when withCounters (iptables -v -S), then the target.
func RuleSpec(b *strings.Builder, r *ruleset.Rule, withCounters bool) {
	addr := func(inv bool, flag string, a, m netip.Addr) {
		if !a.IsValid() || (xt.MaskLen(m) == 0 && !inv) {
			return
		}
		if inv {
			b.WriteString(" !")
		}
		b.WriteString(" " + flag + " ")
		b.WriteString(xt.FormatAddrMask(a, m))
	}
	addr(r.InvSrc, "-s", r.Src, r.SrcMask)
	addr(r.InvDst, "-d", r.Dst, r.DstMask)
	iface := func(inv bool, flag, name string) {
		if name == "" {
			return
		}
		if inv {
			b.WriteString(" !")
		}
		b.WriteString(" " + flag + " " + name)
	}
	iface(r.InvIn, "-i", r.InIface)
	iface(r.InvOut, "-o", r.OutIface)
	if r.Proto != 0 {
		if r.InvProto {
			b.WriteString(" !")
		}
		b.WriteString(" -p " + xt.ProtoName(r.Proto))
	}
	if r.Frag {
		if r.InvFrag {
			b.WriteString(" !")
		}
		b.WriteString(" -f")
	}
	for _, m := range r.Matches {
		if o, ok := m.Match.(Omitter); ok && o.OmitFromListing() {
			continue
		}
		name := m.Spec.Name
		if m.Spec.SaveName != "" {
			name = m.Spec.SaveName
		}
		b.WriteString(" -m " + name)
		m.Match.Save(b)
	}
	if withCounters {
		b.WriteString(" -c " + strconv.FormatUint(r.Counters.Packets, 10) + " " + strconv.FormatUint(r.Counters.Bytes, 10))
	}
	switch r.Kind {
	case ruleset.TargetVerdict:
		b.WriteString(" -j " + r.Verdict.String())
	case ruleset.TargetJump:
		b.WriteString(" -j " + r.Chain)
	case ruleset.TargetGoto:
		b.WriteString(" -g " + r.Chain)
	case ruleset.TargetExt:
		b.WriteString(" -j " + r.TSpec.Name)
		r.Target.Save(b)
	}
}

// Omitter is implemented by a match configuration that iptables-nft 1.8.9
// cannot read back from the kernel and therefore leaves out of -S and
// iptables-save output entirely (e.g. `-m tcp ! --sport :`, which lists as
// just `-p tcp`). The rule still exists; only its text loses the match.
type Omitter interface {
	OmitFromListing() bool
}

// FormatRule returns "-A CHAIN <spec>" as iptables -S prints it.
// RuleText is a rule as iptables -S prints it after "-A CHAIN" (no leading
// space), for trace lines.
func RuleText(r *ruleset.Rule) string {
	var b strings.Builder
	RuleSpec(&b, r, false)
	return strings.TrimPrefix(b.String(), " ")
}

func FormatRule(chain string, r *ruleset.Rule, withCounters bool) string {
	var b strings.Builder
	b.WriteString("-A " + chain)
	RuleSpec(&b, r, withCounters)
	return b.String()
}

// ruleKey is the canonical text used to compare rules (-D, -C): two rules
// are the same when they print the same, as iptables-nft compares them.
func ruleKey(r *ruleset.Rule) string {
	var b strings.Builder
	RuleSpec(&b, r, false)
	return b.String()
}

// listOrder is the order iptables-nft prints chains in (-S, -L, save):
// the built-in chains in hook order, then the user chains sorted by name
// (strcmp order, whatever order they were created or renamed in).
func listOrder(t *ruleset.Table) []*ruleset.Chain {
	out := make([]*ruleset.Chain, 0, len(t.Chains))
	for _, c := range t.Chains {
		if c.BuiltIn {
			out = append(out, c)
		}
	}
	n := len(out)
	for _, c := range t.Chains {
		if !c.BuiltIn {
			out = append(out, c)
		}
	}
	user := out[n:]
	sort.SliceStable(user, func(i, j int) bool { return user[i].Name < user[j].Name })
	return out
}

// WriteListRules writes iptables -S [chain [n]] output for a table.
func WriteListRules(w io.Writer, t *ruleset.Table, chain string, num int, verbose bool) error {
	var b strings.Builder
	for _, c := range listOrder(t) {
		if chain != "" && c.Name != chain {
			continue
		}
		if num > 0 {
			if num <= len(c.Rules) {
				b.WriteString(FormatRule(c.Name, c.Rules[num-1], verbose) + "\n")
			}
			continue
		}
		if c.BuiltIn {
			b.WriteString("-P " + c.Name + " " + c.Policy.String())
			if verbose {
				b.WriteString(" -c " + strconv.FormatUint(c.Counters.Packets, 10) + " " + strconv.FormatUint(c.Counters.Bytes, 10))
			}
			b.WriteByte('\n')
		}
	}
	if num == 0 {
		for _, c := range listOrder(t) {
			if !c.BuiltIn && (chain == "" || c.Name == chain) {
				b.WriteString("-N " + c.Name + "\n")
			}
		}
		for _, c := range listOrder(t) {
			if chain != "" && c.Name != chain {
				continue
			}
			for _, r := range c.Rules {
				b.WriteString(FormatRule(c.Name, r, verbose) + "\n")
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// SaveOptions controls the iptables-save writer.
type SaveOptions struct {
	Counters bool      // -c: [p:b] before each rule
	Table    string    // -t: only this table ("" = all existing tables)
	Now      time.Time // the date in the header and footer lines
}

// CTime formats t as ctime(3) without the newline ("Sat Nov 21 06:40:44 2026").
func CTime(t time.Time) string {
	return t.Format("Mon Jan _2 15:04:05 2006")
}

// WriteSave writes the rule set as iptables-save (nf_tables) 1.8.9 does:
// tables in nft order (mangle, security, raw, filter, nat), each with the
// "# Generated by" header, ":CHAIN POLICY [p:b]" lines (user chains "-"),
// the rules and COMMIT, then "# Completed on".
func WriteSave(w io.Writer, rs *ruleset.Ruleset, o SaveOptions) error {
	var b strings.Builder
	date := CTime(o.Now)
	for _, t := range rs.Tables {
		if o.Table != "" && t.Name != o.Table {
			continue
		}
		writeTable(&b, t, o.Counters, date)
	}
	if o.Table != "" && rs.Table(o.Table) == nil {
		// nft: saving a table that does not exist prints it empty
		// (iptables-save -t nat on a fresh system lists the built-in chains).
		if t, ok := ruleset.NewTable(o.Table); ok {
			writeTable(&b, t, o.Counters, date)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeTable(b *strings.Builder, t *ruleset.Table, counters bool, date string) {
	b.WriteString("# Generated by iptables-save " + Version + " on " + date + "\n")
	b.WriteString("*" + t.Name + "\n")
	for _, c := range listOrder(t) {
		pol := "-"
		if c.BuiltIn {
			pol = c.Policy.String()
		}
		b.WriteString(":" + c.Name + " " + pol + " [" + strconv.FormatUint(c.Counters.Packets, 10) + ":" + strconv.FormatUint(c.Counters.Bytes, 10) + "]\n")
	}
	for _, c := range listOrder(t) {
		for _, r := range c.Rules {
			if counters {
				b.WriteString("[" + strconv.FormatUint(r.Counters.Packets, 10) + ":" + strconv.FormatUint(r.Counters.Bytes, 10) + "] ")
			}
			b.WriteString("-A " + c.Name)
			RuleSpec(b, r, false)
			b.WriteByte('\n')
		}
	}
	b.WriteString("COMMIT\n")
	b.WriteString("# Completed on " + date + "\n")
}
