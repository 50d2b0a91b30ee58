package demo

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables"
)

// runOrSkip plays the demo, skipping while the engine cannot run one of
// the rules' extensions yet.
func runOrSkip(t *testing.T, cfg Config) (*Result, string) {
	t.Helper()
	var out bytes.Buffer
	cfg.Out = &out
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		if strings.Contains(err.Error(), "not supported by the uptables engine yet") {
			t.Skipf("needs a runtime not present yet: %v", err)
		}
		t.Fatalf("%v\noutput so far:\n%s", err, out.String())
	}
	return res, out.String()
}

// TestKernelOutcomes checks the demo's outcomes against what the kernel
// gives for the same connection pattern and the embedded rules:
//
//	1 -m state --state ESTABLISHED,RELATED -j ACCEPT
//	2 --syn -m connlimit --connlimit-above 3 -j REJECT --reject-with tcp-reset
//	3 --syn -m recent --name demo --set
//	4 --syn -m recent --name demo --update --seconds 10 --hitcount 8 -j DROP
//	5 --syn -m limit --limit 1/sec --limit-burst 10 -j ACCEPT
//	6 -p tcp --dport PORT -j DROP
//
// Worked out from the spec:
//
//   - alice (t=0, .25, .5, .75 holding; one closed at 5.0; again at 5.5):
//     §3.2 counts the connection being opened, so with 3 live connections
//     the 4th SYN counts 4 > 3: reset (rule 2, before recent, so no stamp).
//     After one of hers is closed both ways (TIME_WAIT is not counted), the
//     count is 3 again: accepted.
//   - bob (one request per connection at t=1.0, 1.2, ... 2.6, then 8.0 and
//     18.5): §4.2, rule 3 stamps every SYN and rule 4 counts the stamps in
//     the last 10 s including the current one, so SYNs 1-7 pass and the 8th
//     (8 stamps) is dropped; a matching --update adds a stamp, so bob stays
//     blocked at 2.6 and at 8.0 (all stamps since 1.0 are inside the window).
//     At 18.5 every stamp (the last ones at 8.0) is older than 18.5-10 = 8.5:
//     only the new --set stamp counts, 1 < 8: accepted.
//   - the global limit (§5.3 token bucket, 1 token/s, 10 tokens, full at the
//     first packet), tokens before/after each SYN that reaches rule 5:
//     alice 0: 10→9, .25: 9.25→8.25, .5: 8.5→7.5; bob 1.0: 8.0→7.0,
//     1.2: 7.2→6.2, 1.4: 6.4→5.4, 1.6: 5.6→4.6, 1.8: 4.8→3.8, 2.0: 4.0→3.0,
//     2.2: 3.2→2.2 (bob's 2.4 and 2.6 never reach rule 5); the burst: carol
//     3.0: 3.0→2.0, dave 3.1: 2.1→1.1, erin 3.2: 1.2→0.2, then carol 3.3
//     (0.3), dave 3.4 (0.4), erin 3.5 (0.5) find less than one token and
//     fall through to rule 6: dropped; alice 5.5: 2.5→1.5; carol 8.2:
//     4.2→3.2; bob 18.5: 10→9. The tightest margin is half a token, far
//     from any rounding difference between nft (ns) and xt_limit (jiffies).
//
// Counters (packets): rule 2 matched 1 SYN; rule 3 every SYN but alice's
// reset one (23-1 = 22); rule 4 bob's 3 dropped SYNs; rule 5 the 16
// accepted SYNs; rule 6 the 3 SYNs over the limit.
func TestKernelOutcomes(t *testing.T) {
	res, out := runOrSkip(t, Config{})
	want := map[string]string{
		"alice": "accept accept accept reset accept",
		"bob":   "accept accept accept accept accept accept accept drop drop drop accept",
		"carol": "accept drop accept",
		"dave":  "accept drop",
		"erin":  "accept drop",
	}
	for _, c := range Clients() {
		if got := strings.Join(res.Outcomes(c.Name), " "); got != want[c.Name] {
			t.Errorf("%s: got  %s\n       want %s", c.Name, got, want[c.Name])
		}
	}
	// The deciding rule of each refusal and what the client saw.
	wantRule := map[uptables.Outcome]struct {
		rule int
		seen string
	}{
		uptables.Accepted: {5, "reply"},
		uptables.Reset:    {2, "reset"},
	}
	for _, a := range res.Attempts {
		w, ok := wantRule[a.Outcome]
		if a.Outcome == uptables.Dropped {
			ok, w.seen = true, "eof"
			w.rule = 6 // over the limit
			if a.Client == "bob" {
				w.rule = 4 // recent
			}
		}
		if !ok {
			t.Errorf("%s #%d: unexpected outcome %v", a.Client, a.N, a.Outcome)
			continue
		}
		if a.Table != "filter" || a.Chain != "INPUT" || a.Rule != w.rule || a.Packet != "SYN" || a.Seen != w.seen {
			t.Errorf("%s #%d %v: decided by %s %s rule %d on the %s, client saw %q; want filter INPUT rule %d on the SYN, %q",
				a.Client, a.N, a.Outcome, a.Table, a.Chain, a.Rule, a.Packet, a.Seen, w.rule, w.seen)
		}
		if !strings.HasPrefix(a.Spec, "-A INPUT ") || !a.Addr.IsValid() || !a.Addr.Addr().IsLoopback() {
			t.Errorf("%s #%d: spec %q, address %v", a.Client, a.N, a.Spec, a.Addr)
		}
	}
	wantPkts := map[int]uint64{2: 1, 3: 22, 4: 3, 5: 16, 6: 3}
	for _, c := range res.Counters {
		if c.Table != "filter" || c.Chain != "INPUT" {
			continue
		}
		if w, ok := wantPkts[c.Rule]; ok && c.Packets != w {
			t.Errorf("rule %d (%s): %d packets, want %d", c.Rule, c.Spec, c.Packets, w)
		}
		if c.Rule == 1 && c.Packets == 0 {
			t.Errorf("the ESTABLISHED rule counted nothing")
		}
	}
	st := res.Stats
	if st.ConnsAccepted != 16 || st.ConnsReset != 1 || st.ConnsDropped != 6 || st.ConnsActive != 0 || st.UpstreamErrors != 0 {
		t.Errorf("stats %+v", st)
	}
	// What the user reads: the rules, one line per attempt with the
	// deciding rule, the summary and the listing.
	for _, s := range []string{
		"Rules (iptables -S):\n-P INPUT ACCEPT\n",
		fmt.Sprintf("-A INPUT -p tcp -m tcp --dport %d --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 3 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with tcp-reset\n", res.Port),
		"alice 127.0.0.2:",
		"RESET     connection reset by peer (ECONNRESET)\n",
		"connlimit: 4 live connections from 127.0.0.2 counting this one, above 3 -> refused",
		"recent: 8 new connections from 127.0.0.3 within 10s counting this one, --hitcount 8 -> refused",
		"rule 5 (-m limit 1/sec, burst 10) did not match: its bucket was empty",
		"  bob   127.0.0.3 accept accept accept accept accept accept accept drop drop drop accept\n",
		"Chain INPUT (policy ACCEPT 0 packets, 0 bytes)\n",
		"    1    48 REJECT     6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q\n%s", s, out)
		}
	}
}

// The outcomes do not depend on the playback speed: the rules run on the
// script's clock.
func TestPacedRunSameOutcomes(t *testing.T) {
	if testing.Short() {
		t.Skip("paced run takes a second")
	}
	fast, _ := runOrSkip(t, Config{Quiet: true})
	paced, _ := runOrSkip(t, Config{Quiet: true, Duration: time.Second})
	for _, c := range Clients() {
		f, p := strings.Join(fast.Outcomes(c.Name), " "), strings.Join(paced.Outcomes(c.Name), " ")
		if f != p {
			t.Errorf("%s: %s at full speed, %s paced", c.Name, f, p)
		}
	}
}

func TestQuiet(t *testing.T) {
	res, out := runOrSkip(t, Config{Quiet: true})
	if len(res.Attempts) != 23 {
		t.Fatalf("%d attempts, want 23", len(res.Attempts))
	}
	if strings.Contains(out, "ACCEPTED") || strings.Contains(out, "-- alice") {
		t.Errorf("quiet output has per-connection lines:\n%s", out)
	}
	for _, s := range []string{"Rules (iptables -S):", "Outcomes per client:", "  alice 127.0.0.2 accept accept accept reset accept\n", "Chain OUTPUT"} {
		if !strings.Contains(out, s) {
			t.Errorf("quiet output lacks %q\n%s", s, out)
		}
	}
}

// User rules: a refusal on the handshake's last ACK (not the SYN) is
// reported as such, REJECT with an ICMP type closes, and a policy decision
// names the policy.
func TestUserRules(t *testing.T) {
	cases := []struct {
		name, rules string
		outcome     uptables.Outcome
		seen        string
		rule        int
		packet      string
		text        string
	}{
		{"ack-dropped", "-A INPUT -p tcp --syn -j ACCEPT\n-A INPUT -p tcp -s 127.0.0.0/8 -j DROP\n",
			uptables.Dropped, "eof", 2, "ACK", "the SYN passed; the handshake's ACK (client -> proxy, INPUT) decided"},
		{"icmp-reject", "-A INPUT -p tcp -s 127.0.0.4 -j REJECT\n-A INPUT -p tcp -j ACCEPT\n",
			uptables.Closed, "eof", 1, "SYN", "CLOSED    closed without a byte (EOF)"},
		{"policy", "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp ! -s 127.0.0.4 -j ACCEPT\nCOMMIT\n",
			uptables.Dropped, "eof", 0, "SYN", "filter INPUT: no rule decided, the policy: -P INPUT DROP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := uptables.LoadRules(strings.NewReader(tc.rules))
			if err != nil {
				t.Fatal(err)
			}
			res, out := runOrSkip(t, Config{Rules: r})
			for _, a := range res.Attempts {
				refused := a.Client == "carol" || tc.name == "ack-dropped"
				if !refused {
					if a.Outcome != uptables.Accepted || a.Seen != "reply" {
						t.Errorf("%s #%d: %v (%s), want accepted", a.Client, a.N, a.Outcome, a.Seen)
					}
					continue
				}
				if a.Outcome != tc.outcome || a.Seen != tc.seen || a.Rule != tc.rule || a.Packet != tc.packet {
					t.Errorf("%s #%d: %v seen %q rule %d on %s; want %v %q rule %d on %s",
						a.Client, a.N, a.Outcome, a.Seen, a.Rule, a.Packet, tc.outcome, tc.seen, tc.rule, tc.packet)
				}
			}
			if !strings.Contains(out, tc.text) {
				t.Errorf("output lacks %q\n%s", tc.text, out)
			}
		})
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	if _, err := Run(ctx, Config{Out: &out, Duration: 5 * time.Second}); err == nil {
		t.Fatal("a canceled demo reported success")
	}
}
