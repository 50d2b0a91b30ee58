package nfqueue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Netlink and nfnetlink_queue constants (linux/netfilter/nfnetlink_queue.h,
// spec §10.4). Written here rather than taken from x/sys so the whole wire
// format is visible in one place.
const (
	subsysQueue = 3 // NFNL_SUBSYS_QUEUE

	msgPacket       = subsysQueue<<8 | 0 // NFQNL_MSG_PACKET (kernel -> user)
	msgVerdict      = subsysQueue<<8 | 1 // NFQNL_MSG_VERDICT
	msgConfig       = subsysQueue<<8 | 2 // NFQNL_MSG_CONFIG
	msgVerdictBatch = subsysQueue<<8 | 3 // NFQNL_MSG_VERDICT_BATCH

	// CONFIG attributes.
	cfgCmd      = 1
	cfgParams   = 2
	cfgQueueMax = 3
	cfgMask     = 4
	cfgFlags    = 5

	cmdBind   = 1
	cmdUnbind = 2

	copyPacket = 2 // NFQNL_COPY_PACKET

	// Queue flags (NFQA_CFG_F_*).
	FlagFailOpen  = 1
	FlagConntrack = 2
	FlagGSO       = 4
	FlagUIDGID    = 8

	// PACKET / VERDICT attributes.
	attrPacketHdr  = 1
	attrVerdictHdr = 2
	attrMark       = 3
	attrTimestamp  = 4
	attrIfIndexIn  = 5
	attrIfIndexOut = 6
	attrPhysIn     = 7
	attrPhysOut    = 8
	attrHwAddr     = 9
	attrPayload    = 10
	attrCapLen     = 13
	attrSkbInfo    = 14
	attrUID        = 16
	attrGID        = 17

	// NFQA_SKB_INFO bits: the state of the queued skb's checksum
	// (skb->ip_summed) and whether it is a GSO aggregate.
	skbCsumNotReady    = 1 // CHECKSUM_PARTIAL: the L4 checksum field holds only the pseudo-header sum
	skbGSO             = 2 // a GSO/GRO aggregate (only with FlagGSO)
	skbCsumNotVerified = 4 // CHECKSUM_NONE/COMPLETE not yet verified: the checksum must be checked

	nlmsgHdrLen  = 16
	nfgenHdrLen  = 4
	nlaHdrLen    = 4
	nlaTypeMask  = 0x3fff
	maxCopyRange = 65531 // the kernel's cap on the copied payload
)

// Verdict values of NFQA_VERDICT_HDR (spec §10.3).
type Verdict uint32

const (
	Drop   Verdict = 0 // NF_DROP
	Accept Verdict = 1 // NF_ACCEPT: continue with the next hook function
	Repeat Verdict = 4 // NF_REPEAT: run the same hook function again
	Stop   Verdict = 5 // NF_STOP: accept and skip the rest of the hook
)

func (v Verdict) String() string {
	switch v {
	case Drop:
		return "DROP"
	case Accept:
		return "ACCEPT"
	case Repeat:
		return "REPEAT"
	case Stop:
		return "STOP"
	}
	return fmt.Sprintf("verdict(%d)", uint32(v))
}

var native = binary.NativeEndian
var be = binary.BigEndian

func align4(n int) int { return (n + 3) &^ 3 }

// msgWriter appends netlink messages to a caller-owned buffer without
// allocating (the buffer is sized once by its owner).
type msgWriter struct {
	b     []byte
	start int // offset of the message being built
	seq   uint32
}

// begin starts a message of type typ for queue num with nlmsg flags.
func (w *msgWriter) begin(typ uint16, flags uint16, num uint16) {
	w.start = len(w.b)
	w.seq++
	var h [nlmsgHdrLen + nfgenHdrLen]byte
	native.PutUint16(h[4:], typ)
	native.PutUint16(h[6:], flags)
	native.PutUint32(h[8:], w.seq)
	h[16] = unix.AF_UNSPEC
	h[17] = 0 // NFNETLINK_V0
	be.PutUint16(h[18:], num)
	w.b = append(w.b, h[:]...)
}

// attr appends one attribute whose value is the concatenation of parts.
func (w *msgWriter) attr(typ uint16, val []byte) {
	var h [nlaHdrLen]byte
	native.PutUint16(h[0:], uint16(nlaHdrLen+len(val)))
	native.PutUint16(h[2:], typ)
	w.b = append(w.b, h[:]...)
	w.b = append(w.b, val...)
	for len(w.b)%4 != 0 {
		w.b = append(w.b, 0)
	}
}

// end writes the message length.
func (w *msgWriter) end() {
	native.PutUint32(w.b[w.start:], uint32(len(w.b)-w.start))
}

// Msg is one queued packet as the kernel described it. Payload and HwAddr
// are borrowed from the reader's buffer and valid until the next Read.
type Msg struct {
	Queue   uint16
	ID      uint32 // per-queue packet id, the verdict's key
	HwProto uint16 // link-layer protocol (0x0800 IPv4)
	Hook    uint8  // kernel hook number: 0 PREROUTING, 1 INPUT, 2 FORWARD, 3 OUTPUT, 4 POSTROUTING
	Payload []byte // from the network header on
	InDev   uint32 // ifindex, 0 = none
	OutDev  uint32
	Mark    uint32 // 0 when the kernel sent no NFQA_MARK (it omits a zero mark)
	TimeNS  int64  // NFQA_TIMESTAMP, 0 when absent
	UID     uint32
	GID     uint32
	HasUID  bool
	HasGID  bool
	HwAddr  []byte // source link-layer address (NFQA_HWADDR), nil when absent
	CapLen  uint32 // real packet length when the copy was cut (NFQA_CAP_LEN), else 0
	SkbInfo uint32
	// Malformed is set when the message was cut short or an attribute
	// after NFQA_PACKET_HDR was malformed: ID, HwProto and Hook are valid,
	// Payload is nil. The kernel holds the packet until it gets a verdict,
	// so the reader must still give one (the fail verdict).
	Malformed bool

	payloadOff int // offset of Payload in the parsed attributes
}

var errShort = errors.New("nfqueue: truncated netlink message")

// parsePacket fills m from the attributes of one NFQNL_MSG_PACKET (b starts
// after the nfgenmsg header). It allocates nothing. On an error after the
// PACKET_HDR attribute m.Malformed is set, Payload cleared, and the id kept
// for the verdict.
func parsePacket(b []byte, m *Msg) error {
	*m = Msg{Queue: m.Queue}
	orig := b
	seenHdr := false
	for len(b) >= nlaHdrLen {
		l := int(native.Uint16(b))
		t := native.Uint16(b[2:]) & nlaTypeMask
		if l < nlaHdrLen || l > len(b) {
			return m.malformed(seenHdr)
		}
		v := b[nlaHdrLen:l]
		switch t {
		case attrPacketHdr:
			if len(v) < 7 {
				return m.malformed(seenHdr)
			}
			m.ID = be.Uint32(v)
			m.HwProto = be.Uint16(v[4:])
			m.Hook = v[6]
			seenHdr = true
		case attrPayload:
			// Capacity capped at the attribute: a target that grows the
			// packet (TCPMSS adding an option) must not overwrite the
			// attributes after it. Read extends it when that is safe.
			m.Payload = v[:len(v):len(v)]
			m.payloadOff = len(orig) - len(b) + nlaHdrLen
		case attrIfIndexIn:
			if len(v) >= 4 {
				m.InDev = be.Uint32(v)
			}
		case attrIfIndexOut:
			if len(v) >= 4 {
				m.OutDev = be.Uint32(v)
			}
		case attrMark:
			if len(v) >= 4 {
				m.Mark = be.Uint32(v)
			}
		case attrTimestamp:
			if len(v) >= 16 {
				sec := int64(be.Uint64(v))
				usec := int64(be.Uint64(v[8:]))
				m.TimeNS = sec*1e9 + usec*1e3
			}
		case attrUID:
			if len(v) >= 4 {
				m.UID, m.HasUID = be.Uint32(v), true
			}
		case attrGID:
			if len(v) >= 4 {
				m.GID, m.HasGID = be.Uint32(v), true
			}
		case attrHwAddr:
			if len(v) >= 4 {
				// struct nfqnl_msg_packet_hw: hw_addrlen, pad, hw_addr[8].
				n := min(int(be.Uint16(v)), len(v)-4, 8)
				m.HwAddr = v[4 : 4+n]
			}
		case attrCapLen:
			if len(v) >= 4 {
				m.CapLen = be.Uint32(v)
			}
		case attrSkbInfo:
			if len(v) >= 4 {
				m.SkbInfo = be.Uint32(v)
			}
		}
		b = b[min(align4(l), len(b)):]
	}
	if !seenHdr {
		return m.malformed(false)
	}
	return nil
}

// malformed ends a parse that failed: with the packet header already read,
// the message still names a packet that needs a verdict.
func (m *Msg) malformed(seenHdr bool) error {
	m.Payload, m.HwAddr = nil, nil
	m.Malformed = seenHdr
	return errShort
}

// sockaddrNetlink is struct sockaddr_nl.
type sockaddrNetlink struct {
	family uint16
	pad    uint16
	pid    uint32
	groups uint32
}

// recv reads one datagram without allocating (unix.Recvfrom would build a
// Sockaddr on every call).
func recv(fd int, buf []byte, flags int) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(flags), 0, 0)
	return int(n), e
}

// send writes one datagram to the kernel (destination port id 0).
func send(fd int, buf []byte) unix.Errno {
	var sa sockaddrNetlink
	sa.family = unix.AF_NETLINK
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
	return e
}
