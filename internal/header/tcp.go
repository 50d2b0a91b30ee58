package header

// TCP is a view of a TCP segment (RFC 9293) from its header on. The caller
// ensures len >= TCPMinLen before reading fields; Options needs
// len >= DataOffset(), and CalculateChecksum needs the whole segment.
type TCP []byte

// TCP header size and field offsets.
const (
	TCPMinLen = 20
	TCPMaxLen = 60

	TCPSrcPortOff  = 0
	TCPDstPortOff  = 2
	TCPSeqOff      = 4
	TCPAckOff      = 8
	TCPDataOffOff  = 12
	TCPFlagsOff    = 13
	TCPWindowOff   = 14
	TCPChecksumOff = 16
	TCPUrgentOff   = 18
)

// TCP flag bits (byte 13), as the kernel's tcp match and conntrack use them.
const (
	TCPFlagFIN = 0x01
	TCPFlagSYN = 0x02
	TCPFlagRST = 0x04
	TCPFlagPSH = 0x08
	TCPFlagACK = 0x10
	TCPFlagURG = 0x20
	TCPFlagECE = 0x40
	TCPFlagCWR = 0x80
)

// TCP option kinds.
const (
	TCPOptEnd           = 0
	TCPOptNOP           = 1
	TCPOptMSS           = 2
	TCPOptWindowScale   = 3
	TCPOptSACKPermitted = 4
	TCPOptSACK          = 5
	TCPOptTimestamps    = 8
)

// SrcPort returns the source port.
func (t TCP) SrcPort() uint16 { return be.Uint16(t[TCPSrcPortOff:]) }

// DstPort returns the destination port.
func (t TCP) DstPort() uint16 { return be.Uint16(t[TCPDstPortOff:]) }

// Seq returns the sequence number.
func (t TCP) Seq() uint32 { return be.Uint32(t[TCPSeqOff:]) }

// Ack returns the acknowledgment number.
func (t TCP) Ack() uint32 { return be.Uint32(t[TCPAckOff:]) }

// DataOffset returns the header length in bytes claimed by the data-offset
// field (which may be < TCPMinLen or beyond the segment in a malformed packet).
func (t TCP) DataOffset() int { return int(t[TCPDataOffOff]>>4) * 4 }

// Flags returns the flag byte (FIN..CWR).
func (t TCP) Flags() uint8 { return t[TCPFlagsOff] }

// Window returns the (unscaled) window.
func (t TCP) Window() uint16 { return be.Uint16(t[TCPWindowOff:]) }

// Checksum returns the checksum field.
func (t TCP) Checksum() uint16 { return be.Uint16(t[TCPChecksumOff:]) }

// Urgent returns the urgent pointer.
func (t TCP) Urgent() uint16 { return be.Uint16(t[TCPUrgentOff:]) }

// Options returns the option bytes, t[20:DataOffset()], cut at the end of t
// (a header quoted in an ICMP error may be cut), nil when the data offset is
// below 5 words.
func (t TCP) Options() []byte {
	n := t.DataOffset()
	if n < TCPMinLen {
		return nil
	}
	return t[TCPMinLen:min(n, len(t))]
}

// SetChecksum stores c in the checksum field.
func (t TCP) SetChecksum(c uint16) { be.PutUint16(t[TCPChecksumOff:], c) }

// CalculateChecksum returns the checksum of the whole segment t (header and
// payload) with the checksum field taken as zero, starting from the
// pseudo-header sum (PseudoHeaderSum with len(t)).
func (t TCP) CalculateChecksum(pseudo uint16) uint16 {
	return checksumSkip(t, TCPChecksumOff, pseudo)
}

// SetSrcPort rewrites the source port and patches the checksum.
func (t TCP) SetSrcPort(p uint16) { t.setPort(TCPSrcPortOff, p) }

// SetDstPort rewrites the destination port and patches the checksum.
func (t TCP) SetDstPort(p uint16) { t.setPort(TCPDstPortOff, p) }

func (t TCP) setPort(off int, p uint16) {
	old := be.Uint16(t[off:])
	be.PutUint16(t[off:], p)
	t.SetChecksum(Update16(t.Checksum(), old, p))
}

// TCPOptions is the subset of TCP options conntrack and the tcp match care
// about, as tcp_parse_options reads them: an option counts only with its exact
// length (MSS 4, window scale 3, SACK-permitted 2, timestamps 10).
type TCPOptions struct {
	MSS           uint16
	WindowScale   uint8 // as sent; conntrack caps it at 14
	TSVal, TSEcr  uint32
	HasMSS        bool
	HasWScale     bool
	SACKPermitted bool
	HasTimestamps bool
	Malformed     bool // a length byte < 2 or past the end stopped the walk
}

// ParseTCPOptions reads the option bytes opts (TCP.Options()).
func ParseTCPOptions(opts []byte) TCPOptions {
	var o TCPOptions
	it := NewOptionIter(opts)
	for {
		kind, data, ok := it.Next()
		if !ok {
			break
		}
		switch {
		case kind == TCPOptMSS && len(data) == 2:
			o.MSS, o.HasMSS = be.Uint16(data), true
		case kind == TCPOptWindowScale && len(data) == 1:
			o.WindowScale, o.HasWScale = data[0], true
		case kind == TCPOptSACKPermitted && len(data) == 0:
			o.SACKPermitted = true
		case kind == TCPOptTimestamps && len(data) == 8:
			o.TSVal, o.TSEcr, o.HasTimestamps = be.Uint32(data), be.Uint32(data[4:]), true
		}
	}
	o.Malformed = it.Malformed()
	return o
}

// HasOption reports whether an option of the given kind is present, the test
// of `-m tcp --tcp-option N`. It walks the bytes the way the kernel's
// tcp_find_option does: EOL and NOP bytes count as options of kinds 0 and 1
// and are skipped one at a time, any other kind advances by its length byte
// (a length of 0 advances by one).
func (t TCP) HasOption(kind uint8) bool {
	opts := t.Options()
	for i := 0; i < len(opts); {
		if opts[i] == kind {
			return true
		}
		if opts[i] < 2 {
			i++
			continue
		}
		if i+1 >= len(opts) {
			return false
		}
		n := int(opts[i+1])
		if n == 0 {
			n = 1
		}
		i += n
	}
	return false
}

// FindMSS returns the offset (from the start of t) of the MSS option's kind
// byte and its value. ok is false when there is no well-formed MSS option.
func (t TCP) FindMSS() (off int, mss uint16, ok bool) {
	it := NewOptionIter(t.Options())
	for {
		kind, data, more := it.Next()
		if !more {
			return 0, 0, false
		}
		if kind == TCPOptMSS && len(data) == 2 {
			return TCPMinLen + it.Offset(), be.Uint16(data), true
		}
	}
}

// SetMSS rewrites an existing MSS option to mss and patches the checksum, as
// the TCPMSS target does. It reports false, changing nothing, when there is
// no MSS option. Whether to lower only (TCPMSS never raises) is the caller's
// decision.
func (t TCP) SetMSS(mss uint16) bool {
	off, old, ok := t.FindMSS()
	if !ok {
		return false
	}
	be.PutUint16(t[off+2:], mss)
	// The option's value may sit at an odd offset; update the two aligned
	// words it touches.
	if (off+2)%2 == 0 {
		t.SetChecksum(Update16(t.Checksum(), old, mss))
		return true
	}
	w := off + 1  // aligned word: length byte, MSS high byte
	var next byte // byte after the option, zero padding if the segment ends
	if w+3 < len(t) {
		next = t[w+3]
	}
	oldHi := uint16(t[w])<<8 | old>>8
	oldLo := (old&0xff)<<8 | uint16(next)
	c := Update16(t.Checksum(), oldHi, uint16(t[w])<<8|mss>>8)
	c = Update16(c, oldLo, (mss&0xff)<<8|uint16(next))
	t.SetChecksum(c)
	return true
}
