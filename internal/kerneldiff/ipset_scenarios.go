package kerneldiff

// Ipset scenarios: the differential run of Scenario.Run with ipsets
// (Scenario.Sets): the same sets are restored into the server namespace's
// kernel (`ipset restore -file`) and into the replay's *ipset.Sets (their
// timeouts counting from the capture's first packet, as `uptables replay
// --ipsets` does); counters and LOG lines are compared as in every
// scenario, and the sets after the traffic too (SetView): `ipset save` of
// the kernel against the replay's sets at its last packet, members
// compared as sorted lines, remaining timeouts within ipsetTimeoutSlack.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/dataplane/replay"
	"github.com/uptables/uptables/internal/netfilter"
)

// ipsetTimeoutSlack is how far the kernel's remaining timeout (read after
// the settle delay) may lag the replay's (at the last captured packet).
const ipsetTimeoutSlack = 3

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
func IpsetScenarios() []Scenario {
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
	return []Scenario{{
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
		Sets:   sets.String(),
		Views:  []View{SetView("country"), SetView("knock")},
	}}
}

// SetView compares the members of one set after the traffic: `ipset save
// NAME` in the kernel's namespace against the replay's set at its last
// packet (see CompareSetMembers).
func SetView(name string) View {
	return View{
		Name: "ipset " + name,
		Kernel: func(ctx context.Context, k *KernelEnv) (string, error) {
			return k.Run(ctx, "ipset", "save", name)
		},
		Uptables: func(u *ReplayEnd) (string, error) {
			if u.Sets == nil {
				return "", fmt.Errorf("the scenario has no sets")
			}
			var b bytes.Buffer
			err := u.Sets.Exec([]string{"save", name}, nil, &b, u.LastNS)
			return b.String(), err
		},
		Normalise: setMembers,
		Compare:   func(kernel, upt []string) string { return CompareSetMembers(name, kernel, upt) },
	}
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
