package match

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

// exRun runs Matches then Explain, as the engine's tracer does, and
// returns "match|no match: explanation".
func exRun(t *testing.T, m xt.PacketMatcher, c *xt.Ctx) string {
	t.Helper()
	ok := m.Matches(c)
	x, isEx := m.(xt.Explainer)
	if !isEx {
		t.Fatalf("%T is not an xt.Explainer", m)
	}
	v := "no match"
	if ok {
		v = "match"
	}
	return v + ": " + string(x.Explain(c, ok, nil))
}

func exTCP(src string, sport, dport uint16, flags uint8, opts ...byte) []byte {
	return packettest.TCP(packettest.TCPOpts{Src: src, Dst: "10.99.0.2", SrcPort: sport, DstPort: dport, Flags: flags, Seq: 1, Window: 1000, Options: opts})
}

// TestExplainStateless: each stateless match names the fields it tested
// with the packet's values and, when it failed, what the rule wanted.
func TestExplainStateless(t *testing.T) {
	syn := exTCP("10.0.0.1", 40000, 22, packettest.SYN)
	synMSS := exTCP("10.0.0.1", 40000, 22, packettest.SYN, packettest.MSS(1460)...)
	ping := packettest.EchoRequest("10.0.0.1", "10.99.0.2", 7, 1, 100) // 128 bytes
	dns := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.99.0.2", SrcPort: 5353, DstPort: 53, Payload: []byte("GET /admin HTTP/1.1")})
	frag := packettest.Fragments(packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.99.0.2", SrcPort: 1, DstPort: 53, Payload: make([]byte, 64)}), 32)[1]
	cases := []struct {
		match string
		proto uint8
		args  string
		pkt   []byte
		want  string
	}{
		{"tcp", 6, "--dport 22", syn, "match: spt 40000 dpt 22 flags SYN"},
		{"tcp", 6, "--dport 80", syn, "no match: spt 40000 dpt 22 (want 80) flags SYN"},
		{"tcp", 6, "! --sport 40000", syn, "no match: spt 40000 (want !40000) dpt 22 flags SYN"},
		{"tcp", 6, "--dport 1:1024 --tcp-flags SYN,ACK ACK", syn, "no match: spt 40000 dpt 22 flags SYN (want ACK of SYN,ACK)"},
		{"tcp", 6, "--syn", syn, "match: spt 40000 dpt 22 flags SYN"},
		{"tcp", 6, "--tcp-option 2", synMSS, "match: spt 40000 dpt 22 flags SYN, option 2 present"},
		{"tcp", 6, "--tcp-option 8", synMSS, "no match: spt 40000 dpt 22 flags SYN, option 8 absent (want present)"},
		{"udp", 17, "--dport 53", dns, "match: spt 5353 dpt 53"},
		{"udp", 17, "--sport 53", dns, "no match: spt 5353 (want 53) dpt 53"},
		{"udp", 17, "", frag, "no match: non-first fragment (offset 4): no UDP header"},
		{"icmp", 1, "--icmp-type echo-request", ping, "match: type 8 code 0"},
		{"icmp", 1, "--icmp-type echo-reply", ping, "no match: type 8 code 0 (want type 0)"},
		{"multiport", 6, "--dports 22,80", syn, "match: dpt 22 listed in 22,80"},
		{"multiport", 6, "--ports 443,8000:8080", syn, "no match: spt 40000 dpt 22 not in 443,8000:8080"},
		{"multiport", 6, "! --dports 22", syn, "no match: dpt 22 listed in 22 (inverted)"},
		{"length", 0, "--length 100:200", ping, "match: length 128"},
		{"length", 0, "! --length 128", ping, "no match: length 128 (want !128)"},
		{"ttl", 0, "--ttl-lt 10", ping, "no match: ttl 64 (want < 10)"},
		{"ttl", 0, "--ttl-eq 64", ping, "match: ttl 64"},
		{"mark", 0, "--mark 0x2/0xff", ping, "no match: mark 0x0 (want 0x2/0xff)"},
		{"iprange", 0, "--src-range 10.0.0.0-10.0.0.9 --dst-range 10.99.0.3-10.99.0.9", ping, "no match: src 10.0.0.1 dst 10.99.0.2 (want 10.99.0.3-10.99.0.9)"},
		{"iprange", 0, "! --src-range 10.0.0.0-10.0.0.9", ping, "no match: src 10.0.0.1 (want !10.0.0.0-10.0.0.9)"},
		{"string", 0, "--algo bm --string /admin", dns, "match: \"/admin\" found at offset 32"},
		{"string", 0, "--algo kmp --string /ADMIN --icase", dns, "match: \"/ADMIN\" found at offset 32"},
		{"string", 0, "--algo bm --string /admin --to 30", dns, "no match: \"/admin\" not found in bytes 0-30"},
		{"time", 0, "--timestart 09:00 --timestop 17:00", ping, "no match: 2026-01-01 00:00:00 Thu UTC (want from 09:00:00 to 17:00:00 UTC)"},
		{"time", 0, "--weekdays Thu", ping, "match: 2026-01-01 00:00:00 Thu UTC"},
		{"comment", 0, "--comment ssh-pool", ping, "match: \"ssh-pool\""},
		{"state", 0, "--state ESTABLISHED,RELATED", ping, "no match: ctstate INVALID (want RELATED,ESTABLISHED)"},
		{"state", 0, "! --state NEW", ping, "match: ctstate INVALID"},
		{"conntrack", 0, "--ctstate INVALID", ping, "match: ctstate INVALID, no connection"},
		{"conntrack", 0, "--ctproto 1", ping, "no match: no connection: only --ctstate can match"},
		{"connmark", 0, "--mark 1", ping, "no match: no connection"},
	}
	for _, tc := range cases {
		m := rtMatcher(t, tc.match, xt.IPv4, tc.proto, tc.args, nil)
		c := &xt.Ctx{P: rtPkt(tc.pkt), Hook: xt.LocalIn}
		c.P.TimeNS = srtEpoch
		if got := exRun(t, m, c); got != tc.want {
			t.Errorf("-m %s %s:\n got %s\nwant %s", tc.match, tc.args, got, tc.want)
		}
	}
}

// TestExplainConntrack: state, conntrack and connmark on real connections.
func TestExplainConntrack(t *testing.T) {
	h := newCLHost(t)
	st := rtMatcher(t, "state", xt.IPv4, 0, "--state ESTABLISHED", nil)
	ct := rtMatcher(t, "conntrack", xt.IPv4, 0, "--ctstate NEW,ESTABLISHED --ctdir REPLY --ctorigdstport 22", nil)
	cm := rtMatcher(t, "connmark", xt.IPv4, 0, "--mark 0x5", nil)
	var got []string
	rec := func(m xt.PacketMatcher) xt.PacketMatcher {
		return exRecorder{m: m, t: t, out: &got}
	}
	h.pass(clSeg("10.0.0.1", "10.99.0.2", 40000, 22, packettest.SYN, 1000, 0), packet.PreRouting, rec(st))
	h.pass(clSeg("10.0.0.1", "10.99.0.2", 40001, 22, packettest.SYN, 1000, 0), packet.PreRouting, rec(ct))
	h.pass(clSeg("10.99.0.2", "10.0.0.1", 22, 40001, packettest.SYN|packettest.ACK, 5000, 1001), packet.LocalOut, nil)
	h.pass(clSeg("10.0.0.1", "10.99.0.2", 40001, 22, packettest.ACK, 1001, 5001), packet.PreRouting, rec(st))
	h.pass(clSeg("10.0.0.1", "10.99.0.2", 40001, 22, packettest.ACK, 1001, 5001), packet.PreRouting, rec(ct))
	h.pass(clSeg("10.0.0.1", "10.99.0.2", 40001, 22, packettest.ACK, 1001, 5001), packet.PreRouting, rec(cm))
	want := []string{
		"no match: ctstate NEW (want ESTABLISHED)",
		"no match: ctstate NEW, ctdir ORIGINAL (want REPLY)",
		"match: ctstate ESTABLISHED",
		"no match: ctstate ESTABLISHED, ctdir ORIGINAL (want REPLY)",
		"no match: ctmark 0x0 (want 0x5)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// exRecorder runs a match and records its explanation, in place of the
// rule a test harness evaluates.
type exRecorder struct {
	m   xt.PacketMatcher
	t   *testing.T
	out *[]string
}

func (r exRecorder) Matches(c *xt.Ctx) bool {
	ok := r.m.Matches(c)
	v := "no match"
	if ok {
		v = "match"
	}
	*r.out = append(*r.out, v+": "+string(r.m.(xt.Explainer).Explain(c, ok, nil)))
	return ok
}

// TestExplainRecent: the SSH brute-force pattern of the seeds (--set then
// --update --seconds --hitcount): the hits the packet found in the list,
// without its own stamp, and the list untouched by Explain.
func TestExplainRecent(t *testing.T) {
	env := &xt.Env{Named: &srtNamed{}}
	set := srtRecent(t, env, xt.IPv4, "--name SSHPOOL --set")
	upd := srtRecent(t, env, xt.IPv4, "--name SSHPOOL --update --seconds 3600 --hitcount 5")
	chk := srtRecent(t, env, xt.IPv4, "--name SSHPOOL --rcheck --seconds 10")
	rem := srtRecent(t, env, xt.IPv4, "--name SSHPOOL --remove")
	var got []string
	for i := 0; i < 6; i++ {
		c := srtCtx(t, srtPing("192.0.2.1"), time.Duration(i)*time.Minute)
		got = append(got, exRun(t, upd, c))
		if i < 5 {
			got = append(got, exRun(t, set, c))
		}
	}
	c := srtCtx(t, srtPing("192.0.2.1"), 20*time.Minute)
	got = append(got, exRun(t, chk, c), exRun(t, rem, c), exRun(t, rem, c), exRun(t, chk, c))
	c = srtCtx(t, srtPing("192.0.2.99"), 20*time.Minute)
	got = append(got, exRun(t, upd, c))
	want := []string{
		"no match: SSHPOOL 192.0.2.1: not listed",
		"match: SSHPOOL 192.0.2.1: recorded, 1 stamp, ttl 64",
		"no match: SSHPOOL 192.0.2.1: 1 hit within 3600s (need 5), ttl 64",
		"match: SSHPOOL 192.0.2.1: recorded, 2 stamps, ttl 64",
		"no match: SSHPOOL 192.0.2.1: 2 hits within 3600s (need 5), ttl 64",
		"match: SSHPOOL 192.0.2.1: recorded, 3 stamps, ttl 64",
		"no match: SSHPOOL 192.0.2.1: 3 hits within 3600s (need 5), ttl 64",
		"match: SSHPOOL 192.0.2.1: recorded, 4 stamps, ttl 64",
		"no match: SSHPOOL 192.0.2.1: 4 hits within 3600s (need 5), ttl 64",
		"match: SSHPOOL 192.0.2.1: recorded, 5 stamps, ttl 64",
		"match: SSHPOOL 192.0.2.1: 5 hits within 3600s (need 5), ttl 64, this packet recorded",
		"no match: SSHPOOL 192.0.2.1: 0 hits within 10s (need 1), ttl 64",
		"match: SSHPOOL 192.0.2.1: was listed, removed",
		"no match: SSHPOOL 192.0.2.1: not listed",
		"no match: SSHPOOL 192.0.2.1: not listed",
		"no match: SSHPOOL 192.0.2.99: not listed",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestExplainConnlimit: the count of the packet's /32 (and /24) in the
// rule's own bookkeeping, this connection included, against the limit.
func TestExplainConnlimit(t *testing.T) {
	h := newCLHost(t)
	above := srtConnlimit(t, &xt.Env{}, "--connlimit-above 3")
	upto := srtConnlimit(t, &xt.Env{}, "--connlimit-upto 1 --connlimit-mask 24")
	var got []string
	h.accept = false
	for i := 0; i < 5; i++ {
		h.syn(exRecorder{m: above, t: t, out: &got}, "192.0.2.1", uint16(40000+i))
	}
	h.accept = true
	for i := 0; i < 2; i++ {
		h.syn(exRecorder{m: upto, t: t, out: &got}, fmt.Sprintf("198.51.100.%d", i+1), 41000)
	}
	want := []string{
		"no match: 192.0.2.1/32 holds 1 connection (not above 3)",
		"no match: 192.0.2.1/32 holds 2 connections (not above 3)",
		"no match: 192.0.2.1/32 holds 3 connections (not above 3)",
		"match: 192.0.2.1/32 holds 4 connections (above 3)",
		"match: 192.0.2.1/32 holds 4 connections (above 3)",
		"match: 198.51.100.0/24 holds 1 connection (upto 1)",
		"no match: 198.51.100.0/24 holds 2 connections (more than 1)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestExplainBuckets: limit and hashlimit show the bucket as the packet
// found it; quota and statistic their counters.
func TestExplainBuckets(t *testing.T) {
	lim := srtBuild(t, srtParse(t, newLimitSpec(), xt.IPv4, "--limit 1/sec --limit-burst 2"), &xt.Env{})
	hl := srtHashlimit(t, &xt.Env{Named: &srtNamed{}}, xt.IPv4, "--hashlimit-name HL --hashlimit-upto 1/sec --hashlimit-burst 2 --hashlimit-mode srcip,dstport")
	q := rtMatcher(t, "quota", xt.IPv4, 0, "--quota 200", nil)
	nth := rtMatcher(t, "statistic", xt.IPv4, 0, "--mode nth --every 3 --packet 0", nil)
	var got []string
	for _, at := range []time.Duration{0, 0, 0, 500 * time.Millisecond} {
		c := srtCtx(t, srtUDP("192.0.2.1", "10.99.0.2", 53, 72), at) // 100 bytes
		got = append(got, exRun(t, lim, c), exRun(t, hl, c), exRun(t, q, c), exRun(t, nth, c))
	}
	want := []string{
		"match: bucket 2 of burst 2 tokens, took 1",
		"match: HL srcip 192.0.2.1 dstport 53: 2 of burst 2 tokens, under the limit",
		"match: 100-byte packet fits, 100 of 200 bytes left",
		"match: nth: counter now 0 of every 3 (match at 0)",
		"match: bucket 1 of burst 2 tokens, took 1",
		"match: HL srcip 192.0.2.1 dstport 53: 1 of burst 2 tokens, under the limit",
		"match: 100-byte packet fits, 0 of 200 bytes left",
		"no match: nth: counter now 1 of every 3 (match at 0)",
		"no match: bucket 0 of burst 2 tokens, 1 needed",
		"no match: HL srcip 192.0.2.1 dstport 53: 0 of burst 2 tokens, over the limit",
		"no match: 100-byte packet does not fit, 0 of 200 bytes left",
		"no match: nth: counter now 2 of every 3 (match at 0)",
		"no match: bucket 0.5 of burst 2 tokens, 1 needed",
		"no match: HL srcip 192.0.2.1 dstport 53: 0.5 of burst 2 tokens, over the limit",
		"no match: 100-byte packet does not fit, 0 of 200 bytes left",
		"match: nth: counter now 0 of every 3 (match at 0)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rnd := rtMatcher(t, "statistic", xt.IPv4, 0, "--mode random --probability 0.25", nil)
	c := srtCtx(t, srtPing("192.0.2.1"), 0)
	hits := 0
	for i := 0; i < 40; i++ {
		s := exRun(t, rnd, c)
		var v, p float64
		i := strings.Index(s, "random ")
		if _, err := fmt.Sscanf(s[i:], "random %f (want < %f)", &v, &p); err != nil || p != 0.25 {
			t.Fatalf("%q: %v", s, err)
		}
		if strings.HasPrefix(s, "match") != (v < p) {
			t.Errorf("%q: the draw shown does not explain the result", s)
		}
		if v < p {
			hits++
		}
	}
	if hits == 0 || hits == 40 {
		t.Errorf("%d of 40 draws below 0.25: the test saw one outcome only", hits)
	}
}

// TestExplainLeavesStateAlone: a run with an Explain after every Matches
// gives the same results as one without, for every stateful match.
func TestExplainLeavesStateAlone(t *testing.T) {
	mk := map[string]func() xt.PacketMatcher{
		"recent": func() xt.PacketMatcher {
			return srtRecent(t, &xt.Env{Named: &srtNamed{}}, xt.IPv4, "--name R --update --seconds 2 --hitcount 2 --reap")
		},
		"limit": func() xt.PacketMatcher {
			return srtBuild(t, srtParse(t, newLimitSpec(), xt.IPv4, "--limit 2/sec --limit-burst 3"), &xt.Env{})
		},
		"hashlimit": func() xt.PacketMatcher {
			return srtHashlimit(t, &xt.Env{Named: &srtNamed{}}, xt.IPv4, "--hashlimit-name H --hashlimit-above 2/sec --hashlimit-mode srcip")
		},
		"quota": func() xt.PacketMatcher { return rtMatcher(t, "quota", xt.IPv4, 0, "--quota 1000", nil) },
		"nth": func() xt.PacketMatcher {
			return rtMatcher(t, "statistic", xt.IPv4, 0, "--mode nth --every 4 --packet 1", nil)
		},
		"random": func() xt.PacketMatcher {
			return rtMatcher(t, "statistic", xt.IPv4, 0, "--mode random --probability 0.5", nil)
		},
		"connlimit": func() xt.PacketMatcher { return srtConnlimit(t, &xt.Env{}, "--connlimit-above 2") },
	}
	for name, f := range mk {
		var runs [2]string
		for k := range runs {
			m := f()
			var b strings.Builder
			for i := 0; i < 40; i++ {
				src := fmt.Sprintf("192.0.2.%d", i%3+1)
				c := srtCtx(t, packettest.TCP(packettest.TCPOpts{Src: src, Dst: "10.99.0.2", SrcPort: uint16(1000 + i), DstPort: 22, Flags: packettest.SYN}), time.Duration(i)*150*time.Millisecond)
				ok := m.Matches(c)
				if k == 1 {
					for j := 0; j < 3; j++ {
						m.(xt.Explainer).Explain(c, ok, nil)
					}
				}
				fmt.Fprintf(&b, "%t", ok)
			}
			runs[k] = b.String()
		}
		if runs[0] != runs[1] {
			t.Errorf("%s: Explain changed the results:\n%s\n%s", name, runs[0], runs[1])
		}
	}
}
