package nfqueue

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// statefulRules is a seed-style stateful ruleset: INVALID dropped,
// established traffic accepted, new connections metered by connlimit and
// recent, everything else dropped. With uptables' conntrack verifying L4
// checksums in PREROUTING, a GSO aggregate whose checksum the kernel has
// not computed yet (CHECKSUM_PARTIAL, NFQA_SKB_CSUMNOTREADY) would be
// INVALID here while the kernel's own conntrack never checks it.
const statefulRules = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
	"-A INPUT -i lo -j ACCEPT\n" +
	"-A INPUT -m conntrack --ctstate INVALID -j DROP\n" +
	"-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n" +
	"-A INPUT -p tcp -m tcp --dport 8080 --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 4 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with tcp-reset\n" +
	"-A INPUT -p tcp -m tcp --dport 8080 --tcp-flags FIN,SYN,RST,ACK SYN -m recent --update --seconds 60 --hitcount 50 --name NEW --mask 255.255.255.255 --rsource -j DROP\n" +
	"-A INPUT -p tcp -m tcp --dport 8080 --tcp-flags FIN,SYN,RST,ACK SYN -m recent --set --name NEW --mask 255.255.255.255 --rsource\n" +
	"-A INPUT -p tcp -m conntrack --ctstate NEW -m tcp --dport 8080 -j ACCEPT\n" +
	"-A INPUT -p icmp -j ACCEPT\n" +
	"COMMIT\n"

// sink listens on port in the server namespace, reads every connection to
// its end and adds what it read to got; with echo set it also sends back
// as many bytes as it read (so the server's OUTPUT carries bulk data too).
func (p *pair) sink(t testing.TB, port int, got *atomic.Int64, echo bool) {
	t.Helper()
	var ln net.Listener
	inNS(t, p.srv, func() {
		var err error
		if ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port)); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(60 * time.Second))
				buf := make([]byte, 256<<10)
				for {
					n, err := c.Read(buf)
					got.Add(int64(n))
					if echo && n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
}

// bulk sends n bytes on a new connection to addr from the client namespace
// and, with echo, reads as many back. It reports what went wrong, "" when
// everything arrived within the deadline.
func (p *pair) bulk(t testing.TB, addr string, n int, echo bool, deadline time.Duration) string {
	t.Helper()
	var c net.Conn
	var err error
	inNS(t, p.cli, func() {
		d := net.Dialer{Timeout: 3 * time.Second}
		c, err = d.Dial("tcp4", addr)
	})
	if err != nil {
		return "connect: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(deadline))
	back := make(chan int64, 1)
	if echo {
		go func() {
			m, _ := io.CopyN(io.Discard, c, int64(n))
			back <- m
		}()
	}
	buf := make([]byte, 64<<10)
	for sent := 0; sent < n; {
		k := min(len(buf), n-sent)
		w, err := c.Write(buf[:k])
		sent += w
		if err != nil {
			return fmt.Sprintf("write after %d of %d bytes: %v", sent, n, err)
		}
	}
	if echo {
		if m := <-back; m != int64(n) {
			return fmt.Sprintf("echo: read %d of %d bytes back", m, n)
		}
	}
	return ""
}

// TestDaemonGSOStateful runs bulk TCP through the stateful ruleset in
// the kernel's iptables and in uptables exact mode with and without
// NFQA_CFG_F_GSO, and checks what a user checks: every byte arrives, no
// packet is INVALID, and the ESTABLISHED rule's byte counter is the
// kernel's (GSO aggregates are counted whole, as the kernel counts them;
// without GSO the kernel segments them before queueing, so uptables sees
// one packet per MSS and counts one IP and TCP header per segment).
func TestDaemonGSOStateful(t *testing.T) {
	const size = 8 << 20
	type res struct{ estP, estB, invP int }
	results := map[string]res{}
	for _, setup := range []string{"kernel", "uptables --gso", "uptables --gso=false"} {
		t.Run(strings.ReplaceAll(setup, " ", "_"), func(t *testing.T) {
			p := newPair(t)
			var got atomic.Int64
			p.sink(t, 8080, &got, true)
			var d *daemon
			if setup == "kernel" {
				if out, err := runStdin("", statefulRules, "ip", "netns", "exec", p.srv, "iptables-restore"); err != nil {
					t.Fatalf("iptables-restore: %v %s", err, out)
				}
			} else {
				d = p.startDaemon(t, statefulRules, strings.Fields(setup)[1])
			}
			start := time.Now()
			if msg := p.bulk(t, srvAddr+":8080", size, true, 30*time.Second); msg != "" {
				t.Errorf("%s: %s", setup, msg)
			}
			t.Logf("%s: %d MiB each way in %v", setup, size>>20, time.Since(start).Round(time.Millisecond))
			if got := p.pingN(t, srvAddr, 1, time.Second); got != "A" {
				t.Errorf("%s: ping %s", setup, got)
			}
			time.Sleep(300 * time.Millisecond)
			var save string
			if d != nil {
				save = d.counters()
				d.stop()
			} else {
				save = sh(t, "ip", "netns", "exec", p.srv, "iptables-save", "-c", "-t", "filter")
			}
			var r res
			r.invP, _ = ruleCounter(t, save, "--ctstate INVALID -j DROP")
			r.estP, r.estB = ruleCounter(t, save, "--ctstate RELATED,ESTABLISHED -j ACCEPT")
			if r.invP != 0 {
				t.Errorf("%s: %d packets INVALID, want 0\n%s", setup, r.invP, save)
			}
			results[setup] = r
			t.Logf("%s: ESTABLISHED [%d:%d], INVALID %d", setup, r.estP, r.estB, r.invP)
		})
	}
	k, g := results["kernel"], results["uptables --gso"]
	if k.estB == 0 || g.estB == 0 {
		return
	}
	// Aggregate sizes depend on timing, so packet counts differ from run to
	// run; the bytes (data plus one header per aggregate) stay within a
	// few per cent of each other.
	if diff := float64(g.estB-k.estB) / float64(k.estB); diff > 0.03 || diff < -0.03 {
		t.Errorf("ESTABLISHED bytes: uptables --gso %d, kernel %d (%.1f%% apart, want within 3%%)", g.estB, k.estB, 100*diff)
	}
}

// TestDaemonGSORewrite: packets the engine rewrites go back to the kernel
// as a new payload, which the kernel installs without checksum offload
// (CHECKSUM_NONE), so a segment or GSO aggregate queued with its checksum
// not computed yet (CSUMNOTREADY) must come back with a complete one or
// the receiving socket drops it and the connection stalls. Each case moves
// 4 MiB each way through a rewrite applied to every packet (TTL on all
// TCP, REDIRECT of a whole connection) or to the handshake (TCPMSS).
func TestDaemonGSORewrite(t *testing.T) {
	const mangle = "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
	const nat = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
	cases := []struct {
		name, rules, addr string
		mss               int // the client's MSS must not exceed it (0: not checked)
	}{
		{"ttl", mangle + "-A INPUT -p tcp -j TTL --ttl-set 33\n-A OUTPUT -p tcp -j TTL --ttl-set 34\nCOMMIT\n", srvAddr + ":8080", 0},
		{"redirect", nat + "-A PREROUTING -p tcp --dport 9090 -j REDIRECT --to-ports 8080\nCOMMIT\n", srvAddr + ":9090", 0},
		{"tcpmss", mangle + "-A OUTPUT -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1000\nCOMMIT\n", srvAddr + ":8080", 1000},
	}
	for _, tc := range cases {
		for _, gso := range []string{"--gso", "--gso=false"} {
			t.Run(tc.name+gso, func(t *testing.T) {
				p := newPair(t)
				var got atomic.Int64
				p.sink(t, 8080, &got, true)
				d := p.startDaemon(t, tc.rules, gso)
				if msg := p.bulk(t, tc.addr, 4<<20, true, 30*time.Second); msg != "" {
					t.Errorf("%s: %s", gso, msg)
				}
				if tc.mss > 0 {
					if mss := p.clientMSS(t, tc.addr); mss <= 0 || mss > tc.mss {
						t.Errorf("client MSS %d, want <= %d (TCPMSS on the SYN/ACK)", mss, tc.mss)
					}
				}
				time.Sleep(200 * time.Millisecond)
				os.Remove(filepath.Join(d.stateDir, "stats"))
				d.counters()
				var st []byte
				// counters.save is written first, the stats file after it.
				waitFor(t, 5*time.Second, func() bool {
					st, _ = os.ReadFile(filepath.Join(d.stateDir, "stats"))
					return len(st) > 0
				})
				if !strings.Contains(string(st), " modified=") || strings.Contains(string(st), " modified=0 ") {
					t.Errorf("no packet was rewritten: %s", st)
				}
				d.stop()
			})
		}
	}
}

// clientMSS connects to addr from the client namespace and returns the
// connection's TCP_MAXSEG.
func (p *pair) clientMSS(t testing.TB, addr string) int {
	t.Helper()
	var c net.Conn
	var err error
	inNS(t, p.cli, func() { c, err = net.DialTimeout("tcp4", addr, 3*time.Second) })
	if err != nil {
		t.Errorf("connect %s: %v", addr, err)
		return -1
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	mss := -1
	raw.Control(func(fd uintptr) { mss, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG) })
	return mss
}
