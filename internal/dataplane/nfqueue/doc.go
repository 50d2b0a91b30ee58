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
// # GSO and checksums
//
// The queue is bound with NFQA_CFG_F_GSO by default (--gso=false, TOML
// gso = false, turns it off). GSO/GRO aggregates (up to 64 KiB of one TCP
// flow, more on loopback: see below) are then queued whole, which is what the kernel's own iptables
// sees: its rule counters count one packet per aggregate with the
// aggregate's length, and so do uptables' (TestDaemonGSOStateful: the
// ESTABLISHED rule's bytes within 0.1 % of the kernel's). Without the flag
// the kernel segments every aggregate before queueing, so uptables counts
// one packet and one IP and TCP header per MSS (about 20 times the
// packets and 4 % more bytes than the kernel) and runs about 7 times as
// many packets through user space.
//
// NFQA_SKB_INFO tells how far the kernel got with the L4 checksum, and
// uptables follows the kernel's own rule (nf_ip_checksum): only a packet
// marked CSUM_NOTVERIFIED has its checksum tested (by conntrack in
// PREROUTING, which makes a bad one INVALID, and by REJECT, which does not
// answer it). A packet marked CSUMNOTREADY (CHECKSUM_PARTIAL: a local
// socket's segment on loopback or veth, with GSO; its checksum field holds
// only the pseudo-header sum) or carrying neither bit (already verified)
// is trusted, as the kernel trusts it (packet.Packet.L4CsumTrusted).
// Without GSO the kernel completes partial checksums before queueing.
// A CSUMNOTREADY packet the engine rewrites (NAT, TTL, TCPMSS, DSCP) goes
// back with its TCP or UDP checksum computed over the whole packet: the
// kernel installs a replacement payload without checksum offload
// (CHECKSUM_NONE), so the receiving socket would otherwise drop it
// (TestDaemonGSORewrite); SCTP's CRC32c is not completed.
//
// The kernel copies at most 65531 bytes of a packet (NFQNL_MAX_COPY_RANGE;
// NFQA_CAP_LEN gives the real length). Longer packets are common on
// loopback, whose MTU is 65536: full segments of 65532-65535 bytes, and,
// with GSO, aggregates at the OUTPUT hook beyond 64 KiB (measured on this
// machine's kernel 6.18: up to ~130 KB, IPv4 total length 0 as BIG TCP
// sets it; the kernel's own iptables counts each as one packet of its
// real length, `! --length 0:65535` matches it, LOG prints LEN= the real
// length; INPUT sees them resegmented to at most 65535 bytes). Such a
// packet is decided on its copy and its real length (packet.DecodeCut,
// packet.Packet.Cut): rule counters, quota and hashlimit bytes, -m length,
// LOG's LEN=, and conntrack's sequence tracking (the payload a TCP segment
// advances by, the UDP length check) use the real length, as the kernel
// does; its L4 checksum is not tested (the tail is missing); matches that
// read payload bytes (-m string, -m u32) see only the 65531 bytes
// present, so a pattern in the tail is not found and a u32 test there
// fails (TestDaemonLoopbackBulk: bulk loopback TCP with fail-open and
// fail-closed, counters within 3 % of the kernel's). QueueStats.Cut counts
// these packets. A rewrite of one (NAT, TTL, DSCP ...) cannot be handed
// back: the kernel installs a verdict's payload as the whole packet
// (nfqnl_mangle trims the skb to it) and has no header-only form, so it
// gets the fail verdict, counted in CutRewrites and logged at the 1st,
// 2nd, 4th ... occurrence; with fail-open the packet then passes
// unrewritten, with fail-closed it is dropped. Rules that rewrite bulk
// loopback TCP should therefore not run through the OUTPUT hook with
// fail-closed, and --gso=false does not help there (full 65535-byte
// segments are cut too).
//
// # Faults
//
// Fail-open (the default) sets NFQA_CFG_F_FAIL_OPEN (a full queue or
// socket buffer accepts) and --queue-bypass on the kernel rules (no
// listener, e.g. a SIGKILLed daemon: accept). Fail-closed does neither, so
// both drop (TestFullQueue, TestDaemonSIGKILL). The kernel tells a
// listener nothing about a full queue; it counts the packets it dropped
// (fail-closed only: accepting with fail-open counts nothing) and those
// it could not deliver to the socket in /proc/net/netfilter/nfnetlink_queue,
// which the stats file reports per queue (kernel_waiting,
// kernel_queue_dropped, kernel_user_dropped; RefreshKernelStats). An
// undeliverable packet also makes the socket's next read fail with
// ENOBUFS (Stats.Overruns). A panic while handling a packet is recovered, logged with its
// stack and counted (QueueStats.Panics), and the packet gets the fail
// verdict; so does a payload that does not decode. The next start removes
// a crashed run's kernel rules before installing its own.
package nfqueue
