package proxy

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/netfilter"
)

// PacketConn filters a UDP socket: ReadFrom returns only datagrams the
// rules accept on the INPUT path (refused ones are discarded and counted,
// and ReadFrom waits for the next), WriteTo sends only datagrams the rules
// accept on the OUTPUT path and otherwise fails with EPERM, as sendto(2)
// does when netfilter drops a locally generated packet.
type PacketConn struct {
	net.PacketConn
	g     *Gate
	local netip.AddrPort

	rmu  sync.Mutex
	rin  *runner
	rbuf []byte
	rev  Event

	wmu  sync.Mutex
	wout *runner
	wbuf []byte
	wev  Event
}

// WrapPacketConn returns pc filtered by the gate's rules.
func (g *Gate) WrapPacketConn(pc net.PacketConn) *PacketConn {
	return &PacketConn{PacketConn: pc, g: g, local: AddrPort(pc.LocalAddr()),
		rin: g.newRunner(), rbuf: make([]byte, Headroom+65535),
		wout: g.newRunner(), wbuf: make([]byte, Headroom+65535)}
}

func (c *PacketConn) localFor(peer netip.AddrPort) netip.AddrPort {
	l := c.local
	if l.Addr().Is4() != peer.Addr().Is4() {
		if peer.Addr().Is4() {
			return netip.AddrPortFrom(netip.IPv4Unspecified(), l.Port())
		}
		return netip.AddrPortFrom(netip.IPv6Unspecified(), l.Port())
	}
	return l
}

// ReadFrom implements net.PacketConn. A datagram longer than p is cut to
// len(p), as recvfrom does; the rules see it whole.
func (c *PacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		n, addr, err := c.PacketConn.ReadFrom(c.rbuf[Headroom:])
		if err != nil {
			return 0, addr, err
		}
		peer := AddrPort(addr)
		if !peer.IsValid() {
			return copy(p, c.rbuf[Headroom:Headroom+n]), addr, nil
		}
		local := c.localFor(peer)
		start := writeUDP(c.rbuf, Headroom, peer, local, n)
		c.rev = Event{Proto: header.ProtoUDP, Kind: KindDatagram, FromPeer: true, Client: peer, Local: local, Len: n}
		if o := c.rin.run(netfilter.PathInput, c.rbuf[start:Headroom+n], &c.rev); o != Accepted {
			c.g.st.dgDrop.Add(1)
			continue
		}
		c.g.st.dgIn.Add(1)
		return copy(p, c.rbuf[Headroom:Headroom+n]), addr, nil
	}
}

// WriteTo implements net.PacketConn.
func (c *PacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	peer := AddrPort(addr)
	if !peer.IsValid() || len(p) > 65535-header.UDPLen-header.IPv6Len {
		return c.PacketConn.WriteTo(p, addr)
	}
	c.wmu.Lock()
	n := copy(c.wbuf[Headroom:], p)
	local := c.localFor(peer)
	start := writeUDP(c.wbuf, Headroom, local, peer, n)
	c.wev = Event{Proto: header.ProtoUDP, Kind: KindDatagram, FromPeer: false, Client: peer, Local: local, Len: n}
	o := c.wout.run(netfilter.PathOutput, c.wbuf[start:Headroom+n], &c.wev)
	c.wmu.Unlock()
	if o != Accepted {
		c.g.st.dgDrop.Add(1)
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: os.NewSyscallError("sendto", syscall.EPERM)}
	}
	c.g.st.dgOut.Add(1)
	return c.PacketConn.WriteTo(p, addr)
}
