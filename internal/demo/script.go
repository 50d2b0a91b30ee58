package demo

import (
	"fmt"
	"net/netip"
	"time"
)

// Rules returns the embedded demo rules for a proxy listening on port, in
// iptables-save format. They are the seeds' three stateful defences in the
// order a blog post would write them:
//
//  1. ESTABLISHED,RELATED packets pass (state, i.e. conntrack);
//  2. a fourth concurrent connection from one address is reset
//     (connlimit --connlimit-above 3, REJECT tcp-reset: spec §3.2 counts the
//     connection being opened, so "above 3" refuses the 4th);
//  3. every new connection is recorded in the recent list "demo", and the
//     8th within 10 seconds from one address is dropped (recent --set then
//     --update --seconds 10 --hitcount 8: the --set stamp of the current SYN
//     is counted, spec §4.2, and --update keeps recording while the address
//     keeps trying);
//  4. new connections pass while a global budget lasts (limit 1/sec, burst
//     10: spec §5.3 token bucket), the rest are dropped by the last rule.
func Rules(port int) string {
	p := fmt.Sprint(port)
	return "*filter\n" +
		":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT\n" +
		"-A INPUT -p tcp --syn --dport " + p + " -m connlimit --connlimit-above 3 -j REJECT --reject-with tcp-reset\n" +
		"-A INPUT -p tcp --syn --dport " + p + " -m recent --name demo --set\n" +
		"-A INPUT -p tcp --syn --dport " + p + " -m recent --name demo --update --seconds 10 --hitcount 8 -j DROP\n" +
		"-A INPUT -p tcp --syn --dport " + p + " -m limit --limit 1/sec --limit-burst 10 -j ACCEPT\n" +
		"-A INPUT -p tcp --dport " + p + " -j DROP\n" +
		"COMMIT\n"
}

// Client is one simulated client: a name and its own loopback source
// address (any 127.0.0.0/8 address can be bound without privileges on
// Linux).
type Client struct {
	Name string
	Addr netip.Addr
}

// Clients returns the demo's simulated clients, indexed by the script's
// client numbers.
func Clients() []Client {
	return []Client{
		{"alice", netip.MustParseAddr("127.0.0.2")},
		{"bob", netip.MustParseAddr("127.0.0.3")},
		{"carol", netip.MustParseAddr("127.0.0.4")},
		{"dave", netip.MustParseAddr("127.0.0.5")},
		{"erin", netip.MustParseAddr("127.0.0.6")},
	}
}

const (
	alice = iota
	bob
	carol
	dave
	erin
)

// op is what a client does at one step of the script.
type op uint8

const (
	// opHold opens a connection, sends one request, reads the reply and
	// keeps the connection open.
	opHold op = iota
	// opRequest opens a connection, sends one request, reads the reply and
	// closes it (waiting until the proxy has seen the close both ways).
	opRequest
	// opClose closes the client's oldest held connection.
	opClose
	// opCloseAll closes every held connection of every client.
	opCloseAll
)

// step is one action of the script at a simulated time.
type step struct {
	at   time.Duration
	who  int
	op   op
	note string // printed before the step, when set
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// script is the demo's connection pattern. Times are on the simulated
// clock the rules see, so the outcomes do not depend on the machine's
// speed. The outcomes the kernel gives for this pattern with Rules are
// worked out in demo_test.go (TestKernelOutcomes).
func script() []step {
	var s []step
	add := func(at time.Duration, who int, o op, note string) {
		s = append(s, step{at: at, who: who, op: o, note: note})
	}
	add(0, alice, opHold, "alice opens connections and keeps them open")
	add(ms(250), alice, opHold, "")
	add(ms(500), alice, opHold, "")
	add(ms(750), alice, opHold, "")
	for i := 0; i < 9; i++ {
		note := ""
		if i == 0 {
			note = "bob reconnects in a loop, one request per connection"
		}
		add(ms(1000+200*i), bob, opRequest, note)
	}
	burst := []int{carol, dave, erin, carol, dave, erin}
	for i, who := range burst {
		note := ""
		if i == 0 {
			note = "carol, dave and erin arrive in a burst"
		}
		add(ms(3000+100*i), who, opRequest, note)
	}
	add(ms(5000), alice, opClose, "alice closes one of her connections")
	add(ms(5500), alice, opHold, "")
	add(ms(8000), bob, opRequest, "bob tries again")
	add(ms(8200), carol, opRequest, "carol comes back")
	add(ms(18500), bob, opRequest, "bob comes back after ten quiet seconds")
	add(ms(18600), alice, opCloseAll, "everyone disconnects")
	return s
}
