package kerneldiff

import (
	"fmt"
	"strings"
)

// diagPrefixes are the LOG prefixes of diagRules, one per ctstate.
var diagPrefixes = []string{"dINV ", "dNEW ", "dEST ", "dREL ", "dUNT "}

// diagState splits a diagRules LOG line into its state ("INV", "NEW", ...)
// and the packet part (the line without the prefix), which is the same on
// both sides for the same packet.
func diagState(l string) (state, pkt string, ok bool) {
	for _, p := range diagPrefixes {
		if rest, found := strings.CutPrefix(l, p); found {
			return p[1:4], rest, true
		}
	}
	return "", "", false
}

// maxDiagReport bounds the lines CompareDiag prints.
const maxDiagReport = 200

// CompareDiag pairs the per-packet ctstate lines of diagRules
// (KERNELDIFF_RANDOM_DIAG) of the kernel and uptables and reports every
// packet the two sides classify differently, in the kernel's order, as
// "kernel STATE, uptables STATE: packet". Identical packets (same line
// text) are paired in order of appearance. It returns "" when every
// packet agrees or when neither side has diag lines.
func CompareDiag(kernel, upt []string) string {
	type occ struct{ states []string }
	kq := map[string]*occ{}
	uq := map[string]*occ{}
	var order []string
	add := func(m map[string]*occ, l string, remember bool) {
		st, pkt, ok := diagState(l)
		if !ok {
			return
		}
		o := m[pkt]
		if o == nil {
			o = &occ{}
			m[pkt] = o
			if remember {
				order = append(order, pkt)
			}
		}
		o.states = append(o.states, st)
	}
	for _, l := range kernel {
		add(kq, l, true)
	}
	for _, l := range upt {
		_, pkt, ok := diagState(l)
		if ok && kq[pkt] == nil && uq[pkt] == nil {
			order = append(order, pkt)
		}
		add(uq, l, false)
	}
	var b strings.Builder
	n, agree := 0, 0
	report := func(format string, a ...any) {
		n++
		if n <= maxDiagReport {
			fmt.Fprintf(&b, format, a...)
		}
	}
	for _, pkt := range order {
		var ks, us []string
		if o := kq[pkt]; o != nil {
			ks = o.states
		}
		if o := uq[pkt]; o != nil {
			us = o.states
		}
		for i := 0; i < len(ks) || i < len(us); i++ {
			k, u := "-", "-"
			if i < len(ks) {
				k = ks[i]
			}
			if i < len(us) {
				u = us[i]
			}
			if k == u {
				agree++
				continue
			}
			report("  kernel %s, uptables %s: %s\n", k, u, strings.TrimSpace(pkt))
		}
	}
	if n == 0 {
		return ""
	}
	head := fmt.Sprintf("per-packet ctstate (diag LOG, \"-\" = no line): %d differ, %d agree\n", n, agree)
	if n > maxDiagReport {
		fmt.Fprintf(&b, "  ... %d more\n", n-maxDiagReport)
	}
	return head + b.String()
}
