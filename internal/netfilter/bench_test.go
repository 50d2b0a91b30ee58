package netfilter_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// seedRulesets are the seeds' protective rulesets, each a realistic host
// policy around one of the stateful matches.
var seedRulesets = map[string]string{
	"connlimit": `
-P INPUT DROP
-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p tcp --syn --dport 22 -m connlimit --connlimit-above 3 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp --syn --dport 80 -m connlimit --connlimit-above 20 --connlimit-mask 24 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp -m multiport --dports 22,80 -j ACCEPT`,
	"recent": `
-P INPUT DROP
-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p tcp --dport 22 -m state --state NEW -m recent --name SSHPOOL --rcheck --seconds 3600 --hitcount 5 --rttl -j DROP
-A INPUT -p tcp --dport 22 -m state --state NEW -m recent --name SSHPOOL --set -j ACCEPT
-A INPUT -p tcp --dport 80 -m state --state NEW -m recent --set
-A INPUT -p tcp --dport 80 -m state --state NEW -m recent --update --seconds 100 --hitcount 10 -j DROP
-A INPUT -p tcp --dport 80 -j ACCEPT`,
	"limit": `
-P INPUT DROP
-A INPUT -m state --state INVALID -j LOG --log-prefix "INVALID " --log-ip-options
-A INPUT -m state --state INVALID -j DROP
-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p icmp --icmp-type echo-request -m limit --limit 5/s --limit-burst 20 -j ACCEPT
-A INPUT -p tcp --syn -m hashlimit --hashlimit-above 100/sec --hashlimit-mode srcip --hashlimit-name syn -j DROP
-A INPUT -p tcp --dport 80 -j ACCEPT`,
}

// flowDriver feeds one engine worker established and new TCP flows
// towards port 80 (22 for the SSH rulesets) from rotating clients.
type flowDriver struct {
	h     *harness
	syn   []byte
	ack   []byte
	synAk []byte
	rst   []byte
	p     packet.Packet
	port  uint16
	n     uint32
}

func newFlowDriver(h *harness, dport uint16) *flowDriver {
	d := &flowDriver{h: h, port: dport}
	d.syn = packettest.TCP(packettest.TCPOpts{Src: "192.0.2.1", Dst: server, SrcPort: 1024, DstPort: dport, Flags: packettest.SYN, Seq: 1, Window: 64240})
	d.synAk = packettest.TCP(packettest.TCPOpts{Src: server, Dst: "192.0.2.1", SrcPort: dport, DstPort: 1024, Flags: packettest.SYN | packettest.ACK, Seq: 100, Ack: 2, Window: 64240})
	d.ack = packettest.TCP(packettest.TCPOpts{Src: "192.0.2.1", Dst: server, SrcPort: 1024, DstPort: dport, Flags: packettest.ACK, Seq: 2, Ack: 101, Window: 64240})
	d.rst = packettest.TCP(packettest.TCPOpts{Src: "192.0.2.1", Dst: server, SrcPort: 1024, DstPort: dport, Flags: packettest.RST | packettest.ACK, Seq: 2, Ack: 101, Window: 64240})
	return d
}

func (d *flowDriver) send(path netfilter.Path, b []byte, sport uint16) netfilter.Result {
	d.p.Decode(b)
	if path == netfilter.PathInput {
		d.p.SetSrcPort(sport)
		d.p.InIface, d.p.OutIface = "eth0", ""
	} else {
		d.p.SetDstPort(sport)
		d.p.InIface, d.p.OutIface = "", "eth0"
	}
	d.h.now += 1000
	d.p.TimeNS = d.h.now
	return d.h.w.Process(path, &d.p)
}

// established sends the third packet of an open connection again (an
// ESTABLISHED ACK), the common case in steady state.
func (d *flowDriver) established() { d.send(netfilter.PathInput, d.ack, 1024) }

// newFlow is one short connection from a new source port: SYN in, SYN/ACK
// out, ACK in, and the client's RST, so that the steady state has a bounded
// number of live connections (as a server with short requests has).
func (d *flowDriver) newFlow() {
	d.n++
	sport := uint16(1025 + d.n%60000)
	d.send(netfilter.PathInput, d.syn, sport)
	d.send(netfilter.PathOutput, d.synAk, sport)
	d.send(netfilter.PathInput, d.ack, sport)
	d.send(netfilter.PathInput, d.rst, sport)
}

func (d *flowDriver) open() {
	d.send(netfilter.PathInput, d.syn, 1024)
	d.send(netfilter.PathOutput, d.synAk, 1024)
	d.send(netfilter.PathInput, d.ack, 1024)
}

// TestSeedRulesetsAllocs proves that established and new flows through the
// seed rulesets allocate nothing per packet once tables have warmed up.
func TestSeedRulesetsAllocs(t *testing.T) {
	for name, rules := range seedRulesets {
		t.Run(name, func(t *testing.T) {
			h := load(t, rules)
			d := newFlowDriver(h, 80)
			d.open()
			if n := testing.AllocsPerRun(2000, d.established); n != 0 {
				t.Fatalf("established: %v allocs per packet", n)
			}
			for i := 0; i < 5000; i++ { // warm the conntrack slab and the stores
				d.newFlow()
			}
			h.e.ConntrackTable().Flush()
			if n := testing.AllocsPerRun(2000, d.newFlow); n != 0 {
				t.Fatalf("new flows: %v allocs per 4-packet connection", n)
			}
		})
	}
}

func BenchmarkSeedRulesets(b *testing.B) {
	for _, name := range []string{"connlimit", "recent", "limit"} {
		for _, kind := range []string{"established", "new"} {
			b.Run(name+"/"+kind, func(b *testing.B) {
				h := load(&testing.T{}, seedRulesets[name])
				d := newFlowDriver(h, 80)
				d.open()
				f, per := d.established, 1
				if kind == "new" {
					f, per = d.newFlow, 4
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					f()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*per), "ns/packet")
			})
		}
	}
}

// BenchmarkRules1000 runs packets that traverse 1,000 non-matching rules
// (distinct source networks and ports) before the last one accepts.
func BenchmarkRules1000(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("-P INPUT DROP\n")
	for i := 0; i < 999; i++ {
		fmt.Fprintf(&sb, "-A INPUT -s 10.%d.%d.0/24 -p tcp --dport %d -j ACCEPT\n", i/250, i%250, 1000+i)
	}
	sb.WriteString("-A INPUT -p tcp --dport 80 -j ACCEPT\n")
	h := load(&testing.T{}, sb.String())
	d := newFlowDriver(h, 80)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.established()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
}
