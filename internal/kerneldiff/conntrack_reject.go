package kerneldiff

// Conntrack scenarios: the same differential run as Scenario.Run (rules in
// the kernel, real sockets, capture, replay, counters and LOG lines
// compared) plus the server's connection table, `conntrack -L` in the
// namespace against the replay engine's table. They cover what REJECT's
// own packets do to connection tracking (nf_ct_set_closing on tcp-reset,
// the RST and ICMP errors RELATED in OUTPUT, a rejected SYN never
// confirmed) and NFQUEUE --queue-bypass with nothing bound to the queue.
// This file is self-contained (its own runner) so that the shared harness
// stays untouched.

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/dataplane/replay"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
)

// ctTimeoutSlack is how far the kernel's remaining timeout (read after the
// settle delay and tcpdump's stop) may lag the replay's (read at the last
// captured packet): the kernel is always older, by a few seconds at most
// on a loaded 2-core machine.
const ctTimeoutSlack = 5

// ConntrackScenarios are the scenarios whose connection tables are
// compared too. Placeholders as in Scenarios.
func ConntrackScenarios() []Scenario {
	return []Scenario{
		{
			Name: "reject-conntrack-close",
			Covers: "REJECT tcp-reset of a SYN (no entry) and of an ESTABLISHED segment (CLOSE 10 s, also when OUTPUT drops the RST), " +
				"REJECT icmp of TCP data (stays ESTABLISHED) and of UDP (no entry); RST and ICMP errors RELATED/REPLY in OUTPUT; LOG of the RST; " +
				"connlimit frees the slot of a reset connection",
			Rules: rules(table("filter",
				"-A INPUT -p tcp -m tcp --dport 7090 --tcp-flags FIN,SYN,RST,ACK SYN -j REJECT --reject-with tcp-reset",
				"-A INPUT -p tcp -m tcp --dport 7091 -m length --length 100:65535 -j REJECT --reject-with tcp-reset",
				"-A INPUT -p tcp -m tcp --dport 7092 -m length --length 100:65535 -j REJECT --reject-with icmp-port-unreachable",
				"-A INPUT -p tcp -m tcp --dport 7093 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with tcp-reset",
				"-A INPUT -p tcp -m tcp --dport 7093 -m length --length 100:65535 -j REJECT --reject-with tcp-reset",
				"-A INPUT -p tcp -m tcp --dport 7095 -m length --length 100:65535 -j REJECT --reject-with tcp-reset",
				"-A INPUT -p udp -m udp --dport 7094 -j REJECT --reject-with icmp-port-unreachable",
				"-A OUTPUT -p tcp -m tcp --sport 7095 --tcp-flags RST RST -j DROP",
				"-A OUTPUT -p tcp -m tcp --tcp-flags RST RST -m state --state NEW,ESTABLISHED,INVALID",
				"-A OUTPUT -p tcp -m tcp --tcp-flags RST RST -m conntrack --ctstate RELATED --ctdir ORIGINAL",
				"-A OUTPUT -p tcp -m tcp --tcp-flags RST RST -m conntrack --ctstate RELATED --ctdir REPLY",
				`-A OUTPUT -p tcp -m tcp --sport 7093 --tcp-flags RST RST -j LOG --log-prefix "RJCT: "`,
				"-A OUTPUT -p icmp -m state --state NEW,ESTABLISHED,INVALID,UNTRACKED",
				"-A OUTPUT -p icmp -m conntrack --ctstate RELATED --ctdir REPLY")),
			Listen: Listen{TCP: []uint16{7090, 7091, 7092, 7093, 7095}},
			Client: []Step{
				tcp("{C}", 7090, 1, 0, 0, 0, 1000),     // SYN reset: refused
				tcp("{C}", 7091, 1, 0, 200, 300, 1000), // data reset: CLOSE
				udp("{C}", 7094, 1, 0, 10),             // port unreachable
				sleep(100),
				// connlimit 2: X holds a slot, Y is reset mid-stream,
				// then two more: the first gets Y's slot, the second is
				// refused.
				{Op: OpTCP, Src: "{C}", Dst: "{S}", DPort: 7093, Count: 1, HoldMS: 2500, TimeoutMS: 1000, Background: true},
				sleep(200),
				tcp("{C}", 7093, 1, 0, 200, 300, 1000),
				sleep(200),
				tcp("{C}", 7093, 2, 100, 0, 300, 1000),
				// The RST dropped in OUTPUT: the client retransmits into a
				// connection conntrack already closed.
				tcp("{C}", 7095, 1, 0, 200, 700, 1000),
				// ICMP error for TCP data: the connection stays.
				tcp("{C}", 7092, 1, 0, 200, 700, 1000),
			},
		},
		{
			Name:   "nfqueue-bypass-no-listener",
			Covers: "NFQUEUE --queue-bypass with no listener: rest of the chain (and calling chain) skipped, later tables and hooks run, entry confirmed; without bypass dropped",
			Rules: rules(
				table("mangle", ":QCH",
					"-A PREROUTING -p udp -m udp --dport 7101 -j NFQUEUE --queue-num 7 --queue-bypass",
					"-A PREROUTING -p udp -m udp --dport 7101",
					"-A INPUT -p udp -m udp --dport 7101",
					"-A INPUT -p udp -m udp --dport 7102 -j QCH",
					"-A INPUT -p udp -m udp --dport 7102",
					"-A QCH -j NFQUEUE --queue-num 7 --queue-bypass",
					"-A QCH -p udp"),
				table("filter",
					"-A INPUT -p udp -m udp --dport 7101",
					"-A INPUT -p udp -m udp --dport 7102",
					"-A INPUT -p udp -m udp --dport 7103 -j NFQUEUE --queue-num 7 --queue-bypass",
					"-A INPUT -p udp -m udp --dport 7103",
					"-A INPUT -p udp -m udp --dport 7104 -j NFQUEUE --queue-num 8",
					"-A INPUT -p udp -m udp --dport 7104",
					"-A INPUT -p udp -m udp --dport 7105 -m state --state NEW -j NFQUEUE --queue-num 7 --queue-bypass",
					"-A INPUT -p udp -m udp --dport 7105 -j DROP",
					"-A OUTPUT -p udp -m udp --sport 7101:7105")),
			Listen: Listen{UDP: []uint16{7101, 7102, 7103, 7104, 7105}},
			Client: []Step{
				udp("{C}", 7101, 2, 50, 6), udp("{C}", 7102, 2, 50, 6), udp("{C}", 7103, 2, 50, 6),
				udp("{C}", 7104, 2, 50, 6), udp("{C}", 7105, 2, 50, 6),
			},
		},
	}
}

// ConntrackOutcome is an Outcome plus both connection tables.
type ConntrackOutcome struct {
	*Outcome
	KernelCT, UptablesCT []string // normalised `conntrack -L` lines
}

// RunConntrack is Scenario.Run with the connection tables compared as
// well (Outcome.Diff includes their difference).
func (sc *Scenario) RunConntrack(ctx context.Context, idx int, self, dir string) (out *ConntrackOutcome, err error) {
	start := time.Now()
	t := NewTopology(idx, os.Getpid(), dir)
	t.ExtraLocal = sc.ExtraLocal
	rules := t.Expand(sc.Rules)
	if err := CheckUptables(rules); err != nil {
		return nil, err
	}
	client, err := expandSteps(t, sc.Client)
	if err != nil {
		return nil, err
	}
	rulesPath, err := scratch(dir, "rules.txt", rules)
	if err != nil {
		return nil, err
	}
	cleanup, err := t.Setup(ctx)
	defer cleanup()
	if err != nil {
		return nil, fmt.Errorf("namespace setup: %w", err)
	}
	if _, err := runScript(ctx, t.ClientNS, self, helperInput{TxCsumOff: t.ClientIf}); err != nil {
		return nil, err
	}
	if _, err := nsRun(ctx, t.ServerNS, "iptables-restore", rulesPath); err != nil {
		return nil, fmt.Errorf("kernel refused the ruleset: %w", err)
	}
	out = &ConntrackOutcome{Outcome: &Outcome{Capture: filepath.Join(dir, "server.pcap")}}
	if len(sc.Listen.TCP)+len(sc.Listen.UDP)+len(sc.Listen.HalfOpen) > 0 {
		l := sc.Listen
		h, err := startHelper(t.ServerNS, self, "server", helperInput{Listen: &l})
		if err != nil {
			return nil, fmt.Errorf("server helper: %w", err)
		}
		defer h.stop()
		if !h.out.wait(readyTimeout) {
			return nil, fmt.Errorf("server helper not ready within %v: %s", readyTimeout, h.out.text())
		}
	}
	km, err := openKmsg()
	if err != nil {
		return nil, err
	}
	defer km.close()
	cp, err := startCapture(t, out.Capture)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = cp.stop()
		}
	}()
	rep, err := runScript(ctx, t.ClientNS, self, helperInput{Steps: client})
	out.Traffic += "client:\n" + rep
	if err != nil {
		return out, err
	}
	time.Sleep(settleDelay)
	stopped = true
	if err := cp.stop(); err != nil {
		return out, err
	}
	// The kernel's view, the connection table first (it keeps ageing).
	ctOut, err := nsRun(ctx, t.ServerNS, "conntrack", "-L")
	if err != nil {
		return out, err
	}
	out.KernelCT = normaliseConntrackL(ctOut)
	if out.Kernel.Save, err = nsRun(ctx, t.ServerNS, "iptables-save", "-c"); err != nil {
		return out, err
	}
	lines, err := km.lines()
	if err != nil {
		return out, err
	}
	out.Kernel.Log = logLinesFor(lines, t.ServerIf)

	// uptables' view of the same packets.
	upt, eng, now, err := replayEngine(rules, t, out.Capture)
	if err != nil {
		return out, err
	}
	out.Uptables = upt
	var ub strings.Builder
	if tb := eng.ConntrackTable(); tb != nil {
		var line []byte
		tb.Range(now, func(e *conntrack.Entry) bool {
			line = e.AppendConntrackL(line[:0], now)
			ub.Write(line)
			ub.WriteByte('\n')
			return true
		})
	}
	out.UptablesCT = normaliseConntrackL(ub.String())

	var diff strings.Builder
	diff.WriteString(CompareSave(out.Kernel.Save, upt.Save))
	diff.WriteString(CompareLog(out.Kernel.Log, upt.Log))
	diff.WriteString(CompareConntrack(out.KernelCT, out.UptablesCT))
	out.Diff = diff.String()
	out.Duration = time.Since(start)
	return out, nil
}

// replayEngine is Replay returning the engine too, and the replay's clock
// at its end (the last packet's time).
func replayEngine(rules string, t Topology, capPath string) (*UptablesResult, *netfilter.Engine, int64, error) {
	eng, err := LoadUptables(rules)
	if err != nil {
		return nil, nil, 0, err
	}
	local := []netip.Prefix{netip.MustParsePrefix(t.Server + "/32")}
	var logBuf bytes.Buffer
	r := replay.New(eng, replay.Config{Local: local, InIface: t.ServerIf, OutIface: t.ServerIf, Log: &logBuf,
		LocalOwner: &replay.Owner{UID: 0, GID: 0}})
	if err := r.ReplayFile(capPath); err != nil {
		return nil, nil, 0, err
	}
	if err := r.Flush(); err != nil {
		return nil, nil, 0, err
	}
	res := &UptablesResult{Stats: r.Stats()}
	var save bytes.Buffer
	if err := iptables.WriteSave(&save, eng.Ruleset(), iptables.SaveOptions{Counters: true, Now: time.Unix(0, r.LastTimeNS()).UTC()}); err != nil {
		return nil, nil, 0, err
	}
	res.Save = save.String()
	if s := strings.TrimRight(logBuf.String(), "\n"); s != "" {
		res.Log = strings.Split(s, "\n")
	}
	return res, eng, r.LastTimeNS(), nil
}

// normaliseConntrackL turns `conntrack -L` output into sorted lines with
// the use= count dropped (references of packets in flight) and the
// timeout kept as the third field; the summary line is dropped.
func normaliseConntrackL(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || strings.HasPrefix(l, "conntrack v") {
			continue
		}
		var kept []string
		for _, w := range f {
			if !strings.HasPrefix(w, "use=") {
				kept = append(kept, w)
			}
		}
		out = append(out, strings.Join(kept, " "))
	}
	sort.Slice(out, func(i, j int) bool { return ctKey(out[i]) < ctKey(out[j]) })
	return out
}

// ctKey is a normalised line without its timeout (field 3).
func ctKey(l string) string {
	f := strings.Fields(l)
	if len(f) < 3 {
		return l
	}
	return strings.Join(append(f[:2:2], f[3:]...), " ")
}

// CompareConntrack compares two normalised tables: the same entries
// (protocol, state, both tuples, flags, mark), and each kernel timeout at
// most ctTimeoutSlack seconds below the replay's and never above it.
func CompareConntrack(kernel, upt []string) string {
	var d strings.Builder
	km := map[string]string{}
	for _, l := range kernel {
		km[ctKey(l)] = l
	}
	um := map[string]string{}
	for _, l := range upt {
		um[ctKey(l)] = l
	}
	for _, l := range kernel {
		u, ok := um[ctKey(l)]
		if !ok {
			fmt.Fprintf(&d, "conntrack: kernel only: %s\n", l)
			continue
		}
		kt, _ := strconv.Atoi(strings.Fields(l)[2])
		ut, _ := strconv.Atoi(strings.Fields(u)[2])
		if kt > ut || ut-kt > ctTimeoutSlack {
			fmt.Fprintf(&d, "conntrack: timeout kernel %d, uptables %d: %s\n", kt, ut, ctKey(l))
		}
	}
	for _, l := range upt {
		if _, ok := km[ctKey(l)]; !ok {
			fmt.Fprintf(&d, "conntrack: uptables only: %s\n", l)
		}
	}
	return d.String()
}
