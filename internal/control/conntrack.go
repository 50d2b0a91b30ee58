package control

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/xt"
)

const ctProg = "conntrack v1.4.7 (conntrack-tools): "

// ctFilter selects connection-table entries as conntrack-tools' filter
// options do: every given field must equal the entry's.
type ctFilter struct {
	origSrc, origDst, replySrc, replyDst netip.Addr
	proto                                uint8
	hasProto                             bool
	sport, dport, rsport, rdport         int // -1 = any
	state                                conntrack.TCPState
	hasState                             bool
	mark, markMask                       uint32
	hasMark                              bool
	given                                []string // long names of the filter options, for -C/-F errors
}

// ctCommands are conntrack's commands that uptables runs on the daemon.
var ctCommands = map[string]byte{"-L": 'L', "--dump": 'L', "-D": 'D', "--delete": 'D', "-F": 'F', "--flush": 'F', "-C": 'C', "--count": 'C'}

func (f *ctFilter) match(e *conntrack.Entry) bool {
	o, r := &e.Orig, &e.Reply
	switch {
	case f.origSrc.IsValid() && o.Src != f.origSrc,
		f.origDst.IsValid() && o.Dst != f.origDst,
		f.replySrc.IsValid() && r.Src != f.replySrc,
		f.replyDst.IsValid() && r.Dst != f.replyDst,
		f.hasProto && o.Proto != f.proto,
		f.sport >= 0 && int(o.SrcID) != f.sport,
		f.dport >= 0 && int(o.DstID) != f.dport,
		f.rsport >= 0 && int(r.SrcID) != f.rsport,
		f.rdport >= 0 && int(r.DstID) != f.rdport,
		f.hasState && e.TCPState != f.state,
		f.hasMark && e.Mark&f.markMask != f.mark:
		return false
	}
	return true
}

var ctProtos = map[string]uint8{"tcp": 6, "udp": 17, "udplite": 136, "icmp": 1, "icmpv6": 58, "sctp": 132, "dccp": 33, "gre": 47}

var ctStates = map[string]conntrack.TCPState{"NONE": conntrack.TCPNone, "SYN_SENT": conntrack.TCPSynSent, "SYN_RECV": conntrack.TCPSynRecv,
	"ESTABLISHED": conntrack.TCPEstablished, "FIN_WAIT": conntrack.TCPFinWait, "CLOSE_WAIT": conntrack.TCPCloseWait,
	"LAST_ACK": conntrack.TCPLastAck, "TIME_WAIT": conntrack.TCPTimeWait, "CLOSE": conntrack.TCPClose, "SYN_SENT2": conntrack.TCPSynSent2}

// conntrack is `uptables conntrack -L|-D|-F|-C [filters]`, conntrack-tools
// 1.4.7's commands on the engine's connection table, with its output and
// messages: -L prints the entries and "N flow entries have been shown.",
// -D deletes the matching entries (printing them; exit 1 when none),
// -F empties the table, -C prints the entry count.
func (s *Server) conntrack(args []string, out, errw *bytes.Buffer) int {
	cmd, f, err := parseConntrack(args)
	if err != "" {
		fmt.Fprintf(errw, "%s%s\nTry `conntrack -h' or 'conntrack --help' for more information.\n", ctProg, err)
		return 2
	}
	ct := s.cfg.Rules.Engine().ConntrackTable()
	now := s.nowNS()
	switch cmd {
	case 'C':
		n := 0
		if ct != nil {
			n = ct.Count()
		}
		fmt.Fprintf(out, "%d\n", n)
		return 0
	case 'F':
		if ct != nil {
			ct.Flush()
		}
		fmt.Fprintln(errw, ctProg+"connection tracking table has been emptied.")
		return 0
	case 'L':
		n := 0
		if ct != nil {
			var b []byte
			ct.Range(now, func(e *conntrack.Entry) bool {
				if f.match(e) {
					b = e.AppendConntrackL(b[:0], now)
					out.Write(b)
					out.WriteByte('\n')
					n++
				}
				return true
			})
		}
		fmt.Fprintf(errw, "%s%d flow entries have been shown.\n", ctProg, n)
		return 0
	}
	// -D: collect first, then delete (Range must not race its own deletes).
	var victims []conntrack.Entry
	if ct != nil {
		ct.Range(now, func(e *conntrack.Entry) bool {
			if f.match(e) {
				victims = append(victims, *e)
			}
			return true
		})
	}
	n := 0
	var b []byte
	for i := range victims {
		if ct.Delete(victims[i].Orig) {
			b = victims[i].AppendConntrackL(b[:0], now)
			out.Write(b)
			out.WriteByte('\n')
			n++
		}
	}
	fmt.Fprintf(errw, "%s%d flow entries have been deleted.\n", ctProg, n)
	if n == 0 {
		return 1
	}
	return 0
}

func parseConntrack(args []string) (byte, *ctFilter, string) {
	f := &ctFilter{sport: -1, dport: -1, rsport: -1, rdport: -1}
	var cmd byte
	setCmd := func(c byte) string {
		if cmd != 0 && cmd != c {
			return "Invalid commands combination"
		}
		cmd = c
		return ""
	}
	addr := func(v string) (netip.Addr, string) {
		a, err := xt.ParseAddr(xt.IPv4, v)
		if err != nil {
			if a6, err6 := netip.ParseAddr(v); err6 == nil {
				return a6, ""
			}
			return netip.Addr{}, "Invalid IP address `" + v + "'"
		}
		return a, ""
	}
	port := func(v string) (int, string) {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return 0, "invalid port `" + v + "'"
		}
		return int(n), ""
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		if !strings.HasPrefix(a, "--") {
			name, hasVal = a, false
		}
		if c, ok := ctCommands[name]; ok {
			if e := setCmd(c); e != "" {
				return 0, nil, e
			}
			continue
		}
		long, ok := ctOptions[name]
		if !ok {
			return 0, nil, "unknown option `" + a + "'"
		}
		if long == "--sport" || long == "--dport" || long == "--reply-port-src" || long == "--reply-port-dst" || long == "--state" {
			if !f.hasProto || (long == "--state" && f.proto != 6) || (long != "--state" && !(f.proto == 6 || f.proto == 17 || f.proto == 136 || f.proto == 132 || f.proto == 33)) {
				return 0, nil, "unknown option `" + a + "'"
			}
		}
		if !hasVal {
			if i+1 >= len(args) {
				return 0, nil, "option `" + a + "' requires an argument"
			}
			i++
			val = args[i]
		}
		f.given = append(f.given, long)
		var e string
		switch long {
		case "--src":
			f.origSrc, e = addr(val)
		case "--dst":
			f.origDst, e = addr(val)
		case "--reply-src":
			f.replySrc, e = addr(val)
		case "--reply-dst":
			f.replyDst, e = addr(val)
		case "--protonum":
			if p, ok := ctProtos[strings.ToLower(val)]; ok {
				f.proto = p
			} else if n, err := strconv.ParseUint(val, 10, 8); err == nil {
				f.proto = uint8(n)
			} else {
				e = "`" + val + "' unsupported protocol"
			}
			f.hasProto = true
		case "--sport":
			f.sport, e = port(val)
		case "--dport":
			f.dport, e = port(val)
		case "--reply-port-src":
			f.rsport, e = port(val)
		case "--reply-port-dst":
			f.rdport, e = port(val)
		case "--state":
			st, ok := ctStates[strings.ToUpper(val)]
			if !ok {
				e = "unknown TCP state `" + val + "'"
			}
			f.state, f.hasState = st, true
		case "--mark":
			mv, mm, _ := strings.Cut(val, "/")
			m, err := strconv.ParseUint(mv, 0, 32)
			mask := uint64(0xffffffff)
			if err == nil && mm != "" {
				mask, err = strconv.ParseUint(mm, 0, 32)
			}
			if err != nil {
				e = "invalid mark `" + val + "'"
			}
			f.mark, f.markMask, f.hasMark = uint32(m)&uint32(mask), uint32(mask), true
		case "--family":
			if val != "ipv4" && val != "ipv6" {
				e = "`" + val + "' unsupported protocol"
			}
		}
		if e != "" {
			return 0, nil, e
		}
	}
	if cmd == 0 {
		return 0, nil, "no command specified (-L, -D, -F or -C)"
	}
	if (cmd == 'C' || cmd == 'F') && len(f.given) > 0 {
		return 0, nil, "Illegal option `" + f.given[0] + "' with this command"
	}
	return cmd, f, ""
}

// ctOptions maps every accepted spelling to conntrack-tools' long name.
var ctOptions = map[string]string{
	"-s": "--src", "--src": "--src", "--orig-src": "--src",
	"-d": "--dst", "--dst": "--dst", "--orig-dst": "--dst",
	"-r": "--reply-src", "--reply-src": "--reply-src",
	"-q": "--reply-dst", "--reply-dst": "--reply-dst",
	"-p": "--protonum", "--protonum": "--protonum", "--proto": "--protonum",
	"--sport": "--sport", "--orig-port-src": "--sport",
	"--dport": "--dport", "--orig-port-dst": "--dport",
	"--reply-port-src": "--reply-port-src", "--reply-port-dst": "--reply-port-dst",
	"--state": "--state",
	"-m":      "--mark", "--mark": "--mark",
	"-f": "--family", "--family": "--family",
}
