package control

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/xt/match"
)

// recent is `uptables recent [--proc] [NAME] [+ADDR|-ADDR|/]`:
//
//   - no NAME: every list, human form;
//   - NAME: that list;
//   - --proc: the /proc/net/xt_recent/NAME text instead (all lists: each
//     preceded by a "# NAME" line);
//   - NAME +ADDR, NAME -ADDR, NAME /: the /proc write commands (add or
//     refresh, remove, flush).
func (s *Server) recent(args []string, out, errw *bytes.Buffer) int {
	proc := false
	var pos []string
	for _, a := range args {
		switch {
		case a == "--proc" || a == "-x":
			proc = true
		case strings.HasPrefix(a, "--") || (strings.HasPrefix(a, "-") && len(pos) == 0):
			fmt.Fprintf(errw, "uptables recent: unknown option %q\n", a)
			return 2
		default:
			pos = append(pos, a)
		}
	}
	eng := s.cfg.Rules.Engine()
	names := eng.SharedNames(match.NamedRecentKind)
	if len(pos) > 2 {
		fmt.Fprintln(errw, "uptables recent: usage: recent [--proc] [NAME] [+ADDR|-ADDR|/]")
		return 2
	}
	if len(pos) == 0 {
		if len(names) == 0 {
			fmt.Fprintln(errw, "uptables recent: no recent list (no rule uses -m recent)")
			return 0
		}
		for i, n := range names {
			l, ok := match.RecentListByName(eng.Named(), n)
			if !ok {
				continue
			}
			if proc {
				fmt.Fprintf(out, "# %s\n", n)
				s.writeRecentProc(out, l)
				continue
			}
			if i > 0 {
				out.WriteByte('\n')
			}
			s.writeRecentHuman(out, n, l)
		}
		return 0
	}
	name := pos[0]
	l, ok := match.RecentListByName(eng.Named(), name)
	if !ok {
		fmt.Fprintf(errw, "uptables recent: no recent list named %q", name)
		if len(names) > 0 {
			fmt.Fprintf(errw, " (lists: %s)", strings.Join(names, ", "))
		}
		errw.WriteByte('\n')
		return 1
	}
	if len(pos) == 2 {
		cmd := pos[1]
		if err := l.Command(cmd, s.nowNS()); err != nil {
			if errors.Is(err, statestore.ErrInvalid) {
				fmt.Fprintf(errw, "uptables recent: %s: %q: Invalid argument (want +ADDR, -ADDR or /)\n", name, cmd)
			} else {
				fmt.Fprintf(errw, "uptables recent: %s: %v\n", name, err)
			}
			return 1
		}
		return 0
	}
	if proc {
		s.writeRecentProc(out, l)
	} else {
		s.writeRecentHuman(out, name, l)
	}
	return 0
}

func (s *Server) writeRecentProc(out *bytes.Buffer, l statestore.RecentList) {
	j := statestore.ProcJiffies{BootNS: s.cfg.BootNS}
	var b []byte
	for _, e := range l.Entries(nil) {
		b = statestore.AppendRecentProc(b, &e, j)
	}
	out.Write(b)
}

// recentRule is a rule that tests a recent list: --rcheck or --update,
// not inverted (a rule that matches listed addresses).
type recentRule struct {
	where   string // "filter INPUT #3"
	target  string // "DROP"
	seconds uint32
	hits    uint32
}

func recentRules(rs *ruleset.Ruleset, name string) []recentRule {
	var out []recentRule
	for _, t := range rs.Tables {
		for _, ch := range t.Chains {
			for i, r := range ch.Rules {
				for _, m := range r.Matches {
					rm, ok := m.Match.(*match.Recent)
					if !ok || rm.Name != name || rm.Invert || (rm.Command != match.RecentCheck && rm.Command != match.RecentUpdate) {
						continue
					}
					out = append(out, recentRule{where: fmt.Sprintf("%s %s #%d", t.Name, ch.Name, i+1),
						target: iptables.TargetListName(r), seconds: rm.Seconds, hits: rm.HitCount})
				}
			}
		}
	}
	return out
}

// recentUntil says whether the rule's recent test matches addr's entry
// now and until when (the zero time: for as long as the entry stays),
// following xt_recent's recent_mt: with --seconds S only the stamps at
// most S seconds old count; with --hitcount H at least H of them must;
// without --hitcount one is enough. So the match lasts until the H-th
// newest stamp (the newest without --hitcount) is S seconds old. This is
// the state at the time of the query: with --update every packet the rule
// sees adds a stamp and so extends it.
func recentUntil(e *statestore.RecentEntry, r recentRule, now int64) (bool, time.Time) {
	stamps := append([]int64(nil), e.StampsNS...)
	sort.Slice(stamps, func(i, j int) bool { return stamps[i] > stamps[j] })
	need := int(r.hits)
	if need == 0 {
		need = 1
	}
	if r.seconds == 0 {
		if r.hits == 0 || len(stamps) >= need {
			return true, time.Time{}
		}
		return false, time.Time{}
	}
	win := int64(r.seconds) * int64(time.Second)
	n := 0
	for _, st := range stamps {
		if st >= now-win {
			n++
		}
	}
	if n < need {
		return false, time.Time{}
	}
	return true, time.Unix(0, stamps[need-1]+win)
}

func (s *Server) writeRecentHuman(out *bytes.Buffer, name string, l statestore.RecentList) {
	entries := l.Entries(nil)
	rules := recentRules(s.cfg.Rules.Engine().Ruleset(), name)
	now := s.nowNS()
	fmt.Fprintf(out, "recent list %s: %d entr%s\n", name, len(entries), plural(len(entries), "y", "ies"))
	if len(entries) == 0 {
		return
	}
	fmt.Fprintf(out, "  %-39s %4s %5s  %s\n", "ADDRESS", "TTL", "HITS", "LAST SEEN")
	for i := range entries {
		e := &entries[i]
		fmt.Fprintf(out, "  %-39s %4d %5d  %s\n", e.Addr, e.TTL, len(e.StampsNS), whenAgo(e.LastSeenNS, now))
		for _, r := range rules {
			ok, until := recentUntil(e, r, now)
			if !ok {
				continue
			}
			verb := "matched by"
			if r.target == "DROP" || r.target == "REJECT" {
				verb = "blocked by"
			}
			fmt.Fprintf(out, "      %s %s (-j %s) %s\n", verb, r.where, r.target, untilText(until, now))
		}
	}
}

func untilText(until time.Time, now int64) string {
	if until.IsZero() {
		return "while listed"
	}
	d := time.Duration(until.UnixNano() - now).Round(time.Second)
	return fmt.Sprintf("until %s (in %s)", until.Format("2006-01-02 15:04:05"), d)
}

func whenAgo(ns, now int64) string {
	d := time.Duration(now - ns).Round(time.Second)
	return fmt.Sprintf("%s (%s ago)", time.Unix(0, ns).Format("2006-01-02 15:04:05"), d)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func knownTable(t string) bool {
	_, ok := ruleset.BuiltinHooks(t)
	return ok
}
