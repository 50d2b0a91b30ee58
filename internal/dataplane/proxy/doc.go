// Package proxy is the unprivileged data plane: it enforces a ruleset on
// TCP connections and UDP datagrams that reach user-space sockets, by
// turning what the sockets do into the packets the kernel of the listening
// host would run through netfilter, and acting on the verdicts.
//
// TCP (Gate.Admit, Flow, Conn). When the local kernel hands over an
// accepted connection, the engine sees the SYN (INPUT path, from the client
// to the listening address and port, on "lo" for local clients), the
// SYN/ACK (OUTPUT), and the final ACK (INPUT); then one data segment per
// read in each direction with consistent sequence and acknowledgment
// numbers, pure ACKs on long one-way transfers, and FIN/ACK from each side
// plus the last ACK, or a RST. Conntrack therefore sees a plausible stream:
// connlimit counts the connection while it lives, recent and limit meter
// new ones, state/conntrack classify, LOG logs.
//
// Verdicts. ACCEPT proxies. DROP closes without a byte (after an optional
// silent hold). REJECT is seen as a drop plus an emitted reply: a TCP RST
// resets the client (SO_LINGER 0); an ICMP error closes. OUTPUT-path
// verdicts are honoured the same way. A refused segment of an established
// connection cuts it (counted), where the kernel would drop the segment
// and let TCP retransmit until a later copy passed or the connection timed
// out.
//
// NFQUEUE. No program consumes queues here, so an NFQUEUE rule acts as in
// a kernel with nothing bound to the queue (netfilter.Worker
// SetNoQueueListener): with --queue-bypass the table that queued accepts
// and the packet goes on through the later tables and hooks, whose rules
// still decide (and conntrack confirms it); without it the packet is
// dropped.
//
// What differs from packet-level enforcement, unavoidably: the local
// kernel has completed the handshake before any rule runs, so a client
// never sees a SYN go unanswered (connect(2) succeeds, then EOF or
// ECONNRESET; on loopback the RST can even arrive before connect returns)
// and never sees ECONNREFUSED. Segmentation is per read, not per MSS, so
// packet counters count reads. The upstream leg of the proxy is not run
// through the rules.
//
// UDP (Server's udp routes, PacketConn). Each datagram is one packet:
// client → listening address on INPUT, replies on OUTPUT. Refused datagrams
// are discarded (and, for PacketConn.WriteTo, fail with EPERM as sendto
// does under a netfilter DROP).
//
// PROXY protocol v1/v2 (ReadProxyHeader) is read only from trusted source
// ranges, where it is required; the rules then see the announced client.
// The proxy can announce clients to its upstream (send-proxy, -v2).
//
// Cost. The proxy's time goes to system calls (accept, the upstream
// connect, a read and a write per segment each way, shutdown and close);
// what it adds itself is kept small: each TCP connection is one session
// (one goroutine per direction), its Conn and Flow one allocation, the
// engine's workers are borrowed per packet from a small free list rather
// than made per connection, a segment carries up to 64 KiB (one loopback
// read) with its checksum summed 64 bits at a time, and the idle deadline
// is re-armed only when it expires. The payload is read into user space
// because the rules may look at it (-m string, u32, bpf) and the
// synthetic segment's checksum covers it, so splice(2) is not used.
//
// Bounds: MaxConns open TCP connections (the accept loop waits for a slot,
// leaving new connections in the kernel backlog), MaxSessions UDP sessions
// per route, two SegmentBuf buffers per connection from a pool, header
// reads bounded in size and time.
package proxy
