package packet

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// optPacket builds a UDP packet 10.0.0.2 -> 10.0.0.1 with IPv4 options.
func optPacket(opts []byte) []byte {
	hl := 20 + len(opts)
	b := make([]byte, hl+12)
	b[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 64, 17
	copy(b[12:], []byte{10, 0, 0, 2})
	copy(b[16:], []byte{10, 0, 0, 1})
	copy(b[20:], opts)
	binary.BigEndian.PutUint16(b[hl:], 1234)
	binary.BigEndian.PutUint16(b[hl+2:], 7020)
	binary.BigEndian.PutUint16(b[hl+4:], 12)
	var sum uint32
	for i := 0; i < hl; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(sum))
	return b
}

// TestRcvOptionsKernel: which options the 6.18 kernel let through to
// INPUT (LOG in raw PREROUTING and filter INPUT, UDP packets sent from a
// packet socket into a fresh namespace, accept_source_route all=0).
func TestRcvOptionsKernel(t *testing.T) {
	cases := []struct {
		name string
		opts []byte
		drop bool
	}{
		{"nop nop nop eol", []byte{1, 1, 1, 0}, false},
		{"record route", []byte{7, 7, 4, 0, 0, 0, 0, 0}, false},
		{"record route, 2 slots", []byte{7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1}, false},
		{"timestamp", []byte{68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false},
		{"timestamp and address", []byte{68, 20, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false},
		{"router alert", []byte{148, 4, 0, 0}, false},
		{"loose source route", []byte{131, 7, 4, 10, 1, 1, 1, 0}, true},
		{"strict source route", []byte{137, 7, 4, 10, 1, 1, 1, 0}, true},
		{"security", []byte{130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false},
		{"record route length 2", []byte{7, 2, 4, 0}, true},
		{"record route past the header", []byte{7, 40, 4, 0}, true},
		{"timestamp length 3", []byte{68, 3, 5, 0}, true},
		{"router alert length 3", []byte{1, 1, 148, 3}, true},
		{"unknown option", []byte{0x99, 6, 1, 2, 3, 4, 1, 0}, false},
		// From ip_options_compile's rules (not in the measured set).
		{"two record routes", []byte{7, 3, 4, 7, 3, 4, 0, 0}, true},
		{"record route pointer 3", []byte{7, 7, 3, 0, 0, 0, 0, 0}, true},
		{"full timestamp, overflow 15", []byte{68, 4, 5, 0xf0}, true},
		{"lone kind byte at the end", []byte{1, 1, 1, 7}, true},
	}
	for _, c := range cases {
		var p Packet
		if p.Decode(optPacket(c.opts)) != OK {
			t.Fatalf("%s: does not decode", c.name)
		}
		if got := p.RcvOptions(true, 0); got != c.drop {
			t.Errorf("%s: drop = %v, want %v", c.name, got, c.drop)
		}
	}
}

// TestRcvOptionsRewrite: local delivery fills record route and
// timestamp-with-address with the local address, stamps milliseconds since
// midnight UTC, bumps a full timestamp's overflow counter and clears bytes
// after an end-of-list; forwarded packets are only checked.
func TestRcvOptionsRewrite(t *testing.T) {
	now := int64(3*86400000+12345) * 1000000 // 12.345 s past midnight
	cases := []struct {
		name      string
		opts, out []byte
	}{
		{"record route", []byte{7, 7, 4, 0, 0, 0, 0, 0}, []byte{7, 7, 8, 10, 0, 0, 1, 0}},
		{"record route full", []byte{7, 7, 8, 9, 9, 9, 9, 0}, []byte{7, 7, 8, 9, 9, 9, 9, 0}},
		{"timestamp only", []byte{68, 8, 5, 0, 0, 0, 0, 0}, []byte{68, 8, 9, 0, 0, 0, 0x30, 0x39}},
		{"timestamp and address", []byte{68, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{68, 12, 13, 1, 10, 0, 0, 1, 0, 0, 0x30, 0x39}},
		{"prespecified, not ours", []byte{68, 12, 5, 3, 8, 8, 8, 8, 0, 0, 0, 0}, []byte{68, 12, 5, 3, 8, 8, 8, 8, 0, 0, 0, 0}},
		{"prespecified, ours", []byte{68, 12, 5, 3, 10, 0, 0, 1, 0, 0, 0, 0}, []byte{68, 12, 13, 3, 10, 0, 0, 1, 0, 0, 0x30, 0x39}},
		{"full timestamp", []byte{68, 12, 13, 0x21, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{68, 12, 13, 0x31, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"junk after end", []byte{1, 0, 5, 6}, []byte{1, 0, 0, 0}},
	}
	for _, c := range cases {
		var p Packet
		p.Decode(optPacket(c.opts))
		if p.RcvOptions(true, now) {
			t.Errorf("%s: dropped", c.name)
			continue
		}
		if got := p.Data[20:p.HdrLen]; !bytes.Equal(got, c.out) {
			t.Errorf("%s: options % x, want % x", c.name, got, c.out)
		}
		var f Packet
		f.Decode(optPacket(c.opts))
		if f.RcvOptions(false, now) || !bytes.Equal(f.Data[20:f.HdrLen], c.opts) {
			t.Errorf("%s: forwarded packet changed: % x", c.name, f.Data[20:f.HdrLen])
		}
	}
	var p Packet
	p.Decode(optPacket(nil))
	if p.RcvOptions(true, now) {
		t.Error("packet without options dropped")
	}
	buf := optPacket([]byte{68, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	if n := testing.AllocsPerRun(100, func() {
		buf[22] = 5
		p.Decode(buf)
		p.RcvOptions(true, now)
	}); n != 0 {
		t.Errorf("RcvOptions allocates %v times per packet", n)
	}
}
