package replay

import (
	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
)

// UndoLocalNAT gives a locally generated packet the form the kernel's OUTPUT
// hook saw. A capture shows a host's own packets after POSTROUTING, so the
// reply of a connection DNATed to a local port (`-j DNAT --to-destination
// S:7121` for traffic to S:7120) appears with the public port 7120, while
// OUTPUT saw the server's 7121 and translated it back itself. The packet's
// inverted tuple is then the connection's original tuple and the
// connection has DNAT; the form OUTPUT saw is its reply tuple. Replay
// does this for every packet from a --local address; other replayers of a
// host's captures (the kernel differential suite's router) call it too.
func UndoLocalNAT(e *netfilter.Engine, p *packet.Packet) {
	ct := e.ConntrackTable()
	if ct == nil || !e.Conntrack() || p.Status != packet.OK || (p.Proto != 6 && p.Proto != 17) {
		return
	}
	tu := conntrack.Tuple{Src: p.Dst, Dst: p.Src, Proto: p.Proto, SrcID: p.DstPort, DstID: p.SrcPort}
	ent, dir, ok := ct.Lookup(tu, p.TimeNS)
	if !ok || dir != conntrack.Original || ent.Status&conntrack.StatusDstNAT == 0 {
		return
	}
	if ent.Reply.Src != p.Src {
		p.SetSrc(ent.Reply.Src)
	}
	if ent.Reply.SrcID != p.SrcPort {
		p.SetSrcPort(ent.Reply.SrcID)
	}
}

// Owner is the user and group a capture's locally generated packets are
// assumed to come from (a capture does not record sockets; LOG --log-uid and
// -m owner need them).
type Owner struct {
	UID, GID uint32
}

// setOwner marks a locally generated packet as coming from a process's
// socket when the kernel would have had one: UDP and ICMP echo requests,
// and TCP segments other than the server's SYN/ACK (sent by a request
// socket) and RSTs (sent by the kernel's control socket). Echo replies and
// ICMP errors are the kernel's own and have no owner.
func setOwner(o *Owner, p *packet.Packet) {
	p.HasOwner = false
	if o == nil || p.Status != packet.OK {
		return
	}
	switch p.Proto {
	case 17:
	case 6:
		const syn, rst, ack = 0x02, 0x04, 0x10
		if p.TCPFlags&rst != 0 || p.TCPFlags&(syn|ack) == syn|ack {
			return
		}
	case 1:
		if p.ICMPType != 8 {
			return
		}
	default:
		return
	}
	p.UID, p.GID, p.HasOwner = o.UID, o.GID, true
}
