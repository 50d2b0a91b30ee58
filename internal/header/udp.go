package header

// UDP is a view of a UDP datagram (RFC 768) from its header on. The caller
// ensures len >= UDPLen before reading fields; CalculateChecksum needs the
// whole datagram.
type UDP []byte

// UDP header size and field offsets.
const (
	UDPLen         = 8
	UDPSrcPortOff  = 0
	UDPDstPortOff  = 2
	UDPLengthOff   = 4
	UDPChecksumOff = 6
)

// SrcPort returns the source port.
func (u UDP) SrcPort() uint16 { return be.Uint16(u[UDPSrcPortOff:]) }

// DstPort returns the destination port.
func (u UDP) DstPort() uint16 { return be.Uint16(u[UDPDstPortOff:]) }

// Length returns the length field (header and data, bytes).
func (u UDP) Length() uint16 { return be.Uint16(u[UDPLengthOff:]) }

// Checksum returns the checksum field (0 = none, IPv4 only).
func (u UDP) Checksum() uint16 { return be.Uint16(u[UDPChecksumOff:]) }

// SetChecksum stores c in the checksum field.
func (u UDP) SetChecksum(c uint16) { be.PutUint16(u[UDPChecksumOff:], c) }

// SetLength stores the length field without touching the checksum.
func (u UDP) SetLength(n uint16) { be.PutUint16(u[UDPLengthOff:], n) }

// CalculateChecksum returns the checksum of the whole datagram u with the
// checksum field taken as zero, starting from the pseudo-header sum. A result
// of 0 is returned as 0xffff, since 0 on the wire means "no checksum".
func (u UDP) CalculateChecksum(pseudo uint16) uint16 {
	c := checksumSkip(u, UDPChecksumOff, pseudo)
	if c == 0 {
		c = 0xffff
	}
	return c
}

// SetSrcPort rewrites the source port and patches a present checksum.
func (u UDP) SetSrcPort(p uint16) { u.setPort(UDPSrcPortOff, p) }

// SetDstPort rewrites the destination port and patches a present checksum.
func (u UDP) SetDstPort(p uint16) { u.setPort(UDPDstPortOff, p) }

func (u UDP) setPort(off int, p uint16) {
	old := be.Uint16(u[off:])
	be.PutUint16(u[off:], p)
	c := u.Checksum()
	if c == 0 {
		return
	}
	c = Update16(c, old, p)
	if c == 0 {
		c = 0xffff
	}
	u.SetChecksum(c)
}
