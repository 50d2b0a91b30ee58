package netfilter

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// ctStateMatch matches packets whose conntrack state is in the set; it
// stands in for -m state in engine tests. Its name makes the engine switch
// conntrack on.
type ctStateMatch struct{ states []conntrack.CtState }

func (m *ctStateMatch) Parse(*xt.ParseContext, string, bool, string, []string) error { return nil }
func (m *ctStateMatch) Final(*xt.ParseContext) error                                 { return nil }
func (m *ctStateMatch) Save(b *strings.Builder)                                      { b.WriteString(" --state x") }
func (m *ctStateMatch) List(*strings.Builder, bool)                                  {}
func (m *ctStateMatch) Matches(c *xt.Ctx) bool {
	for _, s := range m.states {
		if c.CT.Info.State == s {
			return true
		}
	}
	return false
}

var stateSpec = &xt.MatchSpec{Name: "state"}

func state(s ...conntrack.CtState) ruleset.MatchEntry {
	return ruleset.MatchEntry{Spec: stateSpec, Match: &ctStateMatch{states: s}}
}

// dnatTarget stands in for -j DNAT --to-destination addr:port.
type dnatTarget struct {
	addr netip.Addr
	port uint16
}

func (d *dnatTarget) Parse(*xt.ParseContext, string, bool, string, []string) error { return nil }
func (d *dnatTarget) Final(*xt.ParseContext) error                                 { return nil }
func (d *dnatTarget) Save(b *strings.Builder)                                      { b.WriteString(" --to x") }
func (d *dnatTarget) List(*strings.Builder, bool)                                  {}
func (d *dnatTarget) Do(c *xt.Ctx) xt.Verdict {
	if err := c.CT.Conn.SetNAT(conntrack.ManipForHook(c.Hook), d.addr, d.port); err != nil {
		return xt.VerdictDrop
	}
	return xt.VerdictAccept
}

func decode(t *testing.T, b []byte, in, out string, now int64) *packet.Packet {
	t.Helper()
	p := &packet.Packet{}
	if st := p.Decode(b); st != packet.OK {
		t.Fatalf("decode: %v", st)
	}
	p.InIface, p.OutIface, p.TimeNS = in, out, now
	return p
}

// TestStatefulHandshake: NEW for the SYN, ESTABLISHED after the SYN/ACK left
// through OUTPUT, INVALID for a stray FIN; a DROP policy with an
// ESTABLISHED,RELATED accept rule lets the handshake through.
func TestStatefulHandshake(t *testing.T) {
	in := &ruleset.Chain{Name: "INPUT", BuiltIn: true, Hook: xt.LocalIn, Policy: ruleset.Drop, Rules: []*ruleset.Rule{
		verdictRule(ruleset.Accept, state(conntrack.Established, conntrack.Related)),
		verdictRule(ruleset.Accept, port(22), state(conntrack.New)),
	}}
	e := New(Config{Seed: 1, Conntrack: conntrack.Config{HashKey: [2]uint64{1, 2}}})
	if err := e.Load(filterWith(ruleset.Drop, in)); err != nil {
		t.Fatal(err)
	}
	if !e.Conntrack() {
		t.Fatal("a state rule must switch conntrack on")
	}
	w := e.NewWorker(nil)
	const cli, srv = "10.0.0.1", "10.0.0.2"
	syn := packettest.TCP(packettest.TCPOpts{Src: cli, Dst: srv, SrcPort: 40000, DstPort: 22, Flags: packettest.SYN, Seq: 100, Window: 64240})
	r := w.Process(PathInput, decode(t, syn, "eth0", "", 1e9))
	if r.Verdict != xt.VerdictAccept || r.CT.State != conntrack.New || r.Decision.Rule != 2 {
		t.Fatalf("SYN: %+v", r)
	}
	synack := packettest.TCP(packettest.TCPOpts{Src: srv, Dst: cli, SrcPort: 22, DstPort: 40000, Flags: packettest.SYN | packettest.ACK, Seq: 500, Ack: 101, Window: 64240})
	if r := w.Process(PathOutput, decode(t, synack, "", "eth0", 1e9+1e6)); r.Verdict != xt.VerdictAccept || r.CT.State != conntrack.Established {
		t.Fatalf("SYN/ACK: %+v", r)
	}
	ack := packettest.TCP(packettest.TCPOpts{Src: cli, Dst: srv, SrcPort: 40000, DstPort: 22, Flags: packettest.ACK, Seq: 101, Ack: 501, Window: 64240})
	if r := w.Process(PathInput, decode(t, ack, "eth0", "", 1e9+2e6)); r.Verdict != xt.VerdictAccept || r.CT.State != conntrack.Established || r.Decision.Rule != 1 {
		t.Fatalf("ACK: %+v", r)
	}
	fin := packettest.TCP(packettest.TCPOpts{Src: "10.9.9.9", Dst: srv, SrcPort: 1, DstPort: 22, Flags: packettest.FIN, Seq: 1})
	if r := w.Process(PathInput, decode(t, fin, "eth0", "", 2e9)); r.Verdict != xt.VerdictDrop || r.CT.State != conntrack.Invalid || r.Decision.Rule != 0 {
		t.Fatalf("stray FIN: %+v", r)
	}
	if n := e.ConntrackTable().Count(); n != 1 {
		t.Fatalf("conntrack entries %d, want 1 (the stray FIN leaves none)", n)
	}
}

// TestDNATRoundTrip: the first packet traverses nat and gets a binding;
// later packets are translated without traversing nat (rule counter 1),
// replies are translated back at the reverse hook (spec §1.4).
func TestDNATRoundTrip(t *testing.T) {
	dnat := &ruleset.Rule{Kind: ruleset.TargetExt, TSpec: &xt.TargetSpec{Name: "DNAT"},
		Target: &dnatTarget{addr: netip.MustParseAddr("10.0.0.3"), port: 8080}, Matches: []ruleset.MatchEntry{port(80)}}
	rs := &ruleset.Ruleset{Family: xt.IPv4, Tables: []*ruleset.Table{{Name: "nat", Chains: []*ruleset.Chain{
		{Name: "PREROUTING", BuiltIn: true, Hook: xt.PreRouting, Policy: ruleset.Accept, Rules: []*ruleset.Rule{dnat}},
		{Name: "INPUT", BuiltIn: true, Hook: xt.LocalIn, Policy: ruleset.Accept},
		{Name: "OUTPUT", BuiltIn: true, Hook: xt.LocalOut, Policy: ruleset.Accept},
		{Name: "POSTROUTING", BuiltIn: true, Hook: xt.PostRouting, Policy: ruleset.Accept},
	}}}}
	e := New(Config{Seed: 1, Conntrack: conntrack.Config{HashKey: [2]uint64{1, 2}}})
	if err := e.Load(rs); err != nil {
		t.Fatal(err)
	}
	w := e.NewWorker(nil)
	for i := 0; i < 5; i++ {
		b := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 5000, DstPort: 80, Payload: []byte("hi")})
		p := decode(t, b, "eth0", "eth1", int64(i+1)*1e9)
		p.DstPort = 80
		if r := w.Process(PathForward, p); r.Verdict != xt.VerdictAccept {
			t.Fatalf("packet %d: %+v", i, r)
		}
		if p.Dst != netip.MustParseAddr("10.0.0.3") || p.DstPort != 8080 {
			t.Fatalf("packet %d not translated: %v:%d", i, p.Dst, p.DstPort)
		}
		var chk packet.Packet
		if chk.Decode(p.Data) != packet.OK || chk.DstPort != 8080 {
			t.Fatalf("rewritten bytes do not decode to the new port")
		}
	}
	if c := e.Ruleset().Tables[0].Chains[0].Rules[0].Counters.Packets; c != 1 {
		t.Fatalf("nat rule counter %d, want 1 (only the first packet traverses nat)", c)
	}
	reply := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.3", Dst: "10.0.0.1", SrcPort: 8080, DstPort: 5000, Payload: []byte("yo")})
	p := decode(t, reply, "eth1", "eth0", 6e9)
	if r := w.Process(PathForward, p); r.Verdict != xt.VerdictAccept || r.CT.State != conntrack.Established {
		t.Fatalf("reply: %+v", r)
	}
	if p.Src != netip.MustParseAddr("10.0.0.2") || p.SrcPort != 80 {
		t.Fatalf("reply not translated back: %v:%d", p.Src, p.SrcPort)
	}
}

// TestStatefulAllocs: established and new flows through a stateful ruleset
// allocate nothing per packet in steady state.
func TestStatefulAllocs(t *testing.T) {
	in := &ruleset.Chain{Name: "INPUT", BuiltIn: true, Hook: xt.LocalIn, Policy: ruleset.Drop, Rules: []*ruleset.Rule{
		verdictRule(ruleset.Accept, state(conntrack.Established, conntrack.Related)),
		verdictRule(ruleset.Accept, port(53), state(conntrack.New)),
	}}
	e := New(Config{Seed: 1, Conntrack: conntrack.Config{HashKey: [2]uint64{1, 2}, Max: 4096}})
	if err := e.Load(filterWith(ruleset.Drop, in)); err != nil {
		t.Fatal(err)
	}
	w := e.NewWorker(nil)
	b := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 5000, DstPort: 53})
	p := decode(t, b, "eth0", "", 1e9)
	w.Process(PathInput, p)
	if n := testing.AllocsPerRun(1000, func() { w.Process(PathInput, p) }); n != 0 {
		t.Fatalf("established flow: %v allocs per packet", n)
	}
	// New flows: each run uses a fresh source port; entries are recycled
	// once the table has warmed up its slab.
	sport := uint16(1000)
	newFlow := func() {
		sport++
		p.Decode(b)
		p.SetSrcPort(sport)
		p.InIface = "eth0"
		p.TimeNS += 1e6
		w.Process(PathInput, p)
	}
	for i := 0; i < 3000; i++ {
		newFlow()
	}
	e.ConntrackTable().Flush()
	if n := testing.AllocsPerRun(1000, newFlow); n != 0 {
		t.Fatalf("new flows: %v allocs per packet", n)
	}
}

// TestDNATICMPErrorTranslation: an ICMP error the real server sends about a
// DNATed datagram is RELATED and reaches the client looking as if the
// public address had sent it: outer source and quoted destination are both
// translated back, and the ICMP checksum stays valid.
func TestDNATICMPErrorTranslation(t *testing.T) {
	dnat := &ruleset.Rule{Kind: ruleset.TargetExt, TSpec: &xt.TargetSpec{Name: "DNAT"},
		Target: &dnatTarget{addr: netip.MustParseAddr("10.0.0.3"), port: 8080}}
	rs := &ruleset.Ruleset{Family: xt.IPv4, Tables: []*ruleset.Table{{Name: "nat", Chains: []*ruleset.Chain{
		{Name: "PREROUTING", BuiltIn: true, Hook: xt.PreRouting, Policy: ruleset.Accept, Rules: []*ruleset.Rule{dnat}},
		{Name: "INPUT", BuiltIn: true, Hook: xt.LocalIn, Policy: ruleset.Accept},
		{Name: "OUTPUT", BuiltIn: true, Hook: xt.LocalOut, Policy: ruleset.Accept},
		{Name: "POSTROUTING", BuiltIn: true, Hook: xt.PostRouting, Policy: ruleset.Accept},
	}}}}
	e := New(Config{Seed: 1, Conntrack: conntrack.Config{HashKey: [2]uint64{1, 2}}})
	if err := e.Load(rs); err != nil {
		t.Fatal(err)
	}
	w := e.NewWorker(nil)
	req := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 5000, DstPort: 53, Payload: []byte("q")})
	p := decode(t, req, "eth0", "eth1", 1e9)
	if r := w.Process(PathForward, p); r.Verdict != xt.VerdictAccept || p.Dst != netip.MustParseAddr("10.0.0.3") {
		t.Fatalf("request: %+v dst %v", r, p.Dst)
	}
	// The server answers the translated datagram with port unreachable.
	icmpErr := packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.0.0.3", Dst: "10.0.0.1", Type: 3, Code: 3, Original: append([]byte(nil), p.Data...)})
	q := decode(t, icmpErr, "eth1", "eth0", 2e9)
	r := w.Process(PathForward, q)
	if r.Verdict != xt.VerdictAccept || r.CT.State != conntrack.Related {
		t.Fatalf("ICMP error: %+v", r)
	}
	if q.Src != netip.MustParseAddr("10.0.0.2") {
		t.Fatalf("outer source %v, want the public 10.0.0.2", q.Src)
	}
	var in packet.Packet
	if !q.DecodeEmbedded(&in) || in.Dst != netip.MustParseAddr("10.0.0.2") || in.DstPort != 53 {
		t.Fatalf("quoted datagram dst %v:%d, want 10.0.0.2:53", in.Dst, in.DstPort)
	}
	icmp := q.ICMP()
	if icmp.CalculateChecksum(0) != icmp.Checksum() {
		t.Fatal("outer ICMP checksum not valid after translation")
	}
	if !header.IPv4(in.Data).ChecksumValid() {
		t.Fatal("quoted IP header checksum not valid after translation")
	}
}
