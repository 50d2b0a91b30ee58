package replay

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/scenario"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// benchRules is a 20-rule ruleset in iptables-save format, using the
// generic rule part and the extensions whose runtime exists today
// (iprange, mark, tos, comment); a user chain is jumped to for TCP.
const benchRules = `*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:TCPIN - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -s 192.168.0.0/16 -j DROP
-A INPUT -s 172.16.0.0/12 -j DROP
-A INPUT -m iprange --src-range 198.18.0.0-198.19.255.255 -j DROP
-A INPUT -m mark --mark 0x1/0x1 -j DROP
-A INPUT -m tos --tos 0x10/0x3f -j ACCEPT
-A INPUT -p tcp -j TCPIN
-A INPUT -p udp -s 192.0.2.50 -j ACCEPT
-A INPUT -p icmp -m comment --comment "pings" -j ACCEPT
-A INPUT -d 10.0.0.99 -j DROP
-A TCPIN -s 203.0.113.0/24 -j DROP
-A TCPIN -s 100.64.0.0/10 -m iprange --dst-range 10.0.0.1-10.0.0.9 -j ACCEPT
-A TCPIN -s 192.0.2.0/24 -j ACCEPT
-A TCPIN -m mark --mark 0x2 -j ACCEPT
-A TCPIN -j RETURN
-A FORWARD -i eth0 -o eth0 -j DROP
-A FORWARD -s 10.0.0.0/8 -j ACCEPT
-A OUTPUT -o lo -j ACCEPT
-A OUTPUT -d 192.168.0.0/16 -j DROP
-A OUTPUT -m tos --tos 0x08 -j ACCEPT
COMMIT
`

func benchRuleset(t testing.TB, text string) *ruleset.Ruleset {
	t.Helper()
	rs, err := iptables.Restore(ruleset.New(xt.IPv4), builtin.Registry(), strings.NewReader(text), iptables.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tb := range rs.Tables {
		for _, c := range tb.Chains {
			n += len(c.Rules)
		}
	}
	if n != 20 {
		t.Fatalf("bench ruleset has %d rules, want 20", n)
	}
	return rs
}

// benchScenario: a SYN flood from a /10 plus ordinary connections, pings
// and UDP, about 1,000,000 packets.
const benchScenario = `seed 1
host bots   100.64.0.0/10
host client 192.0.2.50
host server 10.0.0.2
at 0s synflood bots -> server:80 count 900000 rate 50000/s src random
at 0s tcp client -> server:443 count 5000 every 3ms send 200 recv 800 close
at 0s ping client -> server count 10000 every 1ms
at 0s udp client -> server:53 count 10000 every 1ms reply 100
`

// BenchmarkReplay replays a generated ~1M-packet Ethernet capture (written
// to a temp dir) through the 20-rule ruleset and reports packets per second
// and allocations per packet, reader included.
func BenchmarkReplay(b *testing.B) {
	s, err := scenario.Parse(benchScenario)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "bench.pcap")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	pkts := scenario.Generate(s)
	if err := scenario.WritePcap(bw, s.Link, pkts); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	n := len(pkts)
	pkts = nil
	b.Run("stateless", func(b *testing.B) { benchReplay(b, benchRuleset(b, benchRules), path, n) })
	b.Run("stateful", func(b *testing.B) { benchReplay(b, benchRuleset(b, benchStatefulRules), path, n) })
}

// benchStatefulRules is a 20-rule host firewall built from the seeds:
// conntrack state, connlimit, recent, limit, hashlimit, LOG and REJECT.
const benchStatefulRules = `*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:SSH - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m state --state INVALID -j DROP
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -s 192.168.0.0/16 -j DROP
-A INPUT -p tcp --syn -m hashlimit --hashlimit-above 200/sec --hashlimit-burst 400 --hashlimit-mode srcip --hashlimit-name syn -j DROP
-A INPUT -p tcp --syn --dport 80 -m connlimit --connlimit-above 20 --connlimit-mask 24 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp --dport 80 -m state --state NEW -m recent --name HTTP --set
-A INPUT -p tcp --dport 80 -m state --state NEW -m recent --name HTTP --update --seconds 60 --hitcount 100 -j DROP
-A INPUT -p tcp --dport 80 -j ACCEPT
-A INPUT -p tcp --dport 443 -m state --state NEW -m limit --limit 1000/s --limit-burst 2000 -j ACCEPT
-A INPUT -p tcp --dport 22 -j SSH
-A INPUT -p icmp --icmp-type echo-request -m limit --limit 5/s --limit-burst 20 -j ACCEPT
-A INPUT -p udp --dport 53 -j ACCEPT
-A INPUT -m limit --limit 10/min -j LOG --log-prefix "DROP "
-A SSH -m recent --name SSHPOOL --rcheck --seconds 3600 --hitcount 5 -j DROP
-A SSH -m recent --name SSHPOOL --set -j ACCEPT
-A FORWARD -m state --state RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -s 10.0.0.0/8 -j ACCEPT
-A OUTPUT -o lo -j ACCEPT
-A OUTPUT -m state --state INVALID -j DROP
COMMIT
`

func benchReplay(b *testing.B, rs *ruleset.Ruleset, path string, n int) {
	b.ReportAllocs()
	b.ResetTimer()
	var total uint64
	start := time.Now()
	for range b.N {
		e := netfilter.New(netfilter.Config{Seed: 1})
		if err := e.Load(rs); err != nil {
			b.Fatal(err)
		}
		r := New(e, Config{Local: prefixes("10.0.0.2")})
		if err := r.ReplayFile(path); err != nil {
			b.Fatal(err)
		}
		if st := r.Stats(); st.Processed != uint64(n) {
			b.Fatalf("processed %d of %d", st.Processed, n)
		}
		total += uint64(n)
	}
	el := time.Since(start)
	b.ReportMetric(float64(total)/el.Seconds(), "pkts/s")
	b.ReportMetric(float64(n), "pkts/op")
}
