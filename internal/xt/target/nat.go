package target

import (
	"net/netip"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// NATRange is the range a NAT target maps to (the kernel's
// nf_nat_range2): an address range, a port range, and for DNAT the base
// of a shifted port map ("A-B/C").
type NATRange struct {
	HasAddr          bool
	MinAddr, MaxAddr netip.Addr
	HasPorts         bool
	MinPort, MaxPort uint16
	// HasBase: a "/base" was given. DNAT maps port P to
	// Base + (P - MinPort); SNAT and MASQUERADE accept the syntax but keep
	// no base (Base 0), as iptables 1.8.9 does, and print "/0".
	HasBase bool
	Base    uint16
}

// natPortProtos are the -p values iptables accepts with a port
// specification (tcp, udp, sctp, dccp and, oddly, icmp: udplite is refused).
func natPortProtoOK(p uint8) bool {
	switch p {
	case 6, 17, 132, 33, 1:
		return true
	}
	return false
}

var errNATNeedProto = xt.Errorf("Need TCP, UDP, SCTP or DCCP with port specification")

func errPort(s string) error { return xt.Errorf("Port `%s' not valid", s) }

// parseNATPort parses the leading port of s: a number up to 65535 (as
// strtoul reads it) followed by the rest, or else the whole of s as a
// service name when whole is set.
func parseNATPort(s string, whole bool) (port uint16, rest string, err error) {
	v, r, ok := xt.ParseUintPrefix(s)
	// strtoul: leading blanks and a '+' are fine (measured: "--to-ports
	// +1", "1.1.1.1: 1", "1-+5" are port 1 and 1-5)
	if ok && v <= 65535 {
		return uint16(v), r, nil
	}
	if whole {
		if p, ok := xt.ServicePort(s, ""); ok {
			return p, "", nil
		}
	}
	return 0, "", errPort(s)
}

// parseNATPorts parses "min[-max[/base]]" into r, with iptables 1.8.9's
// errors. colonErr is the message for "A:B" (MASQUERADE, REDIRECT), empty
// when a colon cannot reach here (DNAT, SNAT).
func parseNATPorts(s string, r *NATRange, keepBase bool, colonErr string) error {
	min, rest, err := parseNATPort(s, true)
	if err != nil {
		return err
	}
	max := min
	switch {
	case rest == "":
	case rest[0] == '-':
		maxStr := rest[1:]
		max, rest, err = parseNATPort(maxStr, false)
		if err != nil {
			return errPort(maxStr)
		}
		if min > max {
			return xt.Errorf("Port range `%s' funky", strings.TrimSuffix(maxStr, rest))
		}
		switch {
		case rest == "":
		case rest[0] == '/':
			// the base is read up to its first non-digit (measured:
			// "1000-2000/65535/24" and "42-1234/567+" pass this point)
			b, _, err := parseNATPort(rest[1:], true)
			if err != nil || b == 0 {
				return errPort(rest[1:])
			}
			r.HasBase = true
			if keepBase {
				r.Base = uint16(b)
			}
		default:
			return xt.Errorf("Garbage after port range: `%s'", rest)
		}
	case rest[0] == ':' && colonErr != "":
		return xt.Errorf("%s", colonErr)
	default:
		return xt.Errorf("Garbage after port value: `%s'", rest)
	}
	r.HasPorts, r.MinPort, r.MaxPort = true, min, max
	return nil
}

// parseNATAddr parses one IPv4 address of a NAT range (numeric only, no
// short forms).
func parseNATAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, xt.Errorf("Bad IP address \"%s\"", s)
	}
	return a, nil
}

// parseNATSpec parses DNAT's/SNAT's "[ip[-ip]][:port[-port[/base]]]".
func parseNATSpec(ctx *xt.ParseContext, s string, keepBase bool) (NATRange, error) {
	var r NATRange
	addr := s
	if i := strings.IndexByte(s, ':'); i >= 0 && strings.IndexByte(s[i+1:], ':') < 0 {
		if ctx == nil || !natPortProtoOK(ctx.Proto) {
			return r, errNATNeedProto
		}
		if err := parseNATPorts(s[i+1:], &r, keepBase, ""); err != nil {
			return r, err
		}
		addr = s[:i]
		if addr == "" {
			return r, nil
		}
	}
	lo, hi, isRange := strings.Cut(addr, "-")
	min, err := parseNATAddr(lo)
	if err != nil {
		return r, err
	}
	max := min
	if isRange {
		if max, err = parseNATAddr(hi); err != nil {
			return r, err
		}
	}
	r.HasAddr, r.MinAddr, r.MaxAddr = true, min, max
	return r, nil
}

// writePorts prints "min[-max][/base]".
func (r *NATRange) writePorts(b *strings.Builder) {
	writeUint(b, uint64(r.MinPort))
	if r.MaxPort != r.MinPort {
		b.WriteByte('-')
		writeUint(b, uint64(r.MaxPort))
	}
	if r.HasBase {
		b.WriteByte('/')
		writeUint(b, uint64(r.Base))
	}
}

// write prints the range as iptables does after --to-destination / to:.
func (r *NATRange) write(b *strings.Builder) {
	if r.HasAddr {
		b.WriteString(r.MinAddr.String())
		if r.MaxAddr != r.MinAddr {
			b.WriteByte('-')
			b.WriteString(r.MaxAddr.String())
		}
	}
	if r.HasPorts {
		b.WriteByte(':')
		r.writePorts(b)
	}
}

// natFlags are the options shared by the NAT targets.
type natFlags struct {
	Random      bool // --random: randomise the source port choice
	RandomFully bool // --random-fully: fully random port selection (PRNG)
	Persistent  bool // --persistent: same address for a client across connections
}

func (f *natFlags) write(b *strings.Builder, dash string) {
	if f.Random {
		b.WriteString(" " + dash + "random")
	}
	if f.RandomFully {
		b.WriteString(" " + dash + "random-fully")
	}
	if f.Persistent {
		b.WriteString(" " + dash + "persistent")
	}
}

// natTarget is the parsing shared by DNAT and SNAT.
type natTarget struct {
	Range NATRange
	natFlags
	name     string // DNAT or SNAT
	toOpt    string // to-destination or to-source
	keepBase bool
	allowed  xt.HookMask
	opts     tracker
}

func (n *natTarget) parse(ctx *xt.ParseContext, opt string, invert bool, arg string) error {
	if opt == "to" {
		opt = n.toOpt
	}
	if err := n.opts.mark(opt, invert); err != nil {
		return err
	}
	switch opt {
	case "random":
		n.Random = true
	case "random-fully":
		n.RandomFully = true
	case "persistent":
		n.Persistent = true
	default:
		r, err := parseNATSpec(ctx, arg, n.keepBase)
		if err != nil {
			return err
		}
		n.Range = r
	}
	return nil
}

func (n *natTarget) save(b *strings.Builder) {
	b.WriteString(" --" + n.toOpt + " ")
	n.Range.write(b)
	n.write(b, "--")
}

func (n *natTarget) list(b *strings.Builder) {
	b.WriteString(" to:")
	n.Range.write(b)
	n.write(b, "")
}

func (n *natTarget) check(ctx *xt.CheckContext) error {
	if err := checkTable(ctx, n.name, "nat"); err != nil {
		return err
	}
	return checkHooks(ctx, n.name, n.allowed)
}
