package target

import (
	"testing"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

// TestRejectAfterOptionRewrite: a SYN carrying a record-route option, whose
// header ip_rcv_options updated for local delivery without fixing the
// header checksum, gets no RST from REJECT in INPUT (nf_ip_checksum sums
// the IP header too). Measured on 6.18 in the random differential
// scenario (stateless, seed 2): SYNs with RR to a REJECT port got no RST,
// the same SYNs without IP options did; with conntrack on (stateful,
// seed 2) they did get it, conntrack having verified the checksum first.
func TestRejectAfterOptionRewrite(t *testing.T) {
	rr := []byte{7, 7, 4, 0, 0, 0, 0, 0}
	for _, c := range []struct {
		name    string
		opts    []byte
		rewrite bool
		replies int
	}{
		{"no options", nil, true, 1},
		{"record route, as received", rr, false, 1},
		{"record route, rewritten for local delivery", rr, true, 0},
		{"nop/eol (nothing to rewrite)", []byte{1, 1, 1, 0}, true, 1},
	} {
		for _, tracked := range []bool{false, true} {
			b := packettest.TCP(packettest.TCPOpts{Src: "10.0.0.2", Dst: "10.0.0.1", SrcPort: 37806, DstPort: 7012, Flags: packettest.SYN, Seq: 1, IP: packettest.IP{Options: c.opts}})
			p := decode(t, b)
			x := &xt.Ctx{P: p, Hook: xt.LocalIn}
			want := c.replies
			if tracked {
				// Conntrack checked the checksum in PREROUTING, before the
				// rewrite: the kernel (6.18, stateful scenario) sends the RST.
				x.Conntrack = newCTTable(t)
				x.CT = x.Conntrack.In(p, packet.PreRouting)
				want = 1
			}
			if c.rewrite && p.RcvOptions(true, 0) {
				t.Fatalf("%s: dropped", c.name)
			}
			rej := rt(t, testEnv("filter", xt.LocalIn), 6, "REJECT", "--reject-with", "tcp-reset")
			out := &recEmitter{}
			x.Out = out
			rej.Do(x)
			if len(out.replies) != want {
				t.Errorf("%s (conntrack %v): %d replies, want %d", c.name, tracked, len(out.replies), want)
			}
			if x.Conntrack != nil {
				x.Conntrack.Release(&x.CT)
			}
		}
	}
}
