package kerneldiff

// Ipset scenarios: the differential run of Scenario.Run with ipsets. The
// same sets are restored into the server namespace's kernel (`ipset
// restore -file`) and into the replay's *ipset.Sets (their timeouts
// counting from the capture's first packet, as `uptables replay --ipsets`
// does); counters and LOG lines are compared as in every scenario, and
// the sets after the traffic too: `ipset save` of the kernel against the
// replay's sets at its last packet, members compared as sorted lines,
// remaining timeouts within ipsetTimeoutSlack. This file is
// self-contained (its own runner) so that the shared harness stays
// untouched.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/uptables/uptables/internal/dataplane/replay"
	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// ipsetTimeoutSlack is how far the kernel's remaining timeout (read after
// the settle delay) may lag the replay's (at the last captured packet).
const ipsetTimeoutSlack = 3

// IpsetScenario is a Scenario with the sets both sides start from.
type IpsetScenario struct {
	Scenario
	// Sets is `ipset restore` input (placeholders as in Rules).
	Sets string
	// Compare names the sets whose members are compared after the run.
	Compare []string
}

// countryNets is a synthetic country list of n networks in 100.64.0.0/10
// and 172.16.0.0/12, prefix lengths 12 to 24, none covering the
// scenario's 10.231.N.0/24 (fixed seed: the same list every run).
func countryNets(n int) []string {
	rng := rand.New(rand.NewPCG(7, 11))
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		c := 12 + rng.IntN(13)
		base, bits := uint32(100<<24|64<<16), 10
		if rng.IntN(2) == 0 {
			base, bits = 172<<24|16<<16, 12
		}
		if c < bits {
			c = bits
		}
		a := base | rng.Uint32()>>bits
		a &= ^uint32(0) << (32 - c)
		s := fmt.Sprintf("%d.%d.%d.%d/%d", a>>24, a>>16&255, a>>8&255, a&255, c)
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// IpsetScenarios are the ipset scenarios.
func IpsetScenarios() []IpsetScenario {
	var sets strings.Builder
	sets.WriteString("create country hash:net family inet hashsize 1024 maxelem 65536\n")
	for _, n := range countryNets(300) {
		sets.WriteString("add country " + n + "\n")
	}
	// The client's /24 is "a country": blocked, with nomatch exceptions
	// (.4/31 and .8/30) and a blocked /32 inside an exception (.10).
	sets.WriteString("add country {NET}/24\nadd country {C4}/31 nomatch\nadd country {C8}/30 nomatch\nadd country {C10}\n")
	sets.WriteString("create knock hash:ip family inet hashsize 1024 maxelem 65536 timeout 30\n")
	var client []Step
	for _, src := range []string{"{C}", "{C3}", "{C4}", "{C5}", "{C6}", "{C8}", "{C9}", "{C10}", "{C11}", "{C12}"} {
		client = append(client, tcp(src, 7200, 1, 0, 20, 0, 500))
	}
	client = append(client,
		tcp("{C}", 7211, 1, 0, 0, 0, 500), // before the knock: dropped
		udp("{C}", 7210, 1, 0, 8),         // the knock: -j SET --add-set knock src --timeout 10
		sleep(100),
		tcp("{C}", 7211, 1, 0, 100, 200, 1000), // opened
		tcp("{C3}", 7211, 1, 0, 0, 0, 500),     // never knocked: dropped
	)
	return []IpsetScenario{{
		Scenario: Scenario{
			Name: "ipset-country-blocklist-knock",
			Covers: "hash:net country list (304 networks, 13 prefix lengths) with nomatch exceptions and a blocked /32 inside one, " +
				"--return-nomatch, ! --match-set; SET --add-set --timeout port knocking opening a port; set contents after the run",
			Rules: rules(table("filter",
				"-A INPUT -p tcp -m tcp --dport 7200 -m set --match-set country src --return-nomatch",
				"-A INPUT -p tcp -m tcp --dport 7200 -m set ! --match-set country src",
				"-A INPUT -p tcp -m tcp --dport 7200 -m set --match-set country src -j DROP",
				"-A INPUT -p udp -m udp --dport 7210 -j SET --add-set knock src --timeout 10",
				"-A INPUT -p tcp -m tcp --dport 7211 -m set --match-set knock src -j ACCEPT",
				"-A INPUT -p tcp -m tcp --dport 7211 -j DROP")),
			Listen: Listen{TCP: []uint16{7200, 7211}, UDP: []uint16{7210}},
			Client: client,
		},
		Sets:    sets.String(),
		Compare: []string{"country", "knock"},
	}}
}

// IpsetOutcome is an Outcome plus both sides' set members.
type IpsetOutcome struct {
	*Outcome
	KernelSets, UptablesSets map[string][]string
}

// RunIpset runs one ipset scenario (root).
func (sc *IpsetScenario) RunIpset(ctx context.Context, idx int, self, dir string) (out *IpsetOutcome, err error) {
	start := time.Now()
	if _, err := exec.LookPath("ipset"); err != nil {
		return nil, errors.New("needs ipset (apt-get install -y ipset)")
	}
	t := NewTopology(idx, os.Getpid(), dir)
	rules := t.Expand(sc.Rules)
	setsText := t.Expand(sc.Sets)
	if _, _, err := ipsetEngine(rules, setsText, 0); err != nil {
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
	setsPath, err := scratch(dir, "sets.txt", setsText)
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
	if _, err := nsRun(ctx, t.ServerNS, "ipset", "restore", "-file", setsPath); err != nil {
		return nil, fmt.Errorf("kernel refused the sets: %w", err)
	}
	if _, err := nsRun(ctx, t.ServerNS, "iptables-restore", rulesPath); err != nil {
		return nil, fmt.Errorf("kernel refused the ruleset: %w", err)
	}
	out = &IpsetOutcome{Outcome: &Outcome{Capture: filepath.Join(dir, "server.pcap")}}
	l := sc.Listen
	h, err := startHelper(t.ServerNS, self, "server", helperInput{Listen: &l})
	if err != nil {
		return nil, fmt.Errorf("server helper: %w", err)
	}
	defer h.stop()
	if !h.out.wait(readyTimeout) {
		return nil, fmt.Errorf("server helper not ready within %v: %s", readyTimeout, h.out.text())
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
	out.KernelSets = map[string][]string{}
	for _, name := range sc.Compare {
		s, err := nsRun(ctx, t.ServerNS, "ipset", "save", name)
		if err != nil {
			return out, err
		}
		out.KernelSets[name] = setMembers(s)
	}
	if out.Kernel.Save, err = nsRun(ctx, t.ServerNS, "iptables-save", "-c"); err != nil {
		return out, err
	}
	lines, err := km.lines()
	if err != nil {
		return out, err
	}
	out.Kernel.Log = logLinesFor(lines, t.ServerIf)

	upt, sets, last, err := replayIpset(rules, setsText, t, out.Capture)
	if err != nil {
		return out, err
	}
	out.Uptables = upt
	out.UptablesSets = map[string][]string{}
	for _, name := range sc.Compare {
		var b bytes.Buffer
		if err := sets.Exec([]string{"save", name}, nil, &b, last); err != nil {
			return out, err
		}
		out.UptablesSets[name] = setMembers(b.String())
	}
	var diff strings.Builder
	diff.WriteString(CompareSave(out.Kernel.Save, upt.Save))
	diff.WriteString(CompareLog(out.Kernel.Log, upt.Log))
	for _, name := range sc.Compare {
		diff.WriteString(CompareSetMembers(name, out.KernelSets[name], out.UptablesSets[name]))
	}
	out.Diff = diff.String()
	out.Duration = time.Since(start)
	return out, nil
}

// ipsetEngine loads the sets (timeouts from now) and the rules, parsed
// against them, into a fresh engine (seed 1) with the sets pinned.
func ipsetEngine(rules, setsText string, now int64) (*netfilter.Engine, *ipset.Sets, error) {
	sets := ipset.New(nil)
	if err := sets.Exec([]string{"restore"}, strings.NewReader(setsText), &bytes.Buffer{}, now); err != nil {
		msg, _ := ipset.Report(err)
		return nil, nil, fmt.Errorf("uptables cannot restore the sets: %s", strings.TrimSpace(msg))
	}
	rs, err := iptables.Restore(ruleset.New(xt.IPv4), builtin.RegistryWithSets(sets), strings.NewReader(rules), iptables.RestoreOptions{Counters: true})
	if err != nil {
		var ie *iptables.Error
		if errors.As(err, &ie) {
			return nil, nil, fmt.Errorf("uptables cannot parse the ruleset: %s", ie.Text("iptables-restore"))
		}
		return nil, nil, err
	}
	eng := netfilter.New(netfilter.Config{Seed: 1})
	if err := builtin.PinSets(eng, sets); err != nil {
		return nil, nil, err
	}
	if err := eng.Load(rs); err != nil {
		return nil, nil, fmt.Errorf("uptables cannot load the ruleset: %w", err)
	}
	sets.SetReferences(builtin.SetReferences(rs))
	return eng, sets, nil
}

// firstPacketNS is the capture's first frame time.
func firstPacketNS(capPath string) (int64, error) {
	data, err := os.ReadFile(capPath)
	if err != nil {
		return 0, err
	}
	var first int64
	stop := errors.New("stop")
	r := replay.New(netfilter.New(netfilter.Config{}), replay.Config{Observer: observerFunc(func(ev *replay.Event) error {
		first = ev.TimeNS
		return stop
	})})
	if err := r.Replay(bytes.NewReader(data)); err != nil && !errors.Is(err, stop) {
		return 0, err
	}
	return first, nil
}

type observerFunc func(ev *replay.Event) error

func (f observerFunc) Event(ev *replay.Event) error { return f(ev) }

// replayIpset replays the capture with the sets loaded at its first
// packet's time and returns the counters/LOG view, the sets and the last
// packet's time.
func replayIpset(rules, setsText string, t Topology, capPath string) (*UptablesResult, *ipset.Sets, int64, error) {
	first, err := firstPacketNS(capPath)
	if err != nil {
		return nil, nil, 0, err
	}
	eng, sets, err := ipsetEngine(rules, setsText, first)
	if err != nil {
		return nil, nil, 0, err
	}
	var logBuf bytes.Buffer
	r := replay.New(eng, replay.Config{Local: []netip.Prefix{netip.MustParsePrefix(t.Server + "/32")}, InIface: t.ServerIf,
		OutIface: t.ServerIf, Log: &logBuf, LocalOwner: &replay.Owner{UID: 0, GID: 0}})
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
	return res, sets, r.LastTimeNS(), nil
}

// setMembers returns the "add" lines of `ipset save` output, set name
// dropped, sorted (the kernel lists in its hash order).
func setMembers(save string) []string {
	var out []string
	for _, l := range strings.Split(save, "\n") {
		if rest, ok := strings.CutPrefix(l, "add "); ok {
			if _, m, ok := strings.Cut(rest, " "); ok {
				out = append(out, m)
			}
		}
	}
	sort.Strings(out)
	return out
}

// CompareSetMembers compares two sets' members: the same elements and
// flags, and each kernel "timeout N" at most ipsetTimeoutSlack below the
// replay's and never above it.
func CompareSetMembers(name string, kernel, upt []string) string {
	key := func(m string) (string, int) {
		f := strings.Fields(m)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "timeout" {
				n, _ := strconv.Atoi(f[i+1])
				return strings.Join(append(f[:i:i], f[i+2:]...), " "), n
			}
		}
		return m, -1
	}
	var d strings.Builder
	um := map[string]int{}
	for _, m := range upt {
		k, n := key(m)
		um[k] = n
	}
	km := map[string]bool{}
	for _, m := range kernel {
		k, kt := key(m)
		km[k] = true
		ut, ok := um[k]
		switch {
		case !ok:
			fmt.Fprintf(&d, "ipset %s: kernel only: %s\n", name, m)
		case kt > ut || ut-kt > ipsetTimeoutSlack:
			fmt.Fprintf(&d, "ipset %s: timeout kernel %d, uptables %d: %s\n", name, kt, ut, k)
		}
	}
	for _, m := range upt {
		if k, _ := key(m); !km[k] {
			fmt.Fprintf(&d, "ipset %s: uptables only: %s\n", name, m)
		}
	}
	return d.String()
}
