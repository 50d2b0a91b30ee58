package control

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/dataplane/nfqueue"
)

// TestStatusQueues: `uptables status` in nfqueue mode prints every queue
// counter the stats file has, including packets beyond NFQUEUE's copy
// (cut, cut rewrites) and the kernel's own counters of the queue
// (waiting, queue dropped, user dropped), which tell a full queue.
func TestStatusQueues(t *testing.T) {
	f := newFixture(t, seedRules)
	q := &nfqueue.QueueStats{Num: 7}
	q.Packets.Add(1200)
	q.Accepted.Add(1100)
	q.Dropped.Add(100)
	q.Modified.Add(3)
	q.Cut.Add(42)
	q.CutRewrites.Add(2)
	q.KernelWaiting.Store(5)
	q.KernelQueueDropped.Store(17)
	q.KernelUserDropped.Store(9)
	srv, err := Listen(Config{Path: filepath.Join(t.TempDir(), DefaultSocket), Rules: f.rules, Mode: "nfqueue",
		Now: f.srv.cfg.Now, Started: t0, Queues: func() []*nfqueue.QueueStats { return []*nfqueue.QueueStats{q} }})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cl := NewClient(srv.Addr())
	defer cl.hc.CloseIdleConnections()
	rep, err := cl.Exec(t.Context(), "status", nil)
	if err != nil || rep.Exit != 0 {
		t.Fatalf("status: %v %+v", err, rep)
	}
	want := "queue 7: packets 1200, accepted 1100, dropped 100, requeued 0, modified 3, panics 0, undecodable 0, replies 0, logs 0, read errors 0, " +
		"cut 42, cut rewrites 2; kernel: waiting 5, queue dropped 17, user dropped 9\n"
	if !strings.Contains(rep.Stdout, want) {
		t.Errorf("status lacks\n%q\nin\n%s", want, rep.Stdout)
	}
}
