package conntrack

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"
)

// Timeouts are the per-state timeouts, named after the
// /proc/sys/net/netfilter/nf_conntrack_* sysctls. Zero values are replaced
// by the kernel defaults (DefaultTimeouts) in New.
type Timeouts struct {
	TCPSynSent     time.Duration // nf_conntrack_tcp_timeout_syn_sent, 120 s
	TCPSynRecv     time.Duration // nf_conntrack_tcp_timeout_syn_recv, 60 s
	TCPEstablished time.Duration // nf_conntrack_tcp_timeout_established, 432000 s
	TCPFinWait     time.Duration // nf_conntrack_tcp_timeout_fin_wait, 120 s
	TCPCloseWait   time.Duration // nf_conntrack_tcp_timeout_close_wait, 60 s
	TCPLastAck     time.Duration // nf_conntrack_tcp_timeout_last_ack, 30 s
	TCPTimeWait    time.Duration // nf_conntrack_tcp_timeout_time_wait, 120 s
	TCPClose       time.Duration // nf_conntrack_tcp_timeout_close, 10 s
	TCPMaxRetrans  time.Duration // nf_conntrack_tcp_timeout_max_retrans, 300 s
	TCPUnack       time.Duration // nf_conntrack_tcp_timeout_unacknowledged, 300 s
	UDP            time.Duration // nf_conntrack_udp_timeout, 30 s
	UDPStream      time.Duration // nf_conntrack_udp_timeout_stream, 120 s
	ICMP           time.Duration // nf_conntrack_icmp_timeout, 30 s
	ICMPv6         time.Duration // nf_conntrack_icmpv6_timeout, 30 s
	Generic        time.Duration // nf_conntrack_generic_timeout, 600 s

	SCTPClosed          time.Duration // nf_conntrack_sctp_timeout_closed, 10 s
	SCTPCookieWait      time.Duration // nf_conntrack_sctp_timeout_cookie_wait, 3 s
	SCTPCookieEchoed    time.Duration // nf_conntrack_sctp_timeout_cookie_echoed, 3 s
	SCTPEstablished     time.Duration // nf_conntrack_sctp_timeout_established, 210 s
	SCTPShutdownSent    time.Duration // nf_conntrack_sctp_timeout_shutdown_sent, 3 s
	SCTPShutdownRecd    time.Duration // nf_conntrack_sctp_timeout_shutdown_recd, 3 s
	SCTPShutdownAckSent time.Duration // nf_conntrack_sctp_timeout_shutdown_ack_sent, 3 s
	SCTPHeartbeatSent   time.Duration // nf_conntrack_sctp_timeout_heartbeat_sent, 30 s
	GRE                 time.Duration // nf_conntrack_gre_timeout, 30 s (no reply seen)
	GREStream           time.Duration // nf_conntrack_gre_timeout_stream, 180 s
}

// DefaultTimeouts are the kernel defaults, as read from /proc/sys/net/netfilter
// on a 6.18 kernel (spec §2.4).
func DefaultTimeouts() Timeouts {
	return Timeouts{
		TCPSynSent:     120 * time.Second,
		TCPSynRecv:     60 * time.Second,
		TCPEstablished: 432000 * time.Second,
		TCPFinWait:     120 * time.Second,
		TCPCloseWait:   60 * time.Second,
		TCPLastAck:     30 * time.Second,
		TCPTimeWait:    120 * time.Second,
		TCPClose:       10 * time.Second,
		TCPMaxRetrans:  300 * time.Second,
		TCPUnack:       300 * time.Second,
		UDP:            30 * time.Second,
		UDPStream:      120 * time.Second,
		ICMP:           30 * time.Second,
		ICMPv6:         30 * time.Second,
		Generic:        600 * time.Second,

		SCTPClosed:          10 * time.Second,
		SCTPCookieWait:      3 * time.Second,
		SCTPCookieEchoed:    3 * time.Second,
		SCTPEstablished:     210 * time.Second,
		SCTPShutdownSent:    3 * time.Second,
		SCTPShutdownRecd:    3 * time.Second,
		SCTPShutdownAckSent: 3 * time.Second,
		SCTPHeartbeatSent:   30 * time.Second,
		GRE:                 30 * time.Second,
		GREStream:           180 * time.Second,
	}
}

// DefaultMax is nf_conntrack_max on a 64-bit machine with more than 4 GiB of
// RAM (this machine: 262144). See DefaultMaxForRAM for the whole rule.
const DefaultMax = 262144

// DefaultMaxForRAM computes the kernel's default nf_conntrack_buckets (and
// nf_conntrack_max, which equals it with the default max factor of 1) from
// the machine's RAM in bytes, as nf_conntrack_init_start does on 64-bit:
// RAM/16384/8 hash heads, 65536 above 1 GiB, 262144 above 4 GiB, at least 1024.
func DefaultMaxForRAM(ram uint64) int {
	const gib = 1 << 30
	n := int(ram / 16384 / 8)
	switch {
	case ram > 4*gib:
		n = 262144
	case ram > gib:
		n = 65536
	}
	if n < 1024 {
		n = 1024
	}
	return n
}

// Config configures a Table. The zero value of a field means "kernel
// default"; use DefaultConfig to see them.
type Config struct {
	// Max is nf_conntrack_max: the most entries, unconfirmed ones included.
	// Memory is allocated in chunks as entries are needed and never beyond Max.
	Max int
	// Buckets is nf_conntrack_buckets (hash heads); default = Max, as the
	// kernel (max factor 1). Rounded up to a power of two.
	Buckets int
	// HashKey keys the SipHash-2-4 bucket hash so that remote peers cannot
	// aim their tuples at one bucket (the kernel keys siphash with a random
	// seed). All zero = random key from crypto/rand; set it for reproducible
	// tests.
	HashKey [2]uint64
	// Locks is the number of lock stripes guarding the buckets (power of
	// two, default 1024).
	Locks int

	// Checksum is nf_conntrack_checksum (default true): verify L4 checksums
	// of packets entering at PREROUTING; a bad one makes the packet INVALID.
	// Set NoChecksum to turn it off (Go's zero value cannot say "default on").
	NoChecksum bool
	// NoTCPLoose turns nf_conntrack_tcp_loose off (default on: a mid-stream
	// ACK picks up a connection).
	NoTCPLoose bool
	// TCPBeLiberal is nf_conntrack_tcp_be_liberal (default off): out-of-window
	// packets are accepted instead of being INVALID.
	TCPBeLiberal bool
	// TCPIgnoreInvalidRST is nf_conntrack_tcp_ignore_invalid_rst (default off).
	TCPIgnoreInvalidRST bool
	// TCPMaxRetrans is nf_conntrack_tcp_max_retrans (default 3).
	TCPMaxRetrans int

	Timeouts Timeouts
}

// DefaultConfig returns the kernel's defaults (with a random hash key).
func DefaultConfig() Config {
	c := Config{}
	c.fill()
	return c
}

func (c *Config) fill() {
	if c.Max == 0 {
		c.Max = DefaultMax
	}
	if c.Buckets == 0 {
		c.Buckets = c.Max
	}
	c.Buckets = pow2(c.Buckets)
	if c.Locks == 0 {
		c.Locks = 1024
	}
	c.Locks = pow2(c.Locks)
	if c.Locks > c.Buckets {
		c.Locks = c.Buckets
	}
	if c.TCPMaxRetrans == 0 {
		c.TCPMaxRetrans = 3
	}
	if c.HashKey == [2]uint64{} {
		var b [16]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		c.HashKey[0] = binary.LittleEndian.Uint64(b[:8])
		c.HashKey[1] = binary.LittleEndian.Uint64(b[8:])
	}
	d := DefaultTimeouts()
	t := &c.Timeouts
	for _, p := range []struct {
		v *time.Duration
		d time.Duration
	}{
		{&t.TCPSynSent, d.TCPSynSent}, {&t.TCPSynRecv, d.TCPSynRecv}, {&t.TCPEstablished, d.TCPEstablished},
		{&t.TCPFinWait, d.TCPFinWait}, {&t.TCPCloseWait, d.TCPCloseWait}, {&t.TCPLastAck, d.TCPLastAck},
		{&t.TCPTimeWait, d.TCPTimeWait}, {&t.TCPClose, d.TCPClose}, {&t.TCPMaxRetrans, d.TCPMaxRetrans},
		{&t.TCPUnack, d.TCPUnack}, {&t.UDP, d.UDP}, {&t.UDPStream, d.UDPStream}, {&t.ICMP, d.ICMP},
		{&t.ICMPv6, d.ICMPv6}, {&t.Generic, d.Generic},
		{&t.SCTPClosed, d.SCTPClosed}, {&t.SCTPCookieWait, d.SCTPCookieWait}, {&t.SCTPCookieEchoed, d.SCTPCookieEchoed},
		{&t.SCTPEstablished, d.SCTPEstablished}, {&t.SCTPShutdownSent, d.SCTPShutdownSent}, {&t.SCTPShutdownRecd, d.SCTPShutdownRecd},
		{&t.SCTPShutdownAckSent, d.SCTPShutdownAckSent}, {&t.SCTPHeartbeatSent, d.SCTPHeartbeatSent},
		{&t.GRE, d.GRE}, {&t.GREStream, d.GREStream},
	} {
		if *p.v == 0 {
			*p.v = p.d
		}
	}
}

func (c *Config) validate() error {
	if c.Max < 0 || c.Buckets < 0 || c.Locks < 0 || c.TCPMaxRetrans < 0 {
		return fmt.Errorf("conntrack: negative size in config (max %d, buckets %d, locks %d, tcp_max_retrans %d)", c.Max, c.Buckets, c.Locks, c.TCPMaxRetrans)
	}
	if c.Max > 1<<26 || c.Buckets > 1<<26 {
		return fmt.Errorf("conntrack: max %d / buckets %d above the supported 67108864", c.Max, c.Buckets)
	}
	t := c.Timeouts
	for _, d := range []time.Duration{t.TCPSynSent, t.TCPSynRecv, t.TCPEstablished, t.TCPFinWait, t.TCPCloseWait,
		t.TCPLastAck, t.TCPTimeWait, t.TCPClose, t.TCPMaxRetrans, t.TCPUnack, t.UDP, t.UDPStream, t.ICMP, t.ICMPv6, t.Generic,
		t.SCTPClosed, t.SCTPCookieWait, t.SCTPCookieEchoed, t.SCTPEstablished, t.SCTPShutdownSent, t.SCTPShutdownRecd,
		t.SCTPShutdownAckSent, t.SCTPHeartbeatSent, t.GRE, t.GREStream} {
		if d < 0 {
			return fmt.Errorf("conntrack: negative timeout %v", d)
		}
	}
	return nil
}

func pow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}
