package target

import (
	"encoding/binary"
	"testing"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// TestLogLineGSOAggregate: a TCP GSO aggregate beyond 64 KiB (IPv4 total
// length 0) of which NFQUEUE copied 65531 bytes logs its real length, as
// the kernel printed it for the same aggregate on 6.18 loopback (OUTPUT,
// `-j LOG --log-prefix "uptbigO "`, dmesg).
func TestLogLineGSOAggregate(t *testing.T) {
	const real = 95284
	b := packettest.TCP(packettest.TCPOpts{Src: "127.0.0.1", Dst: "127.0.0.1", SrcPort: 42578, DstPort: 5003,
		Flags: packettest.ACK | packettest.PSH, Seq: 1, Ack: 1, Window: 64, Options: packettest.Timestamps(1, 2),
		Payload: make([]byte, 65531-52), IP: packettest.IP{ID: 37342, DF: true}})
	binary.BigEndian.PutUint16(b[2:], 0)
	h := header.IPv4(b)
	h.SetChecksum(h.CalculateChecksum())
	var p packet.Packet
	if st := p.DecodeCut(b, real); st != packet.OK || !p.Cut {
		t.Fatalf("DecodeCut: %v", st)
	}
	p.OutIface = "lo"
	l := &Log{Level: 4, Prefix: "uptbigO "}
	want := "uptbigO IN= OUT=lo SRC=127.0.0.1 DST=127.0.0.1 LEN=95284 TOS=0x00 PREC=0x00 TTL=64 ID=37342 DF PROTO=TCP SPT=42578 DPT=5003 WINDOW=64 RES=0x00 ACK PSH URGP=0 "
	if got := string(l.AppendLine(nil, &p)); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
