package kerneldiff

// Router traffic steps: like the two-namespace helpers, with the
// destination given (the server {S} behind the router, or the router's
// public address {RW}).

func rtTCP(src, dst string, dport uint16, count, gapMS, size, holdMS, timeoutMS int) Step {
	return Step{Op: OpTCP, Src: src, Dst: dst, DPort: dport, Count: count, GapMS: gapMS, Size: size, HoldMS: holdMS, TimeoutMS: timeoutMS}
}

func rtUDP(src, dst string, sport, dport uint16, count, gapMS, size int) Step {
	return Step{Op: OpUDP, Src: src, Dst: dst, SPort: sport, DPort: dport, Count: count, GapMS: gapMS, Size: size, ReplyMS: 150}
}

func rtPing(src, dst string, id uint16, count, gapMS, ipLen int) Step {
	return Step{Op: OpRaw, Count: count, GapMS: gapMS, Pkt: &Pkt{Src: src, Dst: dst, Proto: 1, Type: 8, EchoI: id, Len: ipLen}}
}

// RouterScenarios is the router suite. Addresses: {C} client, {C3}..{C6}
// more client addresses; {RW} the router's public (client-side) address,
// {RL} its server-side address; {S} the server, {S3} a second server
// address; {WIF}/{LIF} the router's devices. Dropped TCP connects use a
// 400 ms timeout so that no SYN is retransmitted; rate decisions keep
// ~100 ms margins.
func RouterScenarios() []Scenario {
	return onRouter([]Scenario{
		{
			Name:   "fwd-policy-drop-established",
			Covers: "FORWARD policy DROP with ESTABLISHED,RELATED, NEW per port and direction, LOG of what the policy drops (IN= OUT= MAC=), ping through, TTL decremented on egress",
			Rules: rules(table("filter", ":FORWARD DROP",
				"-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
				"-A FORWARD -i {WIF} -o {LIF} -p tcp -m tcp --dport 7001 --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j ACCEPT",
				"-A FORWARD -i {WIF} -o {LIF} -p udp -m udp --dport 7002 -j ACCEPT",
				"-A FORWARD -p icmp -m icmp --icmp-type 8 -j ACCEPT",
				"-A FORWARD -j LOG --log-prefix \"FWD-DROP: \"")),
			Listen: Listen{TCP: []uint16{7001, 7003}, UDP: []uint16{7002}},
			Client: []Step{rtTCP("{C}", "{S}", 7001, 2, 50, 300, 200, 1000), rtUDP("{C}", "{S}", 0, 7002, 3, 50, 40),
				rtPing("{C}", "{S}", 0x4321, 2, 50, 84), rtTCP("{C}", "{S}", 7003, 1, 0, 0, 0, 400)},
			Server: []Step{rtTCP("{S}", "{C}", 7009, 1, 0, 0, 0, 400)},
		},
		{
			Name:   "dnat-port-forward",
			Covers: "nat PREROUTING DNAT of the router's public address to the server (TCP 8080->7001, UDP 8053->7002): routed after DNAT, FORWARD sees the new destination, nat only for the first packet, replies un-DNATed, conntrack NAT tuples; an ICMP port unreachable of a DNATed flow translated back (quoted header too)",
			Rules: rules(table("nat",
				"-A PREROUTING -d {RW}/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination {S}:7001",
				"-A PREROUTING -d {RW}/32 -p udp -m udp --dport 8053 -j DNAT --to-destination {S}:7002",
				"-A PREROUTING -d {RW}/32 -p udp -m udp --dport 8054 -j DNAT --to-destination {S}:7009",
				"-A PREROUTING -p tcp", "-A POSTROUTING -o {LIF}", "-A POSTROUTING -o {WIF}"),
				table("filter", ":FORWARD DROP",
					"-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
					"-A FORWARD -d {S}/32 -m conntrack --ctstate DNAT -j ACCEPT",
					"-A FORWARD -p icmp", "-A INPUT")),
			Listen: Listen{TCP: []uint16{7001}, UDP: []uint16{7002}},
			Client: []Step{rtTCP("{C}", "{RW}", 8080, 2, 50, 500, 200, 1000), rtUDP("{C}", "{RW}", 0, 8053, 3, 50, 30),
				rtUDP("{C}", "{RW}", 0, 8054, 1, 0, 20)},
		},
		{
			Name:   "dnat-ranges",
			Covers: "DNAT --to-destination ADDR:PORT-PORT (the kernel keeps the first free port), DNAT to an address range {S}-{S3} (the address picked by a hash of the client's address and, without --persistent, the original destination), several clients",
			Rules: rules(table("nat",
				"-A PREROUTING -d {RW}/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination {S}:7001-7003",
				"-A PREROUTING -d {RW}/32 -p udp -m udp --dport 8053 -j DNAT --to-destination {S}-{S3}",
				"-A PREROUTING -d {RW}/32 -p udp -m udp --dport 8054 -j DNAT --to-destination {S}-{S3}:7002 --persistent"),
				table("filter", "-A FORWARD -m conntrack --ctstate DNAT")),
			Listen: Listen{TCP: []uint16{7001, 7002, 7003}, UDP: []uint16{7002, 8053}},
			Client: []Step{rtTCP("{C}", "{RW}", 8080, 2, 50, 100, 100, 1000), rtTCP("{C3}", "{RW}", 8080, 1, 0, 100, 100, 1000),
				rtUDP("{C}", "{RW}", 0, 8053, 1, 0, 10), rtUDP("{C3}", "{RW}", 0, 8053, 1, 0, 10), rtUDP("{C4}", "{RW}", 0, 8053, 1, 0, 10),
				rtUDP("{C5}", "{RW}", 0, 8053, 1, 0, 10), rtUDP("{C6}", "{RW}", 0, 8053, 1, 0, 10),
				rtUDP("{C}", "{RW}", 0, 8054, 1, 0, 10), rtUDP("{C4}", "{RW}", 0, 8054, 1, 0, 10), rtUDP("{C6}", "{RW}", 0, 8054, 1, 0, 10)},
		},
		{
			Name:   "snat-through",
			Covers: "nat POSTROUTING SNAT --to-source of the router's LAN address for client traffic to the server (TCP, UDP, ping: ICMP id kept), replies de-SNATed in PREROUTING before routing; SNAT with a port range keeping an in-range source port",
			Rules: rules(table("nat",
				"-A POSTROUTING -o {LIF} -p udp -m udp --dport 7004 -j SNAT --to-source {RL}:30000-30010",
				"-A POSTROUTING -o {LIF} -j SNAT --to-source {RL}"),
				table("filter", "-A FORWARD -m conntrack --ctstate SNAT", "-A FORWARD -m conntrack --ctstate ESTABLISHED", "-A FORWARD -p icmp")),
			Listen: Listen{TCP: []uint16{7001}, UDP: []uint16{7002, 7004}},
			Client: []Step{rtTCP("{C}", "{S}", 7001, 2, 50, 200, 150, 1000), rtUDP("{C}", "{S}", 0, 7002, 2, 50, 30),
				rtUDP("{C}", "{S}", 30005, 7004, 2, 50, 30), rtPing("{C}", "{S}", 0x1111, 2, 50, 100)},
		},
		{
			Name:   "masquerade-outbound",
			Covers: "MASQUERADE on the WAN device for server-initiated traffic (TCP, UDP, ping), MASQUERADE --to-ports keeping an in-range port, replies un-NATed before routing, FORWARD by direction",
			Rules: rules(table("nat",
				"-A POSTROUTING -o {WIF} -p udp -m udp --dport 7006 -j MASQUERADE --to-ports 20000-20010",
				"-A POSTROUTING -o {WIF} -j MASQUERADE"),
				table("filter", ":FORWARD DROP",
					"-A FORWARD -i {LIF} -o {WIF} -j ACCEPT",
					"-A FORWARD -i {WIF} -o {LIF} -m state --state RELATED,ESTABLISHED -j ACCEPT")),
			Listen: Listen{},
			Server: []Step{rtTCP("{S}", "{C}", 7005, 1, 0, 0, 0, 400), rtUDP("{S}", "{C}", 0, 7005, 2, 50, 20),
				rtUDP("{S}", "{C}", 20004, 7006, 2, 50, 20), rtPing("{S}", "{C}", 0x2222, 2, 50, 84)},
		},
		{
			Name:   "hairpin",
			Covers: "hairpin NAT: a LAN host reaches the router's public address, DNATed back to the LAN and SNATed to the router's LAN address so replies return through it; forwarded out of the device it came in on",
			Rules: rules(table("nat",
				"-A PREROUTING -d {RW}/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination {S}:7001",
				"-A POSTROUTING -s {LNET}/24 -d {S}/32 -p tcp -m tcp --dport 7001 -j SNAT --to-source {RL}"),
				table("filter", "-A FORWARD -i {LIF} -o {LIF}", "-A FORWARD -m conntrack --ctstate SNAT,DNAT")),
			Listen: Listen{TCP: []uint16{7001}},
			Server: []Step{rtTCP("{S3}", "{RW}", 8080, 2, 50, 200, 150, 1000)},
		},
		{
			Name:   "mangle-ttl-tcpmss-mark",
			Covers: "mangle on the forward path: TTL --ttl-set/--ttl-inc, TCPMSS --set-mss on SYNs, MARK in PREROUTING, CONNMARK --save-mark/--restore-mark, -m mark/-m connmark in FORWARD, conntrack mark=",
			Rules: rules(table("mangle",
				"-A PREROUTING -j CONNMARK --restore-mark",
				"-A PREROUTING -i {WIF} -p tcp -m tcp --dport 7001 -m mark --mark 0 -j MARK --set-mark 0x7",
				"-A PREROUTING -j CONNMARK --save-mark",
				"-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1200",
				"-A FORWARD -p udp -j TTL --ttl-set 20",
				"-A POSTROUTING -p icmp -j TTL --ttl-inc 2"),
				table("filter", "-A FORWARD -m mark --mark 0x7", "-A FORWARD -m connmark --mark 0x7", "-A FORWARD -p udp -m ttl --ttl-eq 20")),
			Listen: Listen{TCP: []uint16{7001}, UDP: []uint16{7002}},
			Client: []Step{rtTCP("{C}", "{S}", 7001, 2, 50, 200, 150, 1000), rtUDP("{C}", "{S}", 0, 7002, 2, 50, 30), rtPing("{C}", "{S}", 0x3333, 2, 50, 84)},
		},
		{
			Name:   "raw-notrack-forward",
			Covers: "raw PREROUTING NOTRACK on forwarded UDP (UNTRACKED in FORWARD, nat never sees it, no conntrack entry), tracked TCP beside it SNATed",
			Rules: rules(table("raw", "-A PREROUTING -p udp -m udp --dport 7002 -j NOTRACK", "-A PREROUTING -p udp -m udp --sport 7002 -j NOTRACK"),
				table("nat", "-A POSTROUTING -o {LIF} -j SNAT --to-source {RL}"),
				table("filter", "-A FORWARD -m state --state UNTRACKED", "-A FORWARD -m state --state NEW,ESTABLISHED")),
			Listen: Listen{TCP: []uint16{7001}, UDP: []uint16{7002}},
			Client: []Step{rtUDP("{C}", "{S}", 0, 7002, 2, 50, 30), rtTCP("{C}", "{S}", 7001, 1, 0, 100, 100, 1000)},
		},
		{
			Name:   "stateful-matches-forward",
			Covers: "connlimit (--connlimit-above 2, REJECT tcp-reset from FORWARD: the RST leaves by the client's device and crosses nat POSTROUTING), recent --set/--update --hitcount 4 dropping the fourth new connection, limit with LOG, all on DNATed connections in FORWARD",
			Rules: rules(table("nat", "-A PREROUTING -d {RW}/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination {S}:7001"),
				table("filter", ":FORWARD DROP",
					"-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
					"-A FORWARD -p tcp -m tcp --dport 7001 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with tcp-reset",
					"-A FORWARD -p tcp -m tcp --dport 7001 -m recent --set --name FWDNEW --mask 255.255.255.255 --rsource",
					"-A FORWARD -p tcp -m tcp --dport 7001 -m recent --update --seconds 60 --hitcount 4 --name FWDNEW --mask 255.255.255.255 --rsource -j DROP",
					"-A FORWARD -p tcp -m tcp --dport 7001 -m limit --limit 2/sec --limit-burst 2 -j LOG --log-prefix \"FWD-NEW: \"",
					"-A FORWARD -p tcp -m tcp --dport 7001 -j ACCEPT")),
			// Timeline (limit 2/s, burst 2: a token every 500 ms): {C}
			// opens 4 connections 150 ms apart and holds them: 2 pass
			// (LOG, LOG), 2 are reset by connlimit. At +1600 ms the
			// bucket is full again; {C4} then opens 5 connections one
			// at a time, ~300 ms apart, each closed at once (TIME_WAIT
			// does not count for connlimit): the first three pass and
			// are logged (the third with 0.2 tokens, 100 ms, to spare),
			// the fourth and fifth reach 4 and 5 recent hits and are
			// dropped (400 ms timeout, no retransmission).
			Listen: Listen{TCP: []uint16{7001}},
			Client: []Step{
				{Op: OpTCP, Src: "{C}", Dst: "{RW}", DPort: 8080, Count: 4, GapMS: 150, HoldMS: 1200, TimeoutMS: 400, Background: true},
				sleep(1600),
				rtTCP("{C4}", "{RW}", 8080, 1, 0, 0, 0, 400), sleep(300),
				rtTCP("{C4}", "{RW}", 8080, 1, 0, 0, 0, 400), sleep(300),
				rtTCP("{C4}", "{RW}", 8080, 1, 0, 0, 0, 400), sleep(300),
				rtTCP("{C4}", "{RW}", 8080, 1, 0, 0, 0, 400), sleep(300),
				rtTCP("{C4}", "{RW}", 8080, 1, 0, 0, 0, 400),
			},
			Recent: []string{"FWDNEW"},
		},
		{
			Name:   "redirect-to-router",
			Covers: "REDIRECT --to-ports with a range to a listener on the router, for its public address and for transit traffic to the server: INPUT sees the local port, the router's replies run OUTPUT in the local form and leave un-REDIRECTed (the public address and port, or the server's)",
			Rules: rules(table("nat",
				"-A PREROUTING -i {WIF} -d {RW}/32 -p tcp -m tcp --dport 8081 -j REDIRECT --to-ports 9000-9001",
				"-A PREROUTING -i {WIF} -d {S}/32 -p tcp -m tcp --dport 7007 -j REDIRECT --to-ports 9001",
				"-A OUTPUT -p tcp", "-A POSTROUTING -p tcp"),
				table("filter", "-A INPUT -p tcp -m tcp --dport 9000", "-A INPUT -p tcp -m tcp --dport 9001", "-A INPUT -m conntrack --ctstate DNAT",
					"-A OUTPUT -p tcp -m tcp --sport 9000", "-A OUTPUT -p tcp -m tcp --sport 9001", "-A OUTPUT -m conntrack --ctstate DNAT", "-A FORWARD")),
			RouterListen: Listen{TCP: []uint16{9000, 9001}},
			Client:       []Step{rtTCP("{C}", "{RW}", 8081, 2, 50, 300, 150, 1000), rtTCP("{C}", "{S}", 7007, 1, 0, 200, 150, 1000)},
		},
	})
}

// onRouter marks every scenario of the router suite as run on the router
// topology.
func onRouter(scs []Scenario) []Scenario {
	for i := range scs {
		scs[i].Router = true
	}
	return scs
}
