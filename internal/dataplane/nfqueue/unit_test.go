package nfqueue

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet/packettest"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// fakeQueue is a Queue fed from a slice; it records verdicts.
type fakeQueue struct {
	num   uint16
	in    []Msg
	got   []fakeVerdict
	flush int
}

type fakeVerdict struct {
	id      uint32
	v       Verdict
	mark    uint32
	setMark bool
	payload []byte
}

func (q *fakeQueue) Num() uint16 { return q.num }
func (q *fakeQueue) Read(m *Msg, wait bool) error {
	if len(q.in) == 0 {
		return ErrNoPacket
	}
	*m = q.in[0]
	q.in = q.in[1:]
	return nil
}
func (q *fakeQueue) Verdict(id uint32, v Verdict) { q.got = append(q.got, fakeVerdict{id: id, v: v}) }
func (q *fakeQueue) VerdictWith(id uint32, v Verdict, mark uint32, setMark bool, payload []byte) {
	q.got = append(q.got, fakeVerdict{id, v, mark, setMark, append([]byte(nil), payload...)})
}
func (q *fakeQueue) Flush() error { q.flush++; return nil }
func (q *fakeQueue) Close() error { return nil }

func engineFor(t testing.TB, rules string) *netfilter.Engine {
	t.Helper()
	rs, err := iptables.Restore(ruleset.New(xt.IPv4), builtin.Registry(), strings.NewReader(rules), iptables.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := netfilter.New(netfilter.Config{Seed: 1})
	if err := e.Load(rs); err != nil {
		t.Skipf("the engine cannot run this ruleset yet: %v", err)
	}
	return e
}

type memSink struct{ lines []string }

func (s *memSink) Log(_ uint8, line []byte) { s.lines = append(s.lines, string(line)) }

// newTestDaemon builds a daemon over fake queues (no sockets).
func newTestDaemon(t testing.TB, rules string, failOpen bool, sink LogSink) (*Daemon, *fakeQueue) {
	t.Helper()
	fq := &fakeQueue{}
	d, err := NewDaemon(DaemonConfig{Queues: []uint16{3}, FailOpen: failOpen, Engine: engineFor(t, rules), NoReplies: true,
		Logger: slog.New(slog.DiscardHandler), LogSink: sink,
		Open: func(c Config) (Queue, error) { fq.num = c.Num; return fq, nil }})
	if err != nil {
		t.Fatal(err)
	}
	d.workers[0].ifc = newIfCache(func(idx int) (string, []byte, bool) {
		return map[int]string{1: "lo", 2: "eth0"}[idx], []byte{2, 0, 0, 0, 0, 1}, idx == 1 || idx == 2
	})
	return d, fq
}

const rulesHeader = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"

func TestWorkerVerdicts(t *testing.T) {
	sink := &memSink{}
	d, fq := newTestDaemon(t, rulesHeader+
		"-A INPUT -s 10.201.0.9/32 -j DROP\n"+
		"-A INPUT -i eth0 -p icmp -j LOG --log-prefix \"P: \"\n"+
		"-A OUTPUT -o eth0 -j MARK --set-mark 0x7\n"+
		"COMMIT\n", true, sink)
	ping := packettest.EchoRequest("10.201.0.1", "10.201.0.2", 5, 1, 56)
	bad := packettest.EchoRequest("10.201.0.9", "10.201.0.2", 5, 2, 56)
	out := packettest.EchoReply("10.201.0.2", "10.201.0.1", 5, 1, 56)
	w := d.workers[0]
	for _, m := range []Msg{
		{ID: 1, Hook: hookLocalIn, HwProto: 0x0800, InDev: 2, HwAddr: []byte{2, 0, 0, 0, 0, 9}, Payload: ping},
		{ID: 2, Hook: hookLocalIn, InDev: 2, Payload: bad},
		{ID: 3, Hook: hookLocalOut, OutDev: 2, Payload: out},
		{ID: 4, Hook: hookLocalIn, InDev: 2, Payload: []byte{0x45, 0}}, // undecodable: fail verdict
		{ID: 5, Hook: hookPreRouting, InDev: 2, Payload: ping},         // a hook we never queue
	} {
		w.handle(&m)
	}
	want := []fakeVerdict{{id: 1, v: Accept}, {id: 2, v: Drop}, {id: 3, v: Accept, mark: 7, setMark: true}, {id: 4, v: Accept}, {id: 5, v: Accept}}
	if len(fq.got) != len(want) {
		t.Fatalf("verdicts %+v", fq.got)
	}
	for i := range want {
		g := fq.got[i]
		if g.id != want[i].id || g.v != want[i].v || g.mark != want[i].mark || g.setMark != want[i].setMark || g.payload != nil {
			t.Errorf("verdict %d = %+v, want %+v", i, g, want[i])
		}
	}
	if len(sink.lines) != 1 || !strings.HasPrefix(sink.lines[0], "P: IN=eth0 OUT= MAC=02:00:00:00:00:01:02:00:00:00:00:09:08:00 SRC=10.201.0.1 DST=10.201.0.2 LEN=84 ") {
		t.Errorf("LOG lines %q", sink.lines)
	}
	st := d.Stats()[0]
	if st.Packets.Load() != 5 || st.Accepted.Load() != 4 || st.Dropped.Load() != 1 || st.Undecodable.Load() != 2 || st.Logs.Load() != 1 {
		var b bytes.Buffer
		d.WriteStats(&b)
		t.Errorf("stats %s", b.String())
	}
}

func TestWorkerModifiedPayload(t *testing.T) {
	d, fq := newTestDaemon(t, "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"+
		"-A OUTPUT -j TTL --ttl-set 9\nCOMMIT\n", true, nil)
	out := packettest.EchoReply("10.201.0.2", "10.201.0.1", 5, 1, 56)
	d.workers[0].handle(&Msg{ID: 1, Hook: hookLocalOut, OutDev: 2, Payload: out})
	if len(fq.got) != 1 || fq.got[0].payload == nil {
		t.Fatalf("verdicts %+v", fq.got)
	}
	p := fq.got[0].payload
	if p[8] != 9 {
		t.Errorf("TTL %d, want 9", p[8])
	}
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		t.Errorf("IP header checksum wrong after TTL rewrite: %#x", sum)
	}
	if d.Stats()[0].Modified.Load() != 1 {
		t.Error("modified not counted")
	}
}

// TestWorkerPanic: a panic in the packet path is recovered, counted, and
// the packet gets the fail verdict (accept when fail-open, drop when
// fail-closed); the worker goes on with the next packet.
func TestWorkerPanic(t *testing.T) {
	for _, failOpen := range []bool{true, false} {
		d, fq := newTestDaemon(t, rulesHeader+"COMMIT\n", failOpen, nil)
		w := d.workers[0]
		w.panicHook = func(m *Msg) {
			if m.ID == 2 {
				panic("boom")
			}
		}
		ping := packettest.EchoRequest("10.201.0.1", "10.201.0.2", 5, 1, 56)
		fq.in = []Msg{{ID: 1, Hook: hookLocalIn, Payload: ping}, {ID: 2, Hook: hookLocalIn, Payload: ping}, {ID: 3, Hook: hookLocalIn, Payload: ping}}
		d.Start()
		deadline := time.Now().Add(5 * time.Second)
		for d.Stats()[0].Packets.Load() < 3 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		d.Drain(2 * time.Second)
		fail := Drop
		if failOpen {
			fail = Accept
		}
		want := []Verdict{Accept, fail, Accept}
		if len(fq.got) != 3 {
			t.Fatalf("failOpen=%v: verdicts %+v", failOpen, fq.got)
		}
		for i, v := range want {
			if fq.got[i].v != v || fq.got[i].id != uint32(i+1) {
				t.Errorf("failOpen=%v: verdict %d = %+v, want %v", failOpen, i, fq.got[i], v)
			}
		}
		if d.Stats()[0].Panics.Load() != 1 {
			t.Errorf("panics = %d", d.Stats()[0].Panics.Load())
		}
		if fq.flush == 0 {
			t.Error("verdicts never flushed")
		}
	}
}

// TestHandleAllocs: the per-packet path (decode, metadata, engine,
// verdict) allocates nothing once the interface cache is warm.
func TestHandleAllocs(t *testing.T) {
	d, _ := newTestDaemon(t, rulesHeader+"-A INPUT -s 10.201.0.9/32 -j DROP\n-A INPUT -i eth0 -p icmp -j ACCEPT\nCOMMIT\n", true, nil)
	w := d.workers[0]
	nq := &nullQueue{}
	w.q = nq
	ping := packettest.EchoRequest("10.201.0.1", "10.201.0.2", 5, 1, 56)
	m := Msg{ID: 1, Hook: hookLocalIn, InDev: 2, HwAddr: []byte{1, 2, 3, 4, 5, 6}, Payload: ping}
	w.handle(&m)
	if n := testing.AllocsPerRun(200, func() { w.handle(&m) }); n != 0 {
		t.Errorf("handle allocates %.1f times per packet", n)
	}
}

type nullQueue struct{ n int }

func (q *nullQueue) Num() uint16                                       { return 0 }
func (q *nullQueue) Read(*Msg, bool) error                             { return ErrNoPacket }
func (q *nullQueue) Verdict(uint32, Verdict)                           { q.n++ }
func (q *nullQueue) VerdictWith(uint32, Verdict, uint32, bool, []byte) { q.n++ }
func (q *nullQueue) Flush() error                                      { return nil }
func (q *nullQueue) Close() error                                      { return nil }

// messages splits a netlink buffer into (type, attrs) pairs.
func messages(t *testing.T, b []byte) (types []uint16, hdrs [][2]uint32, attrs [][]uint16) {
	for len(b) >= nlmsgHdrLen {
		l := int(native.Uint32(b))
		types = append(types, native.Uint16(b[4:]))
		var at []uint16
		var h [2]uint32
		a := b[nlmsgHdrLen+nfgenHdrLen : l]
		for len(a) >= 4 {
			al := int(native.Uint16(a))
			typ := native.Uint16(a[2:])
			at = append(at, typ)
			if typ == attrVerdictHdr {
				h = [2]uint32{be.Uint32(a[4:]), be.Uint32(a[8:])}
			}
			a = a[align4(al):]
		}
		hdrs = append(hdrs, h)
		attrs = append(attrs, at)
		b = b[align4(l):]
	}
	return
}

// TestVerdictBatching checks the wire messages: runs of equal consecutive
// verdicts become one VERDICT_BATCH naming the last id, single ones a
// VERDICT, and a verdict with mark/payload its own VERDICT with attributes.
func TestVerdictBatching(t *testing.T) {
	c := &Conn{fd: -1, num: 2, wcap: sendBufSize}
	c.w.b = make([]byte, 0, sendBufSize+1024)
	for _, id := range []uint32{1, 2, 3} {
		c.Verdict(id, Accept)
	}
	c.Verdict(4, Drop)
	c.Verdict(5, Accept)
	c.Verdict(6, Accept)
	c.VerdictWith(7, Accept, 9, true, []byte{0x45, 1, 2, 3, 4})
	c.Verdict(9, Accept) // gap: a new run
	c.endRun()
	types, hdrs, attrs := messages(t, c.w.b)
	wantT := []uint16{msgVerdictBatch, msgVerdict, msgVerdictBatch, msgVerdict, msgVerdict}
	wantH := [][2]uint32{{1, 3}, {0, 4}, {1, 6}, {1, 7}, {1, 9}}
	if len(types) != len(wantT) {
		t.Fatalf("types %x hdrs %v", types, hdrs)
	}
	for i := range wantT {
		if types[i] != wantT[i] || hdrs[i] != wantH[i] {
			t.Errorf("message %d: type %#x hdr %v, want %#x %v", i, types[i], hdrs[i], wantT[i], wantH[i])
		}
	}
	if got := attrs[3]; len(got) != 3 || got[1] != attrMark || got[2] != attrPayload {
		t.Errorf("verdict with mark/payload attrs %v", got)
	}
	if n := binary.BigEndian.Uint16(c.w.b[18:]); n != 2 {
		t.Errorf("res_id %d, want queue 2", n)
	}
	c.w.b = c.w.b[:0]
	if n := testing.AllocsPerRun(100, func() {
		c.Verdict(100, Accept)
		c.Verdict(101, Drop)
		c.VerdictWith(102, Accept, 1, true, []byte{1, 2, 3})
		c.endRun()
		c.w.b = c.w.b[:0]
	}); n != 0 {
		t.Errorf("verdicts allocate %.1f", n)
	}
}

func TestParsePacket(t *testing.T) {
	w := msgWriter{b: make([]byte, 0, 512)}
	w.begin(msgPacket, 0, 4)
	w.attr(attrPacketHdr, []byte{0, 0, 1, 2, 0x08, 0x00, 3})
	w.attr(attrMark, []byte{0, 0, 0, 5})
	w.attr(attrTimestamp, []byte{0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7})
	w.attr(attrIfIndexOut, []byte{0, 0, 0, 9})
	w.attr(attrHwAddr, []byte{0, 6, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0})
	w.attr(attrUID, []byte{0, 0, 3, 0xe8})
	w.attr(attrPayload, []byte{0x45, 0, 0, 20})
	w.end()
	var m Msg
	if err := parsePacket(w.b[nlmsgHdrLen+nfgenHdrLen:], &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != 0x102 || m.HwProto != 0x800 || m.Hook != 3 || m.Mark != 5 || m.TimeNS != 2e9+7e3 || m.OutDev != 9 ||
		!bytes.Equal(m.HwAddr, []byte{1, 2, 3, 4, 5, 6}) || !m.HasUID || m.UID != 1000 || m.HasGID || len(m.Payload) != 4 {
		t.Errorf("parsed %+v", m)
	}
	if err := parsePacket([]byte{8, 0, 10, 0, 1, 2, 3, 4}, &m); err == nil {
		t.Error("packet without PACKET_HDR accepted")
	}
	if err := parsePacket([]byte{200, 0, 1, 0, 1, 2, 3, 4}, &m); err == nil {
		t.Error("attribute longer than the message accepted")
	}
	if n := testing.AllocsPerRun(100, func() { parsePacket(w.b[nlmsgHdrLen+nfgenHdrLen:], &m) }); n != 0 {
		t.Errorf("parsePacket allocates %.1f", n)
	}
}

func TestKernelRulesText(t *testing.T) {
	k := &KernelRules{Hooks: []string{"input", "output"}, First: 0, Last: 3, Bypass: true, Mode: ModeLifecycle}
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	want := `*mangle
:UPTABLES-INPUT - [0:0]
:UPTABLES-OUTPUT - [0:0]
-A UPTABLES-INPUT -p tcp -m conntrack --ctstate ESTABLISHED -m tcp --tcp-flags FIN,SYN,RST NONE -j RETURN
-A UPTABLES-INPUT ! -p tcp -m conntrack --ctstate ESTABLISHED -j RETURN
-A UPTABLES-INPUT -j NFQUEUE --queue-balance 0:3 --queue-bypass
-I INPUT 1 -j UPTABLES-INPUT
-A UPTABLES-OUTPUT -p tcp -m conntrack --ctstate ESTABLISHED -m tcp --tcp-flags FIN,SYN,RST NONE -j RETURN
-A UPTABLES-OUTPUT ! -p tcp -m conntrack --ctstate ESTABLISHED -j RETURN
-A UPTABLES-OUTPUT -j NFQUEUE --queue-balance 0:3 --queue-bypass
-I OUTPUT 1 -j UPTABLES-OUTPUT
COMMIT
`
	if got := k.Restore(); got != want {
		t.Errorf("restore text:\n%s\nwant:\n%s", got, want)
	}
	k = &KernelRules{Hooks: []string{"forward"}, First: 5, Last: 5}
	k.Validate()
	if got := k.Restore(); !strings.Contains(got, "-A UPTABLES-FORWARD -j NFQUEUE --queue-num 5\n") || strings.Contains(got, "bypass") || strings.Contains(got, "ctstate") {
		t.Errorf("exact fail-closed text:\n%s", got)
	}
	for _, bad := range []*KernelRules{
		{Hooks: nil},
		{Hooks: []string{"prerouting"}},
		{Hooks: []string{"input", "input"}},
		{Hooks: []string{"input"}, First: 3, Last: 2},
		{Hooks: []string{"input"}, Mode: "fast"},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestPathForHook(t *testing.T) {
	for hook, want := range map[uint8]netfilter.Path{hookLocalIn: netfilter.PathInput, hookLocalOut: netfilter.PathOutput, hookForward: netfilter.PathForward} {
		if p, ok := PathForHook(hook); !ok || p != want {
			t.Errorf("hook %d -> %v %v", hook, p, ok)
		}
	}
	for _, h := range []uint8{hookPreRouting, hookPostRouting, 9} {
		if _, ok := PathForHook(h); ok {
			t.Errorf("hook %d mapped", h)
		}
	}
	_ = unix.AF_INET
}

// TestReadPayloadCapacity: the payload handed out by Read may grow in
// place (TCPMSS) only when nothing follows it in the receive buffer.
func TestReadPayloadCapacity(t *testing.T) {
	build := func(w *msgWriter, id byte) {
		w.begin(msgPacket, 0, 0)
		w.attr(attrPacketHdr, []byte{0, 0, 0, id, 8, 0, 1})
		w.attr(attrPayload, []byte{0x45, 0, 0, 20, 1, 2, 3, 4})
		w.attr(attrSkbInfo, []byte{0, 0, 0, 0})
		w.end()
	}
	w := msgWriter{b: make([]byte, 0, 512)}
	build(&w, 1)
	build(&w, 2)
	c := &Conn{rbuf: make([]byte, recvBufSize)}
	c.rend = copy(c.rbuf, w.b)
	var m Msg
	if err := c.Read(&m, false); err != nil || m.ID != 1 {
		t.Fatalf("first: %v %+v", err, m)
	}
	if cap(m.Payload) != len(m.Payload) {
		t.Errorf("first of two messages: cap %d > len %d", cap(m.Payload), len(m.Payload))
	}
	if err := c.Read(&m, false); err != nil || m.ID != 2 {
		t.Fatalf("second: %v %+v", err, m)
	}
	if cap(m.Payload) < 0xffff || !bytes.Equal(m.Payload, []byte{0x45, 0, 0, 20, 1, 2, 3, 4}) {
		t.Errorf("last message: len %d cap %d payload %x", len(m.Payload), cap(m.Payload), m.Payload)
	}
}
