package persist

import (
	"sort"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
	"github.com/uptables/uptables/internal/xt/match"
)

const rules6 = `
-A INPUT -p udp -m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 4 --hashlimit-mode srcip --hashlimit-srcmask 64 --hashlimit-name HL6 -j ACCEPT
-A INPUT -p udp -j DROP
-A INPUT -p tcp -m recent --name R6 --set
`

func newRig6(t *testing.T, seed uint64) *rig {
	t.Helper()
	reg := builtin.Registry()
	rs := ruleset.New(xt.IPv6)
	for _, line := range strings.Split(strings.TrimSpace(rules6), "\n") {
		args, err := iptables.SplitShell(line)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		res, _, err := iptables.Run(rs, reg, args, &out)
		if err != nil {
			t.Fatalf("ip6tables %s: %v", line, err)
		}
		if res.Ruleset != nil {
			rs = res.Ruleset
		}
	}
	e := netfilter.New(netfilter.Config{Seed: seed})
	if err := e.Load(rs); err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, e: e, w: e.NewWorker(nopEmitter{})}
}

func proc6(e *netfilter.Engine, now int64) string {
	tb, ok := match.HashlimitTableByName(e.Named(), xt.IPv6, "HL6")
	if !ok {
		return "no table"
	}
	var lines []string
	tb.Entries(now, func(en *statestore.HashlimitEntry) bool {
		lines = append(lines, string(statestore.AppendHashlimitProc(nil, en, true)))
		return true
	})
	sort.Strings(lines)
	return strings.Join(lines, "")
}

// TestRoundTripIPv6: an ip6tables hashlimit table (kind hashlimit6, /64
// source keys) and a recent list of IPv6 entries come back identical.
func TestRoundTripIPv6(t *testing.T) {
	a := newRig6(t, 1)
	now := t0
	for i := 0; i < 9; i++ {
		src := []string{"2001:db8:1::1", "2001:db8:1::2", "2001:db8:2::1"}[i%3]
		a.feed(packettest.UDP(packettest.UDPOpts{Src: src, Dst: "2001:db8::100", SrcPort: 1, DstPort: 53}), now)
		a.feed(packettest.TCP(packettest.TCPOpts{Src: src, Dst: "2001:db8::100", SrcPort: 1, DstPort: 22, Flags: packettest.SYN}), now)
		now += 20e6
	}
	dir := t.TempDir()
	if err := Save(dir, a.e, at(now)); err != nil {
		t.Fatal(err)
	}
	b := newRig6(t, 2)
	rep, err := Load(dir, b.e, at(now))
	if err != nil {
		t.Fatal(err)
	}
	o := findOutcome(t, rep, "hashlimit6", "HL6")
	if o.Restored != 2 {
		t.Fatalf("HL6: %s", rep.String())
	}
	if pa, pb := proc6(a.e, now), proc6(b.e, now); pa != pb || !strings.Contains(pa, "2001:0db8:0001:0000:0000:0000:0000:0000:0->") {
		t.Fatalf("ip6t_hashlimit differs:\n%s\nvs\n%s", pa, pb)
	}
	if ra, rb := procRecent(a.e), procRecent(b.e); ra != rb || strings.Count(ra, "src=2001:0db8:") != 3 {
		t.Fatalf("recent differs:\n%s\nvs\n%s", ra, rb)
	}
}
