package header

// ICMPv4 is a view of an ICMP message (RFC 792) from its header on. The
// caller ensures len >= ICMPv4MinLen. ICMPv6 messages share the layout of the
// first 8 bytes, so the same view serves them (see ICMPv6 types below); only
// the checksum differs (ICMPv6 covers a pseudo-header).
type ICMPv4 []byte

// ICMP header size and field offsets.
const (
	ICMPv4MinLen      = 8 // type, code, checksum, 4 bytes "rest of header"
	ICMPv4ChecksumOff = 2
	ICMPv4IDOff       = 4
	ICMPv4SeqOff      = 6
)

// ICMPv4 types used by conntrack, REJECT and the icmp match.
const (
	ICMPv4EchoReply      = 0
	ICMPv4DestUnreach    = 3
	ICMPv4SourceQuench   = 4
	ICMPv4Redirect       = 5
	ICMPv4Echo           = 8
	ICMPv4TimeExceeded   = 11
	ICMPv4ParamProblem   = 12
	ICMPv4Timestamp      = 13
	ICMPv4TimestampReply = 14
	ICMPv4InfoRequest    = 15
	ICMPv4InfoReply      = 16
	ICMPv4AddrMask       = 17
	ICMPv4AddrMaskReply  = 18
)

// ICMPv4 destination-unreachable codes (REJECT --reject-with).
const (
	ICMPv4NetUnreach     = 0
	ICMPv4HostUnreach    = 1
	ICMPv4ProtoUnreach   = 2
	ICMPv4PortUnreach    = 3
	ICMPv4FragNeeded     = 4
	ICMPv4NetProhibited  = 9
	ICMPv4HostProhibited = 10
	ICMPv4AdminProhib    = 13
)

// ICMPv6 types (RFC 4443).
const (
	ICMPv6DestUnreach  = 1
	ICMPv6PacketTooBig = 2
	ICMPv6TimeExceeded = 3
	ICMPv6ParamProblem = 4
	ICMPv6EchoRequest  = 128
	ICMPv6EchoReply    = 129
)

// ICMPv4IsError reports whether type t is an error message that quotes the
// offending datagram: destination unreachable, source quench, redirect, time
// exceeded, parameter problem (the types conntrack relates to a connection).
func ICMPv4IsError(t uint8) bool {
	switch t {
	case ICMPv4DestUnreach, ICMPv4SourceQuench, ICMPv4Redirect, ICMPv4TimeExceeded, ICMPv4ParamProblem:
		return true
	}
	return false
}

// ICMPv4HasID reports whether type t carries an identifier in bytes 4-5:
// echo, timestamp, information and address-mask requests and replies.
func ICMPv4HasID(t uint8) bool {
	switch t {
	case ICMPv4EchoReply, ICMPv4Echo, ICMPv4Timestamp, ICMPv4TimestampReply,
		ICMPv4InfoRequest, ICMPv4InfoReply, ICMPv4AddrMask, ICMPv4AddrMaskReply:
		return true
	}
	return false
}

// ICMPv6IsError reports whether ICMPv6 type t is an error message (types
// below 128 are errors, RFC 4443 §2.1); conntrack relates types 1-4.
func ICMPv6IsError(t uint8) bool { return t >= 1 && t <= 4 }

// Type returns the message type.
func (c ICMPv4) Type() uint8 { return c[0] }

// Code returns the message code.
func (c ICMPv4) Code() uint8 { return c[1] }

// Checksum returns the checksum field.
func (c ICMPv4) Checksum() uint16 { return be.Uint16(c[ICMPv4ChecksumOff:]) }

// ID returns the identifier of query messages (bytes 4-5).
func (c ICMPv4) ID() uint16 { return be.Uint16(c[ICMPv4IDOff:]) }

// Seq returns the sequence number of query messages (bytes 6-7).
func (c ICMPv4) Seq() uint16 { return be.Uint16(c[ICMPv4SeqOff:]) }

// Rest returns bytes 4-7: the gateway of a redirect, the pointer of a
// parameter problem (top byte), the next-hop MTU of "fragmentation needed"
// (low 16 bits).
func (c ICMPv4) Rest() uint32 { return be.Uint32(c[4:]) }

// Payload returns the bytes after the 8-byte header: for an error, the quoted
// datagram (its IP header and at least 8 bytes of its data).
func (c ICMPv4) Payload() []byte { return c[ICMPv4MinLen:] }

// SetChecksum stores v in the checksum field.
func (c ICMPv4) SetChecksum(v uint16) { be.PutUint16(c[ICMPv4ChecksumOff:], v) }

// CalculateChecksum returns the ICMPv4 checksum over the whole message c with
// the checksum field taken as zero. For ICMPv6 pass initial =
// PseudoHeaderSum(src, dst, ProtoICMPv6, len(c)); for ICMPv4 pass 0.
func (c ICMPv4) CalculateChecksum(initial uint16) uint16 {
	return checksumSkip(c, ICMPv4ChecksumOff, initial)
}

// SetID rewrites the identifier and patches the checksum (NAT of echo
// requests uses the id as the "port"). Valid for ICMPv6 too: the id is not in
// the pseudo-header.
func (c ICMPv4) SetID(id uint16) {
	old := c.ID()
	be.PutUint16(c[ICMPv4IDOff:], id)
	c.SetChecksum(Update16(c.Checksum(), old, id))
}
