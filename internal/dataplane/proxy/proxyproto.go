package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// PROXY protocol (HAProxy's "PROXY protocol", versions 1 and 2): a load
// balancer in front of the proxy prepends the real client's addresses to
// the stream. The header is read only from connections whose source is in
// a trusted range (anyone else could claim any address); from those it is
// required, as HAProxy's accept-proxy requires it.

// v2Signature starts every version 2 header.
var v2Signature = [12]byte{0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a}

const (
	// v1MaxLen is the longest version 1 line the specification allows
	// ("PROXY TCP6 " + two full IPv6 addresses + two ports + CRLF).
	v1MaxLen = 107
	// v2MaxLen bounds a version 2 header we accept: 16 fixed bytes plus the
	// address block and TLVs. The format allows 65535 bytes of TLVs; the
	// bound keeps a hostile peer from making us buffer that much, while
	// leaving room for the usual TLVs (ALPN, authority, SSL, AWS/Azure ids).
	v2MaxLen = 16 + 2048
	// proxyBufLen is the buffer read into while looking for the header.
	proxyBufLen = v2MaxLen
)

// ProxyHeader is a parsed PROXY protocol header.
type ProxyHeader struct {
	Version int // 1 or 2
	// Local is set for "PROXY UNKNOWN" (v1), the LOCAL command or an
	// unspecified/unix family (v2): the connection's own addresses apply.
	Local bool
	// Src is the real client, Dst the address it connected to (the load
	// balancer's frontend). Valid unless Local.
	Src, Dst netip.AddrPort
}

// ErrProxyHeader is wrapped by every error from ReadProxyHeader about the
// content of the header (as opposed to I/O errors and timeouts).
var ErrProxyHeader = errors.New("bad PROXY protocol header")

func badHeader(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrProxyHeader, fmt.Sprintf(format, a...))
}

// ReadProxyHeader reads a PROXY v1 or v2 header from r, which must not have
// delivered any byte yet, and returns it together with the bytes read past
// the header (the start of the application stream, to be delivered first).
// It reads only what is available, so a server-speaks-first protocol behind
// a 15-byte "PROXY UNKNOWN\r\n" does not stall. Callers bound the time
// with a read deadline. Hostile input (no header, truncated, oversized,
// malformed fields) gives an error wrapping ErrProxyHeader.
func ReadProxyHeader(r io.Reader) (ProxyHeader, []byte, error) {
	buf := make([]byte, proxyBufLen)
	have := 0
	need := 1
	for {
		for have < need {
			n, err := r.Read(buf[have:])
			have += n
			if err != nil && have < need {
				if err == io.EOF {
					if have == 0 {
						return ProxyHeader{}, nil, badHeader("connection closed before the header")
					}
					return ProxyHeader{}, nil, badHeader("truncated header (%d bytes)", have)
				}
				return ProxyHeader{}, nil, err
			}
		}
		switch buf[0] {
		case 'P':
			if end := bytes.Index(buf[:have], []byte("\r\n")); end >= 0 {
				if end+2 > v1MaxLen {
					return ProxyHeader{}, nil, badHeader("v1 line longer than %d bytes", v1MaxLen)
				}
				h, err := parseV1(buf[:end])
				if err != nil {
					return ProxyHeader{}, nil, err
				}
				return h, bytes.Clone(buf[end+2 : have]), nil
			}
			if have >= v1MaxLen {
				return ProxyHeader{}, nil, badHeader("v1 line longer than %d bytes", v1MaxLen)
			}
			if !bytes.HasPrefix([]byte("PROXY "), buf[:min(have, 6)]) {
				return ProxyHeader{}, nil, badHeader("no PROXY signature")
			}
			need = have + 1
		case v2Signature[0]:
			if have < 16 {
				if !bytes.Equal(buf[:min(have, 12)], v2Signature[:min(have, 12)]) {
					return ProxyHeader{}, nil, badHeader("no v2 signature")
				}
				need = 16
				continue
			}
			if !bytes.Equal(buf[:12], v2Signature[:]) {
				return ProxyHeader{}, nil, badHeader("no v2 signature")
			}
			total := 16 + int(binary.BigEndian.Uint16(buf[14:16]))
			if total > v2MaxLen {
				return ProxyHeader{}, nil, badHeader("v2 header of %d bytes exceeds %d", total, v2MaxLen)
			}
			if have < total {
				need = total
				continue
			}
			h, err := parseV2(buf[:total])
			if err != nil {
				return ProxyHeader{}, nil, err
			}
			return h, bytes.Clone(buf[total:have]), nil
		default:
			return ProxyHeader{}, nil, badHeader("no PROXY signature")
		}
	}
}

func parseV1(line []byte) (ProxyHeader, error) {
	h := ProxyHeader{Version: 1}
	f := bytes.Split(line, []byte(" "))
	if len(f) < 2 || string(f[0]) != "PROXY" {
		return h, badHeader("v1: no PROXY keyword")
	}
	switch string(f[1]) {
	case "UNKNOWN":
		h.Local = true
		return h, nil
	case "TCP4", "TCP6":
	default:
		return h, badHeader("v1: unknown protocol %q", f[1])
	}
	if len(f) != 6 {
		return h, badHeader("v1: want 6 fields, got %d", len(f))
	}
	v4 := string(f[1]) == "TCP4"
	src, err1 := netip.ParseAddr(string(f[2]))
	dst, err2 := netip.ParseAddr(string(f[3]))
	if err1 != nil || err2 != nil || src.Is4() != v4 || dst.Is4() != v4 || src.Zone() != "" || dst.Zone() != "" {
		return h, badHeader("v1: bad %s addresses", f[1])
	}
	sp, ok1 := parsePort(f[4])
	dp, ok2 := parsePort(f[5])
	if !ok1 || !ok2 {
		return h, badHeader("v1: bad ports")
	}
	h.Src, h.Dst = netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
	return h, nil
}

// parsePort accepts 0-65535 in decimal without sign or leading zeros.
func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 || (len(b) > 1 && b[0] == '0') {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(string(b), 10, 16)
	return uint16(v), err == nil
}

func parseV2(b []byte) (ProxyHeader, error) {
	h := ProxyHeader{Version: 2}
	if b[12]>>4 != 2 {
		return h, badHeader("v2: version %d", b[12]>>4)
	}
	switch b[12] & 0x0f {
	case 0: // LOCAL: health checks from the balancer itself
		h.Local = true
		return h, nil
	case 1: // PROXY
	default:
		return h, badHeader("v2: command %d", b[12]&0x0f)
	}
	body := b[16:]
	switch b[13] >> 4 {
	case 1: // AF_INET
		if len(body) < 12 {
			return h, badHeader("v2: INET address block of %d bytes", len(body))
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:]))
	case 2: // AF_INET6
		if len(body) < 36 {
			return h, badHeader("v2: INET6 address block of %d bytes", len(body))
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])), binary.BigEndian.Uint16(body[34:]))
	case 0, 3: // UNSPEC, UNIX: the receiver uses the connection's addresses
		h.Local = true
	default:
		return h, badHeader("v2: address family %d", b[13]>>4)
	}
	return h, nil
}

// AppendProxyHeader appends a PROXY header of the given version (1 or 2)
// announcing a TCP connection from src to dst. Mixed families are sent as
// IPv6 (IPv4-mapped).
func AppendProxyHeader(b []byte, version int, src, dst netip.AddrPort) []byte {
	s, d := src.Addr(), dst.Addr()
	if s.Is4() != d.Is4() {
		s, d = netip.AddrFrom16(s.As16()), netip.AddrFrom16(d.As16())
	}
	if version == 1 {
		proto := "TCP6"
		if s.Is4() {
			proto = "TCP4"
		}
		return fmt.Appendf(b, "PROXY %s %s %s %d %d\r\n", proto, s, d, src.Port(), dst.Port())
	}
	b = append(b, v2Signature[:]...)
	b = append(b, 0x21) // version 2, PROXY
	if s.Is4() {
		b = append(b, 0x11, 0, 12)
		s4, d4 := s.As4(), d.As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	} else {
		b = append(b, 0x21, 0, 36)
		s16, d16 := s.As16(), d.As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

// Trusted reports whether addr is in one of the prefixes.
func Trusted(prefixes []netip.Prefix, addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
