package nfqueue

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/xt"
)

// Kernel hook numbers carried in NFQA_PACKET_HDR.
const (
	hookPreRouting  = 0
	hookLocalIn     = 1
	hookForward     = 2
	hookLocalOut    = 3
	hookPostRouting = 4
)

// PathForHook maps the kernel hook a packet was queued from to the engine
// path that runs it (see the package comment for the model): INPUT runs
// the engine's PREROUTING and INPUT, OUTPUT its OUTPUT and POSTROUTING,
// FORWARD its PREROUTING, FORWARD and POSTROUTING. Packets from other
// hooks are never queued by the rules this package installs.
func PathForHook(hook uint8) (netfilter.Path, bool) {
	switch hook {
	case hookLocalIn:
		return netfilter.PathInput, true
	case hookLocalOut:
		return netfilter.PathOutput, true
	case hookForward:
		return netfilter.PathForward, true
	}
	return 0, false
}

// DaemonConfig configures a Daemon.
type DaemonConfig struct {
	// Queues are the queue numbers, one worker goroutine each.
	Queues []uint16
	// FailOpen: full queues accept (kernel flag), and a packet whose
	// handling failed (panic, undecodable) is accepted; otherwise dropped.
	FailOpen bool
	// GSO queues GSO/GRO aggregates whole (NFQA_CFG_F_GSO), as the
	// kernel's iptables sees them; see the package comment.
	GSO    bool
	MaxLen uint32 // queue length, 0 = kernel default 1024
	RcvBuf int    // socket receive buffer, 0 = 8 MiB
	// BatchMax bounds how many verdicts wait before being sent; 0 = 64.
	BatchMax int
	Engine   *netfilter.Engine
	Logger   *slog.Logger
	LogSink  LogSink
	// Open opens a queue; nil = Open (raw netlink). Tests substitute fakes.
	Open func(Config) (Queue, error)
	// NoReplies disables the raw reply socket (tests without privileges).
	NoReplies bool
	// Now is the clock for packets without NFQA_TIMESTAMP; nil = time.Now.
	Now func() time.Time
	// ProcQueues is the kernel's queue table; "" =
	// /proc/thread-self/net/netfilter/nfnetlink_queue (the calling
	// thread's network namespace, the daemon's own).
	ProcQueues string
}

// QueueStats are the counters of one worker.
type QueueStats struct {
	Num         uint16
	Packets     atomic.Uint64
	Accepted    atomic.Uint64
	Dropped     atomic.Uint64
	Requeued    atomic.Uint64
	Modified    atomic.Uint64 // verdicts carrying a rewritten payload
	Panics      atomic.Uint64 // recovered panics (packet got the fail verdict)
	Undecodable atomic.Uint64 // payloads that did not decode (fail verdict)
	Replies     atomic.Uint64 // REJECT replies sent
	ReplyErrors atomic.Uint64
	Logs        atomic.Uint64
	ReadErrors  atomic.Uint64
	// Cut counts packets longer than the kernel's 65531-byte copy
	// (NFQA_CAP_LEN; an IPv4 packet of 65532-65535 bytes: loopback's 64 KiB
	// MTU, GRO aggregates; GSO aggregates beyond 64 KiB at loopback's
	// OUTPUT), decided on their first 65531 bytes and their real length
	// (packet.Packet.Cut); CutRewrites those of them the engine rewrote,
	// which cannot be handed back (the copy lacks their tail) and get the
	// fail verdict instead.
	Cut         atomic.Uint64
	CutRewrites atomic.Uint64
	// The kernel's own counters of the queue, read from
	// /proc/net/netfilter/nfnetlink_queue by RefreshKernelStats: packets
	// waiting for a verdict, packets dropped because the queue was full
	// (queue_dropped; with fail-open the kernel accepts them and counts
	// nothing) and packets it could not deliver to the socket
	// (user_dropped, counted with fail-open too; uptables sees these as
	// overruns, ENOBUFS).
	KernelWaiting      atomic.Uint64
	KernelQueueDropped atomic.Uint64
	KernelUserDropped  atomic.Uint64
	conn               *Conn // nil for other Queue implementations
}

// Daemon runs one worker per queue: read, decode, run the engine, verdict.
// The engine is shared (it is safe for concurrent use; each worker has its
// own netfilter.Worker).
type Daemon struct {
	cfg      DaemonConfig
	log      *slog.Logger
	workers  []*worker
	stats    []*QueueStats
	draining atomic.Bool
	stopped  atomic.Bool
	wg       sync.WaitGroup
	started  bool
}

// NewDaemon binds every queue (failing as a whole if one cannot be bound)
// and opens the reply socket.
func NewDaemon(cfg DaemonConfig) (*Daemon, error) {
	if cfg.Engine == nil {
		return nil, errors.New("nfqueue: no engine")
	}
	if len(cfg.Queues) == 0 {
		return nil, errors.New("nfqueue: no queue")
	}
	if cfg.BatchMax <= 0 {
		cfg.BatchMax = 64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	open := cfg.Open
	if open == nil {
		open = func(c Config) (Queue, error) { return Open(c) }
	}
	fail := Drop
	if cfg.FailOpen {
		fail = Accept
	}
	for _, n := range cfg.Queues {
		q, err := open(Config{Num: n, FailOpen: cfg.FailOpen, GSO: cfg.GSO, MaxLen: cfg.MaxLen, RcvBuf: cfg.RcvBuf})
		if err != nil {
			d.closeAll()
			return nil, err
		}
		st := &QueueStats{Num: n}
		if c, ok := q.(*Conn); ok {
			st.conn = c
		}
		w := &worker{d: d, q: q, st: st, fail: fail, ifc: newIfCache(nil), raw: -1}
		w.em = emitter{raw: -1, sa: &unix.SockaddrInet4{}, sink: cfg.LogSink, replies: &st.Replies, replyErr: &st.ReplyErrors, logs: &st.Logs}
		if !cfg.NoReplies {
			fd, err := openRaw()
			if err != nil {
				q.Close()
				d.closeAll()
				return nil, err
			}
			w.raw, w.em.raw = fd, fd
		}
		w.wk = cfg.Engine.NewWorker(&w.em)
		d.workers = append(d.workers, w)
		d.stats = append(d.stats, st)
	}
	return d, nil
}

func (d *Daemon) closeAll() {
	for _, w := range d.workers {
		w.q.Close()
		if w.raw >= 0 {
			unix.Close(w.raw)
		}
	}
}

// Start launches the workers.
func (d *Daemon) Start() {
	if d.started {
		return
	}
	d.started = true
	for _, w := range d.workers {
		d.wg.Add(1)
		go w.run()
	}
}

// Drain makes the workers stop once their queue has been quiet for one read
// timeout (call it after the kernel rules stopped queueing), then waits at
// most max for them before stopping them hard. Queues are closed after.
func (d *Daemon) Drain(max time.Duration) {
	d.draining.Store(true)
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(max):
		d.stopped.Store(true)
		<-done
	}
}

// Stop stops the workers without draining and waits for them.
func (d *Daemon) Stop() {
	d.stopped.Store(true)
	d.wg.Wait()
}

// Stats returns the per-queue counters (live values), with the kernel's
// counters (KernelWaiting, KernelQueueDropped, KernelUserDropped) freshly
// read: it is what `uptables status` and a Prometheus scrape call, so
// the kernel's view of a full queue is current there (one small read of
// /proc; a kernel without the file leaves them as they were).
func (d *Daemon) Stats() []*QueueStats {
	_ = d.RefreshKernelStats()
	return d.stats
}

// ConnStats returns the netlink socket's counters (overruns, verdict
// messages) of a queue read through Conn, nil for other Queue
// implementations (test fakes).
func (s *QueueStats) ConnStats() *Stats {
	if s.conn == nil {
		return nil
	}
	return &s.conn.Stats
}

// RefreshKernelStats reads the kernel's counters of the daemon's queues
// (KernelWaiting, KernelQueueDropped, KernelUserDropped) from
// /proc/net/netfilter/nfnetlink_queue, whose lines are "queue portid
// waiting copy_mode copy_range queue_dropped user_dropped last_id 1".
// It is the only place the kernel reports a full queue: no message
// reaches the socket.
func (d *Daemon) RefreshKernelStats() error {
	path := d.cfg.ProcQueues
	if path == "" {
		path = "/proc/thread-self/net/netfilter/nfnetlink_queue"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		var num, portid, waiting, mode, rng, qdrop, udrop uint64
		if n, _ := fmt.Sscan(line, &num, &portid, &waiting, &mode, &rng, &qdrop, &udrop); n != 7 {
			continue
		}
		for _, s := range d.stats {
			if uint64(s.Num) == num {
				s.KernelWaiting.Store(waiting)
				s.KernelQueueDropped.Store(qdrop)
				s.KernelUserDropped.Store(udrop)
			}
		}
	}
	return nil
}

// WriteStats prints the counters, one line per queue, in a stable
// key=value form (the state directory's stats file), with the kernel's
// counters freshly read.
func (d *Daemon) WriteStats(b *bytes.Buffer) {
	_ = d.RefreshKernelStats() // a kernel without the file leaves them 0
	for _, s := range d.stats {
		fmt.Fprintf(b, "queue=%d packets=%d accepted=%d dropped=%d requeued=%d modified=%d panics=%d undecodable=%d replies=%d reply_errors=%d logs=%d read_errors=%d",
			s.Num, s.Packets.Load(), s.Accepted.Load(), s.Dropped.Load(), s.Requeued.Load(), s.Modified.Load(), s.Panics.Load(),
			s.Undecodable.Load(), s.Replies.Load(), s.ReplyErrors.Load(), s.Logs.Load(), s.ReadErrors.Load())
		fmt.Fprintf(b, " cut=%d cut_rewrites=%d kernel_waiting=%d kernel_queue_dropped=%d kernel_user_dropped=%d", s.Cut.Load(), s.CutRewrites.Load(),
			s.KernelWaiting.Load(), s.KernelQueueDropped.Load(), s.KernelUserDropped.Load())
		if c := s.conn; c != nil {
			fmt.Fprintf(b, " verdict_msgs=%d batches=%d sends=%d overruns=%d netlink_errors=%d",
				c.Stats.Verdicts.Load(), c.Stats.Batches.Load(), c.Stats.Sends.Load(), c.Stats.Overruns.Load(), c.Stats.NetlinkErr.Load())
		}
		b.WriteByte('\n')
	}
}

// worker owns one queue, one engine worker and one reply socket.
type worker struct {
	d    *Daemon
	q    Queue
	st   *QueueStats
	wk   *netfilter.Worker
	em   emitter
	raw  int
	fail Verdict
	ifc  *ifCache

	msg  Msg
	pkt  packet.Packet
	link [14]byte
	snap [256]byte
	// panicHook, when set (tests), runs inside the packet handler.
	panicHook func(*Msg)
	// beforeRead, when set (tests), runs before each read: a test stalls
	// the worker there to fill the kernel's queue.
	beforeRead func()
}

func (w *worker) run() {
	defer w.d.wg.Done()
	defer func() {
		w.q.Flush()
		w.q.Close()
		if w.raw >= 0 {
			unix.Close(w.raw)
		}
	}()
	pending := 0
	for !w.d.stopped.Load() {
		if w.beforeRead != nil {
			w.beforeRead()
		}
		err := w.q.Read(&w.msg, pending == 0)
		if err == ErrNoPacket {
			if pending > 0 {
				w.flush()
				pending = 0
				continue
			}
			if w.d.draining.Load() {
				return
			}
			continue
		}
		if err != nil {
			w.st.ReadErrors.Add(1)
			if errors.Is(err, unix.EBADF) {
				return
			}
			w.d.log.Error("nfqueue read", "queue", w.st.Num, "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		w.handle(&w.msg)
		pending++
		if pending >= w.d.cfg.BatchMax {
			w.flush()
			pending = 0
		}
	}
}

func (w *worker) flush() {
	if err := w.q.Flush(); err != nil {
		w.d.log.Error("nfqueue verdicts", "queue", w.st.Num, "err", err)
	}
}

// handle decides one packet. A panic anywhere below is recovered, logged
// with its stack, counted, and the packet gets the fail verdict.
func (w *worker) handle(m *Msg) {
	defer func() {
		if r := recover(); r != nil {
			w.st.Panics.Add(1)
			w.d.log.Error("panic while handling a packet; fail verdict given",
				"queue", w.st.Num, "id", m.ID, "verdict", w.fail.String(), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			w.q.Verdict(m.ID, w.fail)
			w.count(w.fail)
		}
	}()
	w.st.Packets.Add(1)
	if w.panicHook != nil {
		w.panicHook(m)
	}
	path, ok := PathForHook(m.Hook)
	p := &w.pkt
	// The kernel copies at most 65531 bytes (NFQNL_MAX_COPY_RANGE) and
	// reports a longer packet's real length in NFQA_CAP_LEN; the packet
	// is decided on the copy and that length (see packet.DecodeCut).
	if !ok || m.Malformed || p.DecodeCut(m.Payload, int(m.CapLen)) == packet.BadL3 || p.Version != 4 {
		w.st.Undecodable.Add(1)
		w.q.Verdict(m.ID, w.fail)
		w.count(w.fail)
		return
	}
	p.InIface, p.OutIface, p.Link = "", "", nil
	if e := w.ifc.get(m.InDev); e != nil {
		p.InIface = e.name
		if len(m.HwAddr) == 6 && len(e.mac) == 6 {
			// The link header LOG prints as MAC=: destination (the
			// receiving interface; exact for unicast), source, type.
			copy(w.link[0:6], e.mac)
			copy(w.link[6:12], m.HwAddr)
			be.PutUint16(w.link[12:], m.HwProto)
			p.Link = w.link[:]
		}
	}
	if e := w.ifc.get(m.OutDev); e != nil {
		p.OutIface = e.name
	}
	p.Mark = m.Mark
	p.TimeNS = m.TimeNS
	if p.TimeNS == 0 {
		p.TimeNS = w.d.cfg.Now().UnixNano()
	}
	p.UID, p.GID, p.HasOwner = m.UID, m.GID, m.HasUID
	// A cut packet's checksum cannot be verified: its tail is missing.
	cut := p.Cut
	p.L4CsumTrusted = csumTrusted(m.SkbInfo) || cut
	if cut {
		w.st.Cut.Add(1)
	}
	n := copy(w.snap[:], p.Data)
	origLen := len(p.Data)

	res := w.wk.Process(path, p)

	switch res.Verdict {
	case xt.VerdictAccept:
		markChanged := p.Mark != m.Mark
		modified := len(p.Data) != origLen || !bytes.Equal(w.snap[:n], p.Data[:n])
		if modified && cut {
			// NFQUEUE installs a verdict's payload as the whole packet
			// (nfqnl_mangle trims the skb to it), so the copy cannot go
			// back without losing the tail, and there is no way to hand
			// back the headers alone: fail verdict, counted, and logged
			// at the 1st, 2nd, 4th, 8th ... occurrence.
			if n := w.st.CutRewrites.Add(1); n&(n-1) == 0 {
				w.d.log.Warn("rewrite of a packet longer than NFQUEUE's 65531-byte copy cannot be handed back; fail verdict given",
					"queue", w.st.Num, "len", p.TotalLen, "verdict", w.fail.String(), "cut_rewrites", n)
			}
			w.q.Verdict(m.ID, w.fail)
			w.count(w.fail)
			return
		}
		if modified {
			if m.SkbInfo&skbCsumNotReady != 0 {
				completeL4Checksum(p.Data)
			}
			w.st.Modified.Add(1)
			w.q.VerdictWith(m.ID, Accept, p.Mark, markChanged, p.Data)
		} else if markChanged {
			w.q.VerdictWith(m.ID, Accept, p.Mark, true, nil)
		} else {
			w.q.Verdict(m.ID, Accept)
		}
		w.st.Accepted.Add(1)
	case xt.VerdictQueue:
		// NF_QUEUE to another queue: verdict 3 | queue<<16 | bypass flag.
		v := Verdict(3) | Verdict(res.Queue.Num)<<16
		if res.Queue.Bypass {
			v |= 0x8000
		}
		w.q.Verdict(m.ID, v)
		w.st.Requeued.Add(1)
	default:
		w.q.Verdict(m.ID, Drop)
		w.st.Dropped.Add(1)
	}
}

func (w *worker) count(v Verdict) {
	if v == Accept {
		w.st.Accepted.Add(1)
	} else {
		w.st.Dropped.Add(1)
	}
}

// csumTrusted reads NFQA_SKB_INFO the way the kernel's conntrack and
// nf_reject read skb->ip_summed (nf_ip_checksum): a checksum not computed
// yet (CSUMNOTREADY, CHECKSUM_PARTIAL) or already verified (neither bit:
// CHECKSUM_UNNECESSARY or csum_valid) is not checked; only a packet marked
// CSUM_NOTVERIFIED is. Without the bits (no NFQA_SKB_INFO at all) the
// kernel had nothing to report: the checksum needs no check.
func csumTrusted(info uint32) bool {
	return info&skbCsumNotReady != 0 || info&skbCsumNotVerified == 0
}

// completeL4Checksum computes the full TCP or UDP checksum of an IPv4
// packet whose checksum the kernel had left to the device
// (CHECKSUM_PARTIAL: the field holds the pseudo-header sum, possibly
// patched incrementally by a rewrite). It is called only for a packet the
// engine rewrote: the kernel installs a replacement payload as
// CHECKSUM_NONE (nfqnl_mangle), so from then on the field must be the real
// checksum or the receiving socket drops the segment; an unmodified
// packet keeps its skb and its offload. As skb_checksum_help does for a
// queue without NFQA_CFG_F_GSO, the cost is one pass over the packet.
// Other protocols (SCTP's CRC32c) and fragments are left as they are.
func completeL4Checksum(b []byte) {
	if len(b) < header.IPv4MinLen || b[0]>>4 != 4 {
		return
	}
	ip := header.IPv4(b)
	hl, tot := ip.HeaderLen(), int(ip.TotalLen())
	if hl < header.IPv4MinLen || tot > len(b) || tot < hl || ip.FragOff() != 0 || ip.MoreFragments() {
		return
	}
	l4 := b[hl:tot]
	ps := header.PseudoHeaderSum(b[12:16], b[16:20], ip.Protocol(), len(l4))
	switch ip.Protocol() {
	case header.ProtoTCP:
		if len(l4) >= header.TCPMinLen {
			t := header.TCP(l4)
			t.SetChecksum(t.CalculateChecksum(ps))
		}
	case header.ProtoUDP:
		if len(l4) >= header.UDPLen {
			u := header.UDP(l4)
			u.SetChecksum(u.CalculateChecksum(ps))
		}
	}
}
