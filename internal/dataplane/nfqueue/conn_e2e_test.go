package nfqueue

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestConnVerdicts binds a queue with the raw netlink Conn inside the
// server namespace and decides pings by their sequence number: odd ones
// are accepted (and answered), even ones dropped. It also checks the
// attributes the kernel sends for an incoming ping.
func TestConnVerdicts(t *testing.T) {
	p := newPair(t)
	k := &KernelRules{Hooks: []string{"input"}, First: 7, Last: 7, Prefix: []string{"ip", "netns", "exec", p.srv}}
	var c *Conn
	inNS(t, p.srv, func() {
		var err error
		if c, err = Open(Config{Num: 7, ReadTimeout: 50 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	})
	if err := k.Install(context.Background()); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen []Msg
		stop = make(chan struct{})
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		defer c.Close()
		var m Msg
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := c.Read(&m, true); err != nil {
				continue
			}
			cp := m
			cp.Payload = append([]byte(nil), m.Payload...)
			cp.HwAddr = append([]byte(nil), m.HwAddr...)
			mu.Lock()
			seen = append(seen, cp)
			mu.Unlock()
			v := Drop
			if len(m.Payload) >= 28 && m.Payload[9] == 1 && m.Payload[27]%2 == 1 {
				v = Accept
			}
			c.Verdict(m.ID, v)
			c.Flush()
		}
	}()
	pg := newPinger(t, p.cli, srvAddr)
	var got []bool
	for seq := uint16(1); seq <= 6; seq++ {
		got = append(got, pg.ping(seq, 700*time.Millisecond))
	}
	close(stop)
	<-done
	if err := k.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []bool{true, false, true, false, true, false}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("ping %d answered=%v, want %v (all: %v)", i+1, got[i], want[i], got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var icmp []Msg
	for _, m := range seen {
		if len(m.Payload) >= 20 && m.Payload[9] == 1 {
			icmp = append(icmp, m)
		}
	}
	if len(icmp) < 6 {
		t.Fatalf("queued %d ICMP packets, want >= 6", len(icmp))
	}
	m := icmp[0]
	if m.Hook != hookLocalIn || m.HwProto != 0x0800 || m.InDev == 0 || m.OutDev != 0 || len(m.Payload) != 84 || len(m.HwAddr) != 6 {
		t.Errorf("first ping: hook %d proto %#x in %d out %d len %d hwaddr %x ts %d", m.Hook, m.HwProto, m.InDev, m.OutDev, len(m.Payload), m.HwAddr, m.TimeNS)
	}
	for i := 1; i < len(icmp); i++ {
		if icmp[i].ID <= icmp[i-1].ID {
			t.Errorf("ids not increasing: %d then %d", icmp[i-1].ID, icmp[i].ID)
		}
	}
}
