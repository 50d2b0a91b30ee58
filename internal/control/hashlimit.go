package control

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/match"
)

// hashlimit is `uptables hashlimit [NAME]`: the table's buckets as
// /proc/net/ipt_hashlimit/NAME shows them (ip6t_hashlimit for IPv6 tables),
// after the same credit refill the kernel's reader does. Without NAME
// every table, each after a "# NAME" line.
func (s *Server) hashlimit(args []string, out, errw *bytes.Buffer) int {
	if len(args) > 1 || (len(args) == 1 && strings.HasPrefix(args[0], "-")) {
		fmt.Fprintln(errw, "uptables hashlimit: usage: hashlimit [NAME]")
		return 2
	}
	named := s.cfg.Rules.Engine().Named()
	names := s.cfg.Rules.Engine().SharedNames(match.NamedHashlimitKind4)
	now := s.nowNS()
	write := func(t statestore.HashlimitTable) {
		var b []byte
		ipv6 := t.Config().IPv6
		t.Entries(now, func(e *statestore.HashlimitEntry) bool {
			b = statestore.AppendHashlimitProc(b, e, ipv6)
			return true
		})
		out.Write(b)
	}
	if len(args) == 1 {
		t, ok := match.HashlimitTableByName(named, xt.IPv4, args[0])
		if !ok {
			fmt.Fprintf(errw, "uptables hashlimit: no hashlimit table named %q", args[0])
			if len(names) > 0 {
				fmt.Fprintf(errw, " (tables: %s)", strings.Join(names, ", "))
			}
			errw.WriteByte('\n')
			return 1
		}
		write(t)
		return 0
	}
	if len(names) == 0 {
		fmt.Fprintln(errw, "uptables hashlimit: no hashlimit table (no rule uses -m hashlimit)")
		return 0
	}
	for _, n := range names {
		if t, ok := match.HashlimitTableByName(named, xt.IPv4, n); ok {
			fmt.Fprintf(out, "# %s (%d entr%s)\n", n, t.Len(), plural(t.Len(), "y", "ies"))
			write(t)
		}
	}
	return 0
}
