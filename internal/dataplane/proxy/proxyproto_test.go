package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

func TestReadProxyHeader(t *testing.T) {
	ap := netip.MustParseAddrPort
	v2 := func(src, dst netip.AddrPort, tlv int) []byte {
		b := AppendProxyHeader(nil, 2, src, dst)
		if tlv > 0 {
			n := int(b[14])<<8 | int(b[15])
			n += tlv
			b[14], b[15] = byte(n>>8), byte(n)
			b = append(b, make([]byte, tlv)...)
		}
		return b
	}
	v2local := append(append([]byte{}, v2Signature[:]...), 0x20, 0x00, 0, 0)
	cases := []struct {
		name    string
		in      []byte
		want    ProxyHeader
		rest    string
		wantErr string // "" = ok; "bad" = ErrProxyHeader; "eof" = other error
	}{
		{"v1 tcp4", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\nGET /"), ProxyHeader{Version: 1, Src: ap("203.0.113.7:56324"), Dst: ap("192.0.2.1:443")}, "GET /", ""},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n"), ProxyHeader{Version: 1, Src: ap("[2001:db8::1]:1"), Dst: ap("[2001:db8::2]:65535")}, "", ""},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\nhi"), ProxyHeader{Version: 1, Local: true}, "hi", ""},
		{"v1 unknown with junk", []byte("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), ProxyHeader{Version: 1, Local: true}, "", ""},
		{"v2 inet", append(v2(ap("198.51.100.9:1000"), ap("192.0.2.1:80"), 0), "data"...), ProxyHeader{Version: 2, Src: ap("198.51.100.9:1000"), Dst: ap("192.0.2.1:80")}, "data", ""},
		{"v2 inet6 with TLVs", v2(ap("[2001:db8::9]:7"), ap("[2001:db8::1]:8"), 300), ProxyHeader{Version: 2, Src: ap("[2001:db8::9]:7"), Dst: ap("[2001:db8::1]:8")}, "", ""},
		{"v2 local", v2local, ProxyHeader{Version: 2, Local: true}, "", ""},
		{"no header", []byte("GET / HTTP/1.1\r\n\r\n"), ProxyHeader{}, "", "bad"},
		{"empty", nil, ProxyHeader{}, "", "bad"},
		{"v1 truncated", []byte("PROXY TCP4 1.2.3.4"), ProxyHeader{}, "", "bad"},
		{"v1 oversized", []byte("PROXY TCP4 " + strings.Repeat("1", 200) + "\r\n"), ProxyHeader{}, "", "bad"},
		{"v1 no CRLF within 107", []byte("PROXY UNKNOWN" + strings.Repeat(" ", 120)), ProxyHeader{}, "", "bad"},
		{"v1 family mismatch", []byte("PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n"), ProxyHeader{}, "", "bad"},
		{"v1 port leading zero", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n"), ProxyHeader{}, "", "bad"},
		{"v1 port too big", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n"), ProxyHeader{}, "", "bad"},
		{"v1 double space", []byte("PROXY TCP4  1.2.3.4 5.6.7.8 1 80\r\n"), ProxyHeader{}, "", "bad"},
		{"v1 lowercase", []byte("proxy TCP4 1.2.3.4 5.6.7.8 1 80\r\n"), ProxyHeader{}, "", "bad"},
		{"v2 truncated signature", v2Signature[:8], ProxyHeader{}, "", "bad"},
		{"v2 truncated body", v2(ap("1.2.3.4:1"), ap("5.6.7.8:2"), 0)[:20], ProxyHeader{}, "", "bad"},
		{"v2 bad signature", append([]byte{0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b}, 0x21, 0x11, 0, 12), ProxyHeader{}, "", "bad"},
		{"v2 oversized", func() []byte { b := v2(ap("1.2.3.4:1"), ap("5.6.7.8:2"), 0); b[14], b[15] = 0xff, 0xff; return b }(), ProxyHeader{}, "", "bad"},
		{"v2 short address block", func() []byte {
			b := append([]byte{}, v2Signature[:]...)
			return append(b, 0x21, 0x11, 0, 4, 1, 2, 3, 4)
		}(), ProxyHeader{}, "", "bad"},
		{"v2 version 3", func() []byte { b := v2(ap("1.2.3.4:1"), ap("5.6.7.8:2"), 0); b[12] = 0x31; return b }(), ProxyHeader{}, "", "bad"},
		{"v2 command 2", func() []byte { b := v2(ap("1.2.3.4:1"), ap("5.6.7.8:2"), 0); b[12] = 0x22; return b }(), ProxyHeader{}, "", "bad"},
	}
	for _, tc := range cases {
		for _, oneByte := range []bool{false, true} {
			var r io.Reader = bytes.NewReader(tc.in)
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			h, rest, err := ReadProxyHeader(r)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("%s (oneByte %v): %v", tc.name, oneByte, err)
			case tc.wantErr == "bad" && !errors.Is(err, ErrProxyHeader):
				t.Errorf("%s (oneByte %v): err %v, want ErrProxyHeader", tc.name, oneByte, err)
			case tc.wantErr == "" && (h != tc.want || (!oneByte && string(rest) != tc.rest)):
				t.Errorf("%s: got %+v rest %q, want %+v rest %q", tc.name, h, rest, tc.want, tc.rest)
			}
		}
	}
}

// A short header followed by silence must not stall (server speaks first).
func TestReadProxyHeaderDoesNotOverread(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _, _ = a.Write([]byte("PROXY UNKNOWN\r\n")) }()
	_ = b.SetReadDeadline(time.Now().Add(2 * time.Second))
	h, rest, err := ReadProxyHeader(b)
	if err != nil || !h.Local || len(rest) != 0 {
		t.Fatalf("%+v %q %v", h, rest, err)
	}
}

func TestAppendProxyHeaderRoundTrip(t *testing.T) {
	for _, v := range []int{1, 2} {
		for _, p := range [][2]string{{"203.0.113.7:5555", "127.0.0.1:80"}, {"[2001:db8::7]:1", "[::1]:2"}} {
			src, dst := netip.MustParseAddrPort(p[0]), netip.MustParseAddrPort(p[1])
			h, rest, err := ReadProxyHeader(bytes.NewReader(AppendProxyHeader(nil, v, src, dst)))
			if err != nil || h.Src != src || h.Dst != dst || h.Version != v || len(rest) != 0 {
				t.Errorf("v%d %v: %+v %v", v, p, h, err)
			}
		}
	}
}

// End to end: from a trusted source the rules see the announced client and
// the header is consumed (optionally re-sent to the upstream); from an
// untrusted source nothing is interpreted; a missing header is refused.
func TestProxyProtocolThroughProxy(t *testing.T) {
	banned := &ruleset.Rule{Kind: ruleset.TargetVerdict, Verdict: ruleset.Drop,
		Src: netip.MustParseAddr("203.0.113.7"), SrcMask: netip.MustParseAddr("255.255.255.255")}
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cases := []struct {
		name      string
		trusted   []netip.Prefix
		send      int
		msg       string
		want      string
		upstream  string // prefix of what the upstream must receive ("" = anything)
		headerErr uint64
	}{
		{"v1 banned client", trusted, 0, "PROXY TCP4 203.0.113.7 127.0.0.1 4000 80\r\nhi", "eof", "", 0},
		{"v1 other client", trusted, 0, "PROXY TCP4 203.0.113.8 127.0.0.1 4000 80\r\nhi", "reply:hi", "hi", 0},
		{"v2 banned client", trusted, 0, string(AppendProxyHeader(nil, 2, netip.MustParseAddrPort("203.0.113.7:1"), netip.MustParseAddrPort("127.0.0.1:80"))) + "hi", "eof", "", 0},
		{"send v2 upstream", trusted, 2, "PROXY TCP4 203.0.113.8 127.0.0.1 4000 80\r\nhi", "", "\r\n\r\n\x00\r\nQUIT\n", 0},
		{"send v1 upstream", trusted, 1, "PROXY TCP4 203.0.113.8 127.0.0.1 4000 80\r\nhi", "", "PROXY TCP4 203.0.113.8 127.0.0.1 4000 ", 0},
		{"untrusted: header is data", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, 0, "PROXY TCP4 203.0.113.7 127.0.0.1 4000 80\r\nhi", "reply:PROXY TCP4 203.0.113.7 127.0.0.1 4000 80\r\nhi", "", 0},
		{"trusted without header", trusted, 0, "GET / HTTP/1.0\r\n\r\n", "eof", "", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			echo := startEcho(t)
			g := newGate(t, filter([]*ruleset.Rule{banned}, nil), GateConfig{})
			_, addr := startProxy(t, g, echo.addr(), func(c *Config) {
				c.Admit.TrustedProxies = tc.trusted
				c.Routes[0].SendProxy = tc.send
			})
			got := clientOutcome(t, addr, tc.msg)
			if tc.want != "" && got != tc.want {
				t.Fatalf("client saw %q, want %q", got, tc.want)
			}
			if tc.upstream != "" {
				if !strings.HasPrefix(got, "reply:"+tc.upstream) {
					t.Fatalf("upstream got %q, want prefix %q", got, tc.upstream)
				}
			}
			if e := g.Stats().ProxyHeaderErrs; e != tc.headerErr {
				t.Errorf("ProxyHeaderErrs = %d, want %d", e, tc.headerErr)
			}
		})
	}
}

var _ = xt.IPv4
