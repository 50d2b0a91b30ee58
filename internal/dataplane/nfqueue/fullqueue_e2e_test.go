package nfqueue

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFullQueue (issue 5): a full queue follows fail-open/closed. The
// daemon runs in the server namespace with a queue of 4 packets and its
// worker stalled (it stops reading); pings then fill the queue. With
// fail-open the kernel accepts what does not fit (NFQA_CFG_F_FAIL_OPEN),
// so most pings are answered while nothing is read; with fail-closed it
// drops them and counts them in /proc/net/netfilter/nfnetlink_queue,
// which the daemon reports (kernel_queue_dropped). Once the worker reads
// again, the queued packets get their verdicts and traffic flows.
func TestFullQueue(t *testing.T) {
	const maxLen, pings = 4, 16
	for _, tc := range []struct {
		name     string
		failOpen bool
	}{{"fail-open", true}, {"fail-closed", false}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			eng := engineFor(t, rulesHeader+"-A INPUT -p icmp -j ACCEPT\nCOMMIT\n")
			var d *Daemon
			inNS(t, p.srv, func() {
				var err error
				d, err = NewDaemon(DaemonConfig{Queues: []uint16{7}, FailOpen: tc.failOpen, GSO: true, MaxLen: maxLen,
					Engine: eng, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
			})
			var mu sync.Mutex
			stalled, parked := false, make(chan struct{}, 1)
			d.workers[0].beforeRead = func() {
				for {
					mu.Lock()
					s := stalled
					mu.Unlock()
					if !s {
						return
					}
					select {
					case parked <- struct{}{}:
					default:
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			k := &KernelRules{Hooks: []string{"input"}, First: 7, Last: 7, Bypass: tc.failOpen, Prefix: []string{"ip", "netns", "exec", p.srv}}
			d.Start()
			if err := k.Install(context.Background()); err != nil {
				d.Stop()
				t.Fatal(err)
			}
			t.Cleanup(func() { k.Remove(context.Background()); d.Stop() })
			if got := p.pingN(t, srvAddr, 2, time.Second); got != "AA" {
				t.Fatalf("pings with the worker reading: %s", got)
			}

			mu.Lock()
			stalled = true
			mu.Unlock()
			<-parked
			got := p.pingN(t, srvAddr, pings, 150*time.Millisecond)
			kstat := sh(t, "ip", "netns", "exec", p.srv, "cat", "/proc/net/netfilter/nfnetlink_queue")
			var stats bytes.Buffer
			inNS(t, p.srv, func() { d.WriteStats(&stats) })
			t.Logf("stalled: pings %s; kernel: %s; daemon: %s", got, strings.TrimSpace(kstat), strings.TrimSpace(stats.String()))
			answered := strings.Count(got, "A")
			st := d.Stats()[0]
			if tc.failOpen {
				// The first maxLen wait in the queue, the rest pass.
				if answered < pings-maxLen-2 {
					t.Errorf("fail-open, queue full: %d of %d pings answered (%s), want at least %d", answered, pings, got, pings-maxLen-2)
				}
			} else {
				if answered != 0 {
					t.Errorf("fail-closed, queue full: %d pings answered (%s), want 0", answered, got)
				}
				if n := st.KernelQueueDropped.Load(); n < pings-maxLen-2 {
					t.Errorf("daemon reports kernel_queue_dropped=%d, want at least %d", n, pings-maxLen-2)
				}
			}
			if n := st.KernelWaiting.Load(); n != maxLen {
				t.Errorf("daemon reports kernel_waiting=%d while stalled, want %d (the queue's length)", n, maxLen)
			}
			if !strings.Contains(stats.String(), "kernel_waiting=") {
				t.Errorf("stats line lacks the kernel's counters: %s", stats.String())
			}

			mu.Lock()
			stalled = false
			mu.Unlock()
			waitFor(t, 5*time.Second, func() bool {
				inNS(t, p.srv, func() { d.RefreshKernelStats() })
				return st.KernelWaiting.Load() == 0
			})
			if got := p.pingN(t, srvAddr, 2, time.Second); got != "AA" {
				t.Errorf("pings after the worker resumed: %s", got)
			}
		})
	}
}
