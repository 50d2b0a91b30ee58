package iptables_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// seedLikeRules are rule specifications in the style of the seed posts
// (connlimit, recent, limit, state, LOG, REJECT, tcp flags ...), %d is
// replaced by a per-rule number so that every rule is distinct.
var seedLikeRules = []string{
	`-s 10.%d.0.0/16 -p tcp -m tcp --dport 80 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 20 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with tcp-reset`,
	`-s 10.%d.0.0/16 -p tcp -m tcp --dport 22 -m state --state NEW -m recent --update --seconds 60 --hitcount 4 --name SSH --mask 255.255.255.255 --rsource -j DROP`,
	`-s 10.%d.0.0/16 -p icmp -m icmp --icmp-type 8 -m limit --limit 5/sec --limit-burst 20 -j ACCEPT`,
	`-s 10.%d.0.0/16 -m state --state RELATED,ESTABLISHED -j ACCEPT`,
	`-s 10.%d.0.0/16 -m state --state INVALID -j LOG --log-prefix "INVALID " --log-ip-options`,
	`-s 10.%d.0.0/16 -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j DROP`,
	`-s 10.%d.0.0/16 -p udp -m udp --dport 53 -m comment --comment "dns %d" -j ACCEPT`,
	`-d 192.168.%d.0/24 -p tcp -m multiport --dports 80,443,8080 -j ACCEPT`,
	`-s 10.%d.0.0/16 -p tcp -m tcp --dport 443 -m hashlimit --hashlimit-above 10/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name hl -j DROP`,
	`-s 10.%d.0.0/16 -j check`,
}

// GenSaveFile returns an iptables-save file with n rules: filter INPUT and
// a user chain, plus nat and mangle rules (one in twenty), seed style.
func GenSaveFile(n int) string {
	var filter, nat, mangle strings.Builder
	filter.WriteString("*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:check - [0:0]\n")
	nat.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n")
	mangle.WriteString("*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n")
	for i := 0; i < n; i++ {
		k := i % 256
		switch {
		case i%20 == 19:
			fmt.Fprintf(&nat, "-A PREROUTING -d 1.1.%d.%d/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.%d.1:8080\n", i/256%256, k, k)
		case i%20 == 18:
			fmt.Fprintf(&mangle, "-A POSTROUTING -o ppp%d -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu\n", k)
		case i%20 == 17:
			fmt.Fprintf(&filter, "-A check -s 172.16.%d.%d/32 -m recent --set --name SSHOPEN --mask 255.255.255.255 --rsource\n", i/256%256, k)
		default:
			r := seedLikeRules[i%len(seedLikeRules)]
			if strings.Count(r, "%d") == 2 {
				r = fmt.Sprintf(r, k, i)
			} else {
				r = fmt.Sprintf(r, k)
			}
			filter.WriteString("-A INPUT " + r + "\n")
		}
	}
	filter.WriteString("COMMIT\n")
	nat.WriteString("COMMIT\n")
	mangle.WriteString("COMMIT\n")
	return mangle.String() + filter.String() + nat.String()
}

// BenchmarkRestore50k parses and validates a 50,000-rule save file, as
// `iptables-restore --test` does. heap-MB is the live heap holding the
// loaded rule set.
func BenchmarkRestore50k(b *testing.B) {
	reg := builtin.Registry()
	file := GenSaveFile(50000)
	b.SetBytes(int64(len(file)))
	b.ReportAllocs()
	var rs *ruleset.Ruleset
	for b.Loop() {
		var err error
		rs, err = iptables.Restore(ruleset.New(xt.IPv4), reg, strings.NewReader(file), iptables.RestoreOptions{})
		if err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/1e6, "heap-MB")
	runtime.KeepAlive(rs)
}

func TestGenSaveFileLoads(t *testing.T) {
	rs, err := iptables.Restore(ruleset.New(xt.IPv4), builtin.Registry(), strings.NewReader(GenSaveFile(400)), iptables.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tb := range rs.Tables {
		for _, c := range tb.Chains {
			n += len(c.Rules)
		}
	}
	if n != 400 {
		t.Fatalf("%d rules loaded, want 400", n)
	}
}
