package persist

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/statestore"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
	"github.com/uptables/uptables/internal/xt/match"
)

// t0 is a realistic packet time (ns since the epoch, November 2023).
const t0 = int64(1_700_000_000) * 1e9

// procBoot is the boot time used to print /proc jiffies.
var procBoot = statestore.ProcJiffies{BootNS: t0 - 3600e9}

type nopEmitter struct{}

func (nopEmitter) Reply(*xt.Ctx, []byte)      {}
func (nopEmitter) Log(*xt.Ctx, uint8, []byte) {}

// rig is an engine with one worker, driven by synthetic packets.
type rig struct {
	t *testing.T
	e *netfilter.Engine
	w *netfilter.Worker
	p packet.Packet
}

func parseRules(t testing.TB, commands string) *ruleset.Ruleset {
	t.Helper()
	reg := builtin.Registry()
	rs := ruleset.New(xt.IPv4)
	for _, line := range strings.Split(strings.TrimSpace(commands), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		args, err := iptables.SplitShell(line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		var out strings.Builder
		res, _, err := iptables.Run(rs, reg, args, &out)
		if err != nil {
			t.Fatalf("iptables %s: %v", line, err)
		}
		if res.Ruleset != nil {
			rs = res.Ruleset
		}
	}
	return rs
}

func newRig(t *testing.T, seed uint64, commands string) *rig {
	t.Helper()
	e := netfilter.New(netfilter.Config{Seed: seed})
	if err := e.Load(parseRules(t, commands)); err != nil {
		t.Fatalf("load: %v", err)
	}
	return &rig{t: t, e: e, w: e.NewWorker(nopEmitter{})}
}

func (r *rig) reload(commands string) {
	r.t.Helper()
	if err := r.e.Load(parseRules(r.t, commands)); err != nil {
		r.t.Fatalf("reload: %v", err)
	}
}

func (r *rig) feed(b []byte, now int64) xt.Verdict {
	r.t.Helper()
	if st := r.p.Decode(b); st == packet.BadL3 {
		r.t.Fatal("test packet does not decode")
	}
	r.p.InIface, r.p.OutIface = "eth0", ""
	r.p.TimeNS = now
	return r.w.Process(netfilter.PathInput, &r.p).Verdict
}

func (r *rig) tcp(src string, dport uint16, ttl int, now int64) xt.Verdict {
	return r.feed(packettest.TCP(packettest.TCPOpts{Src: src, Dst: "10.0.0.100", SrcPort: 40000, DstPort: dport,
		Flags: packettest.SYN, IP: packettest.IP{TTL: ttl}}), now)
}

func (r *rig) udp(src string, dport uint16, size int, now int64) xt.Verdict {
	return r.feed(packettest.UDP(packettest.UDPOpts{Src: src, Dst: "10.0.0.100", SrcPort: 5000, DstPort: dport,
		Payload: make([]byte, size)}), now)
}

// procRecent renders every recent list as /proc/net/xt_recent does.
func procRecent(e *netfilter.Engine) string {
	var b []byte
	for _, name := range e.SharedNames(match.NamedRecentKind) {
		l, ok := match.RecentListByName(e.Named(), name)
		if !ok {
			continue
		}
		b = append(b, "== "+name+"\n"...)
		for _, en := range l.Entries(nil) {
			b = statestore.AppendRecentProc(b, &en, procBoot)
		}
	}
	return string(b)
}

// procHashlimit renders every IPv4 hashlimit table at now as
// /proc/net/ipt_hashlimit does, lines sorted (the kernel prints in bucket
// order, which depends on each table's random hash key).
func procHashlimit(e *netfilter.Engine, now int64) string {
	var out []string
	for _, name := range e.SharedNames(match.NamedHashlimitKind4) {
		tb, ok := match.HashlimitTableByName(e.Named(), xt.IPv4, name)
		if !ok {
			continue
		}
		var lines []string
		tb.Entries(now, func(en *statestore.HashlimitEntry) bool {
			lines = append(lines, string(statestore.AppendHashlimitProc(nil, en, false)))
			return true
		})
		sort.Strings(lines)
		out = append(out, "== "+name+"\n"+strings.Join(lines, ""))
	}
	return strings.Join(out, "")
}

func at(ns int64) time.Time { return time.Unix(0, ns) }

// section returns one list's part of a procRecent rendering.
func section(proc, name string) string {
	i := strings.Index(proc, "== "+name+"\n")
	if i < 0 {
		return ""
	}
	rest := proc[i:]
	if j := strings.Index(rest[1:], "== "); j >= 0 {
		return rest[:j+1]
	}
	return rest
}

func mustList(t *testing.T, r *rig, name string) []statestore.RecentEntry {
	t.Helper()
	l, ok := match.RecentListByName(r.e.Named(), name)
	if !ok {
		t.Fatalf("no list %s", name)
	}
	return l.Entries(nil)
}
