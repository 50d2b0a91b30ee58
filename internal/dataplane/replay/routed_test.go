package replay

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/xt"
)

// TestRoutedAfterPrerouting: a received packet is routed on the
// destination PREROUTING left, as the kernel does. A SYN to the host's
// own address that nat PREROUTING DNATs to another host is forwarded
// (FORWARD counts it, INPUT does not, its event says forward); a SYN
// passing through that is REDIRECTed to the host is delivered (INPUT).
func TestRoutedAfterPrerouting(t *testing.T) {
	e := netfilter.New(netfilter.Config{Seed: 1, IfaceAddr: func(iface string, _ xt.Family) (netip.Addr, bool) {
		return netip.MustParseAddr(host), iface == "ext0"
	}})
	if err := e.Load(restoreRules(t, `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.0.0.2/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.168.1.5:80
-A PREROUTING -d 198.51.100.9/32 -p tcp -m tcp --dport 3128 -j REDIRECT --to-ports 3129
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp
-A FORWARD -p tcp -d 192.168.1.5
COMMIT
`)); err != nil {
		t.Fatal(err)
	}
	frames := []frame{
		{ip: syn(client, host, 40000, 8080, 1)},
		{ip: syn(client, other, 40001, 3128, 1)},
	}
	rec := &recorder{}
	r := New(e, Config{Local: prefixes(host), InIface: "ext0", OutIface: "int0", Observer: rec})
	if err := r.Replay(bytes.NewReader(pcapBytes(t, layers.LinkTypeRaw, frames))); err != nil {
		t.Fatal(err)
	}
	want := []netfilter.Path{netfilter.PathForward, netfilter.PathInput}
	wantIf := []string{"ext0>int0", "ext0>"}
	for i := range want {
		if rec.paths[i] != want[i] || rec.ifaces[i] != wantIf[i] {
			t.Errorf("packet %d: path %d ifaces %q, want %d %q", i+1, rec.paths[i], rec.ifaces[i], want[i], wantIf[i])
		}
	}
	if got := counters(e, "filter", "FORWARD"); got[0] != 1 {
		t.Errorf("FORWARD counters %v, want the DNATed SYN", got)
	}
	if got := counters(e, "filter", "INPUT"); got[0] != 1 {
		t.Errorf("INPUT counters %v, want only the REDIRECTed SYN", got)
	}
}
