package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/uptables/uptables/internal/dataplane/nfqueue"
)

// TestCollectorQueueCounters: the queue counters of the stats file that
// Prometheus lacked: packets beyond NFQUEUE's copy and rewrites of them,
// and the kernel's own counters of the queue (a gauge for the packets
// waiting, counters for the two kinds of drop).
func TestCollectorQueueCounters(t *testing.T) {
	q := &nfqueue.QueueStats{Num: 3}
	q.Cut.Add(42)
	q.CutRewrites.Add(2)
	q.KernelWaiting.Store(5)
	q.KernelQueueDropped.Store(17)
	q.KernelUserDropped.Store(9)
	c := NewCollector(Config{Engine: engine(t), Queues: func() []*nfqueue.QueueStats { return []*nfqueue.QueueStats{q} }})
	want := `
# HELP uptables_nfqueue_cut_total Packets longer than NFQUEUE's 65531-byte copy, decided on the copy and their real length.
# TYPE uptables_nfqueue_cut_total counter
uptables_nfqueue_cut_total{queue="3"} 42
# HELP uptables_nfqueue_cut_rewrites_total Rewrites of packets longer than the copy, which cannot be handed back (fail verdict given).
# TYPE uptables_nfqueue_cut_rewrites_total counter
uptables_nfqueue_cut_rewrites_total{queue="3"} 2
# HELP uptables_nfqueue_kernel_waiting Packets waiting in the kernel's queue for a verdict (nfnetlink_queue).
# TYPE uptables_nfqueue_kernel_waiting gauge
uptables_nfqueue_kernel_waiting{queue="3"} 5
# HELP uptables_nfqueue_kernel_queue_dropped_total Packets the kernel dropped because the queue was full (fail-closed; fail-open accepts them uncounted).
# TYPE uptables_nfqueue_kernel_queue_dropped_total counter
uptables_nfqueue_kernel_queue_dropped_total{queue="3"} 17
# HELP uptables_nfqueue_kernel_user_dropped_total Packets the kernel could not deliver to the socket (receive buffer full; fail verdict applied).
# TYPE uptables_nfqueue_kernel_user_dropped_total counter
uptables_nfqueue_kernel_user_dropped_total{queue="3"} 9
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "uptables_nfqueue_cut_total", "uptables_nfqueue_cut_rewrites_total",
		"uptables_nfqueue_kernel_waiting", "uptables_nfqueue_kernel_queue_dropped_total", "uptables_nfqueue_kernel_user_dropped_total"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
}
