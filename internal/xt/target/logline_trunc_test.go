package target

import (
	"encoding/hex"
	"testing"

	"github.com/uptables/uptables/internal/packet"
)

// TestLogLineTruncatedL4 pins lines the 6.18 kernel printed (mangle
// PREROUTING, MARK --set-mark 5 then LOG --log-tcp-sequence
// --log-tcp-options --log-ip-options; packets sent from a packet socket):
// a TCP header whose data offset runs past the packet ends with "OPT
// (TRUNCATED)" and no blank, and incomplete TCP and UDP headers end the
// line before MARK=, while an incomplete ICMP header and unknown protocols
// still get MARK=.
func TestLogLineTruncatedL4(t *testing.T) {
	rule := &Log{Level: 4, Prefix: "X ", Flags: LogTCPSeq | LogTCPOpt | LogIPOpt}
	link, _ := hex.DecodeString("9a5db0af3c5d4a0ce085eed40800")
	const head = "X IN=vs357 OUT= MAC=9a:5d:b0:af:3c:5d:4a:0c:e0:85:ee:d4:08:00 SRC=10.77.0.2 DST=10.77.0.1 "
	cases := []struct{ ip, want string }{
		{"45000028000b000040060000" + "0a4d00020a4d0001" + "04d2005000000001" + "00000000a0020200" + "00000000",
			head + "LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=11 PROTO=TCP SPT=1234 DPT=80 SEQ=1 ACK=0 WINDOW=512 RES=0x00 SYN URGP=0 OPT (TRUNCATED)"},
		{"45000017000c000040060000" + "0a4d00020a4d0001" + "010203",
			head + "LEN=23 TOS=0x00 PREC=0x00 TTL=64 ID=12 PROTO=TCP INCOMPLETE [3 bytes] "},
		{"45000016000d000040110000" + "0a4d00020a4d0001" + "0102",
			head + "LEN=22 TOS=0x00 PREC=0x00 TTL=64 ID=13 PROTO=UDP INCOMPLETE [2 bytes] "},
		{"45000016000e000040010000" + "0a4d00020a4d0001" + "0800",
			head + "LEN=22 TOS=0x00 PREC=0x00 TTL=64 ID=14 PROTO=ICMP INCOMPLETE [2 bytes] MARK=0x5 "},
		{"45000014000f000040fd0000" + "0a4d00020a4d0001",
			head + "LEN=20 TOS=0x00 PREC=0x00 TTL=64 ID=15 PROTO=253 MARK=0x5 "},
	}
	for _, c := range cases {
		data, err := hex.DecodeString(c.ip)
		if err != nil {
			t.Fatal(err)
		}
		p := packet.Packet{Data: data, Link: link, InIface: "vs357", Mark: 5}
		if got := string(rule.AppendLine(nil, &p)); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}
