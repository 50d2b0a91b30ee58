package kerneldiff

import "strings"

// builtinChains lists each table's built-in chains in iptables-save order.
var builtinChains = map[string][]string{
	"raw":    {"PREROUTING", "OUTPUT"},
	"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"filter": {"INPUT", "FORWARD", "OUTPUT"},
}

// table writes one iptables-save table. Lines starting with ':' declare a
// policy (":INPUT DROP") or a user chain (":NAME"); the other built-in
// chains get ACCEPT. Other lines are rules.
func table(name string, lines ...string) string {
	var b strings.Builder
	b.WriteString("*" + name + "\n")
	declared := map[string]string{}
	var user []string
	var rules []string
	for _, l := range lines {
		if strings.HasPrefix(l, ":") {
			f := strings.Fields(l[1:])
			if len(f) == 1 {
				user = append(user, f[0])
			} else {
				declared[f[0]] = f[1]
			}
			continue
		}
		rules = append(rules, l)
	}
	for _, c := range builtinChains[name] {
		pol := declared[c]
		if pol == "" {
			pol = "ACCEPT"
		}
		b.WriteString(":" + c + " " + pol + " [0:0]\n")
	}
	for _, c := range user {
		b.WriteString(":" + c + " - [0:0]\n")
	}
	for _, r := range rules {
		b.WriteString(r + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

func rules(tables ...string) string { return strings.Join(tables, "") }

// Traffic step constructors (client side unless the address says
// otherwise).

func ping(src string, count, gapMS, ipLen int) Step {
	return Step{Op: OpRaw, Count: count, GapMS: gapMS, Pkt: &Pkt{Src: src, Dst: "{S}", Proto: 1, Type: 8, EchoI: 0x1234, Len: ipLen}}
}

func udp(src string, dport uint16, count, gapMS, size int) Step {
	return Step{Op: OpUDP, Src: src, Dst: "{S}", DPort: dport, Count: count, GapMS: gapMS, Size: size, ReplyMS: 100}
}

func tcp(src string, dport uint16, count, gapMS, size, holdMS, timeoutMS int) Step {
	return Step{Op: OpTCP, Src: src, Dst: "{S}", DPort: dport, Count: count, GapMS: gapMS, Size: size, HoldMS: holdMS, TimeoutMS: timeoutMS}
}

func rawTCP(src string, dport uint16, flags string, mod func(*Pkt)) Step {
	p := &Pkt{Src: src, Dst: "{S}", Proto: 6, SPort: 40001, DPort: dport, Flags: flags, Seq: 1000, Ack: 5555}
	if mod != nil {
		mod(p)
	}
	return Step{Op: OpRaw, Pkt: p}
}

func raw(p Pkt, count, gapMS int) Step { return Step{Op: OpRaw, Pkt: &p, Count: count, GapMS: gapMS} }

func sleep(msec int) Step { return Step{Op: OpSleep, MS: msec} }

// Scenarios is the suite. Addresses: {S} server, {C} client, {C3}..{C12}
// more client addresses in the same /24; {SIF} the server's interface.
// Timing: every rate-dependent decision has a margin of at least ~100 ms
// (see each scenario's comment); dropped TCP connects use a 400 ms timeout
// so that no SYN is retransmitted unless the scenario wants it.
func Scenarios() []Scenario {
	return []Scenario{
		{
			Name:   "policy-accept-counters",
			Covers: "policy counters, counting rules without target, OUTPUT of replies",
			Rules: rules(table("filter",
				"-A INPUT -p icmp", "-A INPUT -p udp", "-A INPUT -p tcp", "-A INPUT -s {C}/32 -d {S}/32",
				"-A OUTPUT -p icmp", "-A OUTPUT -p tcp", "-A OUTPUT -d {NET}/24")),
			Listen: Listen{TCP: []uint16{7002}, UDP: []uint16{7001}},
			Client: []Step{ping("{C}", 3, 50, 84), udp("{C}", 7001, 3, 50, 20), tcp("{C}", 7002, 1, 0, 100, 200, 1000)},
		},
		{
			Name:   "policy-drop-counters",
			Covers: "P01 -P INPUT DROP, policy packet and byte counters",
			Rules: rules(table("filter", ":INPUT DROP",
				"-A INPUT -p tcp -m tcp --dport 7002 -j ACCEPT", "-A INPUT -p udp -m udp --dport 7001 -j ACCEPT",
				"-A INPUT -p tcp -m tcp --sport 7002 -j ACCEPT")),
			Listen: Listen{TCP: []uint16{7002}, UDP: []uint16{7001}},
			Client: []Step{udp("{C}", 7001, 2, 50, 10), udp("{C}", 7003, 2, 50, 30), tcp("{C}", 7002, 1, 0, 50, 100, 1000),
				tcp("{C}", 7004, 1, 0, 0, 0, 400), ping("{C}", 2, 50, 100)},
		},
		{
			Name:   "jump-return",
			Covers: "jump counting, RETURN, fall-through of a user chain",
			Rules: rules(table("filter", ":CHK",
				"-A INPUT -p udp -j CHK", "-A INPUT -p udp",
				"-A CHK -p udp -m udp --dport 7001 -j RETURN", "-A CHK -p udp -m udp --dport 7002 -j ACCEPT", "-A CHK -p udp")),
			Client: []Step{udp("{C}", 7001, 2, 30, 10), udp("{C}", 7002, 3, 30, 10), udp("{C}", 7003, 1, 0, 10)},
		},
		{
			Name:   "goto-return",
			Covers: "goto then RETURN returns to the caller of the chain that did the goto; end of chain after goto",
			Rules: rules(table("filter", ":A", ":B",
				"-A INPUT -p udp -j A", "-A INPUT -p udp",
				"-A A -p udp -g B", "-A A -p udp",
				"-A B -p udp -m udp --dport 7001 -j RETURN", "-A B -p udp -m udp --dport 7002 -j DROP", "-A B -p udp")),
			Client: []Step{udp("{C}", 7001, 2, 30, 10), udp("{C}", 7002, 2, 30, 10), udp("{C}", 7003, 2, 30, 10)},
		},
		{
			Name:   "goto-builtin-policy",
			Covers: "goto from a built-in chain: RETURN applies the policy (DROP); nested jumps",
			Rules: rules(table("filter", ":INPUT DROP", ":G", ":H",
				"-A INPUT -p udp -g G", "-A INPUT -p udp -j ACCEPT", "-A INPUT -p icmp -j H", "-A INPUT -p icmp -j ACCEPT",
				"-A G -p udp -m udp --dport 7001 -j ACCEPT", "-A G -p udp -m udp --dport 7002 -j RETURN", "-A G -p udp -j H",
				"-A H -p icmp -j RETURN", "-A H -p udp -m udp --dport 7003 -j ACCEPT")),
			Client: []Step{udp("{C}", 7001, 2, 30, 10), udp("{C}", 7002, 2, 30, 10), udp("{C}", 7003, 1, 0, 10), udp("{C}", 7004, 1, 0, 10), ping("{C}", 2, 30, 84)},
		},
		{
			Name:   "multiport",
			Covers: "X07 multiport --dports lists and ranges, ! --dports, --ports, --sports",
			Rules: rules(table("filter",
				"-A INPUT -p udp -m multiport --dports 7001,7003:7005",
				"-A INPUT -p udp -m multiport ! --dports 7001:7010",
				"-A INPUT -p udp -m multiport --ports 5000,7004",
				"-A INPUT -p udp -m multiport --sports 40000:40010",
				"-A OUTPUT -p udp -m multiport --sports 7001,7005")),
			Listen: Listen{UDP: []uint16{7001, 7005}},
			Client: []Step{
				{Op: OpUDP, Src: "{C}", SPort: 40005, Dst: "{S}", DPort: 7001, Count: 1, Size: 5, ReplyMS: 100},
				{Op: OpUDP, Src: "{C}", SPort: 40011, Dst: "{S}", DPort: 7002, Count: 1, Size: 5},
				{Op: OpUDP, Src: "{C}", SPort: 40000, Dst: "{S}", DPort: 7004, Count: 1, Size: 5},
				{Op: OpUDP, Src: "{C}", SPort: 40010, Dst: "{S}", DPort: 7005, Count: 2, Size: 5, ReplyMS: 100},
				{Op: OpUDP, Src: "{C}", SPort: 5000, Dst: "{S}", DPort: 7011, Count: 1, Size: 5},
			},
		},
		{
			Name:   "length-boundaries",
			Covers: "S35 length :60; length ranges and exact values at both boundaries, negation",
			Rules: rules(table("filter",
				"-A INPUT -p udp -m length --length 100:200", "-A INPUT -p udp -m length ! --length 100:200",
				"-A INPUT -p udp -m length --length 128", "-A INPUT -p icmp -m icmp --icmp-type 8 -m length --length :60 -j ACCEPT",
				"-A INPUT -p icmp -m length --length 61:")),
			Listen: Listen{UDP: []uint16{7001}},
			Client: []Step{udp("{C}", 7001, 1, 0, 99-28), udp("{C}", 7001, 1, 0, 100-28), udp("{C}", 7001, 1, 0, 128-28),
				udp("{C}", 7001, 1, 0, 200-28), udp("{C}", 7001, 1, 0, 201-28), ping("{C}", 1, 0, 60), ping("{C}", 1, 0, 61), ping("{C}", 1, 0, 28)},
		},
		{
			Name:   "ttl-match",
			Covers: "S23 --ttl-eq 1 DROP; --ttl-lt, --ttl-gt, ! --ttl-eq at the boundaries",
			Rules: rules(table("filter",
				"-A INPUT -m ttl --ttl-eq 1 -j DROP", "-A INPUT -m ttl --ttl-lt 10", "-A INPUT -m ttl --ttl-gt 100",
				"-A INPUT -m ttl ! --ttl-eq 64", "-A OUTPUT -m ttl --ttl-eq 64")),
			Client: []Step{
				raw(Pkt{Src: "{C}", Dst: "{S}", Proto: 17, SPort: 40000, DPort: 7001, TTL: 1, Payload: 4}, 1, 0),
				raw(Pkt{Src: "{C}", Dst: "{S}", Proto: 17, SPort: 40000, DPort: 7001, TTL: 9, Payload: 4}, 1, 0),
				raw(Pkt{Src: "{C}", Dst: "{S}", Proto: 17, SPort: 40000, DPort: 7001, TTL: 10, Payload: 4}, 1, 0),
				raw(Pkt{Src: "{C}", Dst: "{S}", Proto: 17, SPort: 40000, DPort: 7001, TTL: 64, Payload: 4}, 1, 0),
				raw(Pkt{Src: "{C}", Dst: "{S}", Proto: 17, SPort: 40000, DPort: 7001, TTL: 100, Payload: 4}, 1, 0),
				raw(Pkt{Src: "{C}", Dst: "{S}", Proto: 17, SPort: 40000, DPort: 7001, TTL: 101, Payload: 4}, 1, 0),
				raw(Pkt{Src: "{C}", Dst: "{S}", Proto: 17, SPort: 40000, DPort: 7001, TTL: 255, Payload: 4}, 1, 0),
			},
		},
		{
			Name:   "iprange",
			Covers: "iprange --src-range inclusive ends, ! --src-range, --dst-range of one address",
			Rules: rules(table("filter",
				"-A INPUT -m iprange --src-range {C3}-{C6}", "-A INPUT -m iprange ! --src-range {C3}-{C6}",
				"-A INPUT -p udp -m iprange --src-range {C}-{C4} --dst-range {S}-{S}")),
			Client: []Step{udp("{C}", 7001, 1, 0, 8), udp("{C3}", 7001, 1, 0, 8), udp("{C5}", 7001, 1, 0, 8),
				udp("{C6}", 7001, 1, 0, 8), udp("{C7}", 7001, 1, 0, 8), udp("{C12}", 7001, 1, 0, 8)},
		},
		{
			Name:   "icmp-types",
			Covers: "X17/X18 icmp types by name, type/code, any, negation; errors and echo replies in OUTPUT",
			Rules: rules(table("filter",
				"-A INPUT -p icmp -m icmp --icmp-type 8", "-A INPUT -p icmp -m icmp --icmp-type 3/1", "-A INPUT -p icmp -m icmp --icmp-type 3",
				"-A INPUT -p icmp -m icmp ! --icmp-type 8", "-A INPUT -p icmp -m icmp --icmp-type any",
				"-A OUTPUT -p icmp -m icmp --icmp-type 0", "-A OUTPUT -p icmp -m icmp --icmp-type 3/3", "-A OUTPUT -p icmp -m icmp ! --icmp-type 0")),
			Client: []Step{ping("{C}", 2, 50, 84), udp("{C}", 7009, 1, 0, 10),
				raw(Pkt{Src: "{C}", Dst: "{S}", Proto: 1, Type: 13, Payload: 12}, 1, 0),
				raw(Pkt{Src: "{C}", Dst: "{S}", Proto: 1, Type: 3, Code: 1, Payload: 28}, 1, 0)},
		},
		{
			Name:   "tcp-flag-scans",
			Covers: "S28 ALL FIN,URG,PSH, S29 ALL NONE, SYN+FIN, SYN+RST, --syn (X06), stateless",
			Rules: rules(table("filter",
				"-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG FIN,PSH,URG -j DROP",
				"-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j DROP",
				"-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN FIN,SYN -j DROP",
				"-A INPUT -p tcp -m tcp --tcp-flags SYN,RST SYN,RST -j DROP",
				"-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN", "-A INPUT -p tcp",
				"-A OUTPUT -p tcp -m tcp --tcp-flags RST RST")),
			Client: []Step{rawTCP("{C}", 7099, "FPU", nil), rawTCP("{C}", 7099, "", nil), rawTCP("{C}", 7099, "SF", nil),
				rawTCP("{C}", 7099, "SR", nil), rawTCP("{C}", 7099, "F", nil), rawTCP("{C}", 7099, "S", nil),
				rawTCP("{C}", 7099, "SEC", nil), rawTCP("{C}", 7099, "FSRPAUEC", nil)},
		},
		{
			Name:   "synack-new-drop",
			Covers: "S30 --tcp-flags SYN,ACK SYN,ACK --state NEW (an unsolicited SYN-ACK is INVALID, not NEW); state counting",
			Rules: rules(table("filter",
				"-A INPUT -p tcp -m tcp --tcp-flags SYN,ACK SYN,ACK -m state --state NEW -j DROP",
				"-A INPUT -m state --state NEW", "-A INPUT -m state --state ESTABLISHED", "-A INPUT -m state --state INVALID",
				"-A OUTPUT -m state --state ESTABLISHED", "-A OUTPUT -m state --state NEW,INVALID")),
			Listen: Listen{TCP: []uint16{7002}},
			Client: []Step{rawTCP("{C}", 7002, "SA", nil), tcp("{C}", 7002, 1, 0, 30, 100, 1000)},
		},
		{
			Name:   "invalid-log-drop",
			Covers: "S17 INVALID LOG --log-ip-options then DROP; loose pickup of a lone ACK (NEW); IP options in the log",
			Rules: rules(table("filter",
				`-A INPUT -m state --state INVALID -j LOG --log-prefix "INVALID" --log-ip-options`,
				"-A INPUT -m state --state INVALID -j DROP",
				"-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT",
				"-A INPUT -p tcp -m tcp --dport 7002 -j ACCEPT", "-A INPUT -m state --state NEW")),
			Listen: Listen{TCP: []uint16{7002}},
			Client: []Step{
				rawTCP("{C}", 7002, "F", nil), rawTCP("{C}", 7002, "R", nil), rawTCP("{C}", 7002, "", nil),
				rawTCP("{C}", 7002, "FPU", nil), rawTCP("{C}", 7002, "SA", nil),
				rawTCP("{C}", 7002, "FA", func(p *Pkt) { p.IPOpts = []byte{1, 1, 1, 0}; p.SPort = 40002 }),
				rawTCP("{C}", 7003, "A", func(p *Pkt) { p.SPort = 40003 }),
				tcp("{C}", 7002, 1, 0, 20, 100, 1000)},
		},
		{
			Name:   "log-options",
			Covers: "S18 LOG --log-level/--log-prefix/--log-ip-options/--log-tcp-sequence, --log-tcp-options, --log-macdecode, ICMP errors with the embedded packet, OUTPUT lines",
			Rules: rules(table("filter",
				`-A INPUT -p tcp -m tcp --dport 7002 -j LOG --log-prefix "INPUT" --log-level 3 --log-tcp-sequence --log-ip-options`,
				`-A INPUT -p tcp -m tcp --dport 7003 -j LOG --log-prefix "OPTS " --log-tcp-options`,
				`-A INPUT -p udp -j LOG --log-prefix "MACDEC " --log-macdecode`,
				`-A INPUT -p icmp -j LOG --log-prefix "ICMP " --log-level 7`,
				`-A OUTPUT -p tcp -m tcp --sport 7002 -j LOG --log-prefix "OUT "`,
				`-A OUTPUT -p icmp -j LOG --log-prefix "OUTICMP "`)),
			Listen: Listen{TCP: []uint16{7002, 7003}},
			Client: []Step{tcp("{C}", 7002, 1, 0, 40, 100, 1000), tcp("{C}", 7003, 1, 0, 0, 100, 1000),
				udp("{C}", 7005, 1, 0, 5), ping("{C}", 1, 0, 84)},
		},
		{
			Name:   "log-mark",
			Covers: "MARK= field in LOG after mangle MARK --set-mark 0x2a; OUTPUT line of a socket's reply without --log-uid",
			Rules: rules(table("mangle", "-A PREROUTING -p udp -j MARK --set-xmark 0x2a/0xffffffff"),
				table("filter",
					`-A INPUT -p udp -j LOG --log-prefix "MARKED:"`,
					`-A OUTPUT -p udp -j LOG --log-prefix "AOUT: "`)),
			Listen: Listen{UDP: []uint16{7001}},
			Client: []Step{udp("{C}", 7001, 2, 50, 5)},
		},
		{
			Name:   "log-uid",
			Covers: "LOG --log-uid: UID=/GID= of the local socket (OUTPUT of a socket's reply; INPUT of unconnected UDP has none)",
			Rules: rules(table("filter",
				`-A INPUT -p udp -j LOG --log-prefix "UIN: " --log-uid`,
				`-A OUTPUT -p udp -j LOG --log-prefix "UOUT: " --log-uid`)),
			Listen: Listen{UDP: []uint16{7001}},
			Client: []Step{udp("{C}", 7001, 2, 50, 5)},
		},
		{
			Name:   "reject-tcp-reset",
			Covers: "REJECT --reject-with tcp-reset (SYN, lone ACK, FIN+PSH with data), REJECT default for TCP; replies counted in OUTPUT",
			Rules: rules(table("filter",
				"-A INPUT -p tcp -m tcp --dport 7010 -j REJECT --reject-with tcp-reset",
				"-A INPUT -p tcp -m tcp --dport 7011 -j REJECT",
				"-A OUTPUT -p tcp -m tcp --tcp-flags RST RST", "-A OUTPUT -p icmp")),
			Client: []Step{tcp("{C}", 7010, 2, 100, 0, 0, 1000), tcp("{C}", 7011, 1, 0, 0, 0, 1000),
				rawTCP("{C}", 7010, "A", func(p *Pkt) { p.SPort = 40010 }),
				rawTCP("{C}", 7010, "FP", func(p *Pkt) { p.SPort = 40011; p.Seq = 77; p.Payload = 10 })},
		},
		{
			Name:   "reject-icmp-types",
			Covers: "REJECT --reject-with each ICMP type (net/host/proto unreachable, net/host/admin prohibited), fewer than the 6-error rate-limit burst",
			Rules: rules(table("filter",
				"-A INPUT -p udp -m udp --dport 7020 -j REJECT --reject-with icmp-net-unreachable",
				"-A INPUT -p udp -m udp --dport 7021 -j REJECT --reject-with icmp-host-unreachable",
				"-A INPUT -p udp -m udp --dport 7022 -j REJECT --reject-with icmp-proto-unreachable",
				"-A INPUT -p udp -m udp --dport 7023 -j REJECT --reject-with icmp-net-prohibited",
				"-A INPUT -p udp -m udp --dport 7024 -j REJECT --reject-with icmp-host-prohibited",
				"-A INPUT -p icmp -j REJECT --reject-with icmp-admin-prohibited",
				"-A OUTPUT -p icmp -m icmp --icmp-type 3/0", "-A OUTPUT -p icmp -m icmp --icmp-type 3/13", "-A OUTPUT -p icmp")),
			Client: []Step{udp("{C}", 7020, 1, 0, 10), sleep(150), udp("{C}", 7021, 1, 0, 10), sleep(150), udp("{C}", 7022, 1, 0, 10), sleep(150),
				udp("{C}", 7023, 1, 0, 300), sleep(150), udp("{C}", 7024, 1, 0, 10), sleep(150), ping("{C}", 1, 0, 84)},
		},
		{
			Name:   "recent-set-update",
			Covers: "S09/S10 state NEW + recent --set, then --update --seconds 100 --hitcount 10 DROP, -i",
			Rules: rules(table("filter",
				"-A INPUT -i {SIF} -p tcp -m tcp --dport 7030 -m state --state NEW -m recent --set --name DEFAULT --mask 255.255.255.255 --rsource",
				"-A INPUT -i {SIF} -p tcp -m tcp --dport 7030 -m state --state NEW -m recent --update --seconds 100 --hitcount 10 --name DEFAULT --mask 255.255.255.255 --rsource -j DROP")),
			Listen: Listen{TCP: []uint16{7030}},
			Client: []Step{tcp("{C}", 7030, 8, 100, 0, 0, 400), tcp("{C3}", 7030, 2, 100, 0, 0, 400)},
			Recent: []string{"DEFAULT"},
		},
		recentAB("recent-rcheck", "--rcheck"),
		recentAB("recent-update", "--update"),
		{
			Name:   "recent-rttl-hour",
			Covers: "S13/S14 style: ctstate NEW + recent --set, then --update --seconds 3600 --hitcount 5 --rttl DROP (5/hour), TTL changes",
			Rules: rules(table("filter",
				"-A INPUT -p tcp -m tcp --dport 7031 -m conntrack --ctstate NEW -m recent --update --seconds 3600 --hitcount 5 --rttl --name SSH --mask 255.255.255.255 --rsource -j DROP",
				"-A INPUT -p tcp -m tcp --dport 7031 -m conntrack --ctstate NEW -m recent --set --name SSH --mask 255.255.255.255 --rsource")),
			Listen: Listen{TCP: []uint16{7031}},
			Client: []Step{tcp("{C}", 7031, 3, 100, 0, 0, 400),
				{Op: OpTCP, Src: "{C}", Dst: "{S}", DPort: 7031, Count: 2, GapMS: 100, TimeoutMS: 400, TTL: 50},
				tcp("{C}", 7031, 3, 100, 0, 0, 400), tcp("{C3}", 7031, 2, 100, 0, 0, 400)},
			Recent: []string{"SSH"},
		},
		{
			Name:   "ping-length-knock",
			Covers: "S11/S12/S35: ping of IP length 128 opens port 7022 for 15 s (recent --set/--rcheck --rsource), -P INPUT DROP",
			Rules: rules(table("filter", ":INPUT DROP",
				"-A INPUT -p icmp -m icmp --icmp-type 8 -m length --length 0:60 -j ACCEPT",
				"-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT",
				"-A INPUT -p icmp -m icmp --icmp-type 8 -m length --length 128 -m recent --set --name SSHOPEN --mask 255.255.255.255 --rsource -j ACCEPT",
				"-A INPUT -p tcp -m tcp --dport 7022 -m state --state NEW -m recent --rcheck --seconds 15 --name SSHOPEN --mask 255.255.255.255 --rsource -j ACCEPT")),
			Listen: Listen{TCP: []uint16{7022}},
			Client: []Step{tcp("{C}", 7022, 1, 0, 0, 0, 400), ping("{C}", 1, 0, 60), ping("{C}", 1, 0, 100), ping("{C}", 1, 0, 129),
				ping("{C}", 1, 0, 128), sleep(100), tcp("{C}", 7022, 1, 0, 30, 100, 1000), tcp("{C3}", 7022, 1, 0, 0, 0, 400)},
			Recent: []string{"SSHOPEN"},
		},
		{
			Name:   "recent-remove-knock",
			Covers: "S38 rcheck --hitcount LOG 'DDOS:' --log-ip-options, S39 --remove REJECT tcp-reset, S40 --set REJECT tcp-reset",
			Rules: rules(table("filter",
				"-A INPUT -p tcp -m tcp --dport 7051 --tcp-flags FIN,SYN,RST,ACK SYN -m recent --set --name webpool --mask 255.255.255.255 --rsource -j REJECT --reject-with tcp-reset",
				`-A INPUT -p tcp -m tcp --dport 7052 --tcp-flags FIN,SYN,RST,ACK SYN -m recent --rcheck --seconds 60 --hitcount 2 --name webpool --mask 255.255.255.255 --rsource -j LOG --log-prefix "DDOS:" --log-ip-options`,
				"-A INPUT -p tcp -m tcp --dport 7053 --tcp-flags FIN,SYN,RST,ACK SYN -m recent --remove --name webpool --mask 255.255.255.255 --rsource -j REJECT --reject-with tcp-reset")),
			Listen: Listen{TCP: []uint16{7052, 7053}},
			Client: []Step{tcp("{C}", 7052, 1, 0, 0, 50, 1000), tcp("{C}", 7051, 2, 100, 0, 0, 1000), tcp("{C}", 7052, 1, 0, 0, 50, 1000),
				tcp("{C3}", 7051, 1, 0, 0, 0, 1000), tcp("{C}", 7053, 1, 0, 0, 0, 1000), tcp("{C}", 7053, 1, 0, 0, 50, 1000),
				tcp("{C}", 7052, 1, 0, 0, 50, 1000)},
			Recent: []string{"webpool"},
		},
		{
			Name:   "connlimit-host",
			Covers: "S01 --syn connlimit-above per host REJECT tcp-reset; closed (TIME_WAIT) connections stop counting",
			Rules: rules(table("filter",
				"-A INPUT -p tcp -m tcp --dport 7060 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with tcp-reset")),
			Listen: Listen{TCP: []uint16{7060}},
			Client: []Step{tcp("{C}", 7060, 4, 100, 10, 300, 1000), sleep(300), tcp("{C}", 7060, 2, 100, 0, 100, 1000), tcp("{C3}", 7060, 1, 0, 0, 100, 1000)},
		},
		{
			Name:   "connlimit-24",
			Covers: "S03 connlimit per /24 (--connlimit-mask 24): 2+1 connections held from .2 and .3, the 4th (from .4) is reset; S08 connlimit --connlimit-saddr LOG with ! -s",
			Rules: rules(table("filter",
				"-A INPUT -p tcp -m tcp --dport 7060 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 3 --connlimit-mask 24 --connlimit-saddr -j REJECT --reject-with tcp-reset",
				`-A INPUT ! -s 127.0.0.1/32 -p tcp -m tcp --dport 7061 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 1 --connlimit-mask 32 --connlimit-saddr -j LOG --log-prefix "connlimit "`)),
			Listen: Listen{TCP: []uint16{7060, 7061}},
			Client: []Step{
				{Op: OpTCP, Src: "{C}", Dst: "{S}", DPort: 7060, Count: 2, GapMS: 100, HoldMS: 1500, TimeoutMS: 1000, Size: 1, Background: true},
				sleep(300),
				{Op: OpTCP, Src: "{C3}", Dst: "{S}", DPort: 7060, Count: 1, HoldMS: 1000, TimeoutMS: 1000, Size: 1, Background: true},
				sleep(300), tcp("{C4}", 7060, 1, 0, 0, 0, 1000),
				tcp("{C}", 7061, 3, 100, 0, 200, 1000)},
		},
		{
			Name:   "connlimit-closing-states",
			Covers: "connlimit counts a connection the client closed while the server side is still in CLOSE_WAIT, not one in TIME_WAIT (spec 13.8)",
			Rules: rules(table("filter",
				"-A INPUT -p tcp -m tcp --dport 7063:7064 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 1 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with tcp-reset")),
			Listen: Listen{TCP: []uint16{7064}, HalfOpen: []uint16{7063}},
			Client: []Step{tcp("{C}", 7063, 1, 0, 5, 100, 1000), sleep(300), tcp("{C}", 7063, 1, 0, 0, 0, 1000), sleep(3000),
				tcp("{C3}", 7064, 1, 0, 5, 100, 1000), sleep(300), tcp("{C3}", 7064, 1, 0, 0, 100, 1000)},
		},
		{
			Name:   "connlimit-upto-drop-policy",
			Covers: "S02 connlimit ! --connlimit-above (upto) ACCEPT with -P INPUT DROP",
			Rules: rules(table("filter", ":INPUT DROP",
				"-A INPUT -p tcp -m tcp --dport 7062 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-upto 2 --connlimit-mask 32 --connlimit-saddr -j ACCEPT",
				"-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT")),
			Listen: Listen{TCP: []uint16{7062}},
			Client: []Step{tcp("{C}", 7062, 3, 100, 5, 300, 400), sleep(200), tcp("{C3}", 7062, 1, 0, 0, 100, 1000)},
		},
		{
			Name:   "limit-5s-burst20",
			Covers: "S16 limit 5/s burst 20 on echo requests (nft limit): 25 quick pings, 1.1 s pause (~5.5 tokens), 10 quick pings",
			Rules: rules(table("filter",
				"-A INPUT -p icmp -m icmp --icmp-type 8 -m limit --limit 5/sec --limit-burst 20 -j ACCEPT",
				"-A INPUT -p icmp -m icmp --icmp-type 8 -j DROP")),
			Client: []Step{ping("{C}", 25, 3, 84), sleep(1100), ping("{C}", 10, 3, 84)},
		},
		{
			Name:   "limit-1m-burst10",
			Covers: "limit 1/m burst 10 (15 UDP packets: 10 pass); X39 limit 3/hour burst 5 LOG",
			Rules: rules(table("filter",
				`-A INPUT -p udp -m limit --limit 3/hour -j LOG --log-prefix "LIM "`,
				"-A INPUT -p udp -m limit --limit 1/min --limit-burst 10 -j ACCEPT",
				"-A INPUT -p udp -j DROP")),
			Client: []Step{udp("{C}", 7001, 15, 30, 10)},
		},
		{
			Name:   "hashlimit-srcip-above",
			Covers: "X19 hashlimit --hashlimit-above per srcip (tokens consumed above the rate), two sources, refill after 1.25 s",
			Rules: rules(table("filter",
				"-A INPUT -p icmp -m hashlimit --hashlimit-above 2/sec --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name hl1 -j DROP",
				"-A INPUT -p udp -m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 2 --hashlimit-mode srcip,dstport --hashlimit-name hl2 -j ACCEPT",
				"-A INPUT -p udp -j DROP")),
			Client: []Step{ping("{C}", 6, 5, 84), ping("{C3}", 6, 5, 84), udp("{C}", 7001, 4, 5, 5), udp("{C}", 7002, 3, 5, 5),
				sleep(1250), ping("{C}", 4, 5, 84)},
		},
		{
			Name:   "state-new-retransmit",
			Covers: "NEW is every original-direction packet before a reply: retransmitted SYN logged twice, repeated UDP; ESTABLISHED after the reply",
			Rules: rules(table("filter",
				`-A INPUT -p tcp -m tcp --dport 7070 -m state --state NEW -j LOG --log-prefix "NEW "`,
				"-A INPUT -p tcp -m tcp --dport 7070 -j DROP",
				"-A INPUT -p udp -m state --state NEW", "-A INPUT -p udp -m state --state ESTABLISHED",
				"-A OUTPUT -m state --state ESTABLISHED", "-A OUTPUT -m state --state RELATED")),
			Listen: Listen{UDP: []uint16{7072}},
			Client: []Step{tcp("{C}", 7070, 1, 0, 0, 0, 1600), udp("{C}", 7071, 3, 50, 5), udp("{C}", 7072, 3, 50, 5)},
		},
		{
			Name:   "icmp-related",
			Covers: "S15 ctstate RELATED LOG 'iptables related' (ICMP errors for tracked UDP), in INPUT and OUTPUT",
			Rules: rules(table("filter",
				`-A INPUT -i {SIF} -m conntrack --ctstate RELATED -j LOG --log-prefix "iptables related"`,
				"-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED", "-A INPUT -m conntrack --ctstate NEW",
				"-A OUTPUT -m conntrack --ctstate RELATED", "-A OUTPUT -m conntrack --ctstate NEW")),
			Client: []Step{udp("{C}", 7080, 2, 100, 5)},
			Server: []Step{{Op: OpUDP, Src: "{S}", Dst: "{C}", DPort: 7081, Count: 2, GapMS: 100, Size: 5, ReplyMS: 100}},
		},
		{
			Name:   "notrack-untracked",
			Covers: "S19/S20 raw NOTRACK both directions, S21 state UNTRACKED,ESTABLISHED,RELATED with -P INPUT DROP",
			Rules: rules(table("raw", "-A PREROUTING -p tcp -m tcp --dport 7090 -j CT --notrack", "-A OUTPUT -p tcp -m tcp --sport 7090 -j CT --notrack"),
				table("filter", ":INPUT DROP",
					"-A INPUT -m state --state UNTRACKED", "-A INPUT -m state --state RELATED,ESTABLISHED,UNTRACKED -j ACCEPT",
					"-A INPUT -p tcp -m tcp --dport 7091 -m state --state NEW -j ACCEPT",
					"-A OUTPUT -m state --state UNTRACKED", "-A OUTPUT -m state --state ESTABLISHED")),
			Listen: Listen{TCP: []uint16{7090, 7091}},
			Client: []Step{tcp("{C}", 7090, 1, 0, 50, 100, 1000), tcp("{C}", 7091, 1, 0, 50, 100, 1000), tcp("{C}", 7092, 1, 0, 0, 0, 400)},
		},
		{
			Name:   "mark-connmark",
			Covers: "S31 MARK --set-mark, S32 CONNMARK --save-mark, S33 connmark + --restore-mark, S34 CONNMARK --set-mark; mark/connmark matches, MARK= in LOG",
			Rules: rules(table("mangle",
				"-A PREROUTING -p tcp -m connmark --mark 0x1 -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff",
				"-A PREROUTING -p tcp -m tcp --dport 7100 -j MARK --set-xmark 0x1/0xffffffff",
				"-A PREROUTING -p tcp -m mark --mark 0x1 -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff",
				"-A PREROUTING -p tcp -m tcp --dport 7101 -j CONNMARK --set-xmark 0x1/0xffffffff"),
				table("filter",
					"-A INPUT -m mark --mark 0x1", "-A INPUT -m connmark --mark 0x1", `-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m mark --mark 0x1 -j LOG --log-prefix "MARKED "`,
					"-A OUTPUT -m connmark --mark 0x1", "-A OUTPUT -m mark --mark 0x1")),
			Listen: Listen{TCP: []uint16{7100, 7101}},
			Client: []Step{tcp("{C}", 7100, 1, 0, 50, 100, 1000), tcp("{C}", 7101, 1, 0, 50, 100, 1000)},
		},
		{
			Name:   "fragments-stateless",
			Covers: "-f matches non-first fragments only: in PREROUTING without conntrack the fragments are seen one by one (LOG FRAG:, MF); INPUT sees the datagram ip_local_deliver reassembled",
			Rules: rules(table("mangle", `-A PREROUTING -f -j LOG --log-prefix "PFRAG "`, "-A PREROUTING -f", "-A PREROUTING ! -f -p udp",
				`-A INPUT -p udp -j LOG --log-prefix "MIN "`),
				table("filter",
					`-A INPUT -f -j LOG --log-prefix "FRAG "`, "-A INPUT -f", "-A INPUT -p udp ! -f", "-A INPUT -p udp -m udp --dport 7110")),
			Client: []Step{raw(Pkt{Src: "{C}", Dst: "{S}", Proto: 17, SPort: 40000, DPort: 7110, Payload: 40, Frags: []int{24}}, 1, 0),
				raw(Pkt{Src: "{C}", Dst: "{S}", Proto: 17, SPort: 40000, DPort: 7110, Payload: 60, Frags: []int{16, 48}}, 1, 0)},
		},
		{
			Name:   "fragments-conntrack",
			Covers: "with conntrack active the kernel reassembles before raw: -f never matches, counters and LOG see the whole datagram",
			Rules: rules(table("filter",
				`-A INPUT -p udp -j LOG --log-prefix "UDP "`, "-A INPUT -f", "-A INPUT -m state --state NEW", "-A INPUT -p udp -m length --length 68")),
			Client: []Step{raw(Pkt{Src: "{C}", Dst: "{S}", Proto: 17, SPort: 40000, DPort: 7110, Payload: 40, Frags: []int{24}}, 1, 0)},
		},
		{
			Name:   "dnat-local-port",
			Covers: "S26-style DNAT --to-destination (abbreviated --to) to another port of the server itself: nat PREROUTING sees only the first packet, filter INPUT the translated port; replies are un-DNATed after OUTPUT",
			Rules: rules(table("nat", "-A PREROUTING -p tcp -m tcp --dport 7120 -j DNAT --to-destination {S}:7121", "-A PREROUTING -p tcp"),
				table("filter", "-A INPUT -p tcp -m tcp --dport 7121", "-A INPUT -p tcp -m tcp --dport 7120", "-A INPUT -m conntrack --ctstate DNAT",
					"-A OUTPUT -p tcp -m conntrack --ctstate DNAT")),
			Listen: Listen{TCP: []uint16{7121}},
			Client: []Step{tcp("{C}", 7120, 1, 0, 20, 100, 1000), tcp("{C}", 7121, 1, 0, 20, 100, 1000)},
		},
		{
			Name:       "vrrp-multicast",
			Covers:     "S36 -d 224.0.0.0/8 ACCEPT (all-hosts group), S37 -p vrrp ACCEPT, X36 -p all, policy DROP",
			Rules:      rules(table("filter", ":INPUT DROP", "-A INPUT -d 224.0.0.0/8 -j ACCEPT", "-A INPUT -p vrrp -j ACCEPT", "-A INPUT -p udp -m udp --dport 7001 -j ACCEPT")),
			Client:     []Step{raw(Pkt{Src: "{C}", Dst: "{S}", Proto: 112, Payload: 20}, 2, 50), raw(Pkt{Src: "{C}", Dst: "224.0.0.1", Proto: 17, SPort: 40000, DPort: 7200, Payload: 8}, 1, 0), udp("{C}", 7001, 1, 0, 5), udp("{C}", 7002, 1, 0, 5)},
			ExtraLocal: []string{"224.0.0.1"},
		},
	}
}

// recentAB is spec §4.7 A scaled down: --rcheck or --update --seconds 2
// --hitcount 3 DROP before --set ACCEPT, one ping every 450 ms. Stamp ages
// at each decision are at least 200 ms away from the 2 s window edge.
func recentAB(name, mode string) Scenario {
	return Scenario{
		Name:   name,
		Covers: "recent " + mode + " vs --set (spec 4.7 A): which pings pass, how many stamps are recorded",
		Rules: rules(table("filter",
			"-A INPUT -p icmp -m icmp --icmp-type 8 -m recent "+mode+" --seconds 2 --hitcount 3 --name T --mask 255.255.255.255 --rsource -j DROP",
			"-A INPUT -p icmp -m icmp --icmp-type 8 -m recent --set --name T --mask 255.255.255.255 --rsource -j ACCEPT")),
		Client: []Step{ping("{C}", 10, 450, 84)},
		Recent: []string{"T"},
	}
}
