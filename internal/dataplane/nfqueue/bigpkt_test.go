package nfqueue

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// aggregate is a loopback TCP GSO aggregate of real bytes as NFQUEUE
// queues it from OUTPUT (measured on 6.18: up to ~130 KB, IPv4 total
// length 0, checksum not computed yet): the first 65531 bytes, with
// NFQA_CAP_LEN carrying the real length.
func aggregate(real int) *Msg {
	b := partial(packettest.TCP(packettest.TCPOpts{Src: "127.0.0.1", Dst: "127.0.0.1", SrcPort: 40000, DstPort: 5001,
		Flags: packettest.ACK, Seq: 1, Ack: 1, Window: 64, Options: packettest.Timestamps(1, 2),
		Payload: make([]byte, maxCopyRange-52), IP: packettest.IP{DF: true, ID: 7}}))
	binary.BigEndian.PutUint16(b[2:], 0)
	h := header.IPv4(b)
	h.SetChecksum(h.CalculateChecksum())
	return &Msg{ID: 1, Hook: hookLocalOut, OutDev: 1, SkbInfo: skbCsumNotReady | skbGSO, CapLen: uint32(real), Payload: b}
}

// TestAggregateBeyond64K: such an aggregate is decided by the rules
// (before, it was undecodable and got the fail verdict, which stalled
// bulk loopback TCP with fail-closed), counted with its real length as
// the kernel's counters count it, matched by `! --length 0:65535` and
// logged with LEN= the real length, as the kernel does.
func TestAggregateBeyond64K(t *testing.T) {
	sink := &memSink{}
	d, fq := newTestDaemon(t, rulesHeader+
		"-A OUTPUT -o lo -p tcp -m length ! --length 0:65535 -j LOG --log-prefix \"BIG \"\n"+
		"-A OUTPUT -o lo -p tcp -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT\n"+
		"-A OUTPUT -j DROP\nCOMMIT\n", false, sink)
	const real = 128787
	d.workers[0].handle(aggregate(real))
	if len(fq.got) != 1 || fq.got[0].v != Accept || fq.got[0].payload != nil {
		t.Fatalf("verdicts %+v, want ACCEPT without payload", fq.got)
	}
	st := d.Stats()[0]
	if st.Cut.Load() != 1 || st.Undecodable.Load() != 0 || st.Accepted.Load() != 1 {
		t.Errorf("cut %d undecodable %d accepted %d", st.Cut.Load(), st.Undecodable.Load(), st.Accepted.Load())
	}
	var b strings.Builder
	if err := iptables.WriteSave(&b, d.cfg.Engine.Ruleset(), iptables.SaveOptions{Counters: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[1:128787] -A OUTPUT -o lo -p tcp -m length ! --length 0:65535", "[1:128787] -A OUTPUT -o lo -p tcp -m conntrack", "[0:0] -A OUTPUT -j DROP"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("counters: no %q in\n%s", want, b.String())
		}
	}
	if len(sink.lines) != 1 || !strings.Contains(sink.lines[0], " LEN=128787 ") {
		t.Errorf("LOG lines %q, want one with LEN=128787", sink.lines)
	}
}

// TestAggregateRewrite: a rewrite of an aggregate cannot be handed back
// (NFQUEUE would install the 65531-byte copy as the whole packet): fail
// verdict, counted in CutRewrites, logged at the 1st, 2nd and 4th.
func TestAggregateRewrite(t *testing.T) {
	d, fq := newTestDaemon(t, "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"+
		"-A OUTPUT -p tcp -j TTL --ttl-set 9\nCOMMIT\n", false, nil)
	var logs bytes.Buffer
	d.log = slog.New(slog.NewTextHandler(&logs, nil))
	for range 4 {
		d.workers[0].handle(aggregate(100000))
	}
	for i, v := range fq.got {
		if v.v != Drop || v.payload != nil {
			t.Errorf("verdict %d: %+v, want the fail verdict (DROP, fail-closed)", i, v)
		}
	}
	if n := d.Stats()[0].CutRewrites.Load(); n != 4 {
		t.Errorf("CutRewrites %d, want 4", n)
	}
	if n := strings.Count(logs.String(), "cannot be handed back"); n != 3 {
		t.Errorf("%d log lines, want 3:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "len=100000") {
		t.Errorf("log does not name the length:\n%s", logs.String())
	}
}

// TestAggregateAllocs: deciding an aggregate allocates nothing.
func TestAggregateAllocs(t *testing.T) {
	d, _ := newTestDaemon(t, rulesHeader+
		"-A OUTPUT -o lo -p tcp -m length ! --length 0:65535 -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT\nCOMMIT\n", false, nil)
	w := d.workers[0]
	w.q = &nullQueue{}
	m := aggregate(128787)
	w.handle(m)
	if n := testing.AllocsPerRun(50, func() { w.handle(m) }); n != 0 {
		t.Errorf("handle allocates %.1f times per aggregate", n)
	}
}

// TestStatsRefreshKernel: Stats, what `uptables status` and a Prometheus
// scrape read, carries the kernel's counters of the queue as they are now.
func TestStatsRefreshKernel(t *testing.T) {
	d, _ := newTestDaemon(t, rulesHeader+"COMMIT\n", false, nil)
	proc := filepath.Join(t.TempDir(), "nfnetlink_queue")
	d.cfg.ProcQueues = proc
	for _, tc := range []struct {
		line                  string
		waiting, qdrop, udrop uint64
	}{
		{"    3  41234     5 2 65531    17     9   1000  1\n", 5, 17, 9},
		{"    2  41233     1 2 65531     1     1     10  1\n    3  41234     0 2 65531    20    11   2000  1\n", 0, 20, 11},
	} {
		if err := os.WriteFile(proc, []byte(tc.line), 0o644); err != nil {
			t.Fatal(err)
		}
		st := d.Stats()[0]
		if st.KernelWaiting.Load() != tc.waiting || st.KernelQueueDropped.Load() != tc.qdrop || st.KernelUserDropped.Load() != tc.udrop {
			t.Errorf("%q: waiting %d queue_dropped %d user_dropped %d", tc.line, st.KernelWaiting.Load(), st.KernelQueueDropped.Load(), st.KernelUserDropped.Load())
		}
	}
}
