package iptables

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// ListOptions are the -L modifiers.
type ListOptions struct {
	Chain       string // "" = all chains
	RuleNum     int    // > 0: print only this rule's line (no headers)
	Numeric     bool   // -n
	Verbose     bool   // -v
	Exact       bool   // -x
	LineNumbers bool   // --line-numbers
}

// WriteList writes `iptables -L` output for one table, byte-identical to
// iptables 1.8.9 (nf_tables): padded columns with their trailing spaces,
// protocol numbers in the prot column with -n (1.8.9 behaviour), counters
// in K/M/G units unless -x.
//
// Without -n iptables would print host names from reverse DNS; uptables
// never asks DNS, so addresses stay numeric (0.0.0.0/0 is "anywhere", as
// iptables prints it without any lookup).
func WriteList(w io.Writer, t *ruleset.Table, o ListOptions) error {
	var b strings.Builder
	first := true
	for _, c := range listOrder(t) {
		if o.Chain != "" && c.Name != o.Chain {
			continue
		}
		if o.RuleNum > 0 {
			if o.RuleNum <= len(c.Rules) {
				listRule(&b, t, c.Rules[o.RuleNum-1], o.RuleNum, o)
			}
			continue
		}
		if !first {
			b.WriteByte('\n')
		}
		first = false
		if c.BuiltIn {
			b.WriteString("Chain " + c.Name + " (policy " + c.Policy.String())
			if o.Verbose {
				b.WriteByte(' ')
				b.WriteString(formatNum(c.Counters.Packets, o.Exact, true))
				b.WriteString("packets, ")
				b.WriteString(formatNum(c.Counters.Bytes, o.Exact, true))
				b.WriteString("bytes")
			}
			b.WriteString(")\n")
		} else {
			b.WriteString("Chain " + c.Name + " (" + strconv.Itoa(t.References(c.Name)) + " references)\n")
		}
		listHeader(&b, o)
		for i, r := range c.Rules {
			listRule(&b, t, r, i+1, o)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func listHeader(b *strings.Builder, o ListOptions) {
	if o.LineNumbers {
		fmt.Fprintf(b, "%-4s ", "num")
	}
	if o.Verbose {
		if o.Exact {
			fmt.Fprintf(b, "%8s %10s ", "pkts", "bytes")
		} else {
			fmt.Fprintf(b, "%5s %5s ", "pkts", "bytes")
		}
	}
	fmt.Fprintf(b, "%-9s ", "target")
	b.WriteString(" prot opt")
	if o.Verbose {
		fmt.Fprintf(b, " %-6s %-6s ", "in", "out")
	}
	fmt.Fprintf(b, " %-19s  %-19s \n", "source", "destination")
}

// formatNum is xtables_print_num: "%8llu " with -x, otherwise "%5llu " up
// to 99999 and then rounded K, M, G, T in four columns. notable drops the
// padding (used in the chain header).
func formatNum(n uint64, exact, notable bool) string {
	if exact {
		if notable {
			return strconv.FormatUint(n, 10) + " "
		}
		return fmt.Sprintf("%8d ", n)
	}
	if n <= 99999 {
		if notable {
			return strconv.FormatUint(n, 10) + " "
		}
		return fmt.Sprintf("%5d ", n)
	}
	for _, unit := range []string{"K", "M", "G"} {
		n = (n + 500) / 1000
		if n <= 9999 {
			if notable {
				return strconv.FormatUint(n, 10) + unit + " "
			}
			return fmt.Sprintf("%4d%s ", n, unit)
		}
	}
	n = (n + 500) / 1000
	if notable {
		return strconv.FormatUint(n, 10) + "T "
	}
	return fmt.Sprintf("%4dT ", n)
}

// TargetListName is the name -L prints in the target column.
func TargetListName(r *ruleset.Rule) string {
	switch r.Kind {
	case ruleset.TargetVerdict:
		return r.Verdict.String()
	case ruleset.TargetJump, ruleset.TargetGoto:
		return r.Chain
	case ruleset.TargetExt:
		// iptables-nft sends NOTRACK as the CT target (rev 2 with the
		// notrack flag) and -L shows the kernel's name for it.
		if r.TSpec.Name == "NOTRACK" {
			return "CT"
		}
		return r.TSpec.Name
	}
	return ""
}

func listRule(b *strings.Builder, t *ruleset.Table, r *ruleset.Rule, num int, o ListOptions) {
	if o.LineNumbers {
		fmt.Fprintf(b, "%-4d ", num)
	}
	if o.Verbose {
		b.WriteString(formatNum(r.Counters.Packets, o.Exact, false))
		b.WriteString(formatNum(r.Counters.Bytes, o.Exact, false))
	}
	fmt.Fprintf(b, "%-9s ", TargetListName(r))
	b.WriteByte(invChar(r.InvProto, ' '))
	if o.Numeric {
		fmt.Fprintf(b, "%-5d", r.Proto)
	} else if r.Proto == 0 {
		fmt.Fprintf(b, "%-5s", "all")
	} else {
		fmt.Fprintf(b, "%-5s", xt.ProtoName(r.Proto))
	}
	b.WriteByte(invChar(r.InvFrag, '-'))
	if r.Frag {
		b.WriteByte('f')
	} else {
		b.WriteByte('-')
	}
	b.WriteByte(' ')
	if o.Verbose {
		fmt.Fprintf(b, " %-6s ", ifaceCol(r.InvIn, r.InIface, o.Numeric))
		fmt.Fprintf(b, "%-6s ", ifaceCol(r.InvOut, r.OutIface, o.Numeric))
	}
	b.WriteByte(invChar(r.InvSrc, ' '))
	fmt.Fprintf(b, "%-19s ", addrCol(r.Src, r.SrcMask, o.Numeric))
	b.WriteByte(invChar(r.InvDst, ' '))
	fmt.Fprintf(b, "%-19s ", addrCol(r.Dst, r.DstMask, o.Numeric))
	for _, m := range r.Matches {
		m.Match.List(b, o.Numeric)
	}
	if r.Kind == ruleset.TargetGoto {
		b.WriteString("[goto] ")
	}
	if r.Kind == ruleset.TargetExt {
		r.Target.List(b, o.Numeric)
	}
	b.WriteByte('\n')
}

func invChar(inv bool, otherwise byte) byte {
	if inv {
		return '!'
	}
	return otherwise
}

func ifaceCol(inv bool, name string, numeric bool) string {
	s := ""
	if inv {
		s = "!"
	}
	switch {
	case name != "":
		return s + name
	case numeric:
		return s + "*"
	}
	return s + "any"
}

// addrCol prints address and mask as iptables -L: "anywhere" for a zero
// mask without -n, the bare address for a host mask, "/len" for a prefix,
// "/dotted" for a non-contiguous mask.
func addrCol(a, m netip.Addr, numeric bool) string {
	if !a.IsValid() {
		if numeric {
			return "0.0.0.0/0"
		}
		return "anywhere"
	}
	n := xt.MaskLen(m)
	if n == 0 && !numeric {
		return "anywhere"
	}
	s := a.String()
	switch {
	case n == m.BitLen():
		return s
	case n < 0:
		return s + "/" + m.String()
	}
	return s + "/" + strconv.Itoa(n)
}

// writeRuleLine prints a rule as iptables -v prints the rules of -A, -I,
// -R, -D and -C before it runs them (print_rule with FMT_PRINT_RULE:
// numeric, no counters, labelled columns):
//
//	ACCEPT  tcp opt -- in * out *  0.0.0.0/0  -> 1.2.3.4   tcp dpt:22
func writeRuleLine(b *strings.Builder, r *ruleset.Rule) {
	b.WriteString(TargetListName(r))
	b.WriteByte(' ')
	b.WriteByte(invChar(r.InvProto, ' '))
	b.WriteString(chainProtoName(r.Proto))
	b.WriteString(" opt ")
	b.WriteByte(invChar(r.InvFrag, '-'))
	if r.Frag {
		b.WriteByte('f')
	} else {
		b.WriteByte('-')
	}
	b.WriteString(" in " + ifaceCol(r.InvIn, r.InIface, true))
	b.WriteString(" out " + ifaceCol(r.InvOut, r.OutIface, true) + " ")
	b.WriteByte(invChar(r.InvSrc, ' '))
	b.WriteString(addrCol(r.Src, r.SrcMask, true) + " ")
	b.WriteByte(invChar(r.InvDst, ' '))
	b.WriteString("-> " + addrCol(r.Dst, r.DstMask, true) + "  ")
	for _, m := range r.Matches {
		m.Match.List(b, true)
	}
	if r.Kind == ruleset.TargetGoto {
		b.WriteString("[goto] ")
	}
	if r.Kind == ruleset.TargetExt {
		r.Target.List(b, true)
	}
	b.WriteByte('\n')
}

// chainProtoName names a protocol from xtables_chain_protos only, as the
// numeric printer does ("47", not "gre").
func chainProtoName(p uint8) string {
	switch p {
	case 0, 1, 6, 17, 50, 51, 58, 132, 135, 136:
		return xt.ProtoName(p)
	}
	return strconv.Itoa(int(p))
}
