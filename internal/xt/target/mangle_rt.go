package target

import (
	"encoding/binary"
	"net/netip"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/xt"
)

// This file is the runtime of the targets that rewrite the packet or its
// marks and continue: MARK, CONNMARK, TTL, DSCP, TOS, TCPMSS.

// Do sets the packet mark (§9.8).
func (t *Mark) Do(c *xt.Ctx) xt.Verdict {
	c.P.Mark = t.Apply(c.P.Mark)
	return xt.Continue
}

// Do changes the connection mark or the packet mark (§9.9). A packet
// without a connection (INVALID, UNTRACKED, raw table) is left alone. The
// shift is applied after masking: save moves (mark AND nfmask) into the
// ctmask bits of the connection mark, restore moves (ctmark AND ctmask)
// into the nfmask bits of the packet mark.
func (t *Connmark) Do(c *xt.Ctx) xt.Verdict {
	conn := c.CT.Conn
	if conn == nil {
		return xt.Continue
	}
	switch t.Mode {
	case ConnmarkSet:
		conn.XorMark(t.CTMask, t.Value)
	case ConnmarkSave:
		conn.XorMark(t.CTMask, t.shiftMark(c.P.Mark&t.NFMask))
	case ConnmarkRestore:
		c.P.Mark = c.P.Mark&^t.NFMask ^ t.shiftMark(conn.Mark()&t.CTMask)
	}
	return xt.Continue
}

func (t *Connmark) shiftMark(v uint32) uint32 {
	if t.ShiftRight {
		return v >> t.ShiftBits
	}
	return v << t.ShiftBits
}

// Do rewrites the IPv4 TTL, fixing the header checksum (§9.5); an
// unchanged TTL leaves the packet untouched.
func (t *TTL) Do(c *xt.Ctx) xt.Verdict {
	p := c.P
	if p.Version == 4 && p.Status != packet.BadL3 {
		if n := t.Apply(p.TTL); n != p.TTL {
			p.SetTTL(n)
		}
	}
	return xt.Continue
}

// Do sets the DiffServ code point, keeping the two ECN bits.
func (d *DSCP) Do(c *xt.Ctx) xt.Verdict {
	p := c.P
	if p.Status != packet.BadL3 && p.TOS>>2 != d.Value {
		p.SetTOS(p.TOS&0x03 | d.Value<<2)
	}
	return xt.Continue
}

// Do rewrites the TOS byte (IPv6: traffic class) as (old AND NOT mask)
// XOR value, ECN bits included, as the kernel's TOS target does.
func (t *TOS) Do(c *xt.Ctx) xt.Verdict {
	p := c.P
	if p.Status != packet.BadL3 {
		if n := t.Apply(p.TOS); n != p.TOS {
			p.SetTOS(n)
		}
	}
	return xt.Continue
}

// DefaultMTU is the path MTU TCPMSS --clamp-mss-to-pmtu assumes when the
// engine does not know the route's (Env.RouteMTU nil or unknown).
const DefaultMTU = 1500

// tcpmssRT is the runtime of one TCPMSS rule.
type tcpmssRT struct {
	mss      uint16
	clamp    bool
	routeMTU func(netip.Addr) (int, bool)
}

// Build captures the route-MTU source for clamping.
func (t *TCPMSS) Build(env *xt.Env) (xt.PacketTarget, error) {
	return &tcpmssRT{mss: t.MSS, clamp: t.Clamp, routeMTU: env.RouteMTU}, nil
}

// Verdict of tcpmssRT.Do when the kernel's tcpmss_mangle_packet fails.
const tcpmssDrop = xt.VerdictDrop

// Do lowers (never raises) the MSS option of the segment to the rule's
// value or to the path MTU minus the IP and TCP headers (40 for IPv4, 60
// for IPv6; MTU = the smaller of the routes to the destination and back to
// the source). A segment without an MSS option and without payload gets
// one, at the front of its options, worth min(value, 536) (IPv6: 1220):
// the packet grows by 4 bytes within the capacity of c.P.Data, whose
// length, the IP length field and the decoded offsets are updated (the data
// plane must send len(c.P.Data) bytes); without 4 bytes of spare capacity,
// or a header already 60 bytes long, the segment goes unchanged. Non-first
// fragments are ignored; a malformed TCP header, or a path MTU too small to
// hold the headers, drops the packet, as in the kernel. TCPMSS continues.
func (r *tcpmssRT) Do(c *xt.Ctx) xt.Verdict {
	p := c.P
	if p.Proto != header.ProtoTCP || p.Status == packet.Fragment || p.Status == packet.BadL3 {
		return xt.Continue
	}
	if p.Status != packet.OK || p.L4Malformed || p.L4Partial {
		return tcpmssDrop
	}
	minlen := 40
	if p.Version == 6 {
		minlen = 60
	}
	newmss := int(r.mss)
	if r.clamp {
		mtu := min(r.mtu(p.Dst), r.mtu(p.Src))
		if mtu <= minlen {
			return tcpmssDrop
		}
		newmss = mtu - minlen
	}
	tcp := header.TCP(p.Data[p.L4Off:])
	if _, old, ok := tcp.FindMSS(); ok {
		if int(old) > newmss {
			tcp.SetMSS(uint16(newmss))
		}
		return xt.Continue
	}
	hl := p.PayloadOff - p.L4Off
	if p.PayloadOff < len(p.Data) || hl+4 > header.TCPMaxLen || cap(p.Data)-len(p.Data) < 4 {
		return xt.Continue
	}
	if p.Version == 4 {
		newmss = min(newmss, 536)
	} else {
		newmss = min(newmss, 1220)
	}
	insertMSS(p, uint16(newmss))
	return xt.Continue
}

func (r *tcpmssRT) mtu(a netip.Addr) int {
	if r.routeMTU != nil {
		if m, ok := r.routeMTU(a); ok && m > 0 {
			return m
		}
	}
	return DefaultMTU
}

// insertMSS grows the option-less-payload segment of p by an MSS option in
// front of its options, updating lengths, offsets and both checksums
// incrementally (a wrong checksum stays wrong, as in the kernel).
func insertMSS(p *packet.Packet, mss uint16) {
	n := len(p.Data)
	p.Data = p.Data[:n+4]
	opts := p.L4Off + header.TCPMinLen
	copy(p.Data[opts+4:], p.Data[opts:n])
	p.Data[opts], p.Data[opts+1] = header.TCPOptMSS, 4
	binary.BigEndian.PutUint16(p.Data[opts+2:], mss)
	tcp := header.TCP(p.Data[p.L4Off:])
	oldWord := binary.BigEndian.Uint16(tcp[header.TCPDataOffOff:])
	tcp[header.TCPDataOffOff] += 1 << 4
	newWord := binary.BigEndian.Uint16(tcp[header.TCPDataOffOff:])
	oldLen := uint16(n - p.L4Off)
	// Moving the old options by 4 bytes (two words) leaves their sum as it
	// was; what changes is the data-offset word, the two new words and the
	// pseudo-header's length.
	cs := tcp.Checksum()
	cs = header.Update16(cs, oldWord, newWord)
	cs = header.Update16(cs, 0, uint16(header.TCPOptMSS)<<8|4)
	cs = header.Update16(cs, 0, mss)
	cs = header.Update16(cs, oldLen, oldLen+4)
	tcp.SetChecksum(cs)
	if p.Version == 4 {
		header.IPv4(p.Data).SetTotalLen(uint16(n + 4))
	} else {
		ip6 := header.IPv6(p.Data)
		binary.BigEndian.PutUint16(ip6[header.IPv6PayloadLenOff:], ip6.PayloadLen()+4)
	}
	p.TotalLen += 4
	p.PayloadOff += 4
}
