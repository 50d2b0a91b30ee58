// Package kerneldiff is the kernel differential suite (issue 4, item 4):
// it proves, scenario by scenario, that uptables' replay of a capture gives
// the same per-rule counters, xt_recent lists and LOG lines as the real
// Linux kernel running the same ruleset on the same packets.
//
// For each Scenario the one runner (Scenario.Run, root only):
//
//  1. creates the scenario's topology: by default two network namespaces,
//     kdS<N>-<pid> (server) and kdC<N>-<pid> (client), joined by a veth
//     pair, server 10.231.N.1/24, client 10.231.N.2 plus 10.231.N.3-12
//     (sources for per-host and per-/24 cases); with Scenario.Router three,
//     client, router and server (router.go), the ruleset on the router;
//     IPv6 off; TX checksum offload off on the veths whose packets are
//     captured at their peer (see setTxChecksum);
//  2. restores Scenario.Sets with `ipset restore` when given, then loads
//     the ruleset into the kernel's namespace with iptables-restore
//     (iptables-nft 1.8.9);
//  3. starts the listeners (the test binary re-executed inside the
//     namespace with HelperEnv set), opens /dev/kmsg at its end and starts
//     tcpdump (the server veth; on the router ingress and egress of both
//     devices), waiting for "listening on";
//  4. runs the traffic script in the client namespace (real TCP/UDP
//     sockets, raw IP_HDRINCL packets for pings, flag scans, fragments, IP
//     options, TTLs), then the server's script, waits 400 ms, stops
//     tcpdump with SIGINT by its own pid;
//  5. reads the kernel's results: first each View (Scenario.Views and the
//     topology's own: conntrack -L, ipset save, the router's egress),
//     then iptables-save -c, /proc/net/xt_recent/* and the LOG records
//     from /dev/kmsg that name the scenario's interfaces
//     (net.netfilter.nf_log_all_netns=1 is set by the test and restored
//     afterwards);
//  6. replays the capture in process through a fresh engine loaded with
//     the same ruleset (and sets, loaded at the first packet's time), the
//     server address as --local, the server veth as input/output
//     interface (on the router: both devices' ingress merged by time,
//     routed as the router does); reads each View from the replay's end
//     state; and compares.
//
// Comparison and normalisation:
//
//   - counters: iptables-save -c of both, table by table, line by line
//     (rule text, packets and bytes of every rule and every policy); only
//     the "# Generated/# Completed" comment lines are dropped;
//   - LOG lines: byte for byte, in order, no normalisation (the capture's
//     Ethernet header is the MAC= the kernel prints); the log level
//     (syslog priority) is not compared;
//   - recent lists: matched by address (the kernel's hash order is
//     seeded at random); ttl, ring index (oldest_pkt) and number of stamps
//     exact; stamps and last_seen within RecentToleranceJiffies after each
//     side is shifted to its earliest stamp (kernel jiffies count from
//     boot, the replay's from the first captured packet);
//   - views: each side's text normalised into lines by the View and
//     compared by it (conntrack tables by entry with remaining timeouts
//     within ctTimeoutSlack, or without timeouts on the router; set
//     members with timeouts within ipsetTimeoutSlack; a router's egress
//     packets byte for byte, ordered by flow).
//
// What a capture cannot show, so scenarios avoid it: packets the server
// drops in OUTPUT/POSTROUTING never reach the wire (the kernel counts them,
// the replay never sees them), and ICMP errors beyond the kernel's rate
// limit (burst 6) are never sent. Timing-dependent scenarios keep every
// decision at least ~100 ms from a rate or window boundary.
//
// Run: go test ./internal/kerneldiff (root; skipped with -short or
// without root/tools). Every suite (TestKernelDiff, TestRouterKernelDiff,
// TestKernelDiffConntrack, TestKernelDiffIpset, TestKernelDiffRandom) is
// the same loop (runSuite): KERNELDIFF_RUN=substring selects scenarios,
// KERNELDIFF_VERBOSE=1 logs the kernel's outputs of agreeing ones,
// KERNELDIFF_KEEP=DIR keeps each run's rules, captures and LOG lines.
package kerneldiff
