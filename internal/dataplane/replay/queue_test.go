package replay

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// TestQueueReplayedWithoutListener: a capture is replayed as on a host
// with nothing bound to the queues (spec §10.2, measured on 6.18): a
// --queue-bypass rule accepts for its table and the later tables still
// run (filter DROPs udp/6001 here); a queue without bypass drops.
func TestQueueReplayedWithoutListener(t *testing.T) {
	rs, err := iptables.Restore(ruleset.New(xt.IPv4), builtin.Registry(), strings.NewReader(`*mangle
-A INPUT -p udp -m udp --dport 6001 -j NFQUEUE --queue-num 7 --queue-bypass
-A INPUT -p udp -m udp --dport 6002 -j NFQUEUE --queue-num 8
-A INPUT -p udp
COMMIT
*filter
-A INPUT -p udp -m udp --dport 6001 -j DROP
-A INPUT -p udp -m udp --dport 6002 -j DROP
COMMIT
`), iptables.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := netfilter.New(netfilter.Config{Seed: 1})
	if err := e.Load(rs); err != nil {
		t.Fatal(err)
	}
	frames := []frame{
		{ip: udp(client, host, 40000, 6001, 8)},
		{ip: udp(client, host, 40000, 6002, 8), at: time.Millisecond},
		{ip: udp(client, host, 40000, 6003, 8), at: 2 * time.Millisecond},
	}
	r := New(e, Config{Local: prefixes(host)})
	if err := r.Replay(bytes.NewReader(pcapBytes(t, layers.LinkTypeRaw, frames))); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.Accepted != 1 || st.Dropped != 1 || st.Queued != 1 {
		t.Fatalf("accepted %d dropped %d queued %d, want 1 1 1", st.Accepted, st.Dropped, st.Queued)
	}
	// Rules, then the policy.
	if got := counters(e, "mangle", "INPUT"); !equal(got, []uint64{1, 1, 1, 1}) {
		t.Errorf("mangle INPUT %v, want [1 1 1 1]", got)
	}
	if got := counters(e, "filter", "INPUT"); !equal(got, []uint64{1, 0, 1}) {
		t.Errorf("filter INPUT %v, want [1 0 1]: the bypassed datagram reaches filter", got)
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
