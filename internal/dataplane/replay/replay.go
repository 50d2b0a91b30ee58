// Package replay runs captured traffic (pcap, pcapng) through the netfilter
// engine, as if the host that made the capture had the ruleset loaded:
// "how do I test my firewall?" on real or generated traffic.
//
// Each frame's link header is cut off (Ethernet, Linux cooked v1/v2, raw IP),
// the IPv4 packet is decoded into one reused packet.Packet and sent along the
// path the --local addresses imply: from a local address it was locally
// generated (OUTPUT, POSTROUTING); otherwise it was received, and is routed
// after PREROUTING as the kernel routes it, on the destination PREROUTING
// left: to a local address it is delivered (INPUT), else forwarded
// (FORWARD, POSTROUTING) — so DNAT of a packet for this host to another
// host forwards it, REDIRECT of a passing packet delivers it. The engine's
// clock is the capture's timestamps, so a replay is deterministic.
//
// Replies that targets emit (REJECT's RST or ICMP error) cross OUTPUT and
// POSTROUTING inside the engine, as the kernel sends them with
// ip_local_out; those the engine lets out reach the replay. When the capture
// was made on a host running the same rules, it also holds the kernel's copy
// of each such reply; those copies are recognised against a small bounded
// set of recently emitted replies and skipped, so no reply is counted twice.
//
// NFQUEUE rules are replayed as on a host where no program is bound to the
// queue (the capture cannot say what a listener would have decided): with
// --queue-bypass the table that queued accepts and the packet goes on
// through the later tables and hooks, as the kernel does (spec §10.2);
// without it the packet is dropped there and counted in Stats.Queued
// (result VerdictQueue).
//
// In steady state a frame costs no allocation beyond what gopacket's reader
// does (its ZeroCopy readers allocate nothing for Ethernet captures).
package replay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"

	"github.com/uptables/uptables/internal/defrag"
	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/xt"
)

// DefaultIface is the interface name used when neither the command line
// nor the capture names one.
const DefaultIface = "eth0"

// DefaultEchoWindowNS is how long after emitting a reply a captured packet
// can still be recognised as the kernel's copy of it (capture time).
const DefaultEchoWindowNS = 2_000_000_000

// maxPendingReplies bounds the replies of one packet kept for the Event
// (REJECT sends one; a LOG-and-REJECT chain still one). More are counted in
// Stats.RepliesLost and still remembered for echo recognition.
const maxPendingReplies = 4

// replyBufLen holds the largest reply a target writes: an ICMPv6 error is
// capped at 1280 bytes, an ICMPv4 one at 576.
const replyBufLen = 1280

// Config configures a Replayer. The zero value replays everything as
// forwarded traffic on eth0 and produces only statistics.
type Config struct {
	// Local lists the host's addresses (a single address is a /32).
	Local []netip.Prefix
	// InIface names the input device of received and forwarded packets;
	// "" = the capture's interface name (pcapng), else DefaultIface.
	InIface string
	// OutIface names the output device of sent and forwarded packets;
	// "" = the capture's interface name (pcapng), else DefaultIface.
	OutIface string
	// Log receives LOG lines, one per line, as targets emit them.
	Log io.Writer
	// Observer sees every frame; nil = none.
	Observer Observer
	// Trace, when set, explains packets rule by rule (see Trace).
	Trace *Trace
	// EchoWindowNS: see DefaultEchoWindowNS; 0 = the default.
	EchoWindowNS int64
	// Monitor receives the trace events of packets marked by the TRACE
	// target, one line each, as `xtables-monitor --trace` prints them; nil =
	// discarded. It may be the same writer as Log.
	Monitor io.Writer
	// LocalOwner, when set, is the owner of locally generated packets
	// (see setOwner); nil = no packet has an owner.
	LocalOwner *Owner
}

// Event describes one frame. It is reused: an Observer must copy what it
// keeps.
type Event struct {
	// Index numbers the frames from 1 across all captures of one Replayer.
	Index  uint64
	TimeNS int64
	// Skip is set for frames the engine did not see; EchoOf is the index
	// of the packet whose reply a SkipEcho frame is.
	Skip   Skip
	EchoOf uint64
	// Path, Result and Packet are valid when Skip is SkipNone (Packet
	// also for SkipEcho).
	Path   netfilter.Path
	Result netfilter.Result
	// Decided is false when no table decided (Result.Decision is then
	// empty): no chain on the path had rules or a policy to apply.
	Decided bool
	Packet  *packet.Packet
	// Replies are the replies the engine sent for this packet, after they
	// crossed OUTPUT and POSTROUTING (from the IP header on); valid during
	// the callback only.
	Replies [][]byte
}

// Observer is told about every frame, in order.
type Observer interface {
	Event(ev *Event) error
}

// Stats counts what a replay saw.
type Stats struct {
	Frames    uint64           // frames read from the captures
	Processed uint64           // captured packets run through the engine
	Skipped   [numSkips]uint64 // frames not run, by reason (index Skip)
	Accepted  uint64           // verdicts of captured packets
	Dropped   uint64
	Queued    uint64 // NFQUEUE without --queue-bypass: dropped, no listener
	// Reassembly counts fragments the engine kept for reassembly (or
	// refused): the reassembled datagram is what the chains see.
	Reassembly uint64
	Replies    uint64 // replies sent (emitted by targets, let out by OUTPUT/POSTROUTING)
	// RepliesLost counts replies beyond maxPendingReplies for one packet
	// (missing from its Event only).
	RepliesLost uint64
	LogLines    uint64
}

// SkippedTotal is the number of frames not run through the engine.
func (s *Stats) SkippedTotal() uint64 {
	var n uint64
	for _, v := range s.Skipped[1:] {
		n += v
	}
	return n
}

type pendingReply struct {
	buf [replyBufLen]byte
	n   int
}

// Replayer feeds captures to one engine worker. It is not safe for
// concurrent use; captures given to it in turn share the engine's state
// (conntrack, recent lists, counters) as one continuous run.
type Replayer struct {
	cfg    Config
	eng    *netfilter.Engine
	w      *netfilter.Worker
	split  splitter
	pkt    packet.Packet
	rpkt   packet.Packet
	echo   echoSet
	stats  Stats
	index  uint64
	ev     Event
	rep    [maxPendingReplies]pendingReply
	nrep   int
	repv   [maxPendingReplies][]byte
	log    *bufio.Writer
	logErr error
	tr     *tracer
	first  int64
	last   int64
	// fwdOut is the output device of the current frame if it is
	// forwarded (route).
	fwdOut string
	// outFrag reassembles the host's own datagrams that the capture shows
	// as fragments (see frame); whole is the reassembled packet.
	outFrag *defrag.Defrag
	outBuf  []byte
	whole   packet.Packet
}

// New returns a Replayer driving eng.
func New(eng *netfilter.Engine, cfg Config) *Replayer {
	if cfg.EchoWindowNS == 0 {
		cfg.EchoWindowNS = DefaultEchoWindowNS
	}
	r := &Replayer{cfg: cfg, eng: eng}
	r.echo.win = cfg.EchoWindowNS
	if cfg.Log != nil {
		r.log = bufio.NewWriterSize(cfg.Log, 64<<10)
	}
	r.w = eng.NewWorker(r)
	r.w.SetNoQueueListener(true)
	r.w.SetRoute(r.route)
	if cfg.Observer != nil || cfg.Trace != nil {
		r.tr = newTracer(eng, cfg.Trace)
		r.w.SetTracer(r.tr)
	}
	return r
}

// LastTimeNS is the timestamp of the last frame replayed (0 before any).
func (r *Replayer) LastTimeNS() int64 { return r.last }

// Stats returns the counts so far.
func (r *Replayer) Stats() Stats { return r.stats }

// ReplayFile replays the capture at path.
func (r *Replayer) ReplayFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := r.Replay(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Replay replays one capture read from rd.
func (r *Replayer) Replay(rd io.Reader) error {
	src, err := openSource(rd)
	if err != nil {
		return err
	}
	for {
		frame, ci, ifc, err := src.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("frame %d%s: capture truncated: %w", r.index+1, src.where(), err)
			}
			return fmt.Errorf("frame %d%s: %w", r.index+1, src.where(), err)
		}
		if err := r.frame(frame, ci.Timestamp.UnixNano(), ifc); err != nil {
			return err
		}
	}
	return r.Flush()
}

// Flush writes out buffered LOG lines and reports the first write error.
func (r *Replayer) Flush() error {
	if r.log != nil {
		if err := r.log.Flush(); err != nil && r.logErr == nil {
			r.logErr = err
		}
	}
	if r.tr != nil && r.tr.t != nil {
		if err := r.tr.t.flush(); err != nil {
			return err
		}
	}
	return r.logErr
}

// frame handles one captured frame.
func (r *Replayer) frame(frame []byte, ts int64, ifc iface) error {
	r.stats.Frames++
	r.last = ts
	if r.stats.Frames == 1 {
		r.first = ts
	}
	r.index++
	ev := &r.ev
	*ev = Event{Index: r.index, TimeNS: ts}
	link, ip, skip := r.split.split(ifc.lt, frame)
	if skip == SkipNone {
		p := &r.pkt
		p.Link = link
		if p.Decode(ip) == packet.BadL3 || p.Version != 4 {
			skip = SkipBadIP
		} else {
			p.TimeNS = ts
			if parent, ok := r.echo.match(p); ok {
				skip = SkipEcho
				ev.EchoOf = parent
				ev.Packet = p
			}
		}
	}
	if skip != SkipNone {
		r.stats.Skipped[skip]++
		ev.Skip = skip
		return r.observe()
	}
	p := &r.pkt
	path := r.classify(p.Src, p.Dst)
	if path == netfilter.PathOutput && defrag.IsFragment(p) {
		// The kernel fragments a local datagram after POSTROUTING
		// (ip_finish_output), so OUTPUT and POSTROUTING saw it whole, once,
		// whether or not conntrack is on: put it together again first.
		whole, ok := r.reassembleOutput(p)
		if !ok { // held until the datagram is complete, as the engine's defrag steals fragments
			r.stats.Processed++
			r.stats.Reassembly++
			ev.Path, ev.Packet = path, p
			ev.Result = netfilter.Result{Verdict: xt.VerdictStolen, Path: path}
			ev.Replies = nil
			return r.observe()
		}
		p = whole
	}
	in, out := r.ifaces(ifc.name)
	// A received packet is routed after PREROUTING, on the destination
	// PREROUTING left (route): DNAT to another host forwards a packet
	// sent to a local address, DNAT or REDIRECT to a local address
	// delivers one that was passing through. path is the guess from the
	// captured addresses, which the trace header shows; the engine's
	// Result.Path is the path taken.
	run := netfilter.PathRouted
	switch path {
	case netfilter.PathInput:
		p.InIface, p.OutIface = in, ""
	case netfilter.PathOutput:
		p.InIface, p.OutIface = "", out
		UndoLocalNAT(r.eng, p)
		setOwner(r.cfg.LocalOwner, p)
		run = netfilter.PathOutput
	default:
		p.InIface, p.OutIface = in, out
	}
	r.fwdOut = out
	p.Mark = 0
	if path != netfilter.PathOutput {
		p.HasOwner = false
	}
	r.stats.Processed++
	r.nrep = 0
	if r.tr != nil {
		r.tr.begin(r.index, path, p)
	}
	res := r.w.Process(run, p)
	if res.Path != netfilter.PathRouted {
		path = res.Path
	}
	if r.tr != nil {
		r.tr.end(res)
	}
	switch res.Verdict {
	case xt.VerdictAccept:
		r.stats.Accepted++
	case xt.VerdictQueue:
		r.stats.Queued++
	case xt.VerdictStolen:
		r.stats.Reassembly++
	default:
		r.stats.Dropped++
	}
	ev.Path, ev.Result, ev.Packet = path, res, p
	ev.Decided = res.Decision.Table != ""
	for i := 0; i < r.nrep; i++ {
		r.repv[i] = r.rep[i].buf[:r.rep[i].n]
	}
	ev.Replies = r.repv[:r.nrep]
	return r.observe()
}

// reassembleOutput offers a fragment of the host's own datagram and
// returns the whole datagram once its last fragment is in.
func (r *Replayer) reassembleOutput(p *packet.Packet) (*packet.Packet, bool) {
	if r.outFrag == nil {
		r.outFrag = defrag.New(defrag.Config{})
	}
	if cap(r.outBuf) < 65536 {
		r.outBuf = make([]byte, 65536)
	}
	res, err := r.outFrag.Add(p, packet.LocalOut, 0, r.outBuf[:cap(r.outBuf)])
	if err != nil || !res.Done {
		return nil, false
	}
	w := &r.whole
	if w.Decode(res.Out) == packet.BadL3 {
		return nil, false
	}
	w.Link, w.TimeNS = p.Link, p.TimeNS
	return w, true
}

func (r *Replayer) observe() error {
	if r.cfg.Observer == nil {
		return nil
	}
	return r.cfg.Observer.Event(&r.ev)
}

// classify picks the path from the --local addresses.
func (r *Replayer) classify(src, dst netip.Addr) netfilter.Path {
	if r.isLocal(src) {
		return netfilter.PathOutput
	}
	if r.isLocal(dst) {
		return netfilter.PathInput
	}
	return netfilter.PathForward
}

// route is the routing decision of a received packet after PREROUTING
// (netfilter.RouteFunc): local addresses are delivered, anything else is
// forwarded out of the output device.
func (r *Replayer) route(p *packet.Packet) (string, bool) {
	if r.isLocal(p.Dst) {
		return "", true
	}
	return r.fwdOut, false
}

func (r *Replayer) isLocal(a netip.Addr) bool {
	for _, p := range r.cfg.Local {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (r *Replayer) ifaces(capture string) (in, out string) {
	in, out = r.cfg.InIface, r.cfg.OutIface
	def := capture
	if def == "" {
		def = DefaultIface
	}
	if in == "" {
		in = def
	}
	if out == "" {
		out = def
	}
	return in, out
}

// Reply implements xt.Emitter. The engine calls it for each reply that
// OUTPUT and POSTROUTING let out: the reply is remembered for echo
// recognition and copied for the packet's Event.
func (r *Replayer) Reply(c *xt.Ctx, pkt []byte) {
	r.stats.Replies++
	q := &r.rpkt
	if q.Decode(pkt) != packet.BadL3 {
		q.TimeNS = c.P.TimeNS
		r.echo.add(q, r.index)
	}
	if r.nrep == maxPendingReplies || len(pkt) > replyBufLen {
		r.stats.RepliesLost++
		return
	}
	s := &r.rep[r.nrep]
	s.n = copy(s.buf[:], pkt)
	r.nrep++
}

// Log implements xt.Emitter: the line is written as given, plus a newline.
func (r *Replayer) Log(_ *xt.Ctx, _ uint8, line []byte) {
	r.stats.LogLines++
	if r.tr != nil {
		r.tr.log(line)
	}
	if r.log == nil || r.logErr != nil {
		return
	}
	if _, err := r.log.Write(line); err != nil {
		r.logErr = err
		return
	}
	if err := r.log.WriteByte('\n'); err != nil {
		r.logErr = err
	}
}

// Trace implements xt.TraceEmitter: TRACE's events go to Config.Monitor
// (through the LOG writer's buffer when both are the same writer, so the
// lines stay in order).
func (r *Replayer) Trace(_ *xt.Ctx, line []byte) {
	w := r.monitor()
	if w == nil || r.logErr != nil {
		return
	}
	if _, err := w.Write(line); err != nil {
		r.logErr = err
		return
	}
	if _, err := w.Write([]byte{'\n'}); err != nil {
		r.logErr = err
	}
}

func (r *Replayer) monitor() io.Writer {
	switch {
	case r.cfg.Monitor == nil:
		return nil
	case r.log != nil && r.cfg.Monitor == r.cfg.Log:
		return r.log
	}
	return r.cfg.Monitor
}

var (
	_ xt.Emitter      = (*Replayer)(nil)
	_ xt.TraceEmitter = (*Replayer)(nil)
)

// isReplyShaped reports whether p could be a REJECT reply: a TCP RST or an
// ICMP error (the only things REJECT sends).
func isReplyShaped(p *packet.Packet) bool {
	switch p.Proto {
	case header.ProtoTCP:
		return p.Status == packet.OK && p.TCPFlags&header.TCPFlagRST != 0
	case header.ProtoICMP:
		return p.Status == packet.OK && header.ICMPv4IsError(p.ICMPType)
	}
	return false
}
