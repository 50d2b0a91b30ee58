package kerneldiff

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runRandom is OpRandom in the client helper.
func runRandom(spec *RandomSpec) (string, error) {
	if spec == nil {
		return "", errors.New("random step without spec")
	}
	if spec.Conns < 0 || spec.Conns > maxRandomConns {
		return "", fmt.Errorf("random: %d connections, want 0..%d", spec.Conns, maxRandomConns)
	}
	// One OS thread on one CPU: the veth queues each frame on the
	// sending CPU's backlog, so frames sent from one CPU arrive in order.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set unix.CPUSet
	set.Set(0)
	_ = unix.SchedSetaffinity(0, &set)

	srv, err := netip.ParseAddr(spec.Server)
	if err != nil {
		return "", err
	}
	var flows []UDPFlow
	var udpSocks []*net.UDPConn
	defer func() {
		for _, c := range udpSocks {
			_ = c.Close()
		}
	}()
	// Live UDP flows: to the echo port from up to three sources, and one
	// to the closed port.
	for i, src := range spec.Clients[:min(3, len(spec.Clients))] {
		dport := uint16(rndUDPOpen)
		if i == 2 {
			dport = rndUDPClosed
		}
		f, c, err := openUDPFlow(src, rndFlowSport+uint16(i), srv, dport)
		if err != nil {
			return "", err
		}
		udpSocks = append(udpSocks, c)
		flows = append(flows, f)
	}
	// Live TCP connections with some data each way acknowledged.
	var conns []ConnInfo
	var tcpSocks []*net.TCPConn
	for i := 0; i < spec.Conns; i++ {
		src := spec.Clients[i%len(spec.Clients)]
		ci, c, err := openTCPConn(src, rndConnSport+uint16(i), srv, rndTCPOpen)
		if err != nil {
			return "", err
		}
		conns = append(conns, ci)
		tcpSocks = append(tcpSocks, c)
	}
	time.Sleep(50 * time.Millisecond)
	for i, c := range tcpSocks {
		seq, ack, err := tcpSeqs(c)
		if err != nil {
			return "", err
		}
		conns[i].Seq, conns[i].Ack = seq, ack
	}
	frames, err := Generate(spec, conns, flows)
	if err != nil {
		return "", err
	}
	ps, err := newPacketSender(spec.Iface, srv)
	if err != nil {
		return "", err
	}
	defer ps.close()
	gap := time.Duration(spec.GapUS) * time.Microsecond
	if gap <= 0 {
		gap = defaultGapUS * time.Microsecond
	}
	gap = clamp(gap, maxGap)
	sent := 0
	for _, f := range frames {
		if err := ps.send(f.IP); err != nil {
			return "", fmt.Errorf("random: frame %d (%s): %w", sent, f.Class, err)
		}
		sent++
		time.Sleep(gap)
	}
	time.Sleep(100 * time.Millisecond)
	// Half the connections end with an RST, half with a FIN. The stream
	// may have pushed the server's rcv_nxt past the client's real send
	// sequence, so a FIN can go unacknowledged and be retransmitted for
	// minutes, after the capture has stopped but before the kernel's
	// counters are read (long runs saw one or two such packets counted
	// by the kernel only). So the FIN side half-closes, waits, then
	// aborts with an RST, which ends every retransmission inside the
	// capture.
	for i, c := range tcpSocks {
		if i%2 == 1 {
			_ = c.SetLinger(0)
			_ = c.Close()
			continue
		}
		_ = c.CloseWrite()
	}
	time.Sleep(150 * time.Millisecond)
	for i, c := range tcpSocks {
		if i%2 == 0 {
			_ = c.SetLinger(0)
			_ = c.Close()
		}
	}
	cc := ClassCounts(frames)
	var parts []string
	for k, v := range cc {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	return fmt.Sprintf("sent %d frames (seed %d, %d connections, %d flows): %s", sent, spec.Seed, len(conns), len(flows), strings.Join(parts, " ")), nil
}

// openUDPFlow sends one datagram from src:sport and waits briefly for the
// echo.
func openUDPFlow(src string, sport uint16, dst netip.Addr, dport uint16) (UDPFlow, *net.UDPConn, error) {
	s, err := netip.ParseAddr(src)
	if err != nil {
		return UDPFlow{}, nil, err
	}
	c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(s, sport)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, dport)))
	if err != nil {
		return UDPFlow{}, nil, err
	}
	if _, err := c.Write([]byte("uptables-flow")); err != nil {
		_ = c.Close()
		return UDPFlow{}, nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 64)
	_, _ = c.Read(buf)
	return UDPFlow{Src: s, SPort: sport, DPort: dport}, c, nil
}

// openTCPConn connects src:sport to dst:dport and writes a few bytes.
func openTCPConn(src string, sport uint16, dst netip.Addr, dport uint16) (ConnInfo, *net.TCPConn, error) {
	s, err := netip.ParseAddr(src)
	if err != nil {
		return ConnInfo{}, nil, err
	}
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(s, sport))}
	c, err := d.Dial("tcp4", netip.AddrPortFrom(dst, dport).String())
	if err != nil {
		return ConnInfo{}, nil, fmt.Errorf("random: connect %s:%d: %w", src, sport, err)
	}
	tc := c.(*net.TCPConn)
	if _, err := tc.Write([]byte("hello")); err != nil {
		_ = tc.Close()
		return ConnInfo{}, nil, err
	}
	return ConnInfo{Src: s, SPort: sport, DPort: dport}, tc, nil
}

// TCP repair socket options (linux/tcp.h).
const (
	tcpRepair        = 19
	tcpRepairQueue   = 20
	tcpQueueSeq      = 21
	tcpRecvQueue     = 1
	tcpSendQueue     = 2
	tcpRepairOffNoWP = -1
)

// tcpSeqs reads a connection's next sequence number to send (write_seq)
// and the next one it expects (rcv_nxt) through TCP_REPAIR (root), then
// leaves repair mode without a window probe.
func tcpSeqs(c *net.TCPConn) (seq, ack uint32, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		f := int(fd)
		if serr = syscall.SetsockoptInt(f, syscall.IPPROTO_TCP, tcpRepair, 1); serr != nil {
			serr = fmt.Errorf("TCP_REPAIR: %w", serr)
			return
		}
		defer func() { _ = syscall.SetsockoptInt(f, syscall.IPPROTO_TCP, tcpRepair, tcpRepairOffNoWP) }()
		var v int
		if serr = syscall.SetsockoptInt(f, syscall.IPPROTO_TCP, tcpRepairQueue, tcpSendQueue); serr != nil {
			return
		}
		if v, serr = syscall.GetsockoptInt(f, syscall.IPPROTO_TCP, tcpQueueSeq); serr != nil {
			return
		}
		seq = uint32(v)
		if serr = syscall.SetsockoptInt(f, syscall.IPPROTO_TCP, tcpRepairQueue, tcpRecvQueue); serr != nil {
			return
		}
		if v, serr = syscall.GetsockoptInt(f, syscall.IPPROTO_TCP, tcpQueueSeq); serr != nil {
			return
		}
		ack = uint32(v)
	})
	if cerr != nil {
		return 0, 0, cerr
	}
	return seq, ack, serr
}

// packetSender writes whole Ethernet frames on one interface (AF_PACKET),
// so malformed IP packets leave exactly as built.
type packetSender struct {
	fd     int
	sa     *syscall.SockaddrLinklayer
	header [14]byte
}

func newPacketSender(iface string, dst netip.Addr) (*packetSender, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	mac, err := arpLookup(dst)
	if err != nil {
		return nil, err
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	ps := &packetSender{fd: fd, sa: &syscall.SockaddrLinklayer{Protocol: 0x0008, Ifindex: ifi.Index, Halen: 6}}
	copy(ps.sa.Addr[:], mac)
	copy(ps.header[0:6], mac)
	copy(ps.header[6:12], ifi.HardwareAddr)
	ps.header[12], ps.header[13] = 0x08, 0x00
	return ps, nil
}

func (ps *packetSender) send(ip []byte) error {
	frame := make([]byte, 0, 14+len(ip))
	frame = append(frame, ps.header[:]...)
	frame = append(frame, ip...)
	return syscall.Sendto(ps.fd, frame, 0, ps.sa)
}

func (ps *packetSender) close() { _ = syscall.Close(ps.fd) }

// arpLookup finds dst's MAC address in this namespace's neighbour table
// (/proc/net/arp); the live flows opened before have resolved it.
func arpLookup(dst netip.Addr) (net.HardwareAddr, error) {
	for try := 0; try < 20; try++ {
		f, err := os.Open("/proc/net/arp")
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) >= 4 && fs[0] == dst.String() && fs[3] != "00:00:00:00:00:00" {
				_ = f.Close()
				return net.ParseMAC(fs[3])
			}
		}
		_ = f.Close()
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("random: no ARP entry for %s", dst)
}
