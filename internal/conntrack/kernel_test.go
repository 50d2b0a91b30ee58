package conntrack

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// The kernel oracle: testdata/kernel/scenarios.txt was replayed by
// testdata/kernel/oracle.py through a router namespace of the real 6.18
// kernel, which recorded every packet's ctstate/ctdir and the `conntrack -L`
// listing after it (observed.txt). This test replays the same packets through
// a Table (PREROUTING, then confirm, as on a router) and demands the same.

type oracleStep struct {
	kind  string // "pkt", "sleep", "flush"
	side  string
	words []string
	sleep time.Duration
}

type oracleScenario struct {
	name  string
	kv    map[string]string
	steps []oracleStep
}

func parseKV(words []string) map[string]string {
	kv := map[string]string{}
	for _, w := range words {
		k, v, _ := strings.Cut(w, "=")
		kv[k] = v
	}
	return kv
}

func readScenarios(t *testing.T, path string) []*oracleScenario {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*oracleScenario
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		w := strings.Fields(line)
		if len(w) == 0 {
			continue
		}
		switch w[0] {
		case "scenario":
			out = append(out, &oracleScenario{name: w[1], kv: parseKV(w[2:])})
		case "sleep":
			s, _ := strconv.ParseFloat(w[1], 64)
			cur := out[len(out)-1]
			cur.steps = append(cur.steps, oracleStep{kind: "sleep", sleep: time.Duration(s * float64(time.Second))})
		case "flush":
			cur := out[len(out)-1]
			cur.steps = append(cur.steps, oracleStep{kind: "flush"})
		default:
			cur := out[len(out)-1]
			cur.steps = append(cur.steps, oracleStep{kind: "pkt", side: w[0], words: w[1:]})
		}
	}
	return out
}

type observedPkt struct {
	state string
	ct    []string
}

func readObserved(t *testing.T, path string) map[string][]observedPkt {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]observedPkt{}
	var name string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "scenario "):
			name = strings.TrimPrefix(l, "scenario ")
		case strings.HasPrefix(l, "pkt "):
			w := strings.Fields(l)
			out[name] = append(out[name], observedPkt{state: w[2]})
		case strings.HasPrefix(l, "  ct "):
			p := out[name]
			p[len(p)-1].ct = append(p[len(p)-1].ct, strings.TrimPrefix(l, "  ct "))
		}
	}
	return out
}

var oracleAddr = map[string]string{"c": "10.77.1.2", "s": "10.77.2.2"}

func tcpOptBytes(spec string) []byte {
	var o []byte
	for _, it := range strings.Split(spec, ",") {
		switch {
		case it == "":
		case strings.HasPrefix(it, "mss"):
			v, _ := strconv.Atoi(it[3:])
			o = append(o, 2, 4, byte(v>>8), byte(v))
		case strings.HasPrefix(it, "ws"):
			v, _ := strconv.Atoi(it[2:])
			o = append(o, 3, 3, byte(v), 1)
		case it == "sack":
			o = append(o, 4, 2, 1, 1)
		}
	}
	return o
}

// buildOracle builds the same bytes oracle.py sends.
func buildOracle(side string, w []string, sent [][]byte) []byte {
	src, dst := oracleAddr[side], oracleAddr["c"]
	if side == "c" {
		dst = oracleAddr["s"]
	}
	ipo := packettest.IP{ID: uint16(len(sent) + 1)}
	num := func(kv map[string]string, k string, def int) int {
		if v, ok := kv[k]; ok {
			n, _ := strconv.Atoi(v)
			return n
		}
		return def
	}
	switch w[0] {
	case "tcp":
		var flags uint8
		if w[1] != "-" {
			for _, ch := range w[1] {
				flags |= map[rune]uint8{'F': 1, 'S': 2, 'R': 4, 'P': 8, 'A': 16, 'U': 32, 'E': 64, 'C': 128}[ch]
			}
		}
		kv := parseKV(w[2:])
		sp, dp := num(kv, "sport", 40000), num(kv, "dport", 80)
		if side == "s" {
			sp, dp = num(kv, "sport", 80), num(kv, "dport", 40000)
		}
		b := packettest.TCP(packettest.TCPOpts{Src: src, Dst: dst, SrcPort: uint16(sp), DstPort: uint16(dp), Flags: flags,
			Seq: uint32(num(kv, "seq", 0)), Ack: uint32(num(kv, "ack", 0)), Window: uint16(num(kv, "win", 64240)),
			Options: tcpOptBytes(kv["opts"]), Payload: []byte(strings.Repeat("x", num(kv, "len", 0))), IP: ipo})
		return badsum(kv, b, 20+16)
	case "udp":
		kv := parseKV(w[1:])
		sp, dp := num(kv, "sport", 40000), num(kv, "dport", 53)
		if side == "s" {
			sp, dp = num(kv, "sport", 53), num(kv, "dport", 40000)
		}
		b := packettest.UDP(packettest.UDPOpts{Src: src, Dst: dst, SrcPort: uint16(sp), DstPort: uint16(dp),
			Payload: []byte(strings.Repeat("u", num(kv, "len", 4))), IP: ipo})
		return badsum(kv, b, 20+6)
	case "icmp":
		kv := parseKV(w[1:])
		return packettest.ICMP(packettest.ICMPOpts{Src: src, Dst: dst, Type: uint8(num(kv, "type", 8)), Code: uint8(num(kv, "code", 0)),
			ID: uint16(num(kv, "id", 7)), Seq: uint16(num(kv, "seq", 1)), Payload: []byte("pppppppp"), IP: ipo})
	case "sctp":
		kv := parseKV(w[1:])
		sp, dp := num(kv, "sport", 40000), num(kv, "dport", 80)
		if side == "s" {
			sp, dp = num(kv, "sport", 80), num(kv, "dport", 40000)
		}
		vtag, _ := strconv.ParseUint(kv["vtag"], 0, 32)
		l4 := binary.BigEndian.AppendUint16(nil, uint16(sp))
		l4 = binary.BigEndian.AppendUint16(l4, uint16(dp))
		l4 = binary.BigEndian.AppendUint32(l4, uint32(vtag))
		l4 = append(l4, 0, 0, 0, 0)
		l4 = append(l4, sctpChunkBytes(kv["chunks"])...)
		crc := crc32.Checksum(l4, crc32.MakeTable(crc32.Castagnoli))
		if _, ok := kv["badsum"]; ok {
			crc ^= 0x5555
		}
		binary.LittleEndian.PutUint32(l4[8:], crc)
		return packettest.Raw(packettest.RawOpts{Src: src, Dst: dst, Proto: 132, Payload: l4, IP: ipo})
	case "raw":
		kv := parseKV(w[1:])
		l4, err := hex.DecodeString(kv["hex"])
		if err != nil {
			panic(err)
		}
		return packettest.Raw(packettest.RawOpts{Src: src, Dst: dst, Proto: uint8(num(kv, "proto", 0)), Payload: l4, IP: ipo})
	case "fill":
		kv := parseKV(w[1:])
		bv, _ := strconv.ParseUint(kv["byte"], 0, 8)
		l4 := bytes.Repeat([]byte{byte(bv)}, num(kv, "n", 0))
		return packettest.Raw(packettest.RawOpts{Src: src, Dst: dst, Proto: uint8(num(kv, "proto", 0)), Payload: l4, IP: ipo})
	case "icmperr":
		kv := parseKV(w[1:])
		q := sent[num(kv, "quote", 1)-1]
		if v, ok := kv["src"]; ok {
			src = v
		}
		if v, ok := kv["odst"]; ok {
			dst = v
		}
		return packettest.ICMP(packettest.ICMPOpts{Src: src, Dst: dst, Type: uint8(num(kv, "type", 3)), Code: uint8(num(kv, "code", 3)),
			Payload: q[:min(28, len(q))], IP: ipo})
	}
	panic("unknown proto " + w[0])
}

// sctpChunkNames are oracle.py's SCTP_CHUNKS.
var sctpChunkNames = map[string]uint8{"data": 0, "init": 1, "initack": 2, "sack": 3, "hb": 4, "hback": 5, "abort": 6,
	"shutdown": 7, "shutack": 8, "error": 9, "cookie": 10, "cookieack": 11, "shutcomp": 14}

// sctpChunkBytes builds chunks as oracle.py's sctp_chunks does: items
// joined by '+', NAME[=TAG][.T][@LEN] or tNUM.
func sctpChunkBytes(spec string) []byte {
	var out []byte
	for _, it := range strings.Split(spec, "+") {
		if it == "" {
			continue
		}
		ln := -1
		if i := strings.IndexByte(it, '@'); i >= 0 {
			v, err := strconv.ParseInt(it[i+1:], 0, 32)
			if err != nil {
				panic(err)
			}
			it, ln = it[:i], int(v)
		}
		var flags uint8
		if strings.HasSuffix(it, ".T") {
			it, flags = strings.TrimSuffix(it, ".T"), 1
		}
		name, tag, _ := strings.Cut(it, "=")
		var typ uint8
		if n, err := strconv.Atoi(strings.TrimPrefix(name, "t")); strings.HasPrefix(name, "t") && err == nil {
			typ = uint8(n)
		} else if v, ok := sctpChunkNames[name]; ok {
			typ = v
		} else {
			panic("unknown chunk " + name)
		}
		var body []byte
		if typ == 1 || typ == 2 {
			if tag == "" {
				tag = "0"
			}
			tv, _ := strconv.ParseUint(tag, 0, 32)
			body = binary.BigEndian.AppendUint32(body, uint32(tv))
			body = binary.BigEndian.AppendUint32(body, 65535)
			body = binary.BigEndian.AppendUint16(body, 10)
			body = binary.BigEndian.AppendUint16(body, 10)
			body = binary.BigEndian.AppendUint32(body, 1)
		}
		if ln < 0 {
			ln = 4 + len(body)
		} else {
			body = make([]byte, max(0, (ln+3)&^3-4))
		}
		out = append(out, typ, flags, byte(ln>>8), byte(ln))
		out = append(out, body...)
	}
	return out
}

// badsum spoils the L4 checksum at off as oracle.py does (XOR 0x5555).
func badsum(kv map[string]string, b []byte, off int) []byte {
	if _, ok := kv["badsum"]; ok {
		binary.BigEndian.PutUint16(b[off:], binary.BigEndian.Uint16(b[off:])^0x5555)
	}
	return b
}

func listing(tb *Table, now int64) []string {
	var out []string
	tb.Range(now, func(e *Entry) bool {
		out = append(out, string(e.AppendConntrackL(nil, now)))
		return true
	})
	slices.Sort(out)
	return out
}

// sameCtLine compares two conntrack -L lines, allowing the timeout to
// differ by 2 s (the kernel's wall clock moved while the oracle ran).
func sameCtLine(a, b string) bool {
	fa, fb := strings.Fields(a), strings.Fields(b)
	if len(fa) != len(fb) || len(fa) < 3 {
		return false
	}
	for i := range fa {
		if i == 2 {
			x, e1 := strconv.Atoi(fa[i])
			y, e2 := strconv.Atoi(fb[i])
			if e1 != nil || e2 != nil || x-y > 2 || y-x > 2 {
				return false
			}
			continue
		}
		if fa[i] != fb[i] {
			return false
		}
	}
	return true
}

// oracleFiles pairs each scenario file with the kernel's observations.
var oracleFiles = [][2]string{
	{"scenarios.txt", "observed.txt"},
	{"scenarios-sctp.txt", "observed-sctp.txt"},
	{"scenarios-sctp-matrix.txt", "observed-sctp-matrix.txt"},
	{"scenarios-gre-dccp.txt", "observed-gre-dccp.txt"},
}

func TestKernelOracle(t *testing.T) {
	for _, f := range oracleFiles {
		obs := readObserved(t, "testdata/kernel/"+f[1])
		for _, sc := range readScenarios(t, "testdata/kernel/"+f[0]) {
			t.Run(sc.name, func(t *testing.T) { replayOracle(t, sc, obs) })
		}
	}
}

func replayOracle(t *testing.T, sc *oracleScenario, obs map[string][]observedPkt) {
	want, ok := obs[sc.name]
	if !ok {
		t.Fatalf("scenario %s not in observed.txt (rerun oracle.py)", sc.name)
	}
	cfg := Config{Max: 1024, HashKey: [2]uint64{1, 2}}
	cfg.NoTCPLoose = sc.kv["loose"] == "0"
	cfg.TCPBeLiberal = sc.kv["liberal"] == "1"
	cfg.NoChecksum = sc.kv["csum"] == "0"
	tb, err := NewTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	var sent [][]byte
	for _, st := range sc.steps {
		switch st.kind {
		case "sleep":
			now += int64(st.sleep)
			continue
		case "flush":
			tb.Flush()
			continue
		}
		b := buildOracle(st.side, st.words, sent)
		sent = append(sent, b)
		i := len(sent) - 1
		var p packet.Packet
		// Truncated L4 headers are part of the scenarios: conntrack
		// reads the L4 bytes itself.
		if s := p.Decode(b); s == packet.BadL3 {
			t.Fatalf("pkt %d: decode status %v", i+1, s)
		}
		p.TimeNS = now
		r := tb.In(&p, packet.PreRouting)
		got := r.Info.String()
		if r.Verdict == Drop {
			got = "DROP"
		}
		tb.Confirm(&r)
		tb.Release(&r)
		now += int64(50 * time.Millisecond)
		if i >= len(want) {
			t.Fatalf("pkt %d: no kernel observation", i+1)
		}
		if got != want[i].state {
			t.Errorf("pkt %d (%s %s): state %s (reason %v), kernel %s", i+1, st.side, strings.Join(st.words, " "), got, r.Reason, want[i].state)
		}
		have := listing(tb, now)
		match := len(have) == len(want[i].ct)
		for j := 0; match && j < len(have); j++ {
			match = sameCtLine(have[j], want[i].ct[j])
		}
		if !match {
			t.Errorf("pkt %d (%s %s): listing\n%s\nkernel\n%s", i+1, st.side, strings.Join(st.words, " "),
				strings.Join(have, "\n"), strings.Join(want[i].ct, "\n"))
		}
	}
}
