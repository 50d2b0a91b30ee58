package target

import (
	"bufio"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/packet"
)

// logRules are the LOG rules that printed testdata/loglines.tsv, by prefix
// (testdata/logexp: two namespaces, crafted packets sent with a raw
// socket, tcpdump on the logging interface, dmesg; conv.py pairs them).
var logRules = map[string]*Log{
	"uIN: ":  {Level: 4, Prefix: "uIN: ", Flags: LogTCPSeq | LogTCPOpt | LogIPOpt},
	"uPL:":   {Level: 4, Prefix: "uPL:"},
	"uMD: ":  {Level: 4, Prefix: "uMD: ", Flags: LogMACDecode},
	"uOUT: ": {Level: 4, Prefix: "uOUT: ", Flags: LogUID | LogIPOpt},
	"uFR: ":  {Level: 4, Prefix: "uFR: ", Flags: LogTCPSeq},
	"uF0: ":  {Level: 4, Prefix: "uF0: ", Flags: LogTCPSeq | LogTCPOpt},
}

type logCase struct {
	rule *Log
	p    packet.Packet
	want string
}

func readLogLines(t *testing.T) []logCase {
	t.Helper()
	f, err := os.Open("testdata/loglines.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []logCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 9 {
			t.Fatalf("bad line %q", sc.Text())
		}
		rule := logRules[c[0]]
		if rule == nil {
			t.Fatalf("unknown prefix %q", c[0])
		}
		link, err1 := hex.DecodeString(c[6])
		data, err2 := hex.DecodeString(c[7])
		mark, err3 := strconv.ParseUint(c[3], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatal(err1, err2, err3)
		}
		var lc logCase
		lc.rule, lc.want = rule, c[8]
		lc.p.Data, lc.p.Link = data, link
		lc.p.InIface, lc.p.OutIface, lc.p.Mark = c[1], c[2], uint32(mark)
		if c[4] != "-" {
			uid, _ := strconv.Atoi(c[4])
			gid, _ := strconv.Atoi(c[5])
			lc.p.UID, lc.p.GID, lc.p.HasOwner = uint32(uid), uint32(gid), true
		}
		cases = append(cases, lc)
	}
	return cases
}

// TestLogLineKernelGolden compares against lines the 6.18 kernel printed
// for the same packets (captured with tcpdump on the logging interface).
func TestLogLineKernelGolden(t *testing.T) {
	cases := readLogLines(t)
	if len(cases) < 60 {
		t.Fatalf("only %d cases", len(cases))
	}
	buf := make([]byte, 0, LogLineMax)
	for i := range cases {
		c := &cases[i]
		got := string(c.rule.AppendLine(buf[:0], &c.p))
		if got != c.want {
			t.Errorf("line %d:\n got  %q\n want %q", i+1, got, c.want)
		}
	}
}

// TestLogLineNoLinkAndIPv6: an input device without a link-layer header
// prints "MAC= " (as on tun devices); IPv6 is not formatted yet.
func TestLogLineNoLinkAndIPv6(t *testing.T) {
	l := &Log{Level: 4, Prefix: "X "}
	p := packet.Packet{InIface: "tun0", Data: mustHex(t, "45000021000040004011000001020304050607080001000200097b00")}
	p.Data = append(p.Data, 'x')
	want := "X IN=tun0 OUT= MAC= SRC=1.2.3.4 DST=5.6.7.8 LEN=33 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=UDP SPT=1 DPT=2 LEN=9 "
	if got := string(l.AppendLine(nil, &p)); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	p6 := packet.Packet{Data: mustHex(t, "6000000000000000")}
	if got := l.AppendLine([]byte("keep"), &p6); string(got) != "keep" {
		t.Errorf("IPv6 must be left alone, got %q", got)
	}
}

func mustHex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLogLineAllocs(t *testing.T) {
	cases := readLogLines(t)
	buf := make([]byte, 0, LogLineMax)
	allocs := testing.AllocsPerRun(50, func() {
		for i := range cases {
			buf = cases[i].rule.AppendLine(buf[:0], &cases[i].p)
		}
	})
	if allocs != 0 {
		t.Fatalf("AppendLine allocates %.1f times per run", allocs)
	}
}

func BenchmarkLogLine(b *testing.B) {
	l := logRules["uIN: "]
	p := packet.Packet{InIface: "eth0", Link: make([]byte, 14),
		Data: mustHexB("4500003c03e94000400622370a4d00010a4d0002a72c138bb6ff004000000000a002faf0162f0000020405b40402080a5f9c50ad000000000103030a")}
	buf := make([]byte, 0, LogLineMax)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = l.AppendLine(buf[:0], &p)
	}
}

func mustHexB(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
