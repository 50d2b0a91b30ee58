package scenario

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
)

func examples(t *testing.T) map[string]*Scenario {
	t.Helper()
	files, err := filepath.Glob("../../examples/scenarios/*.scn")
	if err != nil || len(files) < 3 {
		t.Fatalf("example scenarios: %v %v", files, err)
	}
	out := map[string]*Scenario{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Parse(string(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = s
	}
	return out
}

// l4ChecksumOK verifies the transport checksum the way a receiver does.
func l4ChecksumOK(p *packet.Packet) bool {
	ip := p.IPv4()
	l4 := p.Data[p.L4Off:]
	switch p.Proto {
	case header.ProtoICMP:
		return header.Sum(l4, 0) == 0xffff
	case header.ProtoTCP, header.ProtoUDP:
		s := ip.Src()
		d := ip.Dst()
		return header.Sum(l4, header.PseudoHeaderSum(s[:], d[:], p.Proto, len(l4))) == 0xffff
	}
	return false
}

// TestExamplesValid: every packet of every example decodes as a valid IPv4
// packet with correct IP and L4 checksums, and times never go backwards.
func TestExamplesValid(t *testing.T) {
	for name, s := range examples(t) {
		t.Run(name, func(t *testing.T) {
			pkts := Generate(s)
			if len(pkts) == 0 {
				t.Fatal("no packets")
			}
			var p packet.Packet
			for i, g := range pkts {
				if st := p.Decode(g.Data); st != packet.OK || p.L4Malformed {
					t.Fatalf("packet %d: status %v malformed %v", i, st, p.L4Malformed)
				}
				if !l4ChecksumOK(&p) {
					t.Fatalf("packet %d (%v > %v proto %d): bad L4 checksum", i, p.Src, p.Dst, p.Proto)
				}
				if i > 0 && g.Time.Before(pkts[i-1].Time) {
					t.Fatalf("packet %d goes back in time", i)
				}
			}
		})
	}
}

// TestDeterministic: same scenario, same bytes; another seed, other bytes.
func TestDeterministic(t *testing.T) {
	ex := examples(t)
	s := ex["mixed.scn"]
	var a, b bytes.Buffer
	if err := WritePcap(&a, s.Link, Generate(s)); err != nil {
		t.Fatal(err)
	}
	if err := WritePcap(&b, s.Link, Generate(s)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two generations of the same scenario differ")
	}
	s2 := *s
	s2.Seed++
	var c bytes.Buffer
	if err := WritePcap(&c, s2.Link, Generate(&s2)); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("a different seed gave the same capture")
	}
}

type flowCount struct{ syn, synack, fin, rst, data, echo, echoReply, udp int }

func count(t *testing.T, pkts []Packet) (c flowCount, srcs map[string]int) {
	t.Helper()
	srcs = map[string]int{}
	var p packet.Packet
	for _, g := range pkts {
		p.Decode(g.Data)
		switch p.Proto {
		case header.ProtoTCP:
			f := p.TCPFlags
			switch {
			case f == header.TCPFlagSYN:
				c.syn++
				srcs[p.Src.String()]++
			case f == header.TCPFlagSYN|header.TCPFlagACK:
				c.synack++
			}
			if f&header.TCPFlagFIN != 0 {
				c.fin++
			}
			if f&header.TCPFlagRST != 0 {
				c.rst++
			}
			if p.PayloadOff < len(p.Data) {
				c.data++
			}
		case header.ProtoICMP:
			if p.ICMPType == 8 {
				c.echo++
			} else if p.ICMPType == 0 {
				c.echoReply++
			}
		case header.ProtoUDP:
			c.udp++
		}
	}
	return c, srcs
}

// TestExampleShapes checks what each seed scenario promises.
func TestExampleShapes(t *testing.T) {
	ex := examples(t)
	c, srcs := count(t, Generate(ex["ssh-bruteforce.scn"]))
	if c.syn != 10 || c.synack != 10 || c.fin != 20 || srcs["203.0.113.7"] != 10 {
		t.Errorf("ssh-bruteforce: %+v %v", c, srcs)
	}
	pk := Generate(ex["ssh-bruteforce.scn"])
	if d := pk[len(pk)-1].Time.Sub(pk[0].Time); d > time.Minute {
		t.Errorf("ssh-bruteforce spans %v, want within a minute", d)
	}
	c, srcs = count(t, Generate(ex["http-flood.scn"]))
	if c.syn != 35 || srcs["198.51.100.10"] != 30 || srcs["198.51.100.20"] != 5 {
		t.Errorf("http-flood: %+v %v", c, srcs)
	}
	pk = Generate(ex["ping-knock.scn"])
	var knock int
	var p packet.Packet
	for _, g := range pk {
		p.Decode(g.Data)
		if p.Proto == header.ProtoICMP && p.ICMPType == 8 {
			knock++
			if p.TotalLen != 128 {
				t.Errorf("knock ping length %d, want 128", p.TotalLen)
			}
		}
	}
	c, _ = count(t, pk)
	if knock != 1 || c.syn != 3 || c.synack != 1 {
		t.Errorf("ping-knock: knock %d %+v", knock, c)
	}
	c, srcs = count(t, Generate(ex["syn-flood.scn"]))
	if c.syn != 10010 || len(srcs) < 5000 {
		t.Errorf("syn-flood: %d SYNs from %d sources", c.syn, len(srcs))
	}
}

// TestTCPConnection checks one connection packet by packet: handshake with
// the server's SYN/ACK, data, FIN both ways, sequence numbers consistent.
func TestTCPConnection(t *testing.T) {
	s, err := Parse("host c 10.0.0.1\nhost s 10.0.0.2\nat 1s tcp c -> s:80 send 10 recv 20 hold 5s close sport 40000\n")
	if err != nil {
		t.Fatal(err)
	}
	pk := Generate(s)
	type seg struct {
		from  string
		flags uint8
		len   int
	}
	var got []seg
	var p packet.Packet
	var isnC, isnS uint32
	for i, g := range pk {
		p.Decode(g.Data)
		got = append(got, seg{p.Src.String(), p.TCPFlags, len(p.Data) - p.PayloadOff})
		switch i {
		case 0:
			isnC = p.Seq
			if p.SrcPort != 40000 || p.DstPort != 80 || !g.Time.Equal(DefaultStart.Add(time.Second)) {
				t.Errorf("SYN %d>%d at %v", p.SrcPort, p.DstPort, g.Time)
			}
		case 1:
			isnS = p.Seq
			if p.Ack != isnC+1 {
				t.Errorf("SYN/ACK ack %d, want %d", p.Ack, isnC+1)
			}
		}
		if i == len(pk)-1 && (p.Seq != isnC+12 || p.Ack != isnS+22) {
			t.Errorf("last ACK seq %d ack %d, want %d %d", p.Seq-isnC, p.Ack-isnS, 12, 22)
		}
	}
	const A, S, F, P = header.TCPFlagACK, header.TCPFlagSYN, header.TCPFlagFIN, 0x08
	want := []seg{
		{"10.0.0.1", S, 0}, {"10.0.0.2", S | A, 0}, {"10.0.0.1", A, 0},
		{"10.0.0.1", P | A, 10}, {"10.0.0.2", A, 0},
		{"10.0.0.2", P | A, 20}, {"10.0.0.1", A, 0},
		{"10.0.0.1", F | A, 0}, {"10.0.0.2", F | A, 0}, {"10.0.0.1", A, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d segments %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("segment %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// hold counts from the end of the handshake: FIN at SYN + RTT + hold.
	if d := pk[len(pk)-3].Time.Sub(pk[0].Time); d != time.Millisecond+5*time.Second {
		t.Errorf("FIN %v after SYN, want 5.001s", d)
	}
}

// TestPcapLinkTypes: the writer's output reads back with pcapgo, Ethernet
// with the made-up MACs or raw IP.
func TestPcapLinkTypes(t *testing.T) {
	for _, link := range []Link{Ethernet, RawIP} {
		s, err := Parse("host a 10.0.0.1\nhost b 10.0.0.2\nat 0s ping a -> b count 2\n")
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WritePcap(&buf, link, Generate(s)); err != nil {
			t.Fatal(err)
		}
		r, err := pcapgo.NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		want := layers.LinkTypeEthernet
		if link == RawIP {
			want = layers.LinkTypeRaw
		}
		if r.LinkType() != want {
			t.Fatalf("link type %v, want %v", r.LinkType(), want)
		}
		data, _, err := r.ReadPacketData()
		if err != nil {
			t.Fatal(err)
		}
		if link == Ethernet {
			if !bytes.Equal(data[:12], []byte{2, 0, 10, 0, 0, 2, 2, 0, 10, 0, 0, 1}) || data[12] != 8 || data[13] != 0 {
				t.Fatalf("ethernet header % x", data[:14])
			}
			data = data[14:]
		}
		var p packet.Packet
		if p.Decode(data) != packet.OK || p.TotalLen != 84 {
			t.Fatalf("first packet: %+v", p)
		}
	}
}

// TestParseErrors: mistakes are reported with the line number and the word.
func TestParseErrors(t *testing.T) {
	cases := []struct{ text, want string }{
		{"host a 10.0.0.1\n", "no \"at\" line"},
		{"bogus 1\n", "line 1: unknown statement \"bogus\""},
		{"host a 10.0.0.1\nat 0s tcp a -> 10.0.0.2 close\n", "line 2: tcp needs a destination port"},
		{"host a 10.0.0.1\nat 0s ping a -> b\n", "\"b\" is neither a host nor an address"},
		{"at 0s udp 10.0.0.1 -> 10.0.0.2:53 every 1s rate 5/s\n", "every and rate are exclusive"},
		{"at 0s ping 10.0.0.1 -> 10.0.0.2 close\n", "\"close\" applies to tcp only"},
		{"at 0s tcp 10.0.0.1 -> 10.0.0.2:80 wibble 3\n", "unknown option \"wibble\""},
		{"at 0s tcp 10.0.0.1 -> ::1:80\n", "different address families"},
		{"at soon tcp 10.0.0.1 -> 10.0.0.2:80\n", "bad duration \"soon\""},
		{"at 0s udp 10.0.0.1 -> 10.0.0.2:53 rate 5/fortnight\n", "bad rate unit"},
	}
	for _, c := range cases {
		_, err := Parse(c.text)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.text, err, c.want)
		}
	}
}

// TestSources: sequential sources walk the prefix skipping network and
// broadcast addresses; random ones stay inside it.
func TestSources(t *testing.T) {
	s, err := Parse("host n 192.0.2.0/30\nat 0s synflood n -> 10.0.0.1:80 count 4 src sequential\nat 1s synflood 198.51.100.0/24 -> 10.0.0.1:80 count 200 rate 100/s\n")
	if err != nil {
		t.Fatal(err)
	}
	var p packet.Packet
	var seq []string
	for _, g := range Generate(s) {
		p.Decode(g.Data)
		if g.Time.Before(DefaultStart.Add(time.Second)) {
			seq = append(seq, p.Src.String())
			continue
		}
		if !strings.HasPrefix(p.Src.String(), "198.51.100.") || p.Src.String() == "198.51.100.0" || p.Src.String() == "198.51.100.255" {
			t.Errorf("random source %v outside the usable range", p.Src)
		}
	}
	if strings.Join(seq, " ") != "192.0.2.1 192.0.2.2 192.0.2.1 192.0.2.2" {
		t.Errorf("sequential sources %v", seq)
	}
}
