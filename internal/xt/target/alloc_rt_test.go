package target

import (
	"testing"

	"github.com/uptables/uptables/internal/conntrack"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

// TestRuntimeAllocs proves that Do allocates nothing for every target
// (REJECT has its own test with the rate limiter in play).
func TestRuntimeAllocs(t *testing.T) {
	env := testEnv("mangle", xt.PreRouting, xt.PostRouting)
	env.IfaceAddr = ifaceAddrs
	tbl := newCTTable(t)
	syn := packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN, Options: packettest.MSS(1460)})
	bare := packettest.TCP(packettest.TCPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2, Flags: packettest.SYN})
	type tc struct {
		name   string
		target xt.PacketTarget
		pkt    []byte
		hook   xt.Hook
		ct     bool
	}
	cases := []tc{
		{"LOG", rt(t, env, 6, "LOG", "--log-prefix", "x ", "--log-tcp-options", "--log-tcp-sequence"), syn, xt.PreRouting, false},
		{"NFLOG", rt(t, env, 6, "NFLOG", "--nflog-group", "3"), syn, xt.PreRouting, false},
		{"MARK", rt(t, env, 6, "MARK", "--set-mark", "5"), syn, xt.PreRouting, false},
		{"CONNMARK save", rt(t, env, 6, "CONNMARK", "--save-mark", "--left-shift-mark", "2"), syn, xt.PreRouting, true},
		{"CONNMARK restore", rt(t, env, 6, "CONNMARK", "--restore-mark"), syn, xt.PreRouting, true},
		{"NOTRACK", rt(t, env, 6, "NOTRACK"), syn, xt.PreRouting, false},
		{"CT zone", rt(t, env, 6, "CT", "--zone", "3"), syn, xt.PreRouting, false},
		{"TTL", rt(t, env, 6, "TTL", "--ttl-dec", "1"), syn, xt.PreRouting, false},
		{"DSCP", rt(t, env, 6, "DSCP", "--set-dscp", "10"), syn, xt.PreRouting, false},
		{"TOS", rt(t, env, 6, "TOS", "--xor-tos", "4"), syn, xt.PreRouting, false},
		{"TCPMSS set", rt(t, env, 6, "TCPMSS", "--set-mss", "1000"), syn, xt.PostRouting, false},
		{"TCPMSS clamp", rt(t, env, 6, "TCPMSS", "--clamp-mss-to-pmtu"), syn, xt.PostRouting, false},
		{"TCPMSS insert", rt(t, env, 6, "TCPMSS", "--set-mss", "1000"), bare, xt.PostRouting, false},
		{"NFQUEUE", rt(t, env, 6, "NFQUEUE", "--queue-balance", "0:7"), syn, xt.PreRouting, false},
		{"TRACE", rt(t, env, 6, "TRACE"), syn, xt.PreRouting, false},
		{"DNAT", rt(t, env, 6, "DNAT", "--to-destination", "192.168.0.1-192.168.0.9:80-90"), syn, xt.PreRouting, true},
		{"SNAT", rt(t, env, 6, "SNAT", "--to-source", "1.2.3.4", "--random"), syn, xt.PostRouting, true},
		{"MASQUERADE", rt(t, env, 6, "MASQUERADE"), syn, xt.PostRouting, true},
		{"REDIRECT", rt(t, env, 6, "REDIRECT", "--to-ports", "8080"), syn, xt.PreRouting, true},
	}
	out := &nflogCounter{}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			buf := make([]byte, len(k.pkt), len(k.pkt)+8)
			var p packet.Packet
			c := &xt.Ctx{Out: out, Hook: k.hook, Conntrack: tbl}
			port := uint16(0)
			tracked := 0
			allocs := testing.AllocsPerRun(100, func() {
				copy(buf, k.pkt)
				p.Decode(buf[:len(k.pkt)])
				p.InIface, p.OutIface, p.TimeNS = "eth1", "eth0", 1e9
				if k.ct {
					// A new connection each time, so NAT binds every run.
					port++
					p.SetSrcPort(port)
					c.CT = tbl.In(&p, xt.PreRouting)
				}
				c.P = &p
				c.NoTrack = false
				k.target.Do(c)
				if k.ct {
					if c.CT.Conn != nil && (c.CT.Conn.Status()&(conntrack.StatusSrcNATDone|conntrack.StatusDstNATDone) != 0 || k.name[0] == 'C') {
						tracked++
					}
					tbl.Release(&c.CT)
				}
			})
			if allocs != 0 {
				t.Errorf("%s: %.1f allocations per packet", k.name, allocs)
			}
			if k.ct && tracked < 100 {
				t.Errorf("%s: only %d runs had a connection (and a binding)", k.name, tracked)
			}
		})
	}
	if out.nflogs == 0 || out.logs == 0 {
		t.Errorf("emitter saw %d log lines, %d nflog packets", out.logs, out.nflogs)
	}
}

type nflogCounter struct {
	countEmitter
	nflogs int
}

func (n *nflogCounter) NFLog(*xt.Ctx, uint16, string, int, uint16) { n.nflogs++ }
