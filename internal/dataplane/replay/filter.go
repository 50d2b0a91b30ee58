package replay

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/xt"
)

// Filter narrows --trace to some packets. It is a conjunction of terms,
// written as in tcpdump but much smaller:
//
//	host A     source or destination address in A (address or prefix)
//	src A      source address in A
//	dst A      destination address in A
//	port N     source or destination port N (TCP, UDP, SCTP, DCCP)
//	proto P    protocol P (name or number)
//
// joined by "and", e.g. "host 10.0.0.1 and port 22".
type Filter struct {
	terms []term
}

type termKind uint8

const (
	termHost termKind = iota
	termSrc
	termDst
	termPort
	termProto
)

type term struct {
	kind  termKind
	pfx   netip.Prefix
	port  uint16
	proto uint8
}

// ParseFilter parses a --trace-filter expression.
func ParseFilter(s string) (*Filter, error) {
	words := strings.Fields(s)
	if len(words) == 0 {
		return nil, fmt.Errorf("trace filter: empty expression")
	}
	f := &Filter{}
	for i := 0; i < len(words); {
		if len(f.terms) > 0 {
			if words[i] != "and" {
				return nil, fmt.Errorf("trace filter: expected \"and\" before %q (only \"and\" combines terms)", words[i])
			}
			i++
		}
		if i+1 >= len(words) {
			if i < len(words) {
				return nil, fmt.Errorf("trace filter: %q needs an argument", words[i])
			}
			return nil, fmt.Errorf("trace filter: expression ends with \"and\"")
		}
		kw, arg := words[i], words[i+1]
		i += 2
		var t term
		switch kw {
		case "host", "src", "dst":
			t.kind = map[string]termKind{"host": termHost, "src": termSrc, "dst": termDst}[kw]
			p, err := parsePrefix(arg)
			if err != nil {
				return nil, fmt.Errorf("trace filter: %s %q: %v", kw, arg, err)
			}
			t.pfx = p
		case "port":
			n, err := strconv.ParseUint(arg, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("trace filter: port %q: not a number 0-65535", arg)
			}
			t.kind, t.port = termPort, uint16(n)
		case "proto":
			n, err := xt.ParseProtocol(arg)
			if err != nil {
				return nil, fmt.Errorf("trace filter: proto %q: unknown protocol", arg)
			}
			t.kind, t.proto = termProto, n
		default:
			return nil, fmt.Errorf("trace filter: unknown term %q (want host, src, dst, port or proto)", kw)
		}
		f.terms = append(f.terms, t)
	}
	return f, nil
}

// parsePrefix accepts an address (a host prefix) or a prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParsePrefix parses a --local value: an address or a prefix.
func ParsePrefix(s string) (netip.Prefix, error) { return parsePrefix(s) }

// Match reports whether p passes every term. A nil Filter passes all.
func (f *Filter) Match(p *packet.Packet) bool {
	if f == nil {
		return true
	}
	for _, t := range f.terms {
		if !t.match(p) {
			return false
		}
	}
	return true
}

func (t *term) match(p *packet.Packet) bool {
	switch t.kind {
	case termHost:
		return t.pfx.Contains(p.Src) || t.pfx.Contains(p.Dst)
	case termSrc:
		return t.pfx.Contains(p.Src)
	case termDst:
		return t.pfx.Contains(p.Dst)
	case termPort:
		if !hasPorts(p) {
			return false
		}
		return p.SrcPort == t.port || p.DstPort == t.port
	case termProto:
		return p.Proto == t.proto
	}
	return false
}

func hasPorts(p *packet.Packet) bool {
	if p.Status != packet.OK {
		return false
	}
	switch p.Proto {
	case 6, 17, 132, 33, 136:
		return true
	}
	return false
}
