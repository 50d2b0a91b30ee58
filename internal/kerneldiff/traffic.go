package kerneldiff

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// HelperEnv is the environment variable that turns the test binary into the
// traffic helper: the harness re-executes its own binary inside a network
// namespace (`ip netns exec NS BINARY`) with HelperEnv set to "client" or
// "server" and the script as JSON on standard input. A Go helper rather than
// nc/ping/python keeps the suite free of tools CI may lack and lets it
// craft the raw packets (flag scans, fragments, IP options) itself.
const HelperEnv = "UPTABLES_KERNELDIFF_HELPER"

// Bounds of the helper: every wait is bounded so a broken scenario cannot
// hang the suite.
const (
	maxStepCount   = 200
	maxGap         = 5 * time.Second
	maxHold        = 20 * time.Second
	defaultTimeout = 1500 * time.Millisecond
	maxPayload     = 1400
)

// Op names a traffic step.
type Op string

const (
	// OpTCP opens Count connections (one after the other, each bounded by
	// TimeoutMS) from Src to Dst:DPort, writes Size bytes on each, keeps
	// all that succeeded open for HoldMS, then closes them (FIN), or
	// resets them when Reset is set.
	OpTCP Op = "tcp"
	// OpUDP sends Count datagrams of Size payload bytes from Src to
	// Dst:DPort (from one socket, so one flow), GapMS apart, and reads a
	// reply after each for at most ReplyMS.
	OpUDP Op = "udp"
	// OpRaw sends Count copies of the packet Pkt describes through a raw
	// IP_HDRINCL socket, GapMS apart (pings, flag scans, fragments, TTL
	// and option probes).
	OpRaw Op = "raw"
	// OpSleep waits MS milliseconds.
	OpSleep Op = "sleep"
)

// Step is one action of a traffic script.
type Step struct {
	Op        Op     `json:"op"`
	Src       string `json:"src,omitempty"`
	Dst       string `json:"dst,omitempty"`
	DPort     uint16 `json:"dport,omitempty"`
	SPort     uint16 `json:"sport,omitempty"`
	Count     int    `json:"count,omitempty"`
	GapMS     int    `json:"gap,omitempty"`
	Size      int    `json:"size,omitempty"`
	HoldMS    int    `json:"hold,omitempty"`
	TimeoutMS int    `json:"timeout,omitempty"`
	ReplyMS   int    `json:"reply,omitempty"`
	TTL       int    `json:"ttl,omitempty"`
	Reset     bool   `json:"reset,omitempty"`
	MS        int    `json:"ms,omitempty"`
	Pkt       *Pkt   `json:"pkt,omitempty"`
	// Background runs the step concurrently with the following ones (to
	// hold connections open while others are attempted); the script ends
	// when every background step has.
	Background bool `json:"bg,omitempty"`
	// Random is the hostile-traffic generator's input (OpRandom).
	Random *RandomSpec `json:"random,omitempty"`
}

// Pkt describes a crafted IPv4 packet. Zero fields take the usual values
// (TTL 64, ID chosen by the kernel, window 512, checksums computed). For
// ICMP echo the IP total length is Len when set.
type Pkt struct {
	Src    string `json:"src"`
	Dst    string `json:"dst"`
	Proto  uint8  `json:"proto"`
	TTL    uint8  `json:"ttl,omitempty"`
	TOS    uint8  `json:"tos,omitempty"`
	ID     uint16 `json:"id,omitempty"`
	DF     bool   `json:"df,omitempty"`
	MF     bool   `json:"mf,omitempty"`
	Frag   uint16 `json:"frag,omitempty"` // fragment offset, 8-byte units
	IPOpts []byte `json:"ipopts,omitempty"`
	// L4 is sent verbatim after the IP header when set (fragments).
	L4 []byte `json:"l4,omitempty"`
	// TCP/UDP.
	SPort   uint16 `json:"sport,omitempty"`
	DPort   uint16 `json:"dport,omitempty"`
	Flags   string `json:"flags,omitempty"` // letters F S R P A U E C
	Seq     uint32 `json:"seq,omitempty"`
	Ack     uint32 `json:"ack,omitempty"`
	Window  uint16 `json:"win,omitempty"`
	TCPOpts []byte `json:"tcpopts,omitempty"`
	// ICMP.
	Type  uint8  `json:"type,omitempty"`
	Code  uint8  `json:"code,omitempty"`
	EchoI uint16 `json:"echoid,omitempty"`
	// Payload length (TCP, UDP, ICMP data); Len, when set, instead fixes
	// the IP total length and the payload is what remains.
	Payload int `json:"payload,omitempty"`
	Len     int `json:"len,omitempty"`
	// Frags, when set, sends the packet as IP fragments: the L4 bytes
	// (header included) are cut at these byte offsets (multiples of 8,
	// increasing), every piece but the last with MF.
	Frags []int `json:"frags,omitempty"`
}

// Fragments returns the packet cut at p.Frags (the whole packet when
// Frags is empty).
func (p *Pkt) Fragments(seq uint16) ([][]byte, error) {
	whole, err := p.Build(seq)
	if err != nil || len(p.Frags) == 0 {
		return [][]byte{whole}, err
	}
	ihl := int(whole[0]&0x0f) * 4
	l4 := whole[ihl:]
	var out [][]byte
	start := 0
	for i := 0; i <= len(p.Frags); i++ {
		end := len(l4)
		if i < len(p.Frags) {
			end = p.Frags[i]
		}
		if end <= start || end > len(l4) || (i < len(p.Frags) && end%8 != 0) {
			return nil, fmt.Errorf("pkt: bad fragment offsets %v for %d bytes", p.Frags, len(l4))
		}
		b := make([]byte, ihl+end-start)
		copy(b, whole[:ihl])
		copy(b[ihl:], l4[start:end])
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
		off := uint16(start / 8)
		if i < len(p.Frags) {
			off |= 0x2000
		}
		if p.DF {
			off |= 0x4000
		}
		binary.BigEndian.PutUint16(b[6:], off)
		if binary.BigEndian.Uint16(b[4:]) == 0 {
			// Fragments of one datagram need one ID; the kernel would
			// pick a different one per raw send.
			binary.BigEndian.PutUint16(b[4:], 0x4242+seq)
		}
		b[10], b[11] = 0, 0
		binary.BigEndian.PutUint16(b[10:], checksum(b[:ihl], 0))
		out = append(out, b)
		start = end
	}
	return out, nil
}

// Build returns the packet's bytes (IP header included). seq numbers ICMP
// echoes.
func (p *Pkt) Build(seq uint16) ([]byte, error) {
	src, err := netip.ParseAddr(p.Src)
	if err != nil || !src.Is4() {
		return nil, fmt.Errorf("pkt: bad src %q", p.Src)
	}
	dst, err := netip.ParseAddr(p.Dst)
	if err != nil || !dst.Is4() {
		return nil, fmt.Errorf("pkt: bad dst %q", p.Dst)
	}
	if len(p.IPOpts)%4 != 0 || len(p.IPOpts) > 40 {
		return nil, fmt.Errorf("pkt: IP options must be a multiple of 4 bytes, at most 40")
	}
	if len(p.TCPOpts)%4 != 0 || len(p.TCPOpts) > 40 {
		return nil, fmt.Errorf("pkt: TCP options must be a multiple of 4 bytes, at most 40")
	}
	ihl := 20 + len(p.IPOpts)
	var l4 []byte
	switch {
	case p.L4 != nil:
		l4 = append([]byte(nil), p.L4...)
	case p.Proto == 6:
		hl := 20 + len(p.TCPOpts)
		n := p.Payload
		if p.Len > 0 {
			n = p.Len - ihl - hl
		}
		if n < 0 || n > maxPayload {
			return nil, fmt.Errorf("pkt: bad TCP payload length %d", n)
		}
		l4 = make([]byte, hl+n)
		binary.BigEndian.PutUint16(l4[0:], p.SPort)
		binary.BigEndian.PutUint16(l4[2:], p.DPort)
		binary.BigEndian.PutUint32(l4[4:], p.Seq)
		binary.BigEndian.PutUint32(l4[8:], p.Ack)
		fl, err := tcpFlags(p.Flags)
		if err != nil {
			return nil, err
		}
		l4[12] = byte(hl/4) << 4
		l4[13] = fl
		w := p.Window
		if w == 0 {
			w = 512
		}
		binary.BigEndian.PutUint16(l4[14:], w)
		copy(l4[20:], p.TCPOpts)
		for i := hl; i < len(l4); i++ {
			l4[i] = byte('a' + i%26)
		}
		binary.BigEndian.PutUint16(l4[16:], l4Checksum(src, dst, 6, l4))
	case p.Proto == 17:
		n := p.Payload
		if p.Len > 0 {
			n = p.Len - ihl - 8
		}
		if n < 0 || n > maxPayload {
			return nil, fmt.Errorf("pkt: bad UDP payload length %d", n)
		}
		l4 = make([]byte, 8+n)
		binary.BigEndian.PutUint16(l4[0:], p.SPort)
		binary.BigEndian.PutUint16(l4[2:], p.DPort)
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		for i := 8; i < len(l4); i++ {
			l4[i] = byte('a' + i%26)
		}
		c := l4Checksum(src, dst, 17, l4)
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[6:], c)
	case p.Proto == 1:
		n := p.Payload
		if p.Len > 0 {
			n = p.Len - ihl - 8
		}
		if n < 0 || n > maxPayload {
			return nil, fmt.Errorf("pkt: bad ICMP payload length %d", n)
		}
		l4 = make([]byte, 8+n)
		l4[0], l4[1] = p.Type, p.Code
		binary.BigEndian.PutUint16(l4[4:], p.EchoI)
		binary.BigEndian.PutUint16(l4[6:], seq)
		for i := 8; i < len(l4); i++ {
			l4[i] = byte(i)
		}
		binary.BigEndian.PutUint16(l4[2:], checksum(l4, 0))
	default:
		l4 = make([]byte, p.Payload)
	}
	b := make([]byte, ihl+len(l4))
	b[0] = 0x40 | byte(ihl/4)
	b[1] = p.TOS
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], p.ID)
	frag := p.Frag & 0x1fff
	if p.DF {
		frag |= 0x4000
	}
	if p.MF {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], frag)
	ttl := p.TTL
	if ttl == 0 {
		ttl = 64
	}
	b[8] = ttl
	b[9] = p.Proto
	s4, d4 := src.As4(), dst.As4()
	copy(b[12:], s4[:])
	copy(b[16:], d4[:])
	copy(b[20:], p.IPOpts)
	binary.BigEndian.PutUint16(b[10:], checksum(b[:ihl], 0))
	copy(b[ihl:], l4)
	return b, nil
}

func tcpFlags(s string) (uint8, error) {
	var f uint8
	for _, c := range s {
		switch c {
		case 'F':
			f |= 0x01
		case 'S':
			f |= 0x02
		case 'R':
			f |= 0x04
		case 'P':
			f |= 0x08
		case 'A':
			f |= 0x10
		case 'U':
			f |= 0x20
		case 'E':
			f |= 0x40
		case 'C':
			f |= 0x80
		default:
			return 0, fmt.Errorf("pkt: unknown TCP flag %q in %q", c, s)
		}
	}
	return f, nil
}

// checksum is the Internet checksum (RFC 1071) of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// l4Checksum is the TCP/UDP checksum with the IPv4 pseudo header.
func l4Checksum(src, dst netip.Addr, proto uint8, l4 []byte) uint16 {
	s, d := src.As4(), dst.As4()
	var sum uint32
	sum += uint32(s[0])<<8 | uint32(s[1])
	sum += uint32(s[2])<<8 | uint32(s[3])
	sum += uint32(d[0])<<8 | uint32(d[1])
	sum += uint32(d[2])<<8 | uint32(d[3])
	sum += uint32(proto)
	sum += uint32(len(l4))
	return checksum(l4, sum)
}

// Listen is what the server helper serves: TCP ports accept connections and
// read until the peer closes; UDP ports echo every datagram.
type Listen struct {
	TCP []uint16 `json:"tcp,omitempty"`
	UDP []uint16 `json:"udp,omitempty"`
	// HalfOpen are TCP ports whose connections the server keeps open for
	// halfOpenHold after the peer's FIN (the server side stays in
	// CLOSE_WAIT, the conntrack entry too).
	HalfOpen []uint16 `json:"halfopen,omitempty"`
}

// halfOpenHold is how long a HalfOpen connection outlives the peer's FIN.
const halfOpenHold = 3 * time.Second

// helperInput is the JSON the harness writes to a helper's standard input.
type helperInput struct {
	// TxCsumOff names a device whose TX checksum offload is switched off.
	TxCsumOff string  `json:"txcsumoff,omitempty"`
	Listen    *Listen `json:"listen,omitempty"`
	Steps     []Step  `json:"steps,omitempty"`
}

// HelperMain is the helper's entry point, called by the test binary's
// TestMain when HelperEnv is set. It returns the process exit code.
func HelperMain(stdin io.Reader, stdout, stderr io.Writer) int {
	var in helperInput
	if err := json.NewDecoder(stdin).Decode(&in); err != nil {
		fmt.Fprintf(stderr, "helper: bad input: %v\n", err)
		return 2
	}
	if in.TxCsumOff != "" {
		if err := setTxChecksum(in.TxCsumOff, false); err != nil {
			fmt.Fprintf(stderr, "helper: %v\n", err)
			return 1
		}
	}
	if in.Listen != nil {
		if err := serve(in.Listen, stdout); err != nil {
			fmt.Fprintf(stderr, "helper: %v\n", err)
			return 1
		}
		// Serve until the harness closes our standard input (or kills us).
		_, _ = io.Copy(io.Discard, stdin)
		return 0
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		code int
	)
	report := func(i int, s Step, res string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			fmt.Fprintf(stderr, "helper: step %d (%s): %v\n", i, s.Op, err)
			code = 1
			return
		}
		fmt.Fprintf(stdout, "step %d %s: %s\n", i, s.Op, res)
	}
	for i, s := range in.Steps {
		if s.Background {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := runStep(s)
				report(i, s, res, err)
			}()
			continue
		}
		res, err := runStep(s)
		report(i, s, res, err)
		if err != nil {
			break
		}
	}
	wg.Wait()
	return code
}

// serve starts the listeners and prints "ready" once all are bound.
func serve(l *Listen, stdout io.Writer) error {
	half := map[uint16]bool{}
	ports := append([]uint16{}, l.TCP...)
	for _, p := range l.HalfOpen {
		half[p] = true
		ports = append(ports, p)
	}
	for _, port := range ports {
		ln, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
		if err != nil {
			return err
		}
		linger := half[port]
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(maxHold + 10*time.Second))
					_, _ = io.Copy(io.Discard, c)
					if linger {
						time.Sleep(halfOpenHold)
					}
				}()
			}
		}()
	}
	for _, port := range l.UDP {
		pc, err := net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", port))
		if err != nil {
			return err
		}
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo(buf[:n], from)
			}
		}()
	}
	_, err := fmt.Fprintln(stdout, "ready")
	return err
}

func clamp(d, max time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	if d > max {
		return max
	}
	return d
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func runStep(s Step) (string, error) {
	count := s.Count
	if count <= 0 {
		count = 1
	}
	if count > maxStepCount {
		return "", fmt.Errorf("count %d over the bound %d", count, maxStepCount)
	}
	gap := clamp(ms(s.GapMS), maxGap)
	switch s.Op {
	case OpSleep:
		time.Sleep(clamp(ms(s.MS), maxHold))
		return "slept", nil
	case OpTCP:
		return runTCP(s, count, gap)
	case OpUDP:
		return runUDP(s, count, gap)
	case OpRaw:
		return runRaw(s, count, gap)
	case OpRandom:
		return runRandom(s.Random)
	}
	return "", fmt.Errorf("unknown op %q", s.Op)
}

func runTCP(s Step, count int, gap time.Duration) (string, error) {
	timeout := ms(s.TimeoutMS)
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	timeout = clamp(timeout, maxGap)
	d := net.Dialer{Timeout: timeout}
	if s.Src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(s.Src)}
	}
	if s.TTL > 0 {
		ttl := s.TTL
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TTL, ttl)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	var conns []net.Conn
	var res []string
	for i := 0; i < count; i++ {
		if i > 0 {
			time.Sleep(gap)
		}
		c, err := d.Dial("tcp4", net.JoinHostPort(s.Dst, strconv.Itoa(int(s.DPort))))
		switch {
		case err == nil:
			conns = append(conns, c)
			res = append(res, "ok")
			if s.Size > 0 {
				_ = c.SetWriteDeadline(time.Now().Add(timeout))
				if _, err := c.Write(make([]byte, min(s.Size, maxPayload))); err != nil {
					res[len(res)-1] = "ok-write-failed"
				}
			}
		case errors.Is(err, syscall.ECONNREFUSED):
			res = append(res, "refused")
		default:
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				res = append(res, "timeout")
			} else {
				res = append(res, "error")
			}
		}
	}
	// Let the writes and ACKs settle before closing.
	time.Sleep(clamp(ms(s.HoldMS), maxHold))
	for _, c := range conns {
		if s.Reset {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
		}
		_ = c.Close()
	}
	return strings.Join(res, " "), nil
}

func runUDP(s Step, count int, gap time.Duration) (string, error) {
	var laddr *net.UDPAddr
	if s.Src != "" || s.SPort != 0 {
		laddr = &net.UDPAddr{IP: net.ParseIP(s.Src), Port: int(s.SPort)}
	}
	raddr := &net.UDPAddr{IP: net.ParseIP(s.Dst), Port: int(s.DPort)}
	c, err := net.DialUDP("udp4", laddr, raddr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if s.TTL > 0 {
		rc, err := c.SyscallConn()
		if err != nil {
			return "", err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TTL, s.TTL)
		}); err != nil {
			return "", err
		}
		if serr != nil {
			return "", serr
		}
	}
	payload := make([]byte, min(max(s.Size, 0), maxPayload))
	for i := range payload {
		payload[i] = byte('A' + i%26)
	}
	replies := 0
	buf := make([]byte, 2048)
	for i := 0; i < count; i++ {
		if i > 0 {
			time.Sleep(gap)
		}
		if _, err := c.Write(payload); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			return "", err
		}
		if s.ReplyMS > 0 {
			_ = c.SetReadDeadline(time.Now().Add(clamp(ms(s.ReplyMS), maxGap)))
			if _, err := c.Read(buf); err == nil {
				replies++
			}
		}
	}
	return fmt.Sprintf("sent %d, %d replies", count, replies), nil
}

func runRaw(s Step, count int, gap time.Duration) (string, error) {
	if s.Pkt == nil {
		return "", errors.New("raw step without pkt")
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return "", fmt.Errorf("raw socket: %w", err)
	}
	defer syscall.Close(fd)
	dst, err := netip.ParseAddr(s.Pkt.Dst)
	if err != nil {
		return "", err
	}
	sa := &syscall.SockaddrInet4{Addr: dst.As4()}
	for i := 0; i < count; i++ {
		if i > 0 {
			time.Sleep(gap)
		}
		frags, err := s.Pkt.Fragments(uint16(i + 1))
		if err != nil {
			return "", err
		}
		for _, b := range frags {
			if err := syscall.Sendto(fd, b, 0, sa); err != nil {
				return "", fmt.Errorf("sendto: %w", err)
			}
		}
	}
	return fmt.Sprintf("sent %d", count), nil
}

// lineWaiter reads lines from r in the background and reports whether one
// containing want appeared within the timeout. It is used for "ready" and
// tcpdump's "listening on" line.
type lineWaiter struct {
	mu    sync.Mutex
	lines []string
	found chan struct{}
	once  sync.Once
}

func newLineWaiter(r io.Reader, want string) *lineWaiter {
	w := &lineWaiter{found: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			w.mu.Lock()
			if len(w.lines) < 200 {
				w.lines = append(w.lines, line)
			}
			w.mu.Unlock()
			if strings.Contains(line, want) {
				w.once.Do(func() { close(w.found) })
			}
		}
	}()
	return w
}

func (w *lineWaiter) wait(d time.Duration) bool {
	select {
	case <-w.found:
		return true
	case <-time.After(d):
		return false
	}
}

func (w *lineWaiter) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

// runHelperFromEnv is what TestMain calls: it returns (code, true) when
// this process is a helper.
func runHelperFromEnv() (int, bool) {
	if os.Getenv(HelperEnv) == "" {
		return 0, false
	}
	return HelperMain(os.Stdin, os.Stdout, os.Stderr), true
}
