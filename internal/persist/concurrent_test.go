package persist

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/packet"
	"github.com/uptables/uptables/internal/packet/packettest"
)

// TestConcurrentPackets: saves, loads and ruleset reloads while four
// workers push packets through every kind of saved state; run with -race.
// Every file written meanwhile must load cleanly.
func TestConcurrentPackets(t *testing.T) {
	r := newRig(t, 1, rulesRT)
	dir := t.TempDir()
	var clock atomic.Int64
	clock.Store(t0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			wk := r.e.NewWorker(nopEmitter{})
			var p packet.Packet
			pkts := [][]byte{
				packettest.TCP(packettest.TCPOpts{Src: fmt.Sprintf("192.0.2.%d", w), Dst: "10.0.0.100", SrcPort: 1, DstPort: 22, Flags: packettest.SYN}),
				packettest.TCP(packettest.TCPOpts{Src: fmt.Sprintf("198.51.100.%d", w), Dst: "10.0.0.100", SrcPort: 1, DstPort: 23, Flags: packettest.SYN}),
				packettest.UDP(packettest.UDPOpts{Src: fmt.Sprintf("10.1.0.%d", w), Dst: "10.0.0.100", SrcPort: 1, DstPort: 53}),
				packettest.UDP(packettest.UDPOpts{Src: fmt.Sprintf("10.1.0.%d", w), Dst: "10.0.0.100", SrcPort: 1, DstPort: 123, Payload: make([]byte, 500)}),
			}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p.Decode(pkts[i%len(pkts)])
				p.InIface = "eth0"
				p.TimeNS = clock.Add(1_000_000)
				wk.Process(netfilter.PathInput, &p)
				sent.Add(1)
			}
		}(w)
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	saves, loads := 0, 0
	for time.Now().Before(deadline) && saves < 200 {
		now := at(clock.Load())
		if err := Save(dir, r.e, now); err != nil {
			t.Fatal(err)
		}
		saves++
		if saves%3 == 0 {
			if _, err := Load(dir, r.e, at(clock.Load())); err != nil {
				t.Fatal(err)
			}
			loads++
		}
		if saves%7 == 0 {
			r.reload(rulesRT) // same rules: lists and tables survive
		}
	}
	close(stop)
	wg.Wait()
	if sent.Load() < 100 || saves < 5 || loads < 1 {
		t.Fatalf("too little overlap: %d packets, %d saves, %d loads", sent.Load(), saves, loads)
	}
	// The state saved at the end restores into a fresh engine.
	if err := Save(dir, r.e, at(clock.Load())); err != nil {
		t.Fatal(err)
	}
	b := newRig(t, 9, rulesRT)
	rep, err := Load(dir, b.e, at(clock.Load()))
	if err != nil || rep.Restored() == 0 {
		t.Fatalf("final load: %v\n%s", err, rep.String())
	}
	if ra, rb := procRecent(r.e), procRecent(b.e); ra != rb {
		t.Fatalf("final state differs:\n%s\nvs\n%s", ra, rb)
	}
}
