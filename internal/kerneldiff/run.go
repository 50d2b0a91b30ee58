package kerneldiff

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Scenario is one differential experiment: a ruleset for the server, the
// listeners it serves, the traffic the client (then the server) sends, and
// the recent lists to compare. Text fields may use Topology placeholders.
type Scenario struct {
	Name string
	// Covers says which seed rules (S01..S41, P01, X..) and edge cases it
	// exercises.
	Covers string
	// Rules is the server's ruleset in iptables-save format.
	Rules  string
	Listen Listen
	// Client runs in the client namespace; Server afterwards in the server
	// namespace (server-initiated traffic).
	Client []Step
	Server []Step
	// Recent lists the xt_recent lists to compare.
	Recent []string
	// ExtraLocal are more addresses the server owns as far as the replay
	// is concerned (multicast groups it has joined).
	ExtraLocal []string
}

// Outcome is the result of one scenario run.
type Outcome struct {
	Kernel   KernelResult
	Uptables *UptablesResult
	// Diff is empty when uptables agreed with the kernel everywhere.
	Diff string
	// Traffic is the helpers' report (connection outcomes), for context.
	Traffic  string
	Capture  string
	Duration time.Duration
}

// expandSteps replaces placeholders in every address field.
func expandSteps(t Topology, steps []Step) ([]Step, error) {
	js, err := json.Marshal(steps)
	if err != nil {
		return nil, err
	}
	var out []Step
	if err := json.Unmarshal([]byte(t.Expand(string(js))), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// CheckUptables parses and loads the ruleset in uptables only, so that a
// scenario uptables cannot run fails before the kernel part.
func CheckUptables(rules string) error {
	_, err := LoadUptables(rules)
	return err
}

// Run performs the scenario in namespaces of index idx: self is the helper
// binary (the test binary), dir a scratch directory. It needs root. The
// namespaces are deleted before it returns, on every path.
func (sc *Scenario) Run(ctx context.Context, idx int, self, dir string) (out *Outcome, err error) {
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
	server, err := expandSteps(t, sc.Server)
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
	out = &Outcome{Capture: filepath.Join(dir, "server.pcap")}
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
	if len(client) > 0 {
		rep, err := runScript(ctx, t.ClientNS, self, helperInput{Steps: client})
		out.Traffic += "client:\n" + rep
		if err != nil {
			return out, err
		}
	}
	if len(server) > 0 {
		rep, err := runScript(ctx, t.ServerNS, self, helperInput{Steps: server})
		out.Traffic += "server:\n" + rep
		if err != nil {
			return out, err
		}
	}
	time.Sleep(settleDelay)
	stopped = true
	if err := cp.stop(); err != nil {
		return out, err
	}

	// The kernel's view.
	if out.Kernel.Save, err = nsRun(ctx, t.ServerNS, "iptables-save", "-c"); err != nil {
		return out, err
	}
	out.Kernel.Recent = map[string]string{}
	for _, name := range sc.Recent {
		s, err := nsRun(ctx, t.ServerNS, "cat", "/proc/net/xt_recent/"+name)
		if err != nil {
			return out, err
		}
		out.Kernel.Recent[name] = s
	}
	lines, err := km.lines()
	if err != nil {
		return out, err
	}
	out.Kernel.Log = logLinesFor(lines, t.ServerIf)

	// uptables' view of the same packets.
	upt, rerr := Replay(rules, t, out.Capture, sc.Recent)
	out.Uptables = upt
	if upt == nil {
		return out, rerr
	}
	var diff strings.Builder
	diff.WriteString(CompareSave(out.Kernel.Save, upt.Save))
	diff.WriteString(CompareDiag(out.Kernel.Log, upt.Log))
	diff.WriteString(CompareLog(out.Kernel.Log, upt.Log))
	if n := km.lostRecords(); n > 0 && diff.Len() > 0 {
		fmt.Fprintf(&diff, "(the kernel log overran %d times while it was followed: some kernel LOG lines are missing)\n", n)
	}
	if rerr != nil {
		fmt.Fprintf(&diff, "recent lists: %v\n", rerr)
	} else {
		for _, name := range sc.Recent {
			diff.WriteString(CompareRecent(name, out.Kernel.Recent[name], upt.Recent[name]))
		}
	}
	out.Diff = diff.String()
	out.Duration = time.Since(start)
	return out, nil
}
