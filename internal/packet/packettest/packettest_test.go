package packettest_test

import (
	"bytes"
	"testing"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet/packettest"
)

func TestFragmentsReassemble(t *testing.T) {
	orig := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", SrcPort: 1, DstPort: 2, Payload: make([]byte, 100), IP: packettest.IP{ID: 9, DF: false}})
	frags := packettest.Fragments(orig, 30) // 24 data bytes each
	if len(frags) != 5 {
		t.Fatalf("%d fragments, want 5", len(frags))
	}
	var data []byte
	for i, f := range frags {
		h := header.IPv4(f)
		if !h.ChecksumValid() || h.ID() != 9 || int(h.FragOff())*8 != len(data) || h.MoreFragments() != (i < len(frags)-1) {
			t.Fatalf("fragment %d header wrong: % x", i, f[:20])
		}
		data = append(data, f[20:]...)
	}
	if !bytes.Equal(data, orig[20:]) {
		t.Fatal("fragments do not reassemble to the original")
	}
}

func TestDefaults(t *testing.T) {
	p := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2"})
	if p[8] != 64 || p[1] != 0 || p[6] != 0 || len(p) != 28 {
		t.Fatalf("defaults wrong: % x", p)
	}
	if p := packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "10.0.0.2", IP: packettest.IP{TTL: -1}}); p[8] != 0 {
		t.Fatal("TTL -1 must give 0")
	}
	e := packettest.ICMPError(packettest.ICMPErrorOpts{Src: "10.0.0.9", Type: 11, Original: p})
	if !bytes.Equal(e[16:20], []byte{10, 0, 0, 1}) || !bytes.Equal(e[28:], p) {
		t.Fatal("ICMP error goes to the original's source and quotes it whole")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("mixed families must panic")
		}
	}()
	packettest.UDP(packettest.UDPOpts{Src: "10.0.0.1", Dst: "::1"})
}
