package scenario

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/netip"
	"sort"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// Packet is one generated IP packet and its capture time.
type Packet struct {
	Time time.Time
	Data []byte // from the IP header on
	seq  int    // generation order, to keep ties stable
}

// generator holds the seeded state of one generation run.
type generator struct {
	s     *Scenario
	rnd   *rand.Rand
	out   []Packet
	ids   map[netip.Addr]uint16 // per-host IP ID counters
	ports map[netip.Addr]uint16 // per-host next ephemeral port
	seq   int
}

// Generate produces the scenario's packets sorted by time (ties in the
// order the actions produce them). Each host's IP IDs count up from a
// seeded start; ephemeral ports, initial sequence numbers, ping IDs and
// random sources all come from the scenario's seed.
func Generate(s *Scenario) []Packet {
	g := &generator{
		s:     s,
		rnd:   rand.New(rand.NewPCG(s.Seed, s.Seed^0x5eed5eed5eed5eed)),
		ids:   map[netip.Addr]uint16{},
		ports: map[netip.Addr]uint16{},
	}
	for i := range s.Actions {
		g.action(&s.Actions[i])
	}
	sort.SliceStable(g.out, func(i, j int) bool {
		if !g.out[i].Time.Equal(g.out[j].Time) {
			return g.out[i].Time.Before(g.out[j].Time)
		}
		return g.out[i].seq < g.out[j].seq
	})
	return g.out
}

func (g *generator) emit(at time.Duration, data []byte) {
	g.out = append(g.out, Packet{Time: g.s.Start.Add(at), Data: data, seq: g.seq})
	g.seq++
}

func (g *generator) id(a netip.Addr) uint16 {
	v, ok := g.ids[a]
	if !ok {
		v = uint16(g.rnd.Uint32())
	}
	g.ids[a] = v + 1
	return v
}

// ephemeral returns the next source port of host a, starting at a seeded
// point of Linux's default range 32768-60999.
func (g *generator) ephemeral(a netip.Addr) uint16 {
	v, ok := g.ports[a]
	if !ok {
		v = 32768 + uint16(g.rnd.IntN(20000))
	}
	next := v + 1
	if next > 60999 {
		next = 32768
	}
	g.ports[a] = next
	return v
}

// source picks the source address of repetition i.
func (g *generator) source(a *Action, i int) netip.Addr {
	p := a.From
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr()
	}
	hostBits := p.Addr().BitLen() - p.Bits()
	var n uint64 // usable addresses, skipping the network and broadcast ones when there are
	if hostBits >= 63 {
		n = 1 << 62
	} else {
		n = 1 << hostBits
	}
	skipEnds := hostBits >= 2
	if skipEnds {
		n -= 2
	}
	var k uint64
	switch a.Src {
	case SrcFirst:
		k = 0
	case SrcSequential:
		k = uint64(i) % n
	case SrcRandom:
		k = g.rnd.Uint64N(n)
	}
	if skipEnds {
		k++
	}
	return addOffset(p.Addr(), k)
}

func addOffset(a netip.Addr, k uint64) netip.Addr {
	b := a.As16()
	lo := binary.BigEndian.Uint64(b[8:]) + k
	if lo < k {
		binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(b[:8])+1)
	}
	binary.BigEndian.PutUint64(b[8:], lo)
	r := netip.AddrFrom16(b)
	if a.Is4() {
		return r.Unmap()
	}
	return r
}

func (g *generator) action(a *Action) {
	for i := 0; i < a.Count; i++ {
		t := a.At + time.Duration(i)*a.Every
		src := g.source(a, i)
		switch a.Kind {
		case TCP:
			g.conn(a, t, src, i)
		case SYNFlood:
			sport := uint16(1024 + g.rnd.IntN(64511))
			g.tcp(t, src, a.To, sport, a.Port, packettest.SYN, g.rnd.Uint32(), 0, synOpts(g.rnd.Uint32()), nil, 64240)
		case Ping:
			g.ping(a, t, src, i)
		case UDP:
			g.udp(a, t, src, i)
		}
	}
}

// synOpts are the options of a Linux SYN (MSS, SACK permitted,
// timestamps, NOP, window scale 7): a 60-byte packet like the kernel's.
func synOpts(tsval uint32) []byte {
	o := packettest.MSS(1460)
	o = append(o, packettest.SACKPermitted()...)
	o = append(o, packettest.Timestamps(tsval, 0)...)
	o = append(o, packettest.NOP)
	o = append(o, packettest.WScale(7)...)
	return o
}

func synAckOpts(tsval, tsecr uint32) []byte {
	o := packettest.MSS(1460)
	o = append(o, packettest.SACKPermitted()...)
	o = append(o, packettest.Timestamps(tsval, tsecr)...)
	o = append(o, packettest.NOP)
	o = append(o, packettest.WScale(7)...)
	return o
}

func (g *generator) tcp(at time.Duration, src, dst netip.Addr, sport, dport uint16, flags uint8, seq, ack uint32, opts, payload []byte, win uint16) {
	g.emit(at, packettest.TCP(packettest.TCPOpts{
		Src: src.String(), Dst: dst.String(), SrcPort: sport, DstPort: dport,
		Flags: flags, Seq: seq, Ack: ack, Window: win, Options: opts, Payload: payload,
		IP: packettest.IP{ID: g.id(src), DF: true},
	}))
}

// conn generates one TCP connection: handshake, data, hold, end.
func (g *generator) conn(a *Action, t time.Duration, c netip.Addr, i int) {
	s := a.To
	half := g.s.RTT / 2
	sport := a.SPort + uint16(i)
	if a.SPort == 0 {
		sport = g.ephemeral(c)
	}
	cs, ss := g.rnd.Uint32(), g.rnd.Uint32() // initial sequence numbers
	g.tcp(t, c, s, sport, a.Port, packettest.SYN, cs, 0, synOpts(g.rnd.Uint32()), nil, 64240)
	switch a.End {
	case Unanswered:
		return
	case Refused:
		g.tcp(t+half, s, c, a.Port, sport, packettest.RST|packettest.ACK, 0, cs+1, nil, nil, 0)
		return
	}
	g.tcp(t+half, s, c, a.Port, sport, packettest.SYN|packettest.ACK, ss, cs+1, synAckOpts(g.rnd.Uint32(), 0), nil, 65160)
	now := t + g.s.RTT
	cs++
	ss++
	g.tcp(now, c, s, sport, a.Port, packettest.ACK, cs, ss, nil, nil, 502)
	if a.Send > 0 {
		cs = g.segments(now, c, s, sport, a.Port, cs, ss, a.Send)
		g.tcp(now+half, s, c, a.Port, sport, packettest.ACK, ss, cs, nil, nil, 509)
		now += g.s.RTT
	}
	if a.Recv > 0 {
		ss = g.segments(now-half, s, c, a.Port, sport, ss, cs, a.Recv)
		g.tcp(now, c, s, sport, a.Port, packettest.ACK, cs, ss, nil, nil, 502)
		now += half
	}
	end := max(now, t+g.s.RTT+a.Hold)
	switch a.End {
	case Close:
		g.tcp(end, c, s, sport, a.Port, packettest.FIN|packettest.ACK, cs, ss, nil, nil, 502)
		g.tcp(end+half, s, c, a.Port, sport, packettest.FIN|packettest.ACK, ss, cs+1, nil, nil, 509)
		g.tcp(end+g.s.RTT, c, s, sport, a.Port, packettest.ACK, cs+1, ss+1, nil, nil, 502)
	case Reset:
		g.tcp(end, c, s, sport, a.Port, packettest.RST|packettest.ACK, cs, ss, nil, nil, 0)
	}
}

// segments sends n payload bytes in MSS-sized PSH/ACK segments, 10 µs
// apart, and returns the next sequence number.
func (g *generator) segments(at time.Duration, src, dst netip.Addr, sport, dport uint16, seq, ack uint32, n int) uint32 {
	const mss = 1460
	for off := 0; off < n; off += mss {
		m := min(mss, n-off)
		g.tcp(at, src, dst, sport, dport, packettest.PSH|packettest.ACK, seq, ack, nil, payload(off, m), 502)
		seq += uint32(m)
		at += 10 * time.Microsecond
	}
	return seq
}

func payload(off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte((off+i)%26)
	}
	return b
}

func (g *generator) ping(a *Action, t time.Duration, src netip.Addr, i int) {
	id := uint16(g.rnd.Uint32())
	if a.Src == SrcFirst {
		// One ping process per action: one ID, sequence numbers 1, 2, ...
		id = uint16(a.Line*7919 + int(g.s.Seed))
	}
	seq := uint16(i + 1)
	req := packettest.EchoRequest(src.String(), a.To.String(), id, seq, a.Send)
	setIPID(req, g.id(src), true)
	g.emit(t, req)
	if !a.NoReply {
		rep := packettest.EchoReply(a.To.String(), src.String(), id, seq, a.Send)
		setIPID(rep, g.id(a.To), false)
		g.emit(t+g.s.RTT/2, rep)
	}
}

func (g *generator) udp(a *Action, t time.Duration, src netip.Addr, i int) {
	sport := a.SPort
	if sport == 0 {
		sport = g.ephemeral(src)
	}
	g.emit(t, packettest.UDP(packettest.UDPOpts{Src: src.String(), Dst: a.To.String(), SrcPort: sport, DstPort: a.Port,
		Payload: payload(i, a.Send), IP: packettest.IP{ID: g.id(src), DF: true}}))
	if a.Recv > 0 {
		g.emit(t+g.s.RTT/2, packettest.UDP(packettest.UDPOpts{Src: a.To.String(), Dst: src.String(), SrcPort: a.Port, DstPort: sport,
			Payload: payload(i, a.Recv), IP: packettest.IP{ID: g.id(a.To), DF: true}}))
	}
}

// setIPID stores an IPv4 ID and DF flag into a built packet and fixes the
// header checksum (the echo builders take no IP options).
func setIPID(p []byte, id uint16, df bool) {
	if p[0]>>4 != 4 {
		return
	}
	binary.BigEndian.PutUint16(p[4:], id)
	if df {
		p[6] |= 0x40
	}
	h := header.IPv4(p)
	h.SetChecksum(h.CalculateChecksum())
}

// MAC returns the made-up MAC address of a: 02:00 (locally administered)
// followed by the last four bytes of the address.
func MAC(a netip.Addr) [6]byte {
	b := a.As16()
	return [6]byte{0x02, 0x00, b[12], b[13], b[14], b[15]}
}

// WritePcap writes pkts as a pcap file (nanosecond timestamps) of the
// scenario's link type.
func WritePcap(w io.Writer, link Link, pkts []Packet) error {
	pw := pcapgo.NewWriterNanos(w)
	lt := layers.LinkTypeEthernet
	if link == RawIP {
		lt = layers.LinkTypeRaw
	}
	if err := pw.WriteFileHeader(65535, lt); err != nil {
		return err
	}
	var frame []byte
	for _, p := range pkts {
		data := p.Data
		if link == Ethernet {
			frame = EthernetFrame(frame[:0], data)
			data = frame
		}
		ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(data), Length: len(data)}
		if err := pw.WritePacket(ci, data); err != nil {
			return err
		}
	}
	return nil
}

// EthernetFrame appends to dst an Ethernet frame carrying the IP packet ip,
// with the made-up MACs of its addresses.
func EthernetFrame(dst, ip []byte) []byte {
	var src, dstA netip.Addr
	et := uint16(0x0800)
	if ip[0]>>4 == 6 {
		et = 0x86dd
		src = netip.AddrFrom16([16]byte(ip[8:24]))
		dstA = netip.AddrFrom16([16]byte(ip[24:40]))
	} else {
		src = netip.AddrFrom4([4]byte(ip[12:16]))
		dstA = netip.AddrFrom4([4]byte(ip[16:20]))
	}
	dm, sm := MAC(dstA), MAC(src)
	dst = append(dst, dm[:]...)
	dst = append(dst, sm[:]...)
	dst = binary.BigEndian.AppendUint16(dst, et)
	return append(dst, ip...)
}
