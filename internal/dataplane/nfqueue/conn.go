package nfqueue

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Queue is one bound NFQUEUE queue as the daemon uses it. Conn (raw
// AF_NETLINK, zero allocation) implements it; an adapter over
// florianl/go-nfqueue could too, at ~50-67 allocations per packet.
//
// A Queue is used by one goroutine, which also closes it once it stopped
// reading (closing a descriptor another thread is blocked on is unsafe:
// the number could be reused under it).
type Queue interface {
	// Num is the queue number.
	Num() uint16
	// Read fills m with the next queued packet. With wait it blocks up to
	// the read timeout; without it returns at once. ErrNoPacket means none
	// arrived. m.Payload is valid until the next Read.
	Read(m *Msg, wait bool) error
	// Verdict records a plain verdict for id; it goes out at Flush (or
	// earlier when the buffer fills). Verdicts must be given in Read order.
	Verdict(id uint32, v Verdict)
	// VerdictWith records a verdict carrying a new mark (setMark) and/or a
	// replacement payload (non-nil), copied at once.
	VerdictWith(id uint32, v Verdict, mark uint32, setMark bool, payload []byte)
	// Flush sends the recorded verdicts.
	Flush() error
	// Close unbinds the queue and closes it; pending packets are dropped
	// by the kernel (or accepted, with fail-open).
	Close() error
}

// ErrNoPacket is returned by Read when nothing arrived in time.
var ErrNoPacket = errors.New("nfqueue: no packet")

// Config describes one queue binding.
type Config struct {
	Num uint16
	// FailOpen sets NFQA_CFG_F_FAIL_OPEN: packets that do not fit in the
	// queue (or in the socket buffer) are accepted instead of dropped.
	FailOpen bool
	// GSO sets NFQA_CFG_F_GSO: GSO aggregates are queued whole instead of
	// being segmented by the kernel first (fewer, bigger packets).
	GSO bool
	// UIDGID asks for NFQA_UID/NFQA_GID of locally generated packets.
	UIDGID bool
	// MaxLen is the queue length (NFQA_CFG_QUEUE_MAXLEN); 0 keeps the
	// kernel's default of 1024 packets.
	MaxLen uint32
	// RcvBuf is the socket receive buffer in bytes, forced past
	// net.core.rmem_max with SO_RCVBUFFORCE (root); 0 = 8 MiB. The kernel
	// counts a queued packet's whole skb against it, so this bounds how many
	// packets can be in flight to user space at once.
	RcvBuf int
	// CopyRange is how many bytes of each packet are copied; 0 = all
	// (the kernel caps it at 65531).
	CopyRange uint32
	// ReadTimeout bounds a waiting Read (SO_RCVTIMEO); 0 = 200 ms.
	ReadTimeout time.Duration
}

// Stats are a Conn's counters, safe to read from any goroutine.
type Stats struct {
	Packets    atomic.Uint64 // PACKET messages read
	Verdicts   atomic.Uint64 // verdict messages sent (a batch counts once)
	Batches    atomic.Uint64 // of which VERDICT_BATCH
	Overruns   atomic.Uint64 // ENOBUFS: the socket buffer overflowed, packets lost to fail-open/closed
	NetlinkErr atomic.Uint64 // NLMSG_ERROR answers to verdicts (unknown id, ...)
	// Malformed counts PACKET messages that were cut or had a bad
	// attribute: those with a readable id are still handed out (with
	// Msg.Malformed) so they get a verdict; the others are skipped.
	Malformed atomic.Uint64
	Sends     atomic.Uint64 // sendto calls
}

// Conn is a queue bound on a raw NETLINK_NETFILTER socket. The per-packet
// path (Read, Verdict, VerdictWith, Flush) allocates nothing.
type Conn struct {
	fd     int
	num    uint16
	closed atomic.Bool

	rbuf       []byte
	rpos, rend int

	w       msgWriter
	wcap    int
	runV    Verdict
	runLast uint32
	runLen  int

	Stats Stats
}

var _ Queue = (*Conn)(nil)

const (
	recvBufSize = 128 << 10 // one datagram: a 64 KiB GSO packet plus attributes
	sendBufSize = 256 << 10
)

// Open binds queue cfg.Num and configures it: copy mode PACKET (without
// which the kernel drops even with --queue-bypass, spec §10.2), flags,
// length and buffer sizes. EBUSY means another socket holds the queue.
func Open(cfg Config) (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("nfqueue: netlink socket: %w", err)
	}
	c := &Conn{fd: fd, num: cfg.Num, rbuf: make([]byte, recvBufSize), wcap: sendBufSize}
	c.w.b = make([]byte, 0, sendBufSize+1024)
	if err := c.setup(cfg); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("nfqueue: queue %d: %w", cfg.Num, err)
	}
	return c, nil
}

func (c *Conn) setup(cfg Config) error {
	if err := unix.Bind(c.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	rb := cfg.RcvBuf
	if rb <= 0 {
		rb = 8 << 20
	}
	if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rb); err != nil {
		if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rb); err != nil {
			return fmt.Errorf("SO_RCVBUF: %w", err)
		}
	}
	_ = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	to := cfg.ReadTimeout
	if to <= 0 {
		to = 200 * time.Millisecond
	}
	tv := unix.NsecToTimeval(to.Nanoseconds())
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("SO_RCVTIMEO: %w", err)
	}

	// BIND: {command u8, pad u8, pf be16}.
	if err := c.config(cfgCmd, []byte{cmdBind, 0, 0, 0}); err != nil {
		return fmt.Errorf("bind queue: %w", err)
	}
	rng := cfg.CopyRange
	if rng == 0 || rng > maxCopyRange {
		rng = maxCopyRange
	}
	var params [5]byte
	be.PutUint32(params[:], rng)
	params[4] = copyPacket
	if err := c.config(cfgParams, params[:]); err != nil {
		return fmt.Errorf("copy mode: %w", err)
	}
	if cfg.MaxLen > 0 {
		var v [4]byte
		be.PutUint32(v[:], cfg.MaxLen)
		if err := c.config(cfgQueueMax, v[:]); err != nil {
			return fmt.Errorf("queue length: %w", err)
		}
	}
	var flags uint32
	if cfg.FailOpen {
		flags |= FlagFailOpen
	}
	if cfg.GSO {
		flags |= FlagGSO
	}
	if cfg.UIDGID {
		flags |= FlagUIDGID
	}
	// Always send the mask of every flag we manage, so a queue left with
	// FAIL_OPEN by an earlier run is reset when fail-closed is asked.
	var mask, val [4]byte
	be.PutUint32(mask[:], FlagFailOpen|FlagGSO|FlagUIDGID)
	be.PutUint32(val[:], flags)
	c.w.b = c.w.b[:0]
	c.w.begin(msgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, c.num)
	c.w.attr(cfgMask, mask[:])
	c.w.attr(cfgFlags, val[:])
	c.w.end()
	if err := c.sendAck(); err != nil {
		return fmt.Errorf("flags: %w", err)
	}
	return nil
}

// config sends one CONFIG attribute and waits for the kernel's ack.
func (c *Conn) config(typ uint16, val []byte) error {
	c.w.b = c.w.b[:0]
	c.w.begin(msgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, c.num)
	c.w.attr(typ, val)
	c.w.end()
	return c.sendAck()
}

// sendAck sends the message in c.w and reads until its NLMSG_ERROR ack.
func (c *Conn) sendAck() error {
	seq := c.w.seq
	if e := send(c.fd, c.w.b); e != 0 {
		return e
	}
	c.w.b = c.w.b[:0]
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, e := recv(c.fd, c.rbuf, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		if done, err := findAck(c.rbuf[:n], seq); done {
			return err
		}
	}
	return errors.New("no acknowledgement from the kernel")
}

// findAck looks for the NLMSG_ERROR answering request seq in one datagram
// (done) and returns the kernel's answer: nil for an ack, the errno
// otherwise. A message with a bad length ends the search in that datagram.
func findAck(b []byte, seq uint32) (done bool, err error) {
	for len(b) >= nlmsgHdrLen {
		l := int(native.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			return false, nil
		}
		typ := native.Uint16(b[4:])
		s := native.Uint32(b[8:])
		if typ == unix.NLMSG_ERROR && s == seq && l >= nlmsgHdrLen+4 {
			if code := int32(native.Uint32(b[nlmsgHdrLen:])); code != 0 {
				// The kernel's errors are negative errnos; a positive
				// one (never sent) is reported as it is.
				if code < 0 {
					code = -code
				}
				return true, unix.Errno(code)
			}
			return true, nil
		}
		b = b[min(align4(l), len(b)):]
	}
	return false, nil
}

// Num implements Queue.
func (c *Conn) Num() uint16 { return c.num }

// Read implements Queue.
func (c *Conn) Read(m *Msg, wait bool) error {
	m.Queue = c.num
	for {
		for c.rend-c.rpos >= nlmsgHdrLen {
			b := c.rbuf[c.rpos:c.rend]
			l := int(native.Uint32(b))
			typ := native.Uint16(b[4:])
			if l < nlmsgHdrLen || l > len(b) {
				// A bad length ends the datagram. A PACKET message cut
				// by the end of the buffer may still carry its id.
				c.rpos = c.rend
				if typ == msgPacket && l > len(b) && len(b) >= nlmsgHdrLen+nfgenHdrLen {
					c.Stats.Malformed.Add(1)
					if parsePacket(b[nlmsgHdrLen+nfgenHdrLen:], m) == nil {
						m.malformed(true) // whole attributes, but cut
					}
					if m.Malformed {
						c.Stats.Packets.Add(1)
						return nil
					}
				}
				break
			}
			c.rpos += min(align4(l), len(b))
			switch typ {
			case msgPacket:
				if l < nlmsgHdrLen+nfgenHdrLen {
					c.Stats.Malformed.Add(1)
					continue
				}
				if err := parsePacket(b[nlmsgHdrLen+nfgenHdrLen:l], m); err != nil {
					c.Stats.Malformed.Add(1)
					if m.Malformed {
						c.Stats.Packets.Add(1)
						return nil
					}
					continue
				}
				if c.rpos >= c.rend && m.Payload != nil {
					// Last message of the datagram: the rest of the
					// buffer is free, so a rewrite may grow the packet
					// in place (up to the kernel's 65535-byte limit).
					off := c.rpos - min(align4(l), len(b)) + nlmsgHdrLen + nfgenHdrLen + m.payloadOff
					end := min(off+0xffff, len(c.rbuf))
					m.Payload = c.rbuf[off : off+len(m.Payload) : end]
				}
				c.Stats.Packets.Add(1)
				return nil
			case unix.NLMSG_ERROR:
				if l >= nlmsgHdrLen+4 && native.Uint32(b[nlmsgHdrLen:]) != 0 {
					c.Stats.NetlinkErr.Add(1)
				}
			}
		}
		if c.closed.Load() {
			return unix.EBADF
		}
		flags := 0
		if !wait {
			flags = unix.MSG_DONTWAIT
		}
		n, e := recv(c.fd, c.rbuf, flags)
		switch e {
		case 0:
			c.rpos, c.rend = 0, n
			continue
		case unix.EAGAIN, unix.EINTR:
			return ErrNoPacket
		case unix.ENOBUFS:
			// The kernel could not deliver packets: they were dropped
			// (or accepted with fail-open). Reading goes on.
			c.Stats.Overruns.Add(1)
			continue
		default:
			return e
		}
	}
}

// Verdict implements Queue: consecutive ids with the same verdict become
// one NFQNL_MSG_VERDICT_BATCH, which the kernel applies to every packet of
// the queue with an id up to the last one (all earlier ones already have
// their verdicts, since verdicts follow Read order).
func (c *Conn) Verdict(id uint32, v Verdict) {
	if c.runLen > 0 && (v != c.runV || id != c.runLast+1) {
		c.endRun()
	}
	c.runV, c.runLast = v, id
	c.runLen++
}

// VerdictWith implements Queue.
func (c *Conn) VerdictWith(id uint32, v Verdict, mark uint32, setMark bool, payload []byte) {
	c.endRun()
	need := nlmsgHdrLen + nfgenHdrLen + 3*nlaHdrLen + 8 + 4 + align4(len(payload))
	if len(c.w.b)+need > c.wcap {
		_ = c.Flush()
	}
	c.verdictMsg(msgVerdict, v, id)
	if setMark {
		var b [4]byte
		be.PutUint32(b[:], mark)
		c.w.attr(attrMark, b[:])
	}
	if payload != nil {
		c.w.attr(attrPayload, payload)
	}
	c.w.end()
}

func (c *Conn) verdictMsg(typ uint16, v Verdict, id uint32) {
	var h [8]byte
	be.PutUint32(h[:], uint32(v))
	be.PutUint32(h[4:], id)
	c.w.begin(typ, unix.NLM_F_REQUEST, c.num)
	c.w.attr(attrVerdictHdr, h[:])
	c.Stats.Verdicts.Add(1)
}

// endRun turns the pending run of equal verdicts into one message.
func (c *Conn) endRun() {
	if c.runLen == 0 {
		return
	}
	if len(c.w.b)+64 > c.wcap {
		_ = c.Flush()
	}
	if c.runLen == 1 {
		c.verdictMsg(msgVerdict, c.runV, c.runLast)
	} else {
		c.verdictMsg(msgVerdictBatch, c.runV, c.runLast)
		c.Stats.Batches.Add(1)
	}
	c.w.end()
	c.runLen = 0
}

// Flush implements Queue.
func (c *Conn) Flush() error {
	c.endRun()
	if len(c.w.b) == 0 {
		return nil
	}
	e := send(c.fd, c.w.b)
	c.w.b = c.w.b[:0]
	c.Stats.Sends.Add(1)
	if e != 0 {
		return e
	}
	return nil
}

// Close implements Queue.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	// Closing the socket destroys the queue (the kernel's netlink release
	// notifier), so no explicit UNBIND is needed.
	return unix.Close(c.fd)
}
