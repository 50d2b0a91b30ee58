package iptables

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// TestParallelRestoreSameAsSequential: parsing a big file on several
// CPUs (and through the template cache) gives the same rule set, and the
// same error on the same line, as the plain sequential reader.
func TestParallelRestoreSameAsSequential(t *testing.T) {
	reg := builtin.Registry()
	var b strings.Builder
	b.WriteString("*filter\n:INPUT DROP [0:0]\n:u - [0:0]\n")
	for i := 0; i < 3*preparseMin; i++ {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "-A INPUT -s 10.%d.%d.0/24 -p tcp --dport %d -j ACCEPT\n", i/256%256, i%256, i%1000+1)
		case 1:
			if i%10 == 1 {
				fmt.Fprintf(&b, "[%d:%d] -A u -s 10.9.%d.%d -j ACCEPT\n", i, i, i/256%256, i%256)
				break
			}
			fmt.Fprintf(&b, "[%d:%d] -A u -d 192.168.%d.%d,10.0.0.%d -m comment --comment \"c %d\" -j RETURN\n", i, 2*i, i/256%256, i%256, i%256, i%7)
		case 2:
			fmt.Fprintf(&b, "-A INPUT -s 10.0.%d.%d -j u\n", i/256%256, i%256)
		case 3:
			if i%10 == 3 {
				fmt.Fprintf(&b, "-A u -s 10.9.%d.%d -j ACCEPT\n", i/256%256, i%256)
				break
			}
			fmt.Fprintf(&b, "-I u 1 -i eth%d -p udp --sport 53 -j ACCEPT\n", i%4)
		default:
			fmt.Fprintf(&b, "-A INPUT --src 172.16.%d.%d -p icmp --icmp-type 8 -j DROP\n", i/256%256, i%256)
		}
	}
	good := b.String() + "COMMIT\n"
	// counters must belong to their own line, never to the line whose
	// parse became the template
	rs, err := restore(ruleset.New(xt.IPv4), reg, strings.NewReader(good), RestoreOptions{Counters: true}, true)
	if err != nil {
		t.Fatal(err)
	}
	var sv bytes.Buffer
	WriteSave(&sv, rs, SaveOptions{Counters: true, Now: time.Unix(0, 0)})
	for _, l := range strings.Split(sv.String(), "\n") {
		if strings.HasPrefix(l, "[") && strings.Contains(l, "-s 10.9.") {
			if l[1:2] == "0" && !strings.HasPrefix(l, "[0:0]") {
				t.Fatalf("counters leaked: %s", l)
			}
		} else if strings.HasPrefix(l, "[") && !strings.HasPrefix(l, "[0:0]") && !strings.Contains(l, "--comment") {
			t.Fatalf("counters leaked: %s", l)
		}
	}
	for _, o := range []RestoreOptions{{}, {Counters: true}} {
		seq, err1 := restore(ruleset.New(xt.IPv4), reg, strings.NewReader(good), o, false)
		par, err2 := restore(ruleset.New(xt.IPv4), reg, strings.NewReader(good), o, true)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		var s1, s2 bytes.Buffer
		WriteSave(&s1, seq, SaveOptions{Counters: true, Now: time.Unix(0, 0)})
		WriteSave(&s2, par, SaveOptions{Counters: true, Now: time.Unix(0, 0)})
		if s1.String() != s2.String() {
			t.Fatal("parallel restore differs from sequential")
		}
	}
	bad := b.String() + "-A INPUT -p tcp --dport 70000\n" + "-A INPUT -j nosuchchain\nCOMMIT\n"
	_, err1 := restore(ruleset.New(xt.IPv4), reg, strings.NewReader(bad), RestoreOptions{}, false)
	_, err2 := restore(ruleset.New(xt.IPv4), reg, strings.NewReader(bad), RestoreOptions{}, true)
	if err1 == nil || err2 == nil || err1.(*Error).Text("iptables-restore") != err2.(*Error).Text("iptables-restore") {
		t.Fatalf("errors differ:\n%v\n%v", err1, err2)
	}
}
