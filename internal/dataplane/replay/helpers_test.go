package replay

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/scenario"
	"github.com/uptables/uptables/internal/xt"
)

// The match and target runtimes (tcp, REJECT, LOG) are being written
// elsewhere; these fakes stand in for them with the same contract: a
// stateless match, a REJECT that emits the kernel-shaped reply through
// xt.Emitter and drops, a LOG that emits one line and continues.

type dportMatch struct{ port uint16 }

func (m *dportMatch) Parse(*xt.ParseContext, string, bool, string, []string) error { return nil }
func (m *dportMatch) Final(*xt.ParseContext) error                                 { return nil }
func (m *dportMatch) Save(b *strings.Builder) {
	b.WriteString(" --dport ")
	b.WriteString(strconv.Itoa(int(m.port)))
}
func (m *dportMatch) List(*strings.Builder, bool) {}
func (m *dportMatch) Matches(c *xt.Ctx) bool      { return c.P.Status == 0 && c.P.DstPort == m.port }

var dportSpec = &xt.MatchSpec{Name: "dport"}

func dport(p uint16) ruleset.MatchEntry {
	return ruleset.MatchEntry{Spec: dportSpec, Match: &dportMatch{port: p}}
}

// stateSpec makes the engine switch conntrack on (any "state" rule does, as
// in a kernel namespace); the fake never matches, so it only counts.
type neverMatch struct{}

func (neverMatch) Parse(*xt.ParseContext, string, bool, string, []string) error { return nil }
func (neverMatch) Final(*xt.ParseContext) error                                 { return nil }
func (neverMatch) Save(b *strings.Builder)                                      { b.WriteString(" --state INVALID") }
func (neverMatch) List(*strings.Builder, bool)                                  {}
func (neverMatch) Matches(*xt.Ctx) bool                                         { return false }

var stateSpec = &xt.MatchSpec{Name: "state"}

func stateNever() ruleset.MatchEntry { return ruleset.MatchEntry{Spec: stateSpec, Match: neverMatch{}} }

type fakeReject struct{ tcpReset bool }

func (f *fakeReject) Parse(*xt.ParseContext, string, bool, string, []string) error { return nil }
func (f *fakeReject) Final(*xt.ParseContext) error                                 { return nil }
func (f *fakeReject) Save(b *strings.Builder) {
	if f.tcpReset {
		b.WriteString(" --reject-with tcp-reset")
	} else {
		b.WriteString(" --reject-with icmp-port-unreachable")
	}
}
func (f *fakeReject) List(*strings.Builder, bool) {}

var rejectBuf [1280]byte

func (f *fakeReject) Do(c *xt.Ctx) xt.Verdict {
	var n int
	if f.tcpReset {
		n = c.P.WriteTCPReset(rejectBuf[:], 64)
	} else {
		n = c.P.WriteICMPError(rejectBuf[:], 3, 3, 0, c.P.Dst, 0x1234, 64)
	}
	if n > 0 {
		c.Out.Reply(c, rejectBuf[:n])
	}
	return xt.VerdictDrop
}

var rejectSpec = &xt.TargetSpec{Name: "REJECT"}

type fakeLog struct{ prefix string }

func (f *fakeLog) Parse(*xt.ParseContext, string, bool, string, []string) error { return nil }
func (f *fakeLog) Final(*xt.ParseContext) error                                 { return nil }
func (f *fakeLog) Save(b *strings.Builder)                                      { b.WriteString(" --log-prefix " + f.prefix) }
func (f *fakeLog) List(*strings.Builder, bool)                                  {}

var logLine [256]byte

func (f *fakeLog) Do(c *xt.Ctx) xt.Verdict {
	b := append(logLine[:0], f.prefix...)
	b = append(b, "IN="...)
	b = append(b, c.P.InIface...)
	b = append(b, " OUT="...)
	b = append(b, c.P.OutIface...)
	b = append(b, " SRC="...)
	b = c.P.Src.AppendTo(b)
	b = append(b, " DST="...)
	b = c.P.Dst.AppendTo(b)
	b = append(b, ' ')
	c.Out.Log(c, 4, b)
	return xt.Continue
}

var logSpec = &xt.TargetSpec{Name: "LOG"}

func accept(m ...ruleset.MatchEntry) *ruleset.Rule {
	return &ruleset.Rule{Kind: ruleset.TargetVerdict, Verdict: ruleset.Accept, Matches: m}
}

func drop(m ...ruleset.MatchEntry) *ruleset.Rule {
	return &ruleset.Rule{Kind: ruleset.TargetVerdict, Verdict: ruleset.Drop, Matches: m}
}

func count(proto uint8, m ...ruleset.MatchEntry) *ruleset.Rule {
	return &ruleset.Rule{Proto: proto, Matches: m}
}

func reject(proto uint8, tcpReset bool, m ...ruleset.MatchEntry) *ruleset.Rule {
	return &ruleset.Rule{Proto: proto, Kind: ruleset.TargetExt, Target: &fakeReject{tcpReset: tcpReset}, TSpec: rejectSpec, Matches: m}
}

func logRule(prefix string, m ...ruleset.MatchEntry) *ruleset.Rule {
	return &ruleset.Rule{Kind: ruleset.TargetExt, Target: &fakeLog{prefix: prefix}, TSpec: logSpec, Matches: m}
}

// filter builds a filter table with the given chains (built-ins by name
// replace the defaults, others are user chains).
func filter(chains ...*ruleset.Chain) *ruleset.Ruleset {
	t := &ruleset.Table{Name: "filter", Chains: []*ruleset.Chain{
		{Name: "INPUT", BuiltIn: true, Hook: xt.LocalIn, Policy: ruleset.Accept},
		{Name: "FORWARD", BuiltIn: true, Hook: xt.Forward, Policy: ruleset.Accept},
		{Name: "OUTPUT", BuiltIn: true, Hook: xt.LocalOut, Policy: ruleset.Accept},
	}}
	for _, c := range chains {
		replaced := false
		for i, b := range t.Chains {
			if b.Name == c.Name {
				c.BuiltIn, c.Hook = true, b.Hook
				t.Chains[i] = c
				replaced = true
			}
		}
		if !replaced {
			t.Chains = append(t.Chains, c)
		}
	}
	return &ruleset.Ruleset{Family: xt.IPv4, Tables: []*ruleset.Table{t}}
}

func engine(t testing.TB, rs *ruleset.Ruleset) *netfilter.Engine {
	t.Helper()
	e := netfilter.New(netfilter.Config{Seed: 1})
	if err := e.Load(rs); err != nil {
		t.Fatal(err)
	}
	return e
}

// counters returns the packet counters of chain's rules, then the policy's.
func counters(e *netfilter.Engine, table, chain string) []uint64 {
	for _, tb := range e.Ruleset().Tables {
		if tb.Name != table {
			continue
		}
		for _, c := range tb.Chains {
			if c.Name == chain {
				var out []uint64
				for _, r := range c.Rules {
					out = append(out, r.Counters.Packets)
				}
				return append(out, c.Counters.Packets)
			}
		}
	}
	return nil
}

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		p, err := ParsePrefix(x)
		if err != nil {
			panic(err)
		}
		out = append(out, p)
	}
	return out
}

// frame is one test frame: an IP packet (or a whole non-IP frame) and time.
type frame struct {
	ip    []byte // from the IP header on
	raw   []byte // a complete link-layer frame (Ethernet only), instead of ip
	etype uint16 // for ip: the EtherType (default IPv4/IPv6 by version)
	at    time.Duration
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// linkFrame wraps ip in the link header of lt.
func linkFrame(lt layers.LinkType, f frame) []byte {
	if f.raw != nil {
		return f.raw
	}
	et := f.etype
	if et == 0 {
		et = 0x0800
		if f.ip[0]>>4 == 6 {
			et = 0x86dd
		}
	}
	switch lt {
	case layers.LinkTypeEthernet:
		b := scenario.EthernetFrame(nil, f.ip)
		binary.BigEndian.PutUint16(b[12:], et)
		return b
	case layers.LinkTypeLinuxSLL:
		h := make([]byte, 16)
		binary.BigEndian.PutUint16(h[0:], 0) // to us
		binary.BigEndian.PutUint16(h[2:], 1) // ARPHRD_ETHER
		binary.BigEndian.PutUint16(h[4:], 6)
		copy(h[6:], []byte{2, 0, 1, 2, 3, 4})
		binary.BigEndian.PutUint16(h[14:], et)
		return append(h, f.ip...)
	case layers.LinkTypeLinuxSLL2:
		h := make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], et)
		binary.BigEndian.PutUint32(h[4:], 2) // ifindex
		binary.BigEndian.PutUint16(h[8:], 1) // ARPHRD_ETHER
		h[10] = 0
		h[11] = 6
		copy(h[12:], []byte{2, 0, 1, 2, 3, 4})
		return append(h, f.ip...)
	}
	return f.ip
}

func pcapBytes(t testing.TB, lt layers.LinkType, frames []frame) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriterNanos(&buf)
	if err := w.WriteFileHeader(65535, lt); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		d := linkFrame(lt, f)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: t0.Add(f.at), CaptureLength: len(d), Length: len(d)}, d); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func pcapngBytes(t testing.TB, lt layers.LinkType, ifname string, frames []frame) []byte {
	t.Helper()
	var buf bytes.Buffer
	intf := pcapgo.DefaultNgInterface
	intf.Name = ifname
	intf.LinkType = lt
	w, err := pcapgo.NewNgWriterInterface(&buf, intf, pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		d := linkFrame(lt, f)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: t0.Add(f.at), CaptureLength: len(d), Length: len(d)}, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// recorder is an Observer keeping a copy of what tests look at.
type recorder struct {
	paths   []netfilter.Path
	skips   []Skip
	ifaces  []string
	replies []int
}

func (r *recorder) Event(ev *Event) error {
	r.skips = append(r.skips, ev.Skip)
	if ev.Skip != SkipNone {
		r.paths = append(r.paths, 255)
		r.ifaces = append(r.ifaces, "")
		r.replies = append(r.replies, 0)
		return nil
	}
	r.paths = append(r.paths, ev.Path)
	r.ifaces = append(r.ifaces, ev.Packet.InIface+">"+ev.Packet.OutIface)
	r.replies = append(r.replies, len(ev.Replies))
	return nil
}
