package netfilter

import (
	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/xt"
)

// nat runs the nat table for a connection's first packet and then applies
// the connection's binding to the packet (nf_nat_inet_fn): later packets of
// the connection, in both directions, are translated without traversing nat.
// Packets without a connection (INVALID, UNTRACKED) never see nat.
func (w *Worker) nat(c *compiled, h xt.Hook, ct *conntrack.Table) xt.Verdict {
	x := &w.ctx
	conn := x.CT.Conn
	if ct == nil || conn == nil {
		return xt.VerdictAccept
	}
	m := conntrack.ManipForHook(h)
	if natTraverses(x.CT.Info.State, x.P.Proto) && !conn.NATInitialized(m) {
		if t := c.tables[tNat]; t != nil {
			if v := w.runTable(t, h); v != xt.VerdictAccept {
				return v
			}
		}
		if !conn.NATInitialized(m) {
			conn.SetNullBinding(m)
		}
	}
	if rw, ok := x.CT.NAT(h); ok {
		p := x.P
		if x.CT.Info.State == conntrack.Related && p.DecodeEmbedded(&w.inner) {
			translateQuote(p, &w.inner, rw)
		}
		manip(p, rw.Manip == conntrack.ManipSrc, rw)
	}
	return xt.VerdictAccept
}

// natTraverses reports whether a packet in state st may bind its
// connection through the nat chains (nf_nat_inet_fn): a NEW packet, and a
// RELATED one that is not ICMP — ICMP errors are only translated
// (nf_nat_icmp_reply_translation), but e.g. the RST REJECT sends, attached
// to the rejected packet's connection as RELATED, crosses nat POSTROUTING
// when that connection never got there (rejected in FORWARD after a DNAT:
// measured, internal/kerneldiff router scenario stateful-matches-forward).
func natTraverses(st conntrack.CtState, proto uint8) bool {
	switch st {
	case conntrack.New:
		return true
	case conntrack.Related:
		return proto != 1 && proto != 58
	}
	return false
}

func manip(p *packet.Packet, src bool, rw conntrack.Rewrite) {
	if src {
		p.SetSrc(rw.Addr)
		if rw.HasPort {
			p.SetSrcPort(rw.Port)
		}
	} else {
		p.SetDst(rw.Addr)
		if rw.HasPort {
			p.SetDstPort(rw.Port)
		}
	}
}

// translateQuote rewrites the datagram quoted in an ICMP error of a NATed
// connection (nf_nat_icmp_reply_translation): the quote is a packet that
// travelled the other way, so where the outer header gets a new source the
// quote gets the same new destination, and vice versa. The outer ICMP
// checksum is then recomputed over the whole message, as the kernel does.
func translateQuote(outer, inner *packet.Packet, rw conntrack.Rewrite) {
	q := rw
	q.HasPort = rw.HasPort && (inner.Proto == 6 || inner.Proto == 17)
	manip(inner, rw.Manip != conntrack.ManipSrc, q)
	if icmp := outer.ICMP(); icmp != nil {
		icmp.SetChecksum(0)
		icmp.SetChecksum(icmp.CalculateChecksum(0))
	}
}
