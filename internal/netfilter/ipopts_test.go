package netfilter_test

import (
	"testing"

	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/xt"
)

// TestIPOptionsDroppedAfterPrerouting: packets with a source route or
// malformed options are counted in PREROUTING but never reach INPUT
// (ip_rcv_options, accept_source_route=0); valid options pass. Measured on
// 6.18 (random differential scenario and a namespace probe).
func TestIPOptionsDroppedAfterPrerouting(t *testing.T) {
	for _, c := range []struct {
		name  string
		opts  []byte
		input bool
	}{
		{"no options", nil, true},
		{"record route", []byte{7, 7, 4, 0, 0, 0, 0, 0}, true},
		{"router alert", []byte{148, 4, 0, 0}, true},
		{"loose source route", []byte{131, 7, 4, 10, 1, 1, 1, 0}, false},
		{"strict source route", []byte{137, 7, 4, 10, 1, 1, 1, 0}, false},
		{"record route length 2", []byte{7, 2, 4, 0}, false},
		{"timestamp length 3", []byte{68, 3, 5, 0}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := load(t, "-t mangle -A PREROUTING -p udp\n-A INPUT -p udp")
			b := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.2", Dst: "10.0.0.1", SrcPort: 1234, DstPort: 7020, Payload: []byte("abcd"), IP: packettest.IP{Options: c.opts}})
			res := h.in(b)
			pre, _, _ := h.ctr("mangle", "PREROUTING")
			in, _, _ := h.ctr("filter", "INPUT")
			if !eqU(pre, 1) {
				t.Errorf("PREROUTING counted %v, want 1", pre)
			}
			want := uint64(0)
			if c.input {
				want = 1
			}
			if !eqU(in, want) {
				t.Errorf("INPUT counted %v, want %d", in, want)
			}
			if c.input != (res.Verdict == xt.VerdictAccept) {
				t.Errorf("verdict %v", res.Verdict)
			}
		})
	}
}
