package control

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/match"
)

// status is `uptables status`: what is running, since when, the rule-set
// loads and the counters of the engine and of the data plane.
func (s *Server) status(args []string, out, errw *bytes.Buffer) int {
	if len(args) > 0 {
		fmt.Fprintf(errw, "uptables status: unexpected argument %q\n", args[0])
		return 2
	}
	now := s.cfg.Now()
	eng := s.cfg.Rules.Engine()
	fmt.Fprintf(out, "uptables daemon: mode %s, pid %d, up %s (since %s)\n", s.cfg.Mode, os.Getpid(),
		now.Sub(s.cfg.Started).Round(time.Second), s.cfg.Started.Format(time.DateTime))
	ls := s.cfg.Rules.Stats()
	file := s.cfg.Rules.File()
	if file == "" {
		file = "(none: changes are not saved)"
	}
	fmt.Fprintf(out, "rules file: %s\n", file)
	last := "never"
	if !ls.LastLoad.IsZero() {
		last = fmt.Sprintf("%s (%s ago)", ls.LastLoad.Format(time.DateTime), now.Sub(ls.LastLoad).Round(time.Second))
	}
	fmt.Fprintf(out, "rule-set loads: %d, failed: %d, last load: %s\n", ls.Loads, ls.Failures, last)
	if ls.Failures > 0 {
		fmt.Fprintf(out, "last failure: %s: %s\n", ls.LastFailure.Format(time.DateTime), strings.TrimSpace(ls.LastError))
	}
	rs := eng.Ruleset()
	var tabs []string
	rules := 0
	for _, t := range rs.Tables {
		n := 0
		for _, ch := range t.Chains {
			n += len(ch.Rules)
		}
		rules += n
		tabs = append(tabs, fmt.Sprintf("%s %d", t.Name, n))
	}
	fmt.Fprintf(out, "ruleset: %d rules (%s)\n", rules, strings.Join(tabs, ", "))
	if ct := eng.ConntrackTable(); ct != nil {
		st := ct.Stats()
		fmt.Fprintf(out, "conntrack: %d entries, max %d, new %d, invalid %d, drop %d, early_drop %d, insert_failed %d, expired %d\n",
			ct.Count(), ct.Config().Max, st.New.Load(), st.Invalid.Load(), st.Drop.Load(), st.EarlyDrop.Load(),
			st.InsertFailed.Load(), st.Expired.Load())
	} else {
		fmt.Fprintln(out, "conntrack: off (no rule needs connection tracking)")
	}
	named := eng.Named()
	if names := eng.SharedNames(match.NamedRecentKind); len(names) > 0 {
		var parts []string
		for _, n := range names {
			if l, ok := match.RecentListByName(named, n); ok {
				parts = append(parts, fmt.Sprintf("%s %d", n, l.Len()))
			}
		}
		fmt.Fprintf(out, "recent lists: %s\n", strings.Join(parts, ", "))
	}
	if names := eng.SharedNames(match.NamedHashlimitKind4); len(names) > 0 {
		var parts []string
		for _, n := range names {
			if t, ok := match.HashlimitTableByName(named, xt.IPv4, n); ok {
				parts = append(parts, fmt.Sprintf("%s %d", n, t.Len()))
			}
		}
		fmt.Fprintf(out, "hashlimit tables: %s\n", strings.Join(parts, ", "))
	}
	if v, ok := eng.Shared(match.NamedStoreKind, match.NamedStoreName); ok {
		if ss, ok := v.(statestore.SharedStore); ok {
			st := ss.SharedStatus()
			fmt.Fprintf(out, "shared state: %s in %s (fail %s): calls %d, errors %d, skipped %d, hotdrops %d\n",
				strings.Join(st.Shared, ", "), st.Backend, st.Fail, st.Calls, st.Errors, st.Skipped, st.Hotdrops)
			if st.LastError != "" {
				fmt.Fprintf(out, "shared state last error: %s\n", st.LastError)
			}
		}
	}
	if s.cfg.Proxy != nil {
		p := s.cfg.Proxy()
		fmt.Fprintf(out, "proxy connections: accepted %d, dropped %d, reset %d, closed %d, cut %d, active %d, upstream failures %d, proxy header errors %d, overload %d\n",
			p.ConnsAccepted, p.ConnsDropped, p.ConnsReset, p.ConnsClosed, p.ConnsCut, p.ConnsActive, p.UpstreamErrors, p.ProxyHeaderErrs, p.Overload)
		fmt.Fprintf(out, "proxy packets: in %d, out %d, refused %d; datagrams in %d, out %d, dropped %d\n",
			p.PacketsIn, p.PacketsOut, p.PacketsRefused, p.DatagramsIn, p.DatagramsOut, p.DatagramsDrop)
	}
	if s.cfg.Queues != nil {
		for _, q := range s.cfg.Queues() {
			fmt.Fprintf(out, "queue %d: packets %d, accepted %d, dropped %d, requeued %d, modified %d, panics %d, undecodable %d, replies %d, logs %d, read errors %d",
				q.Num, q.Packets.Load(), q.Accepted.Load(), q.Dropped.Load(), q.Requeued.Load(), q.Modified.Load(),
				q.Panics.Load(), q.Undecodable.Load(), q.Replies.Load(), q.Logs.Load(), q.ReadErrors.Load())
			if c := q.ConnStats(); c != nil {
				fmt.Fprintf(out, ", overruns %d, netlink errors %d", c.Overruns.Load(), c.NetlinkErr.Load())
			}
			// Packets beyond NFQUEUE's 65531-byte copy (decided on the
			// copy; rewrites of them get the fail verdict), and the
			// kernel's own counters of the queue (nfnetlink_queue).
			fmt.Fprintf(out, ", cut %d, cut rewrites %d; kernel: waiting %d, queue dropped %d, user dropped %d\n",
				q.Cut.Load(), q.CutRewrites.Load(), q.KernelWaiting.Load(), q.KernelQueueDropped.Load(), q.KernelUserDropped.Load())
		}
	}
	return 0
}
