package kerneldiff

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
)

// OpRandom sends the hostile-traffic stream a RandomSpec describes: it
// opens a few real UDP flows and TCP connections (so that in-window
// segments and ICMP errors can quote live flows), then sends Packets
// crafted IPv4 packets through a packet socket on the client's interface,
// verbatim (bad checksums, lying lengths, bad header lengths go out as
// built), each followed by a short gap; then it closes the connections.
const OpRandom Op = "random"

// Ports of the random scenarios' server (see randomListen).
const (
	rndTCPOpen    = 7010 // listener
	rndTCPClosed  = 7011 // nothing listens: RST
	rndTCPReject  = 7012 // REJECT --reject-with tcp-reset in filter INPUT
	rndUDPOpen    = 7020 // echo server
	rndUDPClosed  = 7021 // port unreachable (rate-limited by the kernel)
	rndUDPNotrack = 7022 // NOTRACK in raw
	rndConnSport  = 42000
	rndFlowSport  = 41000
)

// Bounds of the generator.
const (
	maxRandomPackets = 20000
	maxRandomConns   = 16
	defaultGapUS     = 1500
)

// RandomSpec is the input of OpRandom. Addresses may be Topology
// placeholders; the packets are built in the helper, after expansion, so
// that they carry the scenario's real addresses.
type RandomSpec struct {
	Seed    uint64   `json:"seed"`
	Packets int      `json:"packets"`
	Iface   string   `json:"iface"`   // client interface the frames leave by
	Server  string   `json:"server"`  // destination of every packet
	Clients []string `json:"clients"` // source addresses (all owned by the client)
	Conns   int      `json:"conns"`   // real TCP connections to rndTCPOpen
	GapUS   int      `json:"gapus,omitempty"`
	// Known adds the traffic uptables is known to disagree on (see
	// knownDivergent): malformed IP options,
	// whose kernel parameter-problem reply is RELATED to the dropped
	// packet's unconfirmed connection.
	Known bool `json:"known,omitempty"`
}

// ConnInfo is a live TCP connection of the client: its tuple, the next
// sequence number it would send and the next one it expects (rcv_nxt).
type ConnInfo struct {
	Src          netip.Addr
	SPort, DPort uint16
	Seq, Ack     uint32
}

// UDPFlow is a live UDP flow the client opened with a real socket.
type UDPFlow struct {
	Src          netip.Addr
	SPort, DPort uint16
}

// Frame is one crafted packet: IP holds the IPv4 packet (possibly with
// trailing bytes beyond its total length, as a padded frame has), Class
// the generator's category (for the report and the tests).
type Frame struct {
	IP    []byte
	Class string
}

// rndClass is one category of hostile traffic with its weight.
type rndClass struct {
	name   string
	weight int
	gen    func(g *rgen)
}

// rndClasses lists every category. Weights favour the classes whose
// outcome depends on state (flags, live connections, fragments, ICMP).
var rndClasses = []rndClass{
	{"tcp-flags", 14, (*rgen).tcpFlags},
	{"tcp-conn", 16, (*rgen).tcpConn},
	{"tcp-options", 5, (*rgen).tcpOptions},
	{"bad-l4-checksum", 6, (*rgen).badL4Checksum},
	{"bad-ip", 3, (*rgen).badIP},
	{"truncated", 8, (*rgen).truncated},
	{"ip-options", 6, (*rgen).ipOptions},
	{"ttl", 4, (*rgen).ttl},
	{"length", 5, (*rgen).length},
	{"fragments", 12, (*rgen).fragments},
	{"icmp", 8, (*rgen).icmp},
	{"icmp-error", 8, (*rgen).icmpError},
	{"udp", 6, (*rgen).udp},
	{"other-proto", 4, (*rgen).otherProto},
}

// ClassNames returns the generator's categories.
func ClassNames() []string {
	var out []string
	for _, c := range rndClasses {
		out = append(out, c.name)
	}
	return out
}

// rgen is the generator's state. Every random choice comes from r, whose
// seed is the spec's, and never depends on the live sequence numbers (they
// are only written into packets), so one seed gives one stream of choices.
type rgen struct {
	r       *rand.Rand
	srv     netip.Addr
	clients []netip.Addr
	conns   []ConnInfo
	flows   []UDPFlow
	id      uint16
	fragID  uint16
	class   string
	known   bool
	out     []Frame
}

// Generate builds spec.Packets frames (a fragment set may end the stream a
// few frames over) from spec.Seed for the live connections and flows given.
func Generate(spec *RandomSpec, conns []ConnInfo, flows []UDPFlow) ([]Frame, error) {
	if spec.Packets <= 0 || spec.Packets > maxRandomPackets {
		return nil, fmt.Errorf("random: %d packets, want 1..%d", spec.Packets, maxRandomPackets)
	}
	srv, err := netip.ParseAddr(spec.Server)
	if err != nil || !srv.Is4() {
		return nil, fmt.Errorf("random: bad server address %q", spec.Server)
	}
	g := &rgen{r: rand.New(rand.NewPCG(spec.Seed, 0x75707461626c6573)), srv: srv, conns: conns, flows: flows, known: spec.Known}
	for _, c := range spec.Clients {
		a, err := netip.ParseAddr(c)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("random: bad client address %q", c)
		}
		g.clients = append(g.clients, a)
	}
	if len(g.clients) == 0 {
		return nil, fmt.Errorf("random: no client address")
	}
	g.id = uint16(g.r.IntN(0x4000)) + 1
	g.fragID = 0xc000
	total := 0
	for _, c := range rndClasses {
		total += c.weight
	}
	for len(g.out) < spec.Packets {
		n := g.r.IntN(total)
		for _, c := range rndClasses {
			if n < c.weight {
				g.class = c.name
				c.gen(g)
				break
			}
			n -= c.weight
		}
	}
	return g.out, nil
}

// Helpers for random choices.

func (g *rgen) pick(n int) int        { return g.r.IntN(n) }
func (g *rgen) chance(pct int) bool   { return g.r.IntN(100) < pct }
func (g *rgen) u16() uint16           { return uint16(g.r.Uint32()) }
func (g *rgen) u32() uint32           { return g.r.Uint32() }
func (g *rgen) client() netip.Addr    { return g.clients[g.pick(len(g.clients))] }
func (g *rgen) sport() uint16         { return uint16(20000 + g.pick(20000)) }
func (g *rgen) emit(b []byte)         { g.out = append(g.out, Frame{IP: b, Class: g.class}) }
func pickOf[T any](g *rgen, xs []T) T { return xs[g.pick(len(xs))] }

// nextID returns a fresh IP ID for an unfragmented packet; a quarter of
// them are multiples of 4, which the rulesets' u32 LOG sampling selects.
func (g *rgen) nextID() uint16 {
	g.id++
	if g.id >= 0xc000 {
		g.id = 1
	}
	return g.id
}

// ipHdr is an IPv4 header to build; zero fields take the usual values.
type ipHdr struct {
	src, dst netip.Addr
	proto    uint8
	tos      uint8
	ttl      uint8 // 0 means 64 unless zeroTTL
	zeroTTL  bool
	id       uint16
	frag     uint16 // flags (DF 0x4000, MF 0x2000, reserved 0x8000) | offset
	opts     []byte // padded with EOL to a multiple of 4
	lenDelta int    // added to the true total length (lying headers)
	ihl      int    // header length field override (words), 0 = true value
	version  uint8  // 0 = 4
	badCsum  bool
}

// build returns the packet header+l4, checksummed unless badCsum.
func (h ipHdr) build(l4 []byte) []byte {
	opts := append([]byte(nil), h.opts...)
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	hl := 20 + len(opts)
	b := make([]byte, hl+len(l4))
	ver := h.version
	if ver == 0 {
		ver = 4
	}
	ihl := h.ihl
	if ihl == 0 {
		ihl = hl / 4
	}
	b[0] = ver<<4 | byte(ihl&0x0f)
	b[1] = h.tos
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)+h.lenDelta))
	binary.BigEndian.PutUint16(b[4:], h.id)
	binary.BigEndian.PutUint16(b[6:], h.frag)
	b[8] = h.ttl
	if b[8] == 0 && !h.zeroTTL {
		b[8] = 64
	}
	b[9] = h.proto
	s, d := h.src.As4(), h.dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], opts)
	c := checksum(b[:hl], 0)
	if h.badCsum {
		c ^= 0x1357
	}
	binary.BigEndian.PutUint16(b[10:], c)
	copy(b[hl:], l4)
	return b
}

// tcpSeg is a TCP segment to build.
type tcpSeg struct {
	sport, dport uint16
	seq, ack     uint32
	flags        uint8
	win          uint16
	urg          uint16
	opts         []byte // padded with EOL (0) to a multiple of 4
	payload      int
	doff         int // data offset override (words), 0 = true value
	badCsum      bool
}

func (t tcpSeg) build(src, dst netip.Addr) []byte {
	opts := append([]byte(nil), t.opts...)
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	hl := 20 + len(opts)
	b := make([]byte, hl+t.payload)
	binary.BigEndian.PutUint16(b[0:], t.sport)
	binary.BigEndian.PutUint16(b[2:], t.dport)
	binary.BigEndian.PutUint32(b[4:], t.seq)
	binary.BigEndian.PutUint32(b[8:], t.ack)
	doff := t.doff
	if doff == 0 {
		doff = hl / 4
	}
	b[12] = byte(doff&0x0f) << 4
	b[13] = t.flags
	w := t.win
	if w == 0 {
		w = 29200
	}
	binary.BigEndian.PutUint16(b[14:], w)
	binary.BigEndian.PutUint16(b[18:], t.urg)
	copy(b[20:], opts)
	for i := hl; i < len(b); i++ {
		b[i] = byte('A' + i%26)
	}
	c := l4Checksum(src, dst, 6, b)
	if t.badCsum {
		c ^= 0x2468
	}
	binary.BigEndian.PutUint16(b[16:], c)
	return b
}

// udpDgram builds a UDP datagram; lenDelta lies in the length field,
// zeroCsum sends checksum 0 (none), badCsum a wrong one.
func udpDgram(src, dst netip.Addr, sport, dport uint16, payload, lenDelta int, zeroCsum, badCsum bool) []byte {
	b := make([]byte, 8+payload)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	for i := 8; i < len(b); i++ {
		b[i] = byte('a' + i%26)
	}
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)+lenDelta))
	if zeroCsum {
		return b
	}
	c := l4Checksum(src, dst, 17, b)
	if c == 0 {
		c = 0xffff
	}
	if badCsum {
		c ^= 0x0f0f
	}
	binary.BigEndian.PutUint16(b[6:], c)
	return b
}

// icmpMsg builds an ICMP message: rest is the 4 bytes after the checksum.
func icmpMsg(typ, code uint8, rest uint32, data []byte, badCsum bool) []byte {
	b := make([]byte, 8+len(data))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint32(b[4:], rest)
	copy(b[8:], data)
	c := checksum(b, 0)
	if badCsum {
		c ^= 0x0101
	}
	binary.BigEndian.PutUint16(b[2:], c)
	return b
}

func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// TCP flag values.
const (
	fFIN = 0x01
	fSYN = 0x02
	fRST = 0x04
	fPSH = 0x08
	fACK = 0x10
	fURG = 0x20
	fECE = 0x40
	fCWR = 0x80
)

// scanFlags are the flag combinations of the seeds' scan rules and the
// classic scanners (NULL, XMAS, SYN+FIN, SYN+RST, FIN without ACK...).
var scanFlags = []uint8{
	0, fFIN | fPSH | fURG, fFIN | fSYN | fRST | fPSH | fACK | fURG, 0xff, fSYN | fFIN, fSYN | fRST,
	fFIN, fFIN | fPSH, fSYN, fSYN | fACK, fACK, fRST, fRST | fACK, fFIN | fACK, fPSH | fACK,
	fSYN | fURG, fACK | fURG, fSYN | fECE | fCWR, fURG, fPSH, fSYN | fFIN | fPSH | fURG, fFIN | fRST,
}

func (g *rgen) flags() uint8 {
	if g.chance(20) {
		return uint8(g.pick(256))
	}
	return pickOf(g, scanFlags)
}

func (g *rgen) tcpPort() uint16 {
	return pickOf(g, []uint16{rndTCPOpen, rndTCPOpen, rndTCPClosed, rndTCPReject})
}

// tcpFlags: scans with every flag combination to open, closed and
// rejecting ports, random sequence numbers.
func (g *rgen) tcpFlags() {
	src := g.client()
	t := tcpSeg{sport: g.sport(), dport: g.tcpPort(), seq: g.u32(), flags: g.flags()}
	if t.flags&fACK != 0 || g.chance(30) {
		t.ack = g.u32()
	}
	if g.chance(20) {
		t.payload = 1 + g.pick(40)
	}
	if g.chance(10) {
		t.urg = g.u16()
	}
	g.emit(ipHdr{src: src, dst: g.srv, proto: 6, id: g.nextID()}.build(t.build(src, g.srv)))
}

// seqDelta is an offset from a live connection's sequence number: exact,
// a little ahead or behind (in window), far away (out of window).
func (g *rgen) seqDelta() uint32 {
	switch g.pick(8) {
	case 0, 1, 2:
		return 0
	case 3:
		return uint32(1 + g.pick(2000))
	case 4:
		return uint32(-(1 + g.pick(2000)))
	case 5:
		return uint32(100000 + g.pick(1<<20))
	case 6:
		return uint32(-(100000 + g.pick(1<<20)))
	}
	return g.u32()
}

// tcpConn: segments inside (and outside) the live connections' windows.
func (g *rgen) tcpConn() {
	if len(g.conns) == 0 {
		g.tcpFlags()
		return
	}
	c := pickOf(g, g.conns)
	fl := pickOf(g, []uint8{fACK, fACK | fPSH, fACK | fPSH, fRST, fRST | fACK, fFIN | fACK, fSYN, fSYN | fACK,
		fACK | fURG, fFIN, 0, fFIN | fPSH | fURG, fACK | fECE})
	if g.chance(10) {
		fl = uint8(g.pick(256))
	}
	t := tcpSeg{sport: c.SPort, dport: c.DPort, seq: c.Seq + g.seqDelta(), ack: c.Ack + g.seqDelta(), flags: fl}
	if fl&fACK != 0 && fl&(fSYN|fRST|fFIN) == 0 || g.chance(20) {
		t.payload = g.pick(4) * (1 + g.pick(300))
	}
	if g.chance(15) {
		t.win = uint16(g.pick(3)) // zero and tiny windows
	}
	if g.chance(10) {
		t.opts = pickOf(g, tcpOptionSets)
	}
	if g.chance(5) {
		t.badCsum = true
	}
	g.emit(ipHdr{src: c.Src, dst: g.srv, proto: 6, id: g.nextID(), frag: 0x4000}.build(t.build(c.Src, g.srv)))
}

// tcpOptionSets are option lists, valid and broken (each a multiple of 4
// bytes once padded): MSS, window scale, SACK permitted, timestamps,
// SACK blocks, MD5 (19), unknown kinds, lengths 0/1 and past the end.
var tcpOptionSets = [][]byte{
	{2, 4, 0x05, 0xb4},
	{2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 1, 1},
	{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0},
	{4, 2, 8, 10, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 1, 3, 3, 14},
	{5, 10, 0, 0, 0, 1, 0, 0, 0, 2},
	{19, 18, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
	{254, 6, 0xf9, 0x89, 0, 0},
	{2, 0, 5, 0xb4},
	{3, 1, 1, 1},
	{8, 40, 1, 2},
	{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2},
	{0, 2, 4, 0x05},
}

// tcpOptions: SYNs and others carrying valid and broken option lists.
func (g *rgen) tcpOptions() {
	src := g.client()
	fl := pickOf(g, []uint8{fSYN, fSYN, fSYN | fACK, fACK, fFIN | fPSH | fURG})
	t := tcpSeg{sport: g.sport(), dport: g.tcpPort(), seq: g.u32(), flags: fl, opts: pickOf(g, tcpOptionSets)}
	if fl&fACK != 0 {
		t.ack = g.u32()
	}
	g.emit(ipHdr{src: src, dst: g.srv, proto: 6, id: g.nextID(), frag: 0x4000}.build(t.build(src, g.srv)))
}

// badL4Checksum: TCP, UDP and ICMP with a wrong checksum, to live and
// dead ports.
func (g *rgen) badL4Checksum() {
	src := g.client()
	var l4 []byte
	var proto uint8
	switch g.pick(3) {
	case 0:
		proto = 6
		t := tcpSeg{sport: g.sport(), dport: g.tcpPort(), seq: g.u32(), flags: pickOf(g, []uint8{fSYN, fACK, fRST, fFIN | fACK}), badCsum: true}
		if len(g.conns) > 0 && g.chance(50) {
			c := pickOf(g, g.conns)
			src, t.sport, t.dport, t.seq, t.ack = c.Src, c.SPort, c.DPort, c.Seq, c.Ack
			t.flags = pickOf(g, []uint8{fACK | fPSH, fRST, fFIN | fACK})
			t.payload = 10
		}
		l4 = t.build(src, g.srv)
	case 1:
		proto = 17
		l4 = udpDgram(src, g.srv, g.sport(), pickOf(g, []uint16{rndUDPOpen, rndUDPClosed, rndUDPNotrack}), g.pick(50), 0, false, true)
	default:
		proto = 1
		l4 = icmpMsg(8, 0, uint32(g.u16())<<16|1, fill(g.pick(56), 1), true)
	}
	g.emit(ipHdr{src: src, dst: g.srv, proto: proto, id: g.nextID()}.build(l4))
}

// badIP: what ip_rcv drops before PREROUTING: bad header checksum, header
// length < 5 or past the total length, version 6 under the IPv4
// ethertype, total length beyond the frame or shorter than the header.
func (g *rgen) badIP() {
	src := g.client()
	t := tcpSeg{sport: g.sport(), dport: rndTCPOpen, seq: g.u32(), flags: fSYN}
	h := ipHdr{src: src, dst: g.srv, proto: 6, id: g.nextID()}
	switch g.pick(6) {
	case 0:
		h.badCsum = true
	case 1:
		h.ihl = 4
	case 2:
		h.ihl = 15
		t = tcpSeg{sport: g.sport(), dport: rndTCPOpen, flags: fSYN}
		h.lenDelta = -20
	case 3:
		h.version = 6
	case 4:
		h.lenDelta = 1 + g.pick(100)
	default:
		h.lenDelta = -(len(t.build(src, g.srv)) + 1 + g.pick(19))
	}
	g.emit(h.build(t.build(src, g.srv)))
}

// truncated: L4 headers cut short or inconsistent (TCP data offset < 5
// or past the end, UDP length field too large or < 8, ICMP shorter than
// its 8-byte header), with the IP header telling the truth.
func (g *rgen) truncated() {
	src := g.client()
	h := ipHdr{src: src, dst: g.srv, id: g.nextID()}
	switch g.pick(8) {
	case 0: // TCP header cut after n bytes
		h.proto = 6
		seg := tcpSeg{sport: g.sport(), dport: g.tcpPort(), seq: g.u32(), flags: fSYN}.build(src, g.srv)
		g.emit(h.build(seg[:g.pick(20)]))
	case 1: // data offset < 5
		h.proto = 6
		g.emit(h.build(tcpSeg{sport: g.sport(), dport: g.tcpPort(), seq: g.u32(), flags: pickOf(g, []uint8{fSYN, fACK}), doff: g.pick(5), payload: 8}.build(src, g.srv)))
	case 2: // data offset past the end
		h.proto = 6
		g.emit(h.build(tcpSeg{sport: g.sport(), dport: g.tcpPort(), seq: g.u32(), flags: fSYN, doff: 6 + g.pick(10)}.build(src, g.srv)))
	case 3: // UDP length field larger than the datagram
		h.proto = 17
		g.emit(h.build(udpDgram(src, g.srv, g.sport(), pickOf(g, []uint16{rndUDPOpen, rndUDPClosed}), 10, 1+g.pick(30), g.chance(50), false)))
	case 4: // UDP length field < 8 or shorter than the datagram
		h.proto = 17
		d := -(1 + g.pick(25))
		g.emit(h.build(udpDgram(src, g.srv, g.sport(), pickOf(g, []uint16{rndUDPOpen, rndUDPClosed}), 16, d, g.chance(50), false)))
	case 5: // UDP header cut
		h.proto = 17
		d := udpDgram(src, g.srv, g.sport(), rndUDPOpen, 0, 0, true, false)
		g.emit(h.build(d[:g.pick(8)]))
	case 6: // ICMP cut
		h.proto = 1
		m := icmpMsg(8, 0, 0x12340001, nil, false)
		g.emit(h.build(m[:g.pick(8)]))
	default: // no L4 at all
		h.proto = pickOf(g, []uint8{1, 6, 17})
		g.emit(h.build(nil))
	}
}

// ipOptionSets: NOP/EOL, record route, timestamp, router alert, loose and
// strict source route (dropped after PREROUTING: accept_source_route=0),
// security, broken lengths and pointers.
var ipOptionSets = [][]byte{
	{1, 1, 1, 0},
	{7, 7, 4, 0, 0, 0, 0, 0},
	{7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1},
	{68, 12, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // full: overflow counter bumped
	{68, 20, 21, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	{148, 4, 0, 0},
	{131, 7, 4, 10, 1, 1, 1, 0},
	{137, 7, 4, 10, 1, 1, 1, 0},
	{130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	{0x99, 6, 1, 2, 3, 4, 1, 0},
	// Known part (from knownIPOptions on): timestamps with room, which the
	// kernel stamps with its clock at INPUT (LOG --log-ip-options prints
	// them; the replay has only the capture's time, a millisecond off at
	// times), and malformed options, which draw a parameter problem.
	{68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	{68, 20, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	{7, 2, 4, 0},
	{7, 40, 4, 0},
	{68, 3, 5, 0},
	{1, 1, 148, 3},
}

// knownIPOptions is where the known-divergent sets start in ipOptionSets.
const knownIPOptions = 10

// ipOptions: packets of every protocol with IP options.
func (g *rgen) ipOptions() {
	src := g.client()
	sets := ipOptionSets
	if !g.known {
		sets = sets[:knownIPOptions]
	}
	h := ipHdr{src: src, dst: g.srv, id: g.nextID(), opts: pickOf(g, sets)}
	switch g.pick(3) {
	case 0:
		h.proto = 6
		g.emit(h.build(tcpSeg{sport: g.sport(), dport: g.tcpPort(), seq: g.u32(), flags: pickOf(g, []uint8{fSYN, fACK, fFIN | fPSH | fURG})}.build(src, g.srv)))
	case 1:
		h.proto = 17
		g.emit(h.build(udpDgram(src, g.srv, g.sport(), pickOf(g, []uint16{rndUDPOpen, rndUDPClosed, rndUDPNotrack}), g.pick(30), 0, false, false)))
	default:
		h.proto = 1
		g.emit(h.build(icmpMsg(8, 0, uint32(g.u16())<<16|1, fill(16, 3), false)))
	}
}

// ttl: TTL 0, 1 and 255 on SYNs, datagrams and echoes.
func (g *rgen) ttl() {
	src := g.client()
	h := ipHdr{src: src, dst: g.srv, id: g.nextID()}
	switch g.pick(3) {
	case 0:
		h.zeroTTL = true
	case 1:
		h.ttl = 1
	default:
		h.ttl = 255
	}
	switch g.pick(3) {
	case 0:
		h.proto = 6
		g.emit(h.build(tcpSeg{sport: g.sport(), dport: g.tcpPort(), seq: g.u32(), flags: fSYN}.build(src, g.srv)))
	case 1:
		h.proto = 17
		g.emit(h.build(udpDgram(src, g.srv, g.sport(), rndUDPOpen, 8, 0, false, false)))
	default:
		h.proto = 1
		g.emit(h.build(icmpMsg(8, 0, uint32(g.u16())<<16|1, fill(8, 5), false)))
	}
}

// length: tiny and large packets, and frames padded past the IP total
// length (the kernel trims the padding).
func (g *rgen) length() {
	src := g.client()
	h := ipHdr{src: src, dst: g.srv, id: g.nextID()}
	var b []byte
	switch g.pick(4) {
	case 0:
		h.proto = 17
		b = h.build(udpDgram(src, g.srv, g.sport(), rndUDPOpen, 1000+g.pick(400), 0, false, false))
	case 1:
		h.proto = 1
		b = h.build(icmpMsg(8, 0, uint32(g.u16())<<16|1, fill(1000+g.pick(400), 9), false))
	case 2:
		h.proto = 6
		b = h.build(tcpSeg{sport: g.sport(), dport: rndTCPOpen, seq: g.u32(), ack: g.u32(), flags: fACK | fPSH, payload: 1200 + g.pick(200)}.build(src, g.srv))
	default:
		h.proto = 17
		b = h.build(udpDgram(src, g.srv, g.sport(), pickOf(g, []uint16{rndUDPOpen, rndUDPClosed}), g.pick(4), 0, false, false))
		b = append(b, fill(1+g.pick(30), 0xee)...) // padding after the datagram
	}
	g.emit(b)
}

// fragments: fragment sets of UDP datagrams, echoes and TCP SYNs, sent
// complete (in and out of order, with a duplicate), incomplete (first,
// middle or last only), overlapping, with a tiny first fragment (the TCP
// header split), or with fragment offsets beyond 64 KiB.
func (g *rgen) fragments() {
	src := g.client()
	var proto uint8
	var l4 []byte
	switch g.pick(3) {
	case 0:
		proto = 17
		l4 = udpDgram(src, g.srv, g.sport(), pickOf(g, []uint16{rndUDPOpen, rndUDPClosed, rndUDPNotrack}), 40+g.pick(600), 0, false, false)
	case 1:
		proto = 1
		l4 = icmpMsg(8, 0, uint32(g.u16())<<16|1, fill(40+g.pick(600), 11), false)
	default:
		proto = 6
		l4 = tcpSeg{sport: g.sport(), dport: g.tcpPort(), seq: g.u32(), flags: pickOf(g, []uint8{fSYN, fACK | fPSH, 0}), payload: 20 + g.pick(200)}.build(src, g.srv)
	}
	g.fragID++
	if g.fragID == 0 {
		g.fragID = 0xc000
	}
	id := g.fragID
	// Cut points at multiples of 8.
	n := len(l4)
	var cuts []int
	for off := 8 * (1 + g.pick(4)); off < n; off += 8 * (1 + g.pick(40)) {
		cuts = append(cuts, off)
	}
	if len(cuts) == 0 {
		cuts = []int{8}
		if n <= 8 {
			l4 = append(l4, fill(16, 1)...)
			n = len(l4)
		}
	}
	type piece struct{ start, end int }
	var ps []piece
	start := 0
	for _, c := range append(cuts, n) {
		ps = append(ps, piece{start, c})
		start = c
	}
	mk := func(p piece) []byte {
		fr := uint16(p.start / 8)
		if p.end < n {
			fr |= 0x2000
		}
		return ipHdr{src: src, dst: g.srv, proto: proto, id: id, frag: fr}.build(l4[p.start:p.end])
	}
	send := func(order []piece) {
		for _, p := range order {
			g.emit(mk(p))
		}
	}
	switch g.pick(9) {
	case 0, 1: // complete, in order
		send(ps)
	case 2: // complete, reversed
		rev := append([]piece(nil), ps...)
		sort.Slice(rev, func(i, j int) bool { return rev[i].start > rev[j].start })
		send(rev)
	case 3: // complete with a duplicate piece
		dup := ps[g.pick(len(ps))]
		send(ps)
		g.emit(mk(dup))
	case 4: // first only
		send(ps[:1])
	case 5: // one piece that is not the first
		if len(ps) > 1 {
			send(ps[1+g.pick(len(ps)-1):][:1])
		} else {
			send(ps)
		}
	case 6: // overlap: the second piece starts 8 bytes early
		over := append([]piece(nil), ps...)
		if len(over) > 1 && over[1].start >= 8 {
			over[1].start -= 8
		}
		send(over)
	case 7: // tiny first fragment: 8 bytes of L4 header
		tiny := []piece{{0, 8}, {8, n}}
		send(tiny)
	default: // a lone fragment far out (offset near 64 KiB)
		fr := uint16(0x1ff0 + g.pick(0x0f))
		g.emit(ipHdr{src: src, dst: g.srv, proto: proto, id: id, frag: fr}.build(l4[:min(n, 64)]))
	}
}

// icmp: echo requests (identifiers reused), stray echo replies, timestamp
// and information requests, undefined types, bad lengths.
func (g *rgen) icmp() {
	src := g.client()
	h := ipHdr{src: src, dst: g.srv, proto: 1, id: g.nextID()}
	id := uint32(0x1000 + g.pick(4))
	seq := uint32(g.pick(1000))
	var m []byte
	switch g.pick(8) {
	case 0, 1, 2:
		m = icmpMsg(8, 0, id<<16|seq, fill(g.pick(64), 2), false)
	case 3:
		m = icmpMsg(0, 0, id<<16|seq, fill(8, 2), false)
	case 4:
		m = icmpMsg(13, 0, id<<16|seq, fill(12, 0), false)
	case 5:
		m = icmpMsg(pickOf(g, []uint8{15, 17, 10, 9, 14}), 0, id<<16|seq, fill(4, 0), false)
	case 6:
		m = icmpMsg(uint8(19+g.pick(237)), uint8(g.pick(4)), g.u32(), fill(g.pick(20), 4), false)
	default:
		m = icmpMsg(8, uint8(1+g.pick(255)), id<<16|seq, nil, false)
	}
	g.emit(h.build(m))
}

// icmpError: destination unreachable, time exceeded, parameter problem,
// source quench and redirect quoting the live flows (both ways), live TCP
// connections, fake flows and echoes, sometimes with the quote cut short.
func (g *rgen) icmpError() {
	src := g.client()
	typ := pickOf(g, []uint8{3, 3, 3, 11, 12, 4, 5})
	code := uint8(0)
	switch typ {
	case 3:
		code = pickOf(g, []uint8{1, 3, 4, 13, 10})
	case 11:
		code = uint8(g.pick(2))
	}
	var inner []byte
	switch g.pick(6) {
	case 0: // a live UDP flow, as the server sent it (reply direction)
		if len(g.flows) > 0 {
			f := pickOf(g, g.flows)
			src = f.Src
			inner = ipHdr{src: g.srv, dst: f.Src, proto: 17, id: 1}.build(udpDgram(g.srv, f.Src, f.DPort, f.SPort, 8, 0, false, false))
			break
		}
		fallthrough
	case 1: // a live TCP connection, as the server sent it
		if len(g.conns) > 0 {
			c := pickOf(g, g.conns)
			src = c.Src
			inner = ipHdr{src: g.srv, dst: c.Src, proto: 6, id: 2}.build(tcpSeg{sport: c.DPort, dport: c.SPort, seq: c.Ack, ack: c.Seq, flags: fACK}.build(g.srv, c.Src))
			break
		}
		fallthrough
	case 2: // a live flow in the original direction (what the client sent)
		if len(g.flows) > 0 {
			f := pickOf(g, g.flows)
			inner = ipHdr{src: f.Src, dst: g.srv, proto: 17, id: 3}.build(udpDgram(f.Src, g.srv, f.SPort, f.DPort, 8, 0, false, false))
			break
		}
		fallthrough
	case 3: // an echo request the server might have sent
		inner = ipHdr{src: g.srv, dst: src, proto: 1, id: 4}.build(icmpMsg(8, 0, uint32(0x1000+g.pick(4))<<16, nil, false))
	case 4: // a fake TCP flow
		inner = ipHdr{src: g.srv, dst: src, proto: 6, id: 5}.build(tcpSeg{sport: rndTCPOpen, dport: g.sport(), seq: g.u32(), flags: fSYN | fACK}.build(g.srv, src))
	default: // a fake UDP flow, or one quoting another address
		other := g.client()
		inner = ipHdr{src: g.srv, dst: other, proto: 17, id: 6}.build(udpDgram(g.srv, other, rndUDPOpen, g.sport(), 4, 0, false, false))
	}
	if g.chance(70) && len(inner) > 28 {
		inner = inner[:28] // what routers quote: IP header + 8 bytes
	} else if g.chance(20) {
		inner = inner[:20+g.pick(8)] // less than 8 bytes of L4
	}
	rest := uint32(0)
	if typ == 12 {
		rest = uint32(g.pick(40)) << 24
	}
	if typ == 3 && code == 4 {
		rest = 1280
	}
	m := icmpMsg(typ, code, rest, inner, g.chance(5))
	g.emit(ipHdr{src: src, dst: g.srv, proto: 1, id: g.nextID()}.build(m))
}

// udp: datagrams to open, closed and untracked ports, from fresh and live
// source ports, with and without a checksum.
func (g *rgen) udp() {
	src := g.client()
	sport := g.sport()
	dport := pickOf(g, []uint16{rndUDPOpen, rndUDPClosed, rndUDPNotrack, 53, 123})
	if len(g.flows) > 0 && g.chance(30) {
		f := pickOf(g, g.flows)
		src, sport, dport = f.Src, f.SPort, f.DPort
	}
	g.emit(ipHdr{src: src, dst: g.srv, proto: 17, id: g.nextID()}.build(udpDgram(src, g.srv, sport, dport, g.pick(100), 0, g.chance(20), false)))
}

// otherProto: protocols conntrack handles generically or with its own
// tracker (GRE, SCTP, DCCP, UDP-Lite) and unassigned ones, with junk.
func (g *rgen) otherProto() {
	src := g.client()
	protos := []uint8{253, 254, 136, 41, 50, 2, 0, 47, 132, 33}
	proto := pickOf(g, protos)
	g.emit(ipHdr{src: src, dst: g.srv, proto: proto, id: g.nextID()}.build(fill(g.pick(48), byte(g.pick(256)))))
}

// ClassCounts counts frames per class.
func ClassCounts(fs []Frame) map[string]int {
	m := map[string]int{}
	for _, f := range fs {
		m[f.Class]++
	}
	return m
}
