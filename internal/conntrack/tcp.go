package conntrack

import (
	"encoding/binary"
	"time"
)

// TCP packet classes, in the kernel's priority order RST > SYN(+ACK) > FIN >
// ACK > none (get_conntrack_index).
const (
	idxSyn = iota
	idxSynAck
	idxFin
	idxAck
	idxRst
	idxNone
)

const (
	flFIN = 0x01
	flSYN = 0x02
	flRST = 0x04
	flPSH = 0x08
	flACK = 0x10
	flURG = 0x20
	flECE = 0x40
	flCWR = 0x80
)

// Per-direction and per-connection TCP flag bits (kernel IP_CT_TCP_FLAG_*).
const (
	tfWindowScale  = 0x01
	tfSackPerm     = 0x02
	tfCloseInit    = 0x04 // this side sent the first FIN
	tfBeLiberal    = 0x08 // skip window checks for this side
	tfDataUnack    = 0x10 // this side has data not yet acknowledged
	tfMaxackSet    = 0x20
	tfExpChallenge = 0x40 // last_flags: RFC 5961 challenge ACK expected
	tfSimOpen      = 0x80 // last_flags: simultaneous open seen
)

// tcpDir is what window tracking knows about one sender (ip_ct_tcp_state).
type tcpDir struct {
	end    uint32 // highest seq+len sent
	maxend uint32 // highest seq+len the peer's window allows
	maxwin uint32 // largest window seen (scaled)
	maxack uint32 // highest ack sent
	scale  uint8
	flags  uint8
}

// tcpConn is the TCP part of a connection (ip_ct_tcp). Guarded by Conn.mu.
type tcpConn struct {
	seen       [2]tcpDir
	state      TCPState
	lastDir    Dir
	lastIndex  uint8
	lastSeq    uint32
	lastAck    uint32
	lastEnd    uint32
	lastWin    uint32
	lastWscale uint8
	lastFlags  uint8
	retrans    uint8
}

const (
	sNO = TCPNone
	sSS = TCPSynSent
	sSR = TCPSynRecv
	sES = TCPEstablished
	sFW = TCPFinWait
	sCW = TCPCloseWait
	sLA = TCPLastAck
	sTW = TCPTimeWait
	sCL = TCPClose
	sS2 = TCPSynSent2
	sIV = tcpInvalid
	sIG = tcpIgnore
)

// tcpTransitions[dir][class][old state] is the new state (the kernel's
// tcp_conntracks table; spec §2.4). Columns: NONE SYN_SENT SYN_RECV
// ESTABLISHED FIN_WAIT CLOSE_WAIT LAST_ACK TIME_WAIT CLOSE SYN_SENT2.
var tcpTransitions = [2][6][tcpNumStates]TCPState{
	Original: {
		idxSyn:    {sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2},
		idxSynAck: {sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR},
		idxFin:    {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
		idxAck:    {sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV},
		idxRst:    {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
		idxNone:   {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
	},
	Reply: {
		idxSyn:    {sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2},
		idxSynAck: {sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR},
		idxFin:    {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
		idxAck:    {sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG},
		idxRst:    {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
		idxNone:   {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
	},
}

func tcpIndex(f uint8) uint8 {
	switch {
	case f&flRST != 0:
		return idxRst
	case f&flSYN != 0:
		if f&flACK != 0 {
			return idxSynAck
		}
		return idxSyn
	case f&flFIN != 0:
		return idxFin
	case f&flACK != 0:
		return idxAck
	}
	return idxNone
}

// tcpValidFlags: the flag byte without PSH, ECE and CWR must be one of these
// (kernel tcp_valid_flags, spec §2.3).
func tcpValidFlags(f uint8) bool {
	switch f &^ (flPSH | flECE | flCWR) {
	case flSYN, flSYN | flURG, flSYN | flACK, flRST, flRST | flACK, flFIN | flACK, flFIN | flACK | flURG, flACK, flACK | flURG:
		return true
	}
	return false
}

func after(a, b uint32) bool  { return int32(b-a) < 0 }
func before(a, b uint32) bool { return int32(a-b) < 0 }

// tcpSeg is the decoded TCP segment the tracker works on.
type tcpSeg struct {
	flags    uint8
	seq, ack uint32
	win      uint32 // raw header window
	end      uint32 // seq + payload + SYN + FIN
	opts     []byte // TCP options (borrowed)
}

// tcpOptions reads window scale and SACK-permitted from a SYN (tcp_options).
func tcpOptions(opts []byte, d *tcpDir) {
	d.scale = 0
	d.flags &= tfBeLiberal
	for i := 0; i < len(opts); {
		k := opts[i]
		if k == 0 {
			return
		}
		if k == 1 {
			i++
			continue
		}
		if i+1 >= len(opts) {
			return
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return
		}
		switch {
		case k == 4 && l == 2:
			d.flags |= tfSackPerm
		case k == 3 && l == 3:
			d.flags |= tfWindowScale
			s := opts[i+2]
			if s > 14 {
				s = 14
			}
			d.scale = s
		}
		i += l
	}
}

// tcpSackEdge returns the highest right edge of the SACK blocks if above ack.
func tcpSackEdge(opts []byte, ack uint32) uint32 {
	sack := ack
	for i := 0; i < len(opts); {
		k := opts[i]
		if k == 0 {
			break
		}
		if k == 1 {
			i++
			continue
		}
		if i+1 >= len(opts) {
			break
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			break
		}
		if k == 5 && l >= 10 && (l-2)%8 == 0 {
			for j := i + 2; j+8 <= i+l; j += 8 {
				if r := binary.BigEndian.Uint32(opts[j+4:]); after(r, sack) {
					sack = r
				}
			}
		}
		i += l
	}
	return sack
}

// tcpNew initialises a new connection from its first packet (tcp_new).
// It reports false when the packet may not create one.
func (t *Table) tcpNew(tc *tcpConn, s *tcpSeg) bool {
	ns := tcpTransitions[Original][tcpIndex(s.flags)][TCPNone]
	switch {
	case ns == TCPSynSent:
		*tc = tcpConn{}
		d := &tc.seen[0]
		d.end = s.end
		d.maxwin = max(s.win, 1)
		d.maxend = d.end
		tcpOptions(s.opts, d)
	case ns == TCPEstablished && !t.cfg.NoTCPLoose:
		// Mid-stream pickup: history is lost; assume SACK and be liberal
		// about the window for this entry (spec §2.5).
		*tc = tcpConn{}
		d := &tc.seen[0]
		d.end = s.end
		d.maxwin = max(s.win, 1)
		d.maxend = d.end + d.maxwin
		tc.seen[0].flags = tfSackPerm | tfBeLiberal
		tc.seen[1].flags = tfSackPerm | tfBeLiberal
	default:
		return false
	}
	tc.lastIndex = idxNone
	return true
}

type windowResult uint8

const (
	winAccept windowResult = iota
	winIgnore
	winInvalid
)

func maxAckWindow(d *tcpDir) uint32 { return max(d.maxwin, 66000) }

// initSender (re)initialises a sender from a SYN or SYN/ACK (tcp_init_sender).
func initSender(sender, receiver *tcpDir, s *tcpSeg, dir Dir) {
	sender.end = s.end
	sender.maxend = s.end
	sender.maxwin = max(s.win, 1)
	tcpOptions(s.opts, sender)
	// RFC 1323: window scaling only if both sides offered it.
	if dir == Reply && !(sender.flags&tfWindowScale != 0 && receiver.flags&tfWindowScale != 0) {
		sender.scale = 0
		receiver.scale = 0
	}
}

// inWindow is the kernel's tcp_in_window: sequence/ack sanity against what
// both sides advertised, and the bookkeeping that follows.
func (t *Table) inWindow(tc *tcpConn, dir Dir, index uint8, s *tcpSeg) windowResult {
	sender, receiver := &tc.seen[dir], &tc.seen[1-dir]
	seq, ack, end, win := s.seq, s.ack, s.end, s.win
	sack := ack
	if receiver.flags&tfSackPerm != 0 {
		sack = tcpSackEdge(s.opts, ack)
	}
	syn, hasAck, rst := s.flags&flSYN != 0, s.flags&flACK != 0, s.flags&flRST != 0

	if sender.maxwin == 0 {
		if syn {
			initSender(sender, receiver, s, dir)
			if !hasAck {
				return winAccept // simultaneous open
			}
		} else {
			// Mid-stream: take what the packet tells.
			sender.end = end
			swin := win << sender.scale
			sender.maxwin = max(swin, 1)
			sender.maxend = end + sender.maxwin
			if receiver.maxwin == 0 {
				receiver.end = sack
				receiver.maxend = sack
			} else if sack == receiver.end+1 {
				receiver.end++ // reply to a keepalive
			}
		}
	} else if syn && after(end, sender.end) && (tc.state == TCPSynSent || tc.state == TCPSynRecv) {
		// RFC 793: a reinitialised TCP uses higher sequence numbers.
		initSender(sender, receiver, s, dir)
		if dir == Reply && !hasAck {
			return winAccept
		}
	}

	if !hasAck {
		ack = receiver.end
		sack = ack
	} else if rst && ack == 0 {
		ack = receiver.end // broken stacks: RST+ACK with ack 0
		sack = ack
	}
	if rst && seq == 0 && tc.state == TCPSynSent {
		seq = sender.end // RST answering a SYN
		end = seq
	}

	liberal := sender.flags&tfBeLiberal != 0 || t.cfg.TCPBeLiberal
	fail := func(r windowResult) windowResult {
		if liberal {
			return winAccept
		}
		return r
	}
	if !before(seq, sender.maxend+1) {
		overshot := end - sender.maxend + 1
		ackOK := after(sack, receiver.end-maxAckWindow(sender)-1)
		inRecv := receiver.maxwin != 0 && after(end, sender.end-receiver.maxwin-1)
		if inRecv && ackOK && overshot <= receiver.maxwin && before(sack, receiver.end+1) {
			// Sender overshot the window a little: remember the data so
			// that its ACK does not look like "ACK over upper bound".
			sender.end = end
			sender.flags |= tfDataUnack
			return fail(winIgnore)
		}
		return fail(winInvalid) // SEQ over upper bound
	}
	if !before(sack, receiver.end+1) {
		return fail(winInvalid) // ACK for data never seen
	}
	if receiver.maxwin != 0 && !after(end, sender.end-receiver.maxwin-1) {
		return fail(winIgnore) // already acknowledged data retransmitted
	}
	if !after(sack, receiver.end-maxAckWindow(sender)-1) {
		return fail(winIgnore) // overly delayed ACK
	}

	if !syn {
		win <<= sender.scale
	}
	if swin := win + (sack - ack); sender.maxwin < swin {
		sender.maxwin = swin
	}
	if after(end, sender.end) {
		sender.end = end
		sender.flags |= tfDataUnack
	}
	if hasAck {
		if sender.flags&tfMaxackSet == 0 {
			sender.maxack = ack
			sender.flags |= tfMaxackSet
		} else if after(ack, sender.maxack) {
			sender.maxack = ack
		}
	}
	if receiver.maxwin != 0 && after(end, sender.maxend) {
		receiver.maxwin += end - sender.maxend
	}
	if after(sack+win, receiver.maxend-1) {
		receiver.maxend = sack + win
		if win == 0 {
			receiver.maxend++
		}
	}
	if ack == receiver.end {
		receiver.flags &^= tfDataUnack
	}
	if index == idxAck {
		if tc.lastDir == dir && tc.lastSeq == seq && tc.lastAck == ack && tc.lastEnd == end && tc.lastWin == win {
			if tc.retrans < 255 {
				tc.retrans++
			}
		} else {
			tc.lastDir, tc.lastSeq, tc.lastAck, tc.lastEnd, tc.lastWin = dir, seq, ack, end, win
			tc.retrans = 0
		}
	}
	return winAccept
}

// trackAction is what the tracker tells In to do with the packet.
type trackAction uint8

const (
	actAccept  trackAction = iota // packet keeps its conntrack
	actInvalid                    // packet becomes INVALID
	actRepeat                     // kill the entry and look up again (TCP reopen)
	actKill                       // accept, then remove the entry (RST before any reply)
)

func (t *Table) tcpTimeout(s TCPState) time.Duration {
	to := &t.cfg.Timeouts
	switch s {
	case TCPSynSent, TCPSynSent2:
		return to.TCPSynSent
	case TCPSynRecv:
		return to.TCPSynRecv
	case TCPEstablished:
		return to.TCPEstablished
	case TCPFinWait:
		return to.TCPFinWait
	case TCPCloseWait:
		return to.TCPCloseWait
	case TCPLastAck:
		return to.TCPLastAck
	case TCPTimeWait:
		return to.TCPTimeWait
	case TCPClose:
		return to.TCPClose
	}
	return to.TCPClose
}

func tcpCanEarlyDrop(s TCPState) bool {
	switch s {
	case TCPFinWait, TCPLastAck, TCPTimeWait, TCPClose, TCPCloseWait:
		return true
	}
	return false
}

// tcpPacket runs the state machine for one packet (tcp_packet). c.mu is held
// by the caller. now is the packet time.
func (t *Table) tcpPacket(c *Conn, dir Dir, s *tcpSeg, now int64) (trackAction, Reason) {
	tc := &c.tcp
	old := tc.state
	index := tcpIndex(s.flags)
	ns := tcpTransitions[dir][index][old]
	status := Status(c.status.Load())

	switch ns {
	case TCPSynSent:
		if old < TCPTimeWait {
			break
		}
		// Reopen of a closed or reset connection: delete and look up again.
		if (tc.seen[0].flags|tc.seen[1].flags)&tfCloseInit != 0 || (tc.lastDir == dir && tc.lastIndex == idxRst) {
			return actRepeat, ReasonNone
		}
		fallthrough
	case tcpIgnore:
		if index == idxSynAck && tc.lastIndex == idxSyn && tc.lastDir != dir && s.ack == tc.lastEnd {
			// This SYN/ACK answers a SYN we ignored: both ends are in sync,
			// we were not. Re-sync from the annotated SYN.
			old = TCPSynSent
			ns = TCPSynRecv
			ld := &tc.seen[tc.lastDir]
			ld.end = tc.lastEnd
			ld.maxend = tc.lastEnd
			ld.maxwin = max(tc.lastWin, 1)
			ld.scale = tc.lastWscale
			tc.lastFlags &^= tfExpChallenge
			ld.flags = tc.lastFlags
			tc.seen[dir] = tcpDir{}
			break
		}
		tc.lastIndex = index
		tc.lastDir = dir
		tc.lastSeq = s.seq
		tc.lastEnd = s.end
		tc.lastWin = s.win
		if index == idxSyn && dir == Original {
			var seen tcpDir
			tc.lastFlags, tc.lastWscale = 0, 0
			tcpOptions(s.opts, &seen)
			if seen.flags&tfWindowScale != 0 {
				tc.lastFlags |= tfWindowScale
				tc.lastWscale = seen.scale
			}
			if seen.flags&tfSackPerm != 0 {
				tc.lastFlags |= tfSackPerm
			}
			if old == TCPLastAck {
				tc.lastFlags |= tfExpChallenge
			}
		}
		return actAccept, ReasonNone // ignored: no state or timer change
	case tcpInvalid:
		return actInvalid, ReasonTCPState
	case TCPTimeWait:
		// RFC 5961 challenge ACK answering a SYN in LAST_ACK is not the ACK
		// of the last FIN.
		if old == TCPLastAck && index == idxAck && tc.lastDir != dir && tc.lastIndex == idxSyn && tc.lastFlags&tfExpChallenge != 0 {
			tc.lastFlags &^= tfExpChallenge
			return actAccept, ReasonNone
		}
	case TCPSynSent2:
		tc.lastFlags |= tfSimOpen
	case TCPSynRecv:
		if dir == Reply && index == idxAck && tc.lastFlags&tfSimOpen != 0 {
			ns = TCPEstablished
		}
	case TCPClose:
		if index != idxRst {
			break
		}
		if tcpCanEarlyDrop(old) {
			goto inWindow
		}
		// The peer's maxack is stale when the last packet was a SYN we
		// let through (ignored): the kernel skips the RST sequence checks
		// then (measured on 6.18: an RST below maxack right after an
		// ignored SYN in ESTABLISHED is accepted and closes the entry).
		if peer := &tc.seen[1-dir]; peer.flags&tfMaxackSet != 0 && tc.lastIndex != idxSyn {
			if before(s.seq, peer.maxack) && !t.cfg.TCPIgnoreInvalidRST {
				return actInvalid, ReasonTCPRst
			}
			established := old == TCPEstablished && status&StatusAssured != 0
			if !established || s.seq == peer.maxack {
				break
			}
			if tc.lastIndex == idxAck && tc.lastDir == dir && s.seq == tc.lastEnd {
				break // RST following our last data segment
			}
			ns = old // inexact RST: keep state, a challenge ACK may follow
		}
		// An RST answering a SYN or ACK we let through unchecked comes
		// from the other side: measured on 6.18, a client's RST after its
		// own SYN is window-checked even when its ack equals the last
		// annotated end (kernel oracle scenarios rst_syn_sent_*, L_*).
		if ((status&StatusSeenReply != 0 && tc.lastIndex == idxSyn) ||
			(status&StatusAssured == 0 && tc.lastIndex == idxAck)) && tc.lastDir != dir && s.ack == tc.lastEnd {
			goto inWindow // RST answering a SYN/ACK we let through unchecked
		}
		if old == TCPSynSent && tc.lastIndex == idxAck && tc.lastDir == Reply && s.seq == tc.lastAck {
			goto inWindow // RST answering a challenge ACK
		}
	}

	switch t.inWindow(tc, dir, index, s) {
	case winIgnore:
		return actAccept, ReasonNone
	case winInvalid:
		t.tcpHandleInvalid(c, dir, index, now)
		return actInvalid, ReasonTCPWindow
	}

inWindow:
	tc.lastIndex = index
	tc.lastDir = dir
	tc.state = ns
	c.pstate.Store(uint32(ns))
	if old != ns && ns == TCPFinWait {
		tc.seen[dir].flags |= tfCloseInit
	}

	to := &t.cfg.Timeouts
	stateTO := t.tcpTimeout(ns)
	var timeout time.Duration
	switch {
	case int(tc.retrans) >= t.cfg.TCPMaxRetrans && stateTO > to.TCPMaxRetrans:
		timeout = to.TCPMaxRetrans
	case index == idxRst:
		timeout = to.TCPClose
	case (tc.seen[0].flags|tc.seen[1].flags)&tfDataUnack != 0 && stateTO > to.TCPUnack:
		timeout = to.TCPUnack
	case tc.lastWin == 0 && stateTO > to.TCPMaxRetrans:
		timeout = to.TCPMaxRetrans
	default:
		timeout = stateTO
	}

	if status&StatusSeenReply == 0 {
		if s.flags&flRST != 0 {
			return actKill, ReasonNone // only answer is an RST: forget it now
		}
		if index == idxSyn && old == TCPSynSent {
			return actAccept, ReasonNone // SYN retransmit does not refresh the timer
		}
		if ns == TCPEstablished && timeout > to.TCPUnack {
			timeout = to.TCPUnack // picked up, unanswered
		}
	} else if status&StatusAssured == 0 && (old == TCPSynRecv || old == TCPEstablished) && ns == TCPEstablished {
		c.setStatus(StatusAssured)
	}
	c.refresh(now, timeout)
	return actAccept, ReasonNone
}

// tcpHandleInvalid shortens the life of an ASSURED connection whose FIN or
// RST answer was out of window (nf_tcp_handle_invalid).
func (t *Table) tcpHandleInvalid(c *Conn, dir Dir, index uint8, now int64) {
	st := Status(c.status.Load())
	if st&StatusAssured == 0 || st&StatusFixedTimeout != 0 {
		return
	}
	if index != idxRst && index != idxFin {
		return
	}
	tc := &c.tcp
	if tc.lastDir != dir && (tc.lastIndex == idxFin || tc.lastIndex == idxRst) {
		left := time.Duration(c.expires.Load() - now)
		if left < 120*time.Second {
			return
		}
		if un := t.cfg.Timeouts.TCPUnack; left > un {
			c.expires.Store(now + int64(un))
		}
		return
	}
	tc.lastIndex = index
	tc.lastDir = dir
}
