package kerneldiff

// Conntrack scenarios: the differential run of Scenario.Run (rules in the
// kernel, real sockets, capture, replay, counters and LOG lines compared)
// with the server's connection table as one more View, `conntrack -L` in
// the namespace against the replay engine's table, remaining timeouts
// included (within ctTimeoutSlack). They cover what REJECT's own packets
// do to connection tracking (nf_ct_set_closing on tcp-reset, the RST and
// ICMP errors RELATED in OUTPUT, a rejected SYN never confirmed) and
// NFQUEUE --queue-bypass with nothing bound to the queue.

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/conntrack"
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
			Views:  []View{ConntrackView()},
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
			Views:  []View{ConntrackView()},
			Client: []Step{
				udp("{C}", 7101, 2, 50, 6), udp("{C}", 7102, 2, 50, 6), udp("{C}", 7103, 2, 50, 6),
				udp("{C}", 7104, 2, 50, 6), udp("{C}", 7105, 2, 50, 6),
			},
		},
	}
}

// ConntrackView compares the connection tables: `conntrack -L` in the
// kernel's namespace, read first thing after the traffic, against the
// replay engine's table at the last captured packet; the same entries
// (protocol, state, both tuples, flags, mark) and each kernel timeout at
// most ctTimeoutSlack seconds below the replay's (see CompareConntrack).
func ConntrackView() View {
	return View{
		Name:      "conntrack",
		Kernel:    kernelConntrackL,
		Uptables:  uptablesConntrackL,
		Normalise: normaliseConntrackL,
		Compare:   CompareConntrack,
	}
}

// kernelConntrackL is the kernel's connection table as `conntrack -L`
// prints it (standard output: the summary line goes to standard error).
func kernelConntrackL(ctx context.Context, k *KernelEnv) (string, error) {
	return k.Run(ctx, "conntrack", "-L")
}

// uptablesConntrackL is the replay engine's connection table as
// `conntrack -L` prints it, remaining timeouts at the last packet.
func uptablesConntrackL(u *ReplayEnd) (string, error) {
	var b strings.Builder
	if tb := u.Engine.ConntrackTable(); tb != nil {
		var line []byte
		tb.Range(u.LastNS, func(e *conntrack.Entry) bool {
			line = e.AppendConntrackL(line[:0], u.LastNS)
			b.Write(line)
			b.WriteByte('\n')
			return true
		})
	}
	return b.String(), nil
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
