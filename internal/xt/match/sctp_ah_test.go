package match

import (
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

// The texts below are iptables 1.8.9's (see the sctp/ah scenarios of
// internal/iptables/testdata/cli-golden.txt, which check the whole CLI).
func TestSCTPParse(t *testing.T) {
	psRunCases(t, "sctp", xt.IPv4, []psCase{
		{args: "--sport 10", proto: 132, save: "--sport 10", list: "sctp spt:10"},
		{args: "! --dport 10:20", proto: 132, save: "! --dport 10:20", list: "sctp dpts:!10:20"},
		{args: "--sport 0:65535", proto: 132, save: "--sport 0:65535", list: "sctp"},
		{args: "--sport amqp", proto: 132, save: "--sport 5672", list: "sctp spt:5672", listN: "sctp spt:amqp"},
		{args: "--chunk-types any DATA:Be,ABORT:T", proto: 132, save: "--chunk-types any DATA:Be,ABORT:T",
			list: "sctp any 0x0000:Be,0x0006:T", listN: "sctp any DATA:Be,ABORT:T"},
		{args: "! --chunk-types only SHUTDOWN_COMPLETE:t,INIT_ACK", proto: 132, save: "! --chunk-types only INIT_ACK,SHUTDOWN_COMPLETE:t",
			list: "sctp ! only 0x0002,0x000E:t"},
		{args: "--chunk-types ALL data:I,DATA:e", proto: 132, save: "--chunk-types all DATA:Ie"},
		{args: "--chunk-types any all", proto: 132, save: "--chunk-types any ALL", list: "sctp any ALL"},
		{args: "--chunk-types any ,", proto: 132, save: "--chunk-types any NONE"},
		{args: "--chunk-types any INIT:-,ASCONF:-", proto: 132, save: "--chunk-types any INIT:-,ASCONF", list: "sctp any 0x0001:-,0x00C1"},
		{args: "--chunk-types any I_DATA:U,ASCONF_ACK", proto: 132, save: "--chunk-types any I_DATA,ASCONF_ACK", list: "sctp any 0x0040,0x0080"},
		{args: "--sport 20:10", proto: 132, err: "invalid portrange (min > max)"},
		{args: "--sport ssh", proto: 132, err: "invalid port/service `ssh' specified"},
		{args: "--sport 1 --sport 2", proto: 132, err: "Only one `--source-port' allowed"},
		{args: "--chunk-types any", proto: 132, err: "--chunk-types requires two args"},
		{args: "--chunk-types none DATA", proto: 132, err: "Match type has to be one of \"ALL\", \"ANY\" or \"ONLY\""},
		{args: "--chunk-types any DATA,ALL", proto: 132, err: "Unknown sctp chunk `ALL'"},
		{args: "--chunk-types any ASCONF:x", proto: 132, err: "Invalid flags for chunk type 18"},
		{args: "--chunk-types any DATA:I,ABORT:T,SHUTDOWN_COMPLETE:T,INIT:-,SACK:-", proto: 132,
			err: "Number of chunk types with flags exceeds currently allowed limit. Increasing this limit involves changing IPT_NUM_SCTP_FLAGS and recompiling both the kernel space and user space modules"},
		{args: "--chunk-types any DATA --chunk-types all INIT", proto: 132, err: "Only one `--chunk-types' allowed"},
	})
	for _, c := range []struct {
		proto uint8
		inv   bool
		ok    bool
	}{{132, false, true}, {6, false, false}, {0, false, false}, {132, true, false}} {
		m, _ := psRun(t, "sctp", xt.IPv4, c.proto, "--sport 1")
		err := m.(*SCTP).Check(&xt.CheckContext{Proto: c.proto, InvProto: c.inv})
		if (err == nil) != c.ok {
			t.Errorf("proto %d inv %v: Check = %v, want ok %v", c.proto, c.inv, err, c.ok)
		}
	}
}

func TestAHParse(t *testing.T) {
	psRunCases(t, "ah", xt.IPv4, []psCase{
		{args: "--ahspi 5", proto: 51, save: "--ahspi 5", list: "ah spi:5"},
		{args: "! --ahspi 5:10", proto: 51, save: "! --ahspi 5:10", list: "ah spis:!5:10"},
		{args: "--ahspi 10:5", proto: 51, save: "--ahspi 10:5", list: "ah spis:10:5"},
		{args: "--ahspi :5", proto: 51, save: "--ahspi 0:5"},
		{args: "--ahspi 5:", proto: 51, save: "--ahspi 5:4294967295"},
		{args: "--ahspi 0x10", proto: 51, save: "--ahspi 16"},
		{args: "--ahspi ''", proto: 51, save: "--ahspi 0"},
		{args: "", proto: 51, save: "", list: "ah "},
		{args: "! --ahspi 0:4294967295", proto: 51, save: "", list: "ah spis:!0:4294967295"},
		{args: "--ahspi 4294967296", proto: 51, err: "ah: bad value for option \"--ahspi\" near \"4294967296\", or out of range (0-4294967295).\n"},
		{args: "--ahspi 1:2:3", proto: 51, err: "ah: Too many components for option \"--ahspi\" (max: 2)\n"},
		{args: "--ahspi 5x", proto: 51, err: "ah: Argument to \"--ahspi\" has unexpected characters near \"x\".\n"},
		{args: "--ahspi 5 --ahspi 6", proto: 51, err: "ah: option \"--ahspi\" can only be used once.\n"},
	})
	m, _ := psRun(t, "ah", xt.IPv4, 6, "--ahspi 1")
	if err := m.(*AH).Check(&xt.CheckContext{Proto: 6}); err == nil {
		t.Errorf("-p tcp -m ah should be refused by the kernel")
	}
}

// sctpPkt is an IPv4 SCTP packet: the common header (ports, tag 1, a zero
// checksum: xt_sctp does not look at it) followed by the chunks.
func sctpPkt(sport, dport uint16, fragOff uint16, chunks ...[]byte) []byte {
	l4 := []byte{byte(sport >> 8), byte(sport), byte(dport >> 8), byte(dport), 0, 0, 0, 1, 0, 0, 0, 0}
	for _, c := range chunks {
		l4 = append(l4, c...)
	}
	return rtRaw(132, l4, fragOff)
}

// chunk is a chunk header of the given length field followed by body bytes
// up to pad (the bytes the packet holds for this chunk).
func chunk(typ, flags uint8, length uint16, pad int) []byte {
	c := []byte{typ, flags, byte(length >> 8), byte(length)}
	if pad > 4 {
		c = append(c, make([]byte, pad-4)...)
	}
	return c
}

// The walk and hot-drop cases below (INIT:-, padded walk, length past end,
// zero length, cut chunk header, no chunk, all flags once, all/only NONE,
// short header, ports fail first) and the AH ones (spi, ! full, reversed,
// short) were checked against the kernel: the same bytes sent through a raw
// socket to 127.0.0.1 in a throw-away namespace, the rule's counter and
// that of a following `-p sctp`/`-p ah` rule (both 0: hot-dropped) agree.
func TestSCTPRuntime(t *testing.T) {
	data := func(flags uint8) []byte { return chunk(0, flags, 20, 20) }
	initC := chunk(1, 0, 20, 20)
	sack := chunk(3, 0, 16, 16)
	abort := func(flags uint8) []byte { return chunk(6, flags, 4, 4) }
	p := func(chunks ...[]byte) []byte { return sctpPkt(1000, 80, 0, chunks...) }
	rtRun(t, xt.IPv4, []rtCase{
		{name: "sport", match: "sctp", proto: 132, args: "--sport 1000", pkt: p(initC), want: true},
		{name: "sport other", match: "sctp", proto: 132, args: "--sport 1001", pkt: p(initC)},
		{name: "! dport range", match: "sctp", proto: 132, args: "! --dport 70:90", pkt: p(initC)},
		{name: "! dport range out", match: "sctp", proto: 132, args: "! --dport 81:90", pkt: p(initC), want: true},
		{name: "no options", match: "sctp", proto: 132, args: "", pkt: p(initC), want: true},
		{name: "any absent", match: "sctp", proto: 132, args: "--chunk-types any DATA", pkt: p(initC)},
		{name: "any second chunk", match: "sctp", proto: 132, args: "--chunk-types any DATA", pkt: p(initC, data(0)), want: true},
		{name: "any flag set", match: "sctp", proto: 132, args: "--chunk-types any DATA:B", pkt: p(data(2)), want: true},
		{name: "any flag clear", match: "sctp", proto: 132, args: "--chunk-types any DATA:B", pkt: p(data(0))},
		{name: "any Be", match: "sctp", proto: 132, args: "--chunk-types any DATA:Be", pkt: p(data(2)), want: true},
		{name: "any Be with E", match: "sctp", proto: 132, args: "--chunk-types any DATA:Be", pkt: p(data(3))},
		{name: "any ABORT:T", match: "sctp", proto: 132, args: "--chunk-types any ABORT:T", pkt: p(abort(1)), want: true},
		{name: "any ABORT:t", match: "sctp", proto: 132, args: "--chunk-types any ABORT:t", pkt: p(abort(1))},
		{name: "all missing one", match: "sctp", proto: 132, args: "--chunk-types all DATA,INIT", pkt: p(data(0))},
		{name: "all present", match: "sctp", proto: 132, args: "--chunk-types all DATA,INIT", pkt: p(initC, sack, data(0)), want: true},
		{name: "all flags fail", match: "sctp", proto: 132, args: "--chunk-types all DATA:E,INIT", pkt: p(initC, data(0))},
		{name: "all flags once enough", match: "sctp", proto: 132, args: "--chunk-types all DATA:E,INIT", pkt: p(initC, data(0), data(1)), want: true},
		{name: "only listed", match: "sctp", proto: 132, args: "--chunk-types only DATA,SACK", pkt: p(data(0), sack), want: true},
		{name: "only unlisted", match: "sctp", proto: 132, args: "--chunk-types only DATA,SACK", pkt: p(data(0), initC)},
		{name: "only flags", match: "sctp", proto: 132, args: "--chunk-types only DATA:e,SACK", pkt: p(data(1))},
		{name: "! only", match: "sctp", proto: 132, args: "! --chunk-types only DATA,SACK", pkt: p(data(0), initC), want: true},
		{name: "any ALL", match: "sctp", proto: 132, args: "--chunk-types any ALL", pkt: p(chunk(200, 0, 4, 4)), want: true},
		{name: "any NONE", match: "sctp", proto: 132, args: "--chunk-types any NONE", pkt: p(initC)},
		{name: "all NONE", match: "sctp", proto: 132, args: "--chunk-types all NONE", pkt: p(initC), want: true},
		{name: "only NONE", match: "sctp", proto: 132, args: "--chunk-types only NONE", pkt: p(initC)},
		// '-' is bit 7 of the slot of the name's index (INIT: 1).
		{name: "INIT:- clear", match: "sctp", proto: 132, args: "--chunk-types any INIT:-", pkt: p(initC), want: true},
		{name: "INIT:- set", match: "sctp", proto: 132, args: "--chunk-types any INIT:-", pkt: p(chunk(1, 0x80, 20, 20))},
		// Lengths are rounded up to 4: a 5-byte chunk takes 8 bytes.
		{name: "padded walk", match: "sctp", proto: 132, args: "--chunk-types any DATA", pkt: p(chunk(9, 0, 5, 8), data(0)), want: true},
		{name: "length past end", match: "sctp", proto: 132, args: "--chunk-types any DATA", pkt: p(chunk(9, 0, 400, 8))},
		{name: "zero length hotdrop", match: "sctp", proto: 132, args: "--chunk-types any DATA", pkt: p(initC, chunk(0, 0, 0, 4)), hotDrop: true},
		{name: "zero length after match", match: "sctp", proto: 132, args: "--chunk-types any INIT", pkt: p(initC, chunk(0, 0, 0, 4)), want: true},
		{name: "cut chunk header hotdrop", match: "sctp", proto: 132, args: "--chunk-types any DATA", pkt: p(initC, []byte{0, 0}), hotDrop: true},
		{name: "no chunk hotdrop", match: "sctp", proto: 132, args: "! --chunk-types any DATA", pkt: p(), hotDrop: true},
		{name: "no chunk ports only", match: "sctp", proto: 132, args: "--dport 80", pkt: p(), want: true},
		{name: "ports fail first", match: "sctp", proto: 132, args: "--dport 81 --chunk-types any DATA", pkt: p()},
		{name: "short header hotdrop", match: "sctp", proto: 132, args: "--dport 80", pkt: rtRaw(132, []byte{3, 0xe8, 0, 80, 0, 0, 0, 1}, 0), hotDrop: true},
		{name: "fragment", match: "sctp", proto: 132, args: "", pkt: sctpPkt(1000, 80, 3, initC)},
	})
}

// ahPkt is an IPv4 AH packet (next header TCP, length 4, no ICV data).
func ahPkt(spi uint32, fragOff uint16) []byte {
	return rtRaw(51, []byte{6, 4, 0, 0, byte(spi >> 24), byte(spi >> 16), byte(spi >> 8), byte(spi), 0, 0, 0, 1}, fragOff)
}

func TestAHRuntime(t *testing.T) {
	rtRun(t, xt.IPv4, []rtCase{
		{name: "spi", match: "ah", proto: 51, args: "--ahspi 5", pkt: ahPkt(5, 0), want: true},
		{name: "spi other", match: "ah", proto: 51, args: "--ahspi 5", pkt: ahPkt(6, 0)},
		{name: "range", match: "ah", proto: 51, args: "--ahspi 5:10", pkt: ahPkt(10, 0), want: true},
		{name: "big spi", match: "ah", proto: 51, args: "--ahspi 4294967295", pkt: ahPkt(0xffffffff, 0), want: true},
		{name: "! range", match: "ah", proto: 51, args: "! --ahspi 5:10", pkt: ahPkt(7, 0)},
		{name: "! range out", match: "ah", proto: 51, args: "! --ahspi 5:10", pkt: ahPkt(11, 0), want: true},
		{name: "reversed never", match: "ah", proto: 51, args: "--ahspi 10:5", pkt: ahPkt(7, 0)},
		{name: "! full never", match: "ah", proto: 51, args: "! --ahspi 0:4294967295", pkt: ahPkt(7, 0)},
		{name: "default", match: "ah", proto: 51, args: "", pkt: ahPkt(7, 0), want: true},
		{name: "short hotdrop", match: "ah", proto: 51, args: "--ahspi 5", pkt: rtRaw(51, []byte{6, 4, 0, 0, 0, 0, 0, 5}, 0), hotDrop: true},
		{name: "fragment", match: "ah", proto: 51, args: "", pkt: ahPkt(5, 2)},
	})
}
