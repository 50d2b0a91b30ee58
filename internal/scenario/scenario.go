// Package scenario reads a small line-oriented description of traffic
// (hosts, TCP connections, SYN floods, pings, UDP) and turns it into
// packets with capture timestamps, for `uptables gen` and for tests and
// benchmarks of the replay. Generation is deterministic: the same file and
// seed give the same bytes. The grammar is documented in
// examples/scenarios/README.md; in short:
//
//	seed 7
//	host client 10.0.0.1
//	host server 10.0.0.2
//	host bots   198.51.100.0/24
//	at 0s   tcp client -> server:22 count 10 every 6s hold 1s send 100 close
//	at 5s   synflood bots -> server:80 count 1000 rate 500/s src random
//	at 1m   ping client -> server size 100 count 3 every 1s
//	at 2m   udp client -> server:53 size 40 count 5 rate 10/s reply 120
package scenario

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Link is the link type of the generated capture.
type Link uint8

const (
	// Ethernet frames with made-up MAC addresses (02:00:a.b.c.d).
	Ethernet Link = iota
	// Raw IP (LINKTYPE_RAW).
	RawIP
)

// DefaultStart is t=0 of a scenario without a start line.
var DefaultStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Scenario is a parsed scenario file.
type Scenario struct {
	Seed  uint64
	Start time.Time
	Link  Link
	// RTT is the round-trip time between any two hosts: an answer leaves
	// RTT/2 after the packet it answers.
	RTT     time.Duration
	Hosts   map[string]netip.Prefix
	Actions []Action
}

// Kind is what an action does.
type Kind uint8

const (
	TCP Kind = iota
	SYNFlood
	Ping
	UDP
)

var kindNames = map[string]Kind{"tcp": TCP, "synflood": SYNFlood, "ping": Ping, "udp": UDP}

// End says how a TCP connection ends.
type End uint8

const (
	Close      End = iota // FIN both ways
	Reset                 // the client aborts with RST
	Open                  // left open
	Refused               // the server answers the SYN with RST
	Unanswered            // the SYN gets no answer
)

var endNames = map[string]End{"close": Close, "reset": Reset, "open": Open, "refused": Refused, "unanswered": Unanswered}

// SrcMode picks source addresses from a prefix.
type SrcMode uint8

const (
	SrcFirst      SrcMode = iota // the prefix's first usable address
	SrcSequential                // first, second, ... wrapping around
	SrcRandom                    // uniformly, seeded
)

// Action is one "at" line.
type Action struct {
	Line  int
	At    time.Duration
	Kind  Kind
	From  netip.Prefix
	To    netip.Addr
	Port  uint16
	Count int
	// Every is the spacing of repetitions (0 = all at once).
	Every time.Duration
	Hold  time.Duration
	Send  int // TCP: client payload bytes; ping/udp: payload size
	Recv  int // TCP: server payload bytes; UDP: reply payload size (0 = none)
	End   End
	Src   SrcMode
	SPort uint16 // first source port (0 = seeded ephemeral)
	// NoReply: ping without echo replies.
	NoReply bool
}

// Parse reads a scenario. Errors carry the line number and the word.
func Parse(text string) (*Scenario, error) {
	s := &Scenario{Seed: 1, Start: DefaultStart, RTT: time.Millisecond, Hosts: map[string]netip.Prefix{}}
	for n, raw := range strings.Split(text, "\n") {
		line := raw
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		w := strings.Fields(line)
		if len(w) == 0 {
			continue
		}
		errf := func(format string, a ...any) error {
			return fmt.Errorf("line %d: %s", n+1, fmt.Sprintf(format, a...))
		}
		switch w[0] {
		case "seed":
			if len(w) != 2 {
				return nil, errf("seed takes one number")
			}
			v, err := strconv.ParseUint(w[1], 10, 64)
			if err != nil {
				return nil, errf("seed %q: not a number", w[1])
			}
			s.Seed = v
		case "start":
			if len(w) != 2 {
				return nil, errf("start takes one RFC 3339 time")
			}
			t, err := time.Parse(time.RFC3339Nano, w[1])
			if err != nil {
				return nil, errf("start %q: %v", w[1], err)
			}
			s.Start = t.UTC()
		case "link":
			if len(w) != 2 || (w[1] != "ethernet" && w[1] != "raw") {
				return nil, errf("link must be \"ethernet\" or \"raw\"")
			}
			s.Link = Ethernet
			if w[1] == "raw" {
				s.Link = RawIP
			}
		case "rtt":
			if len(w) != 2 {
				return nil, errf("rtt takes one duration")
			}
			d, err := parseDuration(w[1])
			if err != nil {
				return nil, errf("rtt: %v", err)
			}
			s.RTT = d
		case "host":
			if len(w) != 3 {
				return nil, errf("host takes a name and an address or prefix")
			}
			if _, dup := s.Hosts[w[1]]; dup {
				return nil, errf("host %q defined twice", w[1])
			}
			p, err := parsePrefix(w[2])
			if err != nil {
				return nil, errf("host %s: %v", w[1], err)
			}
			s.Hosts[w[1]] = p
		case "at":
			a, err := s.parseAction(w)
			if err != nil {
				return nil, errf("%v", err)
			}
			a.Line = n + 1
			s.Actions = append(s.Actions, a)
		default:
			return nil, errf("unknown statement %q (want seed, start, link, rtt, host or at)", w[0])
		}
	}
	if len(s.Actions) == 0 {
		return nil, fmt.Errorf("no \"at\" line: the scenario generates no traffic")
	}
	if err := s.checkSize(); err != nil {
		return nil, err
	}
	return s, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// endpoint resolves a host name or a literal address or prefix.
func (s *Scenario) endpoint(w string) (netip.Prefix, error) {
	if p, ok := s.Hosts[w]; ok {
		return p, nil
	}
	p, err := parsePrefix(w)
	if err != nil {
		return p, fmt.Errorf("%q is neither a host nor an address", w)
	}
	return p, nil
}

// parseAction reads `at T KIND FROM -> TO[:PORT] options...`.
func (s *Scenario) parseAction(w []string) (Action, error) {
	var a Action
	if len(w) < 6 || w[4] != "->" {
		return a, fmt.Errorf("want: at TIME KIND FROM -> TO[:PORT] [options]")
	}
	at, err := parseDuration(w[1])
	if err != nil {
		return a, fmt.Errorf("at: %v", err)
	}
	a.At = at
	k, ok := kindNames[w[2]]
	if !ok {
		return a, fmt.Errorf("unknown traffic kind %q (want tcp, synflood, ping or udp)", w[2])
	}
	a.Kind = k
	if a.From, err = s.endpoint(w[3]); err != nil {
		return a, err
	}
	to := w[5]
	needPort := k != Ping
	if needPort {
		i := strings.LastIndexByte(to, ':')
		if i < 0 {
			return a, fmt.Errorf("%s needs a destination port (%s:PORT)", w[2], to)
		}
		port, err := strconv.ParseUint(to[i+1:], 10, 16)
		if err != nil || port == 0 {
			return a, fmt.Errorf("bad port %q", to[i+1:])
		}
		a.Port = uint16(port)
		to = to[:i]
	}
	dst, err := s.endpoint(to)
	if err != nil {
		return a, err
	}
	a.To = firstAddr(dst)
	if a.From.Addr().Is4() != a.To.Is4() {
		return a, fmt.Errorf("%s and %s are of different address families", w[3], to)
	}
	a.Count = 1
	if k == Ping {
		a.Send = 56
	}
	seen := map[string]bool{}
	opts := w[6:]
	for i := 0; i < len(opts); i++ {
		o := opts[i]
		if seen[o] {
			return a, fmt.Errorf("option %q given twice", o)
		}
		seen[o] = true
		if e, ok := endNames[o]; ok {
			if k != TCP {
				return a, fmt.Errorf("%q applies to tcp only", o)
			}
			if seen["end"] {
				return a, fmt.Errorf("more than one of close, reset, open, refused, unanswered")
			}
			seen["end"] = true
			a.End = e
			continue
		}
		if o == "noreply" {
			if k != Ping {
				return a, fmt.Errorf("noreply applies to ping only")
			}
			a.NoReply = true
			continue
		}
		if i+1 >= len(opts) {
			return a, fmt.Errorf("option %q needs a value", o)
		}
		v := opts[i+1]
		i++
		switch o {
		case "count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 100_000_000 {
				return a, fmt.Errorf("count %q: want 1..100000000", v)
			}
			a.Count = n
		case "every":
			if seen["rate"] {
				return a, fmt.Errorf("every and rate are exclusive")
			}
			if a.Every, err = parseDuration(v); err != nil {
				return a, fmt.Errorf("every: %v", err)
			}
		case "rate":
			if seen["every"] {
				return a, fmt.Errorf("every and rate are exclusive")
			}
			if a.Every, err = parseRate(v); err != nil {
				return a, fmt.Errorf("rate: %v", err)
			}
		case "hold":
			if k != TCP {
				return a, fmt.Errorf("hold applies to tcp only")
			}
			if a.Hold, err = parseDuration(v); err != nil {
				return a, fmt.Errorf("hold: %v", err)
			}
		case "send", "size":
			if (o == "send") != (k == TCP) {
				return a, fmt.Errorf("%q does not apply to %s (tcp: send/recv, ping and udp: size)", o, w[2])
			}
			if k == SYNFlood {
				return a, fmt.Errorf("%q does not apply to synflood", o)
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 65000 {
				return a, fmt.Errorf("%s %q: want 0..65000", o, v)
			}
			if k == Ping && n > 65507 {
				return a, fmt.Errorf("ping size %d too large", n)
			}
			a.Send = n
		case "recv", "reply":
			if (o == "recv") != (k == TCP) || k == SYNFlood || k == Ping {
				return a, fmt.Errorf("%q does not apply to %s (tcp: recv, udp: reply)", o, w[2])
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 65000 {
				return a, fmt.Errorf("%s %q: want 0..65000", o, v)
			}
			a.Recv = n
		case "src":
			switch v {
			case "random":
				a.Src = SrcRandom
			case "sequential":
				a.Src = SrcSequential
			default:
				return a, fmt.Errorf("src %q: want random or sequential", v)
			}
		case "sport":
			if k == Ping {
				return a, fmt.Errorf("sport does not apply to ping")
			}
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 {
				return a, fmt.Errorf("sport %q: want 1..65535", v)
			}
			a.SPort = uint16(n)
		default:
			return a, fmt.Errorf("unknown option %q", o)
		}
	}
	if k == SYNFlood && a.Src == SrcFirst && a.From.Bits() < a.From.Addr().BitLen() {
		a.Src = SrcRandom
	}
	return a, nil
}

// firstAddr is the address a prefix stands for as a destination or a
// single source: the prefix itself for a host, else its first usable one.
func firstAddr(p netip.Prefix) netip.Addr {
	if p.Bits() >= p.Addr().BitLen()-1 {
		return p.Addr()
	}
	return p.Addr().Next()
}

// parseDuration accepts Go durations plus "Nm" minutes, "Nh" and "Nd".
func parseDuration(s string) (time.Duration, error) {
	if strings.HasSuffix(s, "d") {
		n, err := strconv.ParseFloat(strings.TrimSuffix(s, "d"), 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		return toDuration(n*float64(24*time.Hour), fmt.Sprintf("duration %q", s))
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q (e.g. 0s, 1.5s, 100ms, 2m, 1h)", s)
	}
	if d > MaxSpan {
		return 0, fmt.Errorf("duration %q out of range (0 to %v)", s, MaxSpan)
	}
	return d, nil
}

// parseRate turns "N/s", "N/m", "N/h" (or /sec, /min, /hour) into a spacing.
func parseRate(s string) (time.Duration, error) {
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("bad rate %q (want N/s, N/m or N/h)", s)
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad rate %q", s)
	}
	var per time.Duration
	switch unit {
	case "s", "sec", "second":
		per = time.Second
	case "m", "min", "minute":
		per = time.Minute
	case "h", "hour":
		per = time.Hour
	default:
		return 0, fmt.Errorf("bad rate unit %q (want s, m or h)", unit)
	}
	return toDuration(float64(per)/n, fmt.Sprintf("rate %q", s))
}
