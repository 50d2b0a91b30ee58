// Package conntrack is connection tracking with the Linux kernel's semantics
// (nf_conntrack, 6.x): tuples in both directions, per-packet ctinfo
// (INVALID/NEW/ESTABLISHED/RELATED/UNTRACKED), the TCP state machine with
// window tracking and loose pickup, UDP and ICMP trackers, the SCTP tracker
// (chunk checks, CRC32c, verification tags, association states) and the
// GRE tracker (PPTP call ids), the generic tracker for the rest (DCCP
// included, as in 6.16+ kernels), ASSURED, a bounded table with the
// kernel's early drop, marks and NAT bindings.
//
// Time is data: every call takes the packet's timestamp (ns). There are no
// timers and no goroutines: an entry expires lazily when a lookup meets it,
// and the owner calls GC(now, budget) now and then as the kernel's gc worker.
//
// Where the engine calls it (kernel priorities, spec §1.1/§1.4):
//
//	PREROUTING/OUTPUT  prio -200  Table.In        lookup or create, run the tracker
//	INPUT/POSTROUTING  last       Table.Confirm   insert a new entry into the table
//	packet leaves the engine      Table.Release   drop the packet's reference
//
// A new connection lives only in the packet's Result until Confirm; a packet
// dropped before Confirm leaves no entry (the kernel's unconfirmed list).
package conntrack

import (
	"fmt"
	"net/netip"
)

// Dir is the direction of a packet relative to its connection.
type Dir uint8

const (
	Original Dir = 0 // same direction as the packet that created the connection
	Reply    Dir = 1
)

func (d Dir) String() string {
	if d == Reply {
		return "REPLY"
	}
	return "ORIGINAL"
}

// Tuple identifies one direction of a connection (kernel nf_conntrack_tuple
// plus the zone). For TCP, UDP, UDP-Lite and SCTP the ids are ports; for
// GRE they are the source and destination keys (PPTP call ids: without the
// PPTP helper the source key is always 0, see gre.go); for ICMP and ICMPv6
// SrcID is the echo/timestamp/info identifier and DstID holds the type in
// the high byte and the code in the low byte; for other protocols (DCCP
// included: this kernel has no DCCP tracker) both ids are 0 (the kernel's
// generic tracker).
type Tuple struct {
	Src, Dst netip.Addr
	SrcID    uint16
	DstID    uint16
	Proto    uint8
	Zone     uint16
}

// ICMPType returns the ICMP type of an ICMP/ICMPv6 tuple.
func (t Tuple) ICMPType() uint8 { return uint8(t.DstID >> 8) }

// ICMPCode returns the ICMP code of an ICMP/ICMPv6 tuple.
func (t Tuple) ICMPCode() uint8 { return uint8(t.DstID) }

// HasPorts reports whether the tuple's ids are ports that NAT may choose
// and rewrite (TCP, UDP, UDP-Lite). SCTP tuples carry ports too, but the
// engine cannot rewrite an SCTP header (its CRC32c), so SCTP is translated
// by address only.
func (t Tuple) HasPorts() bool { return hasPorts(t.Proto) }

// swapsIDs reports whether Invert exchanges the two ids: ports, and GRE
// keys (each side's key is the other side's).
func swapsIDs(proto uint8) bool { return hasPorts(proto) || proto == ProtoSCTP || proto == ProtoGRE }

// printsPorts reports whether conntrack-tools prints sport=/dport= for the
// protocol (libnetfilter_conntrack does for TCP, UDP, UDP-Lite, SCTP and
// DCCP, even when the kernel's generic tracker left them 0, as for DCCP).
func printsPorts(proto uint8) bool {
	return hasPorts(proto) || proto == ProtoSCTP || proto == ProtoDCCP
}

func hasPorts(proto uint8) bool {
	return proto == ProtoTCP || proto == ProtoUDP || proto == ProtoUDPLite
}

func isICMP(proto uint8) bool { return proto == ProtoICMP || proto == ProtoICMPv6 }

// Protocol numbers the trackers know.
const (
	ProtoICMP    = 1
	ProtoTCP     = 6
	ProtoUDP     = 17
	ProtoDCCP    = 33 // generic tracker (no DCCP tracker in this kernel)
	ProtoGRE     = 47
	ProtoICMPv6  = 58
	ProtoSCTP    = 132
	ProtoUDPLite = 136
)

// icmpInverse maps an ICMP query type to the type of its answer (both ways);
// a type absent here cannot be inverted, so it cannot start a connection and
// an error quoting it relates to nothing (kernel icmp invmap).
func icmpInverse(proto, typ uint8) (uint8, bool) {
	if proto == ProtoICMP {
		switch typ {
		case 8:
			return 0, true
		case 0:
			return 8, true
		case 13:
			return 14, true
		case 14:
			return 13, true
		case 15:
			return 16, true
		case 16:
			return 15, true
		case 17:
			return 18, true
		case 18:
			return 17, true
		}
		return 0, false
	}
	switch typ {
	case 128:
		return 129, true
	case 129:
		return 128, true
	case 139:
		return 140, true
	case 140:
		return 139, true
	}
	return 0, false
}

// Invert returns the tuple of the opposite direction (kernel
// nf_ct_invert_tuple). ok is false for ICMP types that have no answer type.
func (t Tuple) Invert() (Tuple, bool) {
	r := Tuple{Src: t.Dst, Dst: t.Src, Proto: t.Proto, Zone: t.Zone}
	switch {
	case swapsIDs(t.Proto):
		r.SrcID, r.DstID = t.DstID, t.SrcID
	case isICMP(t.Proto):
		inv, ok := icmpInverse(t.Proto, t.ICMPType())
		if !ok {
			return Tuple{}, false
		}
		r.SrcID = t.SrcID
		r.DstID = uint16(inv)<<8 | uint16(t.ICMPCode())
	}
	return r, true
}

func (t Tuple) String() string {
	switch {
	case printsPorts(t.Proto):
		return fmt.Sprintf("%s src=%s dst=%s sport=%d dport=%d zone=%d", protoName(t.Proto), t.Src, t.Dst, t.SrcID, t.DstID, t.Zone)
	case t.Proto == ProtoGRE:
		return fmt.Sprintf("%s src=%s dst=%s srckey=%#x dstkey=%#x zone=%d", protoName(t.Proto), t.Src, t.Dst, t.SrcID, t.DstID, t.Zone)
	case isICMP(t.Proto):
		return fmt.Sprintf("%s src=%s dst=%s type=%d code=%d id=%d zone=%d", protoName(t.Proto), t.Src, t.Dst, t.ICMPType(), t.ICMPCode(), t.SrcID, t.Zone)
	}
	return fmt.Sprintf("%s src=%s dst=%s zone=%d", protoName(t.Proto), t.Src, t.Dst, t.Zone)
}

// CtState is the per-packet conntrack state (kernel ctinfo without the
// direction, plus INVALID and UNTRACKED), i.e. what `-m state` tests.
type CtState uint8

const (
	Invalid     CtState = iota // no conntrack attached to the packet
	New                        // original direction, no reply seen yet
	Established                // reply seen, or any reply-direction packet
	Related                    // ICMP error about, or packet generated in reaction to, a tracked connection
	Untracked                  // NOTRACK / CT --notrack in raw
)

var ctStateNames = [...]string{"INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED"}

func (s CtState) String() string {
	if int(s) < len(ctStateNames) {
		return ctStateNames[s]
	}
	return fmt.Sprintf("CtState(%d)", uint8(s))
}

// StateMask is a set of state bits as xt_state / xt_conntrack --ctstate test
// them, including xt_conntrack's two virtual bits SNAT and DNAT.
type StateMask uint16

const (
	MaskInvalid     StateMask = 1 << iota // INVALID
	MaskNew                               // NEW
	MaskEstablished                       // ESTABLISHED
	MaskRelated                           // RELATED
	MaskUntracked                         // UNTRACKED
	MaskSNAT                              // connection has source NAT (--ctstate only)
	MaskDNAT                              // connection has destination NAT (--ctstate only)
)

// Info is a packet's ctinfo: its state and its direction. Dir is meaningful
// only when State is New, Established or Related.
type Info struct {
	State CtState
	Dir   Dir
}

func (i Info) String() string {
	if i.State == Invalid || i.State == Untracked {
		return i.State.String()
	}
	return i.State.String() + "/" + i.Dir.String()
}

// Status is the connection's status bit set (kernel IPS_*, same bit numbers).
type Status uint32

const (
	StatusExpected     Status = 1 << 0 // connection was expected by a helper (never set: no helpers)
	StatusSeenReply    Status = 1 << 1 // a packet was seen in the reply direction
	StatusAssured      Status = 1 << 2 // never early-dropped
	StatusConfirmed    Status = 1 << 3 // inserted into the table
	StatusSrcNAT       Status = 1 << 4 // original source is rewritten
	StatusDstNAT       Status = 1 << 5 // original destination is rewritten
	StatusSrcNATDone   Status = 1 << 7 // source manip binding chosen (possibly null)
	StatusDstNATDone   Status = 1 << 8 // destination manip binding chosen (possibly null)
	StatusDying        Status = 1 << 9 // removed (or being removed) from the table
	StatusFixedTimeout Status = 1 << 10
)

// TCPState is the TCP conntrack state (kernel enum tcp_conntrack order).
type TCPState uint8

const (
	TCPNone TCPState = iota
	TCPSynSent
	TCPSynRecv
	TCPEstablished
	TCPFinWait
	TCPCloseWait
	TCPLastAck
	TCPTimeWait
	TCPClose
	TCPSynSent2
	tcpNumStates
	tcpIgnore  // table marker: accept without changing state
	tcpInvalid // table marker: packet is INVALID
)

var tcpStateNames = [...]string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}

func (s TCPState) String() string {
	if int(s) < len(tcpStateNames) {
		return tcpStateNames[s]
	}
	return fmt.Sprintf("TCPState(%d)", uint8(s))
}

// Reason says why a packet is INVALID or dropped; for tests, logging
// (nf_conntrack_log_invalid) and counters. ReasonNone for tracked packets.
type Reason uint8

const (
	ReasonNone         Reason = iota
	ReasonTruncated           // L3/L4 header truncated or malformed, or a non-first fragment
	ReasonChecksum            // bad L4 checksum in PREROUTING with checksum=1
	ReasonTCPFlags            // TCP flag combination never valid
	ReasonNoNew               // first packet may not create a connection (TCP flags, ICMP type)
	ReasonTCPState            // TCP state machine: invalid transition
	ReasonTCPWindow           // TCP window tracking: out of window
	ReasonTCPRst              // RST below the last acknowledged sequence
	ReasonICMPType            // ICMP type out of range
	ReasonICMPNoConn          // ICMP error whose quoted packet matches no connection
	ReasonICMPOuterDst        // ICMP error whose outer destination is not the connection's
	ReasonUDPZeroCsum         // IPv6 UDP without checksum
	ReasonTableFull           // verdict Drop: table full and nothing to early-drop
	ReasonClash               // verdict Drop: lost an insertion race at Confirm
	ReasonSCTPChunks          // SCTP: no chunk, a zero-length chunk, or a chunk that must come first/alone does not
	ReasonSCTPVtag            // SCTP: verification tag check failed (RFC 9260 8.5)
	ReasonSCTPState           // SCTP: chunk invalid in this state or direction, or cannot start a connection
	ReasonGREVersion          // GRE version 1 (PPTP) carrying another protocol than PPP
)

var reasonNames = [...]string{"", "truncated", "checksum", "tcp flags", "cannot create", "tcp state", "tcp window", "tcp invalid rst", "icmp type", "icmp error without connection", "icmp error outer destination", "udp zero checksum", "table full", "insert clash", "sctp chunks", "sctp vtag", "sctp state", "gre version 1 not ppp"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Verdict is what conntrack itself decides about the packet.
type Verdict uint8

const (
	Accept Verdict = iota // continue traversal (also for INVALID packets)
	Drop                  // the kernel drops the packet here (table full, insert clash)
)

func protoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "icmpv6"
	case ProtoUDPLite:
		return "udplite"
	case 132:
		return "sctp"
	case 47:
		return "gre"
	case 33:
		return "dccp"
	}
	return "unknown"
}
