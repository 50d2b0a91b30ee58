package conntrack

import (
	"encoding/binary"
	"hash/crc32"
	"time"
)

// SCTP tracking (nf_conntrack_proto_sctp), as measured on 6.18
// (testdata/kernel/scenarios-sctp*.txt, every chunk type in every state and
// direction). A packet is INVALID when:
//
//   - the common header (12 bytes) is incomplete, or - in PREROUTING with
//     nf_conntrack_checksum=1 - its CRC32c is wrong;
//   - it holds no chunk, a chunk with length 0, an INIT, INIT ACK or
//     SHUTDOWN COMPLETE that is not the only chunk, or a COOKIE ECHO or
//     COOKIE ACK that is not the first (RFC 9260 6.10);
//   - it would create a connection but carries ABORT, SHUTDOWN COMPLETE,
//     COOKIE ACK or a chunk type the state machine does not know, or an
//     INIT with a non-zero tag (out-of-the-blue packets, RFC 9260 8.4);
//   - its verification tag is not the one expected from its direction
//     (RFC 9260 8.5, with 8.5.1's exceptions for INIT, ABORT, SHUTDOWN
//     COMPLETE, COOKIE ECHO, and the heartbeats that re-learn a tag after a
//     peer restarted on another path);
//   - a chunk is invalid in the connection's state and direction.
//
// Chunks are walked in order and each moves the state; the timer becomes
// the timeout of the final state. A retransmitted INIT in CLOSED does not
// refresh the timer (a client reusing its port cannot keep the entry
// alive). ASSURED is set when the state becomes ESTABLISHED.

// SCTPState is the SCTP conntrack state (kernel enum sctp_conntrack order;
// HEARTBEAT_ACKED no longer exists in 6.x).
type SCTPState uint8

const (
	SCTPNone SCTPState = iota
	SCTPClosed
	SCTPCookieWait
	SCTPCookieEchoed
	SCTPEstablished
	SCTPShutdownSent
	SCTPShutdownRecd
	SCTPShutdownAckSent
	SCTPHeartbeatSent
	sctpNumStates
	sctpInvalid // table marker: the chunk makes the packet INVALID
)

var sctpStateNames = [...]string{"NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED",
	"SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT"}

func (s SCTPState) String() string {
	if int(s) < len(sctpStateNames) {
		return sctpStateNames[s]
	}
	return "UNKNOWN"
}

// SCTP chunk types (RFC 9260 3.2) the tracker looks at.
const (
	chunkData         = 0
	chunkInit         = 1
	chunkInitAck      = 2
	chunkSack         = 3
	chunkHeartbeat    = 4
	chunkHeartbeatAck = 5
	chunkAbort        = 6
	chunkShutdown     = 7
	chunkShutdownAck  = 8
	chunkError        = 9
	chunkCookieEcho   = 10
	chunkCookieAck    = 11
	chunkShutdownComp = 14

	chunkFlagT = 0x01 // ABORT / SHUTDOWN COMPLETE: tag reflected
)

// sctpClass maps a chunk type to its row of sctpTransitions, or -1 for the
// types that never change the state.
func sctpClass(typ uint8) int {
	switch typ {
	case chunkInit:
		return 0
	case chunkInitAck:
		return 1
	case chunkAbort:
		return 2
	case chunkShutdown:
		return 3
	case chunkShutdownAck:
		return 4
	case chunkError:
		return 5
	case chunkCookieEcho:
		return 6
	case chunkCookieAck:
		return 7
	case chunkShutdownComp:
		return 8
	case chunkHeartbeat:
		return 9
	case chunkHeartbeatAck:
		return 10
	case chunkData, chunkSack:
		return 11
	}
	return -1
}

const (
	xNO = SCTPNone
	xCL = SCTPClosed
	xCW = SCTPCookieWait
	xCE = SCTPCookieEchoed
	xES = SCTPEstablished
	xSS = SCTPShutdownSent
	xSR = SCTPShutdownRecd
	xSA = SCTPShutdownAckSent
	xHS = SCTPHeartbeatSent
	xIV = sctpInvalid
)

// sctpTransitions[dir][class][old state] is the new state, as measured
// (testdata/kernel/observed-sctp-matrix.txt). Columns: NONE CLOSED
// COOKIE_WAIT COOKIE_ECHOED ESTABLISHED SHUTDOWN_SENT SHUTDOWN_RECD
// SHUTDOWN_ACK_SENT HEARTBEAT_SENT.
var sctpTransitions = [2][12][sctpNumStates]SCTPState{
	Original: {
		/* init          */ {xCL, xCL, xCW, xCE, xES, xCL, xCL, xSA, xCW},
		/* init ack      */ {xCL, xCL, xCW, xCE, xES, xSS, xSR, xSA, xCL},
		/* abort         */ {xCL, xCL, xCL, xCL, xCL, xCL, xCL, xCL, xCL},
		/* shutdown      */ {xCL, xCL, xCW, xCE, xSS, xSS, xSR, xSA, xCL},
		/* shutdown ack  */ {xSA, xCL, xCW, xCE, xES, xSA, xSA, xSA, xSA},
		/* error         */ {xCL, xCL, xCW, xCE, xES, xSS, xSR, xSA, xCL},
		/* cookie echo   */ {xCL, xCL, xCE, xCE, xES, xSS, xSR, xSA, xCL},
		/* cookie ack    */ {xCL, xCL, xCW, xES, xES, xSS, xSR, xSA, xCL},
		/* shutdown comp */ {xCL, xCL, xCW, xCE, xES, xSS, xSR, xCL, xCL},
		/* heartbeat     */ {xHS, xCL, xCW, xCE, xES, xSS, xSR, xSA, xHS},
		/* heartbeat ack */ {xCL, xCL, xCW, xCE, xES, xSS, xSR, xSA, xHS},
		/* data, sack    */ {xIV, xCL, xCW, xCE, xES, xSS, xSR, xSA, xHS},
	},
	Reply: {
		/* init          */ {xIV, xCL, xCW, xCE, xES, xSS, xSR, xSA, xIV},
		/* init ack      */ {xIV, xCW, xCW, xCE, xES, xSS, xSR, xSA, xIV},
		/* abort         */ {xIV, xCL, xCL, xCL, xCL, xCL, xCL, xCL, xIV},
		/* shutdown      */ {xIV, xCL, xCW, xCE, xSR, xSS, xSR, xSA, xIV},
		/* shutdown ack  */ {xIV, xCL, xCW, xCE, xES, xSA, xSA, xSA, xIV},
		/* error         */ {xIV, xCL, xCW, xCL, xES, xSS, xSR, xSA, xIV},
		/* cookie echo   */ {xIV, xCL, xCE, xCE, xES, xSS, xSR, xSA, xIV},
		/* cookie ack    */ {xIV, xCL, xCW, xES, xES, xSS, xSR, xSA, xIV},
		/* shutdown comp */ {xIV, xCL, xCW, xCE, xES, xSS, xSR, xCL, xIV},
		/* heartbeat     */ {xIV, xCL, xCW, xCE, xES, xSS, xSR, xSA, xHS},
		/* heartbeat ack */ {xIV, xCL, xCW, xCE, xES, xSS, xSR, xSA, xES},
		/* data, sack    */ {xIV, xCL, xCW, xCE, xES, xSS, xSR, xSA, xES},
	},
}

// sctpNext is the state after a chunk of type typ in direction dir; types
// without a row leave the state as it is.
func sctpNext(dir Dir, old SCTPState, typ uint8) SCTPState {
	cl := sctpClass(typ)
	if cl < 0 {
		return old
	}
	return sctpTransitions[dir][cl][old]
}

// The SCTP state and its flags live in Conn.pstate (atomic, so that
// SCTPState needs no lock): bits 0-7 the state, then these flags
// (ip_ct_sctp.init[] and the heartbeat vtag bookkeeping).
const (
	sctpInitOrig   = 1 << 8  // an INIT was seen from the original side
	sctpInitReply  = 1 << 9  // an INIT was seen from the reply side
	sctpHBFailed   = 1 << 10 // a HEARTBEAT carried an unexpected tag
	sctpHBLastRepl = 1 << 11 // ... and came from the reply side
)

func sctpInitBit(d Dir) uint32 {
	if d == Reply {
		return sctpInitReply
	}
	return sctpInitOrig
}

func (t *Table) sctpTimeout(s SCTPState) time.Duration {
	to := &t.cfg.Timeouts
	switch s {
	case SCTPCookieWait:
		return to.SCTPCookieWait
	case SCTPCookieEchoed:
		return to.SCTPCookieEchoed
	case SCTPEstablished:
		return to.SCTPEstablished
	case SCTPShutdownSent:
		return to.SCTPShutdownSent
	case SCTPShutdownRecd:
		return to.SCTPShutdownRecd
	case SCTPShutdownAckSent:
		return to.SCTPShutdownAckSent
	case SCTPHeartbeatSent:
		return to.SCTPHeartbeatSent
	}
	return to.SCTPClosed
}

// sctpCanEarlyDrop: an ASSURED association that is shutting down may be
// reaped under pressure (the kernel's sctp_can_early_drop).
func sctpCanEarlyDrop(s SCTPState) bool {
	return s == SCTPShutdownSent || s == SCTPShutdownRecd || s == SCTPShutdownAckSent
}

// sctpCRCOK verifies the CRC32c of an SCTP packet (RFC 9260 appendix B):
// computed with the checksum field as zero, stored little-endian.
func (t *Table) sctpCRCOK(l []byte) bool {
	crc := crc32.Update(0, t.crc32c, l[:8])
	// The four zero bytes of the checksum field, fed through the table by
	// hand: a zero array handed to crc32.Update would escape to the heap.
	crc = ^crc
	for range 4 {
		crc = t.crc32c[byte(crc)] ^ crc>>8
	}
	crc = ^crc
	crc = crc32.Update(crc, t.crc32c, l[12:])
	return crc == binary.LittleEndian.Uint32(l[8:])
}

// sctpChunkSet is a set of chunk types (a 256-bit map).
type sctpChunkSet [4]uint64

func (s *sctpChunkSet) add(typ uint8)      { s[typ>>6] |= 1 << (typ & 63) }
func (s *sctpChunkSet) has(typ uint8) bool { return s[typ>>6]&(1<<(typ&63)) != 0 }

// sctpChunks walks the chunks as the kernel does: from byte 12, while a
// 4-byte chunk header fits in the packet, advancing by the length rounded
// up to 4 (the length is not checked against the packet). fn gets each
// chunk's offset, type, flags and length field, and stops the walk by
// returning false.
func sctpChunks(l []byte, fn func(off int, typ, flags uint8, ln uint16) bool) {
	for off := 12; off+4 <= len(l); off += (int(binary.BigEndian.Uint16(l[off+2:])) + 3) &^ 3 {
		if !fn(off, l[off], l[off+1], binary.BigEndian.Uint16(l[off+2:])) {
			return
		}
		if binary.BigEndian.Uint16(l[off+2:]) == 0 {
			return // cannot advance; the basic checks refuse it
		}
	}
}

// sctpBasic is the kernel's do_basic_checks: the chunk set, or false.
func sctpBasic(l []byte, set *sctpChunkSet) bool {
	n, alone, ok := 0, false, true
	sctpChunks(l, func(_ int, typ, _ uint8, ln uint16) bool {
		if typ == chunkInit || typ == chunkInitAck || typ == chunkShutdownComp {
			alone = true
		}
		if ((typ == chunkCookieAck || typ == chunkCookieEcho || alone) && n != 0) || ln == 0 {
			ok = false
			return false
		}
		set.add(typ)
		n++
		return true
	})
	return ok && n > 0
}

// sctpInitTag reads the initiate tag of the INIT / INIT ACK chunk at off;
// false when its 16-byte fixed part is not in the packet.
func sctpInitTag(l []byte, off int) (uint32, bool) {
	if off+4+16 > len(l) {
		return 0, false
	}
	return binary.BigEndian.Uint32(l[off+4:]), true
}

// sctpPacket is the SCTP tracker (nf_conntrack_sctp_packet).
func (t *Table) sctpPacket(c *Conn, dir Dir, fresh bool, k *pkt, now int64) (trackAction, Reason) {
	l := k.l4
	if len(l) < 12 {
		return actInvalid, ReasonTruncated
	}
	if k.check && !t.sctpCRCOK(l) {
		return actInvalid, ReasonChecksum
	}
	var set sctpChunkSet
	if !sctpBasic(l, &set) {
		return actInvalid, ReasonSCTPChunks
	}
	vtag := binary.BigEndian.Uint32(l[4:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if fresh {
		if set.has(chunkAbort) || set.has(chunkShutdownComp) || set.has(chunkCookieAck) {
			return actInvalid, ReasonSCTPState
		}
		if r := sctpNew(c, l, vtag); r != ReasonNone {
			return actInvalid, r
		}
		c.node[1].t, _ = c.node[0].t.Invert()
	}
	// RFC 9260 8.5: the tag must be the receiver's, except for the
	// chunks 8.5.1 treats one by one below.
	if !set.has(chunkInit) && !set.has(chunkShutdownComp) && !set.has(chunkCookieEcho) &&
		!set.has(chunkAbort) && !set.has(chunkShutdownAck) && !set.has(chunkHeartbeat) &&
		!set.has(chunkHeartbeatAck) && vtag != c.sctpVtag[dir] {
		return actInvalid, ReasonSCTPVtag
	}
	ps := c.pstate.Load()
	act, reason, ns, ignore := t.sctpChunksRun(c, dir, fresh, l, vtag, &set, &ps)
	c.pstate.Store(ps)
	if act != actAccept {
		return act, reason
	}
	if ignore {
		return actAccept, ReasonNone // accepted, timer not refreshed
	}
	c.refresh(now, t.sctpTimeout(ns))
	return actAccept, ReasonNone
}

// sctpNew checks that the first packet may create a connection and learns
// the tags it announces (the kernel's sctp_new).
func sctpNew(c *Conn, l []byte, vtag uint32) Reason {
	r := ReasonNone
	c.sctpVtag = [2]uint32{}
	sctpChunks(l, func(off int, typ, _ uint8, _ uint16) bool {
		if ns := sctpNext(Original, SCTPNone, typ); ns == SCTPNone || ns == sctpInvalid {
			r = ReasonSCTPState
			return false
		}
		switch typ {
		case chunkInit:
			tag, ok := sctpInitTag(l, off)
			if vtag != 0 || !ok {
				r = ReasonSCTPVtag
				return false
			}
			c.sctpVtag[Reply] = tag
		case chunkHeartbeat:
			c.sctpVtag[Original] = vtag
		default:
			// Out of the blue (RFC 9260 8.4): the answer (SHUTDOWN
			// COMPLETE, ABORT) reflects this tag.
			c.sctpVtag[Reply] = vtag
		}
		return true
	})
	return r
}

// sctpChunksRun runs every chunk through the state machine with the
// per-chunk tag rules of RFC 9260 8.5.1. ps is the packed state (updated
// even when a later chunk turns out invalid, as in the kernel). ns is the
// final state; ignore says the timer must not be refreshed.
func (t *Table) sctpChunksRun(c *Conn, dir Dir, fresh bool, l []byte, vtag uint32, set *sctpChunkSet, ps *uint32) (act trackAction, reason Reason, ns SCTPState, ignore bool) {
	vt := &c.sctpVtag
	other := 1 - dir
	ns = SCTPNone
	sctpChunks(l, func(off int, typ, flags uint8, _ uint16) bool {
		fail := func(r Reason) bool {
			act, reason = actInvalid, r
			return false
		}
		switch typ {
		case chunkInit:
			if vtag != 0 {
				return fail(ReasonSCTPVtag)
			}
		case chunkAbort, chunkShutdownComp:
			want := vt[dir]
			if flags&chunkFlagT != 0 {
				want = vt[other]
			}
			if vtag != want {
				return fail(ReasonSCTPVtag)
			}
		case chunkCookieEcho:
			if vtag != vt[dir] {
				return fail(ReasonSCTPVtag)
			}
		case chunkHeartbeat:
			switch {
			case vt[dir] == 0:
				vt[dir] = vtag
			case vtag != vt[dir]:
				// Maybe the peer restarted on another path: let it
				// through untracked once, and see if it is answered.
				if set.has(chunkData) || ignore {
					return fail(ReasonSCTPVtag)
				}
				*ps |= sctpHBFailed
				*ps &^= sctpHBLastRepl
				if dir == Reply {
					*ps |= sctpHBLastRepl
				}
				ignore = true
				return true
			default:
				*ps &^= sctpHBFailed
			}
		case chunkHeartbeatAck:
			switch {
			case vt[dir] == 0:
				vt[dir] = vtag
			case vtag != vt[dir]:
				if set.has(chunkData) || ignore {
					return fail(ReasonSCTPVtag)
				}
				lastReply := *ps&sctpHBLastRepl != 0
				if *ps&sctpHBFailed == 0 || lastReply == (dir == Reply) {
					return fail(ReasonSCTPVtag)
				}
				// The answer to the unexpected HEARTBEAT: adopt the
				// new tags.
				*ps &^= sctpHBFailed
				vt[dir] = vtag
				vt[other] = 0
			default:
				*ps &^= sctpHBFailed
			}
		}
		old := SCTPState(uint8(*ps))
		ns = sctpNext(dir, old, typ)
		if ns == sctpInvalid {
			return fail(ReasonSCTPState)
		}
		switch typ {
		case chunkInit:
			tag, ok := sctpInitTag(l, off)
			if !ok {
				return fail(ReasonTruncated)
			}
			if *ps&sctpInitBit(dir) != 0 && *ps&sctpInitBit(other) != 0 {
				*ps &^= sctpInitBit(other)
			}
			*ps |= sctpInitBit(dir)
			vt[other] = tag
			if ns == SCTPClosed && old == SCTPClosed && !fresh {
				ignore = true // INIT retransmission: no refresh
			}
		case chunkInitAck:
			tag, ok := sctpInitTag(l, off)
			if !ok {
				return fail(ReasonTruncated)
			}
			v := vt[other]
			if *ps&sctpInitBit(other) == 0 && v != 0 && v != tag {
				return fail(ReasonSCTPVtag)
			}
			if *ps&sctpInitBit(dir) != 0 && *ps&sctpInitBit(other) != 0 && v != tag {
				return fail(ReasonSCTPVtag) // INIT collision
			}
			vt[other] = tag
		}
		*ps = *ps&^0xff | uint32(ns)
		if old != ns && ns == SCTPEstablished {
			c.setStatus(StatusAssured)
		}
		return true
	})
	return act, reason, ns, ignore
}
