// Package nfqueue makes uptables the host's firewall: the kernel hands
// packets to user space through NFQUEUE, the engine decides, and the
// verdicts go back, all on a raw AF_NETLINK socket (NETLINK_NETFILTER)
// with no allocation per packet (go-nfqueue allocates ~50-67 times per
// packet; Queue is the seam where it could stand in).
//
// # Hook model
//
// The kernel queues from its INPUT, OUTPUT and/or FORWARD hooks (rules in
// mangle's UPTABLES-* chains at priority -150, after conntrack and before
// the kernel's own filter table; see KernelRules). Each queued packet runs
// the whole engine path for where it is going (PathForHook):
//
//	kernel INPUT   -> engine PREROUTING (raw, mangle, nat) + INPUT (mangle, filter, security, nat)
//	kernel OUTPUT  -> engine OUTPUT (raw, mangle, nat, filter, security) + POSTROUTING (mangle, nat)
//	kernel FORWARD -> engine PREROUTING + FORWARD + POSTROUTING
//
// Queueing from INPUT rather than PREROUTING is what tells input from
// forwarded traffic without a routing lookup in user space. The price: the
// engine's PREROUTING runs after the kernel's routing decision, so a DNAT
// in the engine's nat PREROUTING to another host does not re-route the
// packet (a DNAT/REDIRECT to a local address and port works). On OUTPUT the
// kernel re-routes a packet whose addresses or mark the verdict changed
// (nf_reroute on reinjection), so SNAT/DNAT/MARK there behave. Packets of
// the loopback interface go through OUTPUT and then INPUT, as in the
// kernel. REJECT replies leave on a raw socket and themselves traverse
// OUTPUT, like the kernel's own. Only IPv4 is queued (the engine's family).
//
// # Verdicts
//
// ACCEPT continues with the kernel's next hook function (its own filter
// table still runs); DROP drops; the engine's NFQUEUE target re-queues
// (NF_QUEUE with the queue number and bypass flag). A packet the engine
// rewrote (NAT, TTL, TCPMSS, DSCP, TOS; detected by comparing the first 256
// bytes and the length) goes back as NFQA_PAYLOAD with the checksums the
// engine fixed; a changed mark as NFQA_MARK. Plain verdicts are sent in
// batches: runs of equal verdicts on consecutive ids become one
// NFQNL_MSG_VERDICT_BATCH.
//
// # Modes
//
// exact queues every packet: counters, limit/hashlimit, recent, LOG and
// the engine's conntrack see all traffic, as the kernel's own iptables
// would. lifecycle queues only conntrack states other than ESTABLISHED and
// TCP segments with SYN, FIN or RST; the rest stays in the kernel. What
// changes in lifecycle mode (TestDaemonLifecycle shows the first two):
//   - rule and policy counters miss established packets (data, pure ACKs,
//     UDP and ICMP after the first reply);
//   - LOG, limit, hashlimit, recent and quota rules never see them, so a
//     `-m limit` on pings limits only the first echo request of an
//     identifier, and a rule meant to drop established traffic never fires;
//   - the engine's own conntrack sees a connection's SYNs and FIN/RST but
//     not the data between, so its TCP window tracking may call a FIN
//     INVALID; rulesets that drop INVALID should use exact mode;
//   - connlimit still counts connections (they open with a SYN, close with
//     FIN/RST), which is what the seeds need.
//
// # Faults
//
// Fail-open (the default) sets NFQA_CFG_F_FAIL_OPEN (a full queue or
// socket buffer accepts) and --queue-bypass on the kernel rules (no
// listener, e.g. a SIGKILLed daemon: accept). Fail-closed does neither, so
// both drop. A panic while handling a packet is recovered, logged with its
// stack and counted (QueueStats.Panics), and the packet gets the fail
// verdict; so does a payload that does not decode. The next start removes
// a crashed run's kernel rules before installing its own.
package nfqueue
