package kerneldiff

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Random scenarios: the same ruleset, two ways (with connection tracking,
// which defragments before raw and classifies every packet, and without,
// where PREROUTING sees the fragments themselves), each fed the hostile
// stream of Generate. Every rule but a few counts without a target, so
// that each packet is tested against all of them; LOG rules sample a
// quarter of the packets by IP ID (u32) so the kernel's log buffer holds a
// long run; the limit rules have a one-per-hour rate, so only their burst
// matters and timing cannot move a decision.

// randomLog is the LOG target with every option that prints packet bytes.
func randomLog(prefix string) string {
	return `-j LOG --log-prefix "` + prefix + `" --log-tcp-sequence --log-tcp-options --log-ip-options`
}

// diagRules are LOG rules that print every packet's conntrack state in
// mangle PREROUTING and OUTPUT (KERNELDIFF_RANDOM_DIAG=1): the LOG diff
// then names each packet the two sides classify differently.
func diagRules() []string {
	var out []string
	for _, chain := range []string{"PREROUTING", "OUTPUT"} {
		for _, st := range []string{"INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED"} {
			out = append(out, "-A "+chain+" -m conntrack --ctstate "+st+` -j LOG --log-prefix "d`+st[:3]+` "`)
		}
	}
	return out
}

// randomStatefulRules uses state/conntrack everywhere (conntrack on).
func randomStatefulRules(diag bool) string {
	var d []string
	if diag {
		d = diagRules()
	}
	return randomStatefulRulesWith(d)
}

func randomStatefulRulesWith(diag []string) string {
	return rules(
		table("raw",
			"-A PREROUTING -p udp -m udp --dport 7022 -j NOTRACK",
			"-A PREROUTING -p icmp -m icmp --icmp-type 13 -j NOTRACK",
			"-A PREROUTING -f",
			"-A PREROUTING -m length --length 0:40",
			"-A OUTPUT -p udp -m udp --sport 7022 -j NOTRACK"),
		table("mangle", append(diag,
			"-A PREROUTING -m conntrack --ctstate INVALID",
			"-A PREROUTING -m conntrack --ctstate NEW",
			"-A PREROUTING -m conntrack --ctstate ESTABLISHED",
			"-A PREROUTING -m conntrack --ctstate RELATED",
			"-A PREROUTING -m conntrack --ctstate UNTRACKED",
			"-A PREROUTING -m conntrack --ctstatus ASSURED",
			"-A PREROUTING -m conntrack --ctstatus SEEN_REPLY",
			"-A PREROUTING -m conntrack --ctstatus CONFIRMED",
			"-A PREROUTING -m conntrack --ctdir ORIGINAL",
			"-A PREROUTING -m conntrack --ctdir REPLY",
			"-A PREROUTING -m conntrack --ctstate NEW --ctproto 6",
			"-A PREROUTING -m conntrack --ctstate INVALID -m u32 --u32 \"0x4>>0x10&0x3=0x0\" "+randomLog("RINV "),
			"-A PREROUTING -m ttl --ttl-eq 0",
			"-A PREROUTING -m ttl --ttl-lt 2",
			"-A PREROUTING -m ttl --ttl-gt 254",
			"-A PREROUTING -m length --length 1000:65535",
			"-A PREROUTING -m u32 --u32 \"0x0>>0x16&0x3c@0x0&0xffff=0x1b62\"",
			"-A PREROUTING -m u32 --u32 \"0x0&0xffff=0x0:0x28\"",
			"-A PREROUTING -m u32 --u32 \"0x6&0xff=0x6&&0x0>>0x16&0x3c@0xc>>0x1a&0x3c@0x0=0x0:0xffffffff\"",
			"-A OUTPUT -m conntrack --ctstate RELATED",
			"-A OUTPUT -m conntrack --ctstate INVALID",
			"-A OUTPUT -m conntrack --ctstate ESTABLISHED",
			"-A OUTPUT -m conntrack --ctstate UNTRACKED",
			"-A OUTPUT -m conntrack --ctstate NEW")...),
		table("filter",
			"-A INPUT -m state --state INVALID",
			"-A INPUT -m state --state UNTRACKED",
			"-A INPUT -p icmp -m state --state RELATED",
			"-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -m recent --set --name NULLSCAN --mask 255.255.255.255 --rsource",
			"-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG FIN,PSH,URG",
			"-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN FIN,SYN",
			"-A INPUT -p tcp -m tcp --tcp-flags SYN,RST SYN,RST",
			"-A INPUT -p tcp -m tcp --tcp-flags FIN,ACK FIN",
			"-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN",
			"-A INPUT -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m state --state NEW",
			"-A INPUT -p tcp -m tcp --tcp-option 2",
			"-A INPUT -p tcp -m tcp --tcp-option 8",
			"-A INPUT -p tcp -m tcp ! --tcp-option 4",
			"-A INPUT -p tcp -m recent --rcheck --seconds 3600 --hitcount 3 --name NULLSCAN --mask 255.255.255.255 --rsource",
			"-A INPUT -p icmp -m icmp --icmp-type 8",
			"-A INPUT -p icmp -m icmp --icmp-type 3/3",
			"-A INPUT -p icmp -m icmp --icmp-type 11",
			"-A INPUT -p icmp -m icmp ! --icmp-type 0",
			"-A INPUT -p icmp -m limit --limit 1/hour --limit-burst 7",
			"-A INPUT -p udp -m udp --dport 7020",
			"-A INPUT -p udp -m recent --set --name UDPSEEN --mask 255.255.255.255 --rsource",
			"-A INPUT -p udp -m recent --rcheck --seconds 3600 --hitcount 5 --name UDPSEEN --mask 255.255.255.255 --rsource",
			"-A INPUT -p 253",
			"-A INPUT -p gre",
			"-A INPUT -p sctp",
			"-A INPUT -f",
			"-A INPUT -m length --length 1000:65535",
			"-A INPUT -m conntrack --ctstate INVALID,RELATED,UNTRACKED -m u32 --u32 \"0x4>>0x10&0x3=0x0\" "+randomLog("IN "),
			"-A INPUT -p tcp -m tcp --dport 7012 -j REJECT --reject-with tcp-reset",
			"-A INPUT -p tcp -m state --state INVALID -m tcp --tcp-flags FIN,SYN FIN,SYN -j DROP",
			"-A OUTPUT -p tcp -m tcp --tcp-flags RST RST",
			"-A OUTPUT -p icmp -m icmp --icmp-type 3",
			"-A OUTPUT -p icmp -m icmp --icmp-type 12",
			"-A OUTPUT -p icmp -m icmp --icmp-type 0"),
	)
}

// randomStatelessRules has no stateful rule: conntrack stays off, so raw
// and mangle PREROUTING see every fragment (-f, tiny first fragments that
// make the tcp match drop the packet) and INPUT sees reassembled datagrams.
var randomStatelessRules = rules(
	table("raw",
		"-A PREROUTING -f",
		"-A PREROUTING -f -m u32 --u32 \"0x4>>0x10&0x3=0x0\" "+randomLog("FRAG "),
		"-A PREROUTING -m length --length 0:28",
		"-A PREROUTING -m ttl --ttl-lt 1",
		"-A PREROUTING -m u32 --u32 \"0x6&0xff=0x11&&0x4&0x1fff=0x0&&0x0>>0x16&0x3c@0x4>>0x10=0x0:0x7\"",
		"-A PREROUTING -p udp -m udp --dport 7020",
		"-A PREROUTING -p icmp -m icmp --icmp-type 8"),
	table("mangle",
		"-A PREROUTING -m u32 --u32 \"0x4>>0x10&0x3=0x1\" "+randomLog("PRE "),
		"-A PREROUTING -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE",
		"-A PREROUTING -p tcp -m tcp --tcp-option 2",
		"-A PREROUTING -p tcp -m tcp --dport 7010",
		"-A PREROUTING -p udp -m udp --sport 41000:41010",
		"-A PREROUTING -p icmp -m icmp --icmp-type 3"),
	table("filter",
		"-A INPUT -f",
		"-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG FIN,PSH,URG",
		"-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN FIN,SYN",
		"-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN",
		"-A INPUT -p tcp -m tcp --tcp-option 8",
		"-A INPUT -p icmp -m icmp --icmp-type 8",
		"-A INPUT -p icmp -m icmp --icmp-type 11",
		"-A INPUT -p icmp -m icmp --icmp-type any",
		"-A INPUT -m length --length 1000:65535",
		"-A INPUT -p udp -m recent --set --name RUDP --mask 255.255.255.255 --rsource",
		"-A INPUT -p udp -m recent --rcheck --seconds 3600 --hitcount 4 --name RUDP --mask 255.255.255.255 --rsource",
		"-A INPUT -m limit --limit 1/hour --limit-burst 10",
		"-A INPUT -m u32 --u32 \"0x4>>0x10&0x3=0x2\" "+randomLog("IN "),
		"-A INPUT -p tcp -m tcp --dport 7012 -j REJECT --reject-with tcp-reset",
		"-A OUTPUT -p tcp -m tcp --tcp-flags RST RST",
		"-A OUTPUT -p icmp"),
)

// Defaults of the random scenarios in CI, fixed seeds: 1500 packets for
// the stateful scenario (seeds 1-6 agree at that length; about 3 s more
// per seed than 300 on the 2-core machine), 300 for the stateless one
// (at 1500 the replay still counts the server's fragmented replies once
// per fragment in OUTPUT without conntrack; the kernel fragments after
// POSTROUTING). KERNELDIFF_RANDOM_PACKETS (both kinds) and
// KERNELDIFF_RANDOM_SEEDS (comma-separated) override them.
const (
	defaultRandomPackets   = 300
	defaultStatefulPackets = 1500
	randomConns            = 4
)

// defaultRandomSeeds are CI's seeds.
func defaultRandomSeeds() []uint64 { return []uint64{1, 2} }

// RandomScenarios returns the random scenarios for the given seeds and
// packet count: per seed one with conntrack and one without. packets 0
// means each kind's CI default.
func RandomScenarios(seeds []uint64, packets int) []Scenario {
	var out []Scenario
	diag := os.Getenv("KERNELDIFF_RANDOM_DIAG") != ""
	known := os.Getenv("KERNELDIFF_RANDOM_KNOWN") != ""
	for _, seed := range seeds {
		for _, kind := range []struct {
			name, rules, covers string
			recent              []string
			ciPackets           int
		}{
			{"stateful", randomStatefulRules(diag), "hostile traffic with conntrack: ctstate/ctstatus/ctdir, NOTRACK, tcp flags/options, u32, ttl, length, icmp, limit, recent, LOG with all options, REJECT", []string{"NULLSCAN", "UDPSEEN"}, defaultStatefulPackets},
			{"stateless", randomStatelessRules, "hostile traffic without conntrack: fragments in PREROUTING (-f, tiny first fragments), reassembly before INPUT, LOG of fragments", []string{"RUDP"}, defaultRandomPackets},
		} {
			packets := packets
			if packets == 0 {
				packets = kind.ciPackets
			}
			spec := &RandomSpec{Seed: seed, Packets: packets, Iface: "{CIF}", Server: "{S}",
				Clients: []string{"{C}", "{C3}", "{C4}"}, Conns: randomConns, Known: known}
			out = append(out, Scenario{
				Name:   fmt.Sprintf("random-%s-seed%d-n%d", kind.name, seed, packets),
				Covers: kind.covers,
				Rules:  kind.rules,
				Listen: Listen{TCP: []uint16{rndTCPOpen}, UDP: []uint16{rndUDPOpen}},
				Client: []Step{{Op: OpRandom, Random: spec}},
				Recent: kind.recent,
			})
		}
	}
	return out
}

// RandomConfigFromEnv reads KERNELDIFF_RANDOM_SEEDS and
// KERNELDIFF_RANDOM_PACKETS, falling back to the CI defaults (packets 0:
// each kind's own, see RandomScenarios).
func RandomConfigFromEnv() (seeds []uint64, packets int, err error) {
	seeds, packets = defaultRandomSeeds(), 0
	if s := os.Getenv("KERNELDIFF_RANDOM_SEEDS"); s != "" {
		seeds = nil
		for _, f := range strings.Split(s, ",") {
			v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("KERNELDIFF_RANDOM_SEEDS: %q is not a seed", f)
			}
			seeds = append(seeds, v)
		}
	}
	if s := os.Getenv("KERNELDIFF_RANDOM_PACKETS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 || v > maxRandomPackets {
			return nil, 0, fmt.Errorf("KERNELDIFF_RANDOM_PACKETS: %q, want 1..%d", s, maxRandomPackets)
		}
		packets = v
	}
	return seeds, packets, nil
}
