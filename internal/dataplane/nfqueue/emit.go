package nfqueue

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/uptables/uptables/internal/xt"
)

// LogSink receives LOG lines in the kernel's format. Implementations are
// shared by all workers, so they serialise internally, and must not keep
// line after returning.
type LogSink interface {
	Log(level uint8, line []byte)
}

// WriterSink writes one line per LOG call to W (stdout, a file), flushed at
// once so that a tail -f or a test sees it. No allocation per line.
type WriterSink struct {
	mu sync.Mutex
	w  *bufio.Writer
}

// NewWriterSink returns a sink writing to w.
func NewWriterSink(w io.Writer) *WriterSink { return &WriterSink{w: bufio.NewWriterSize(w, 4096)} }

// Log implements LogSink.
func (s *WriterSink) Log(_ uint8, line []byte) {
	s.mu.Lock()
	s.w.Write(line)
	s.w.WriteByte('\n')
	s.w.Flush()
	s.mu.Unlock()
}

// SyslogSink sends each line as one datagram to the local syslog socket
// (/dev/log) with facility kern's neighbour "daemon" (a process may not log
// as kern) and the rule's --log-level as severity: "<PRI>uptables: LINE".
type SyslogSink struct {
	mu   sync.Mutex
	conn *net.UnixConn
	buf  []byte
}

// NewSyslogSink connects to path (default /dev/log).
func NewSyslogSink(path string) (*SyslogSink, error) {
	if path == "" {
		path = "/dev/log"
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("syslog: %w", err)
	}
	return &SyslogSink{conn: c, buf: make([]byte, 0, 2048)}, nil
}

// Log implements LogSink.
func (s *SyslogSink) Log(level uint8, line []byte) {
	const facilityDaemon = 3 << 3
	pri := facilityDaemon | int(level&7)
	s.mu.Lock()
	b := append(s.buf[:0], '<')
	if pri >= 10 {
		b = append(b, byte('0'+pri/10))
	}
	b = append(b, byte('0'+pri%10), '>')
	b = append(b, "uptables: "...)
	b = append(b, line...)
	s.conn.Write(b)
	s.buf = b[:0]
	s.mu.Unlock()
}

// Close closes the syslog connection.
func (s *SyslogSink) Close() error { return s.conn.Close() }

// emitter is a worker's xt.Emitter: REJECT replies leave on a raw
// IPPROTO_RAW socket (IP_HDRINCL implied), so they traverse the host's
// OUTPUT hook like the kernel's own nf_send_reset/icmp_send replies, and
// LOG lines go to the sink. Owned by one worker; no allocation.
type emitter struct {
	raw      int
	sa       *unix.SockaddrInet4
	sink     LogSink
	replies  *atomic.Uint64
	replyErr *atomic.Uint64
	logs     *atomic.Uint64
}

var (
	_ xt.Emitter      = (*emitter)(nil)
	_ xt.TraceEmitter = (*emitter)(nil)
)

// Trace sends TRACE's events (xtables-monitor --trace lines) to the same
// sink as LOG lines, at level debug.
func (e *emitter) Trace(_ *xt.Ctx, line []byte) {
	if e.sink != nil {
		e.sink.Log(7, line)
	}
}

func (e *emitter) Reply(_ *xt.Ctx, pkt []byte) {
	if e.raw < 0 || len(pkt) < 20 || pkt[0]>>4 != 4 {
		e.replyErr.Add(1)
		return
	}
	copy(e.sa.Addr[:], pkt[16:20])
	if err := unix.Sendto(e.raw, pkt, 0, e.sa); err != nil {
		e.replyErr.Add(1)
		return
	}
	e.replies.Add(1)
}

func (e *emitter) Log(_ *xt.Ctx, level uint8, line []byte) {
	e.logs.Add(1)
	if e.sink != nil {
		e.sink.Log(level, line)
	}
}

// openRaw opens the reply socket.
func openRaw() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return -1, fmt.Errorf("nfqueue: raw socket for REJECT replies: %w", err)
	}
	return fd, nil
}
