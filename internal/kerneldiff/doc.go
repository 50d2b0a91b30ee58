// Package kerneldiff is the kernel differential suite (issue 4, item 4):
// it proves, scenario by scenario, that uptables' replay of a capture gives
// the same per-rule counters, xt_recent lists and LOG lines as the real
// Linux kernel running the same ruleset on the same packets.
//
// For each Scenario the harness (Scenario.Run, root only):
//
//  1. creates two network namespaces, kdS<N>-<pid> (server) and
//     kdC<N>-<pid> (client), joined by a veth pair, server 10.231.N.1/24,
//     client 10.231.N.2 plus 10.231.N.3-12 (sources for per-host and
//     per-/24 cases); IPv6 off; the client veth's TX checksum offload off
//     (see setTxChecksum);
//  2. loads the ruleset into the server's kernel with iptables-restore
//     (iptables-nft 1.8.9);
//  3. starts the server's listeners (the test binary re-executed inside the
//     namespace with HelperEnv set), opens /dev/kmsg at its end and starts
//     tcpdump on the server veth (waiting for "listening on");
//  4. runs the traffic script in the client namespace (real TCP/UDP
//     sockets, raw IP_HDRINCL packets for pings, flag scans, fragments, IP
//     options, TTLs), then the server's script, waits 400 ms, stops
//     tcpdump with SIGINT by its own pid;
//  5. reads the kernel's results: iptables-save -c, /proc/net/xt_recent/*
//     in the server namespace, and the LOG records from /dev/kmsg that name
//     the scenario's interface (net.netfilter.nf_log_all_netns=1 is set
//     by the test and restored afterwards);
//  6. replays the capture in process through a fresh engine loaded with
//     the same ruleset, the server address as --local, the server veth as
//     input/output interface; and compares.
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
//     boot, the replay's from the first captured packet).
//
// What a capture cannot show, so scenarios avoid it: packets the server
// drops in OUTPUT/POSTROUTING never reach the wire (the kernel counts them,
// the replay never sees them), and ICMP errors beyond the kernel's rate
// limit (burst 6) are never sent. Timing-dependent scenarios keep every
// decision at least ~100 ms from a rate or window boundary.
//
// Run: go test ./internal/kerneldiff (root; skipped with -short or
// without root/tools). KERNELDIFF_RUN=substring selects scenarios,
// KERNELDIFF_VERBOSE=1 logs the kernel's outputs of agreeing ones.
package kerneldiff
