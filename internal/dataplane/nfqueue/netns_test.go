package nfqueue

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Namespace helpers for the end-to-end tests. Addresses are our own:
// client 10.201.0.1, server 10.201.0.2 on a veth pair; no traffic leaves
// the two namespaces the test creates.

const (
	cliAddr = "10.201.0.1"
	srvAddr = "10.201.0.2"
)

var nsSeq atomic.Uint32

// requireNetns skips unless the test runs as root with a working `ip netns`.
func requireNetns(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("end-to-end NFQUEUE tests need root (network namespaces, netfilter)")
	}
	for _, b := range []string{"ip", "iptables", "iptables-restore"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("end-to-end NFQUEUE tests need %s: %v", b, err)
		}
	}
}

func sh(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// pair is a client and a server namespace joined by a veth pair.
type pair struct {
	cli, srv string
}

func newPair(t testing.TB) *pair {
	t.Helper()
	requireNetns(t)
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, nsSeq.Add(1))
	p := &pair{cli: "uptc" + id, srv: "upts" + id}
	if out, err := exec.Command("ip", "netns", "add", p.cli).CombinedOutput(); err != nil {
		t.Skipf("ip netns unavailable: %v %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", p.cli).Run()
		exec.Command("ip", "netns", "del", p.srv).Run()
	})
	sh(t, "ip", "netns", "add", p.srv)
	sh(t, "ip", "-n", p.cli, "link", "add", "vc", "type", "veth", "peer", "name", "vs", "netns", p.srv)
	sh(t, "ip", "-n", p.cli, "addr", "add", cliAddr+"/24", "dev", "vc")
	sh(t, "ip", "-n", p.srv, "addr", "add", srvAddr+"/24", "dev", "vs")
	for _, ns := range []string{p.cli, p.srv} {
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	sh(t, "ip", "-n", p.cli, "link", "set", "vc", "up")
	sh(t, "ip", "-n", p.srv, "link", "set", "vs", "up")
	return p
}

// inNS runs fn on a thread switched into namespace ns. Sockets created in
// fn stay in ns after it returns.
func inNS(t testing.TB, ns string, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			panic("cannot return to the original network namespace: " + err.Error()) // thread stays locked and dies
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// pinger sends ICMP echo requests from a raw socket in a namespace.
type pinger struct {
	fd  int
	id  uint16
	dst [4]byte
}

func newPinger(t testing.TB, ns, dst string) *pinger {
	t.Helper()
	p := &pinger{id: uint16(os.Getpid()) ^ uint16(nsSeq.Add(1))}
	copy(p.dst[:], parse4(dst))
	inNS(t, ns, func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		if err != nil {
			t.Fatal(err)
		}
		p.fd = fd
	})
	t.Cleanup(func() { unix.Close(p.fd) })
	return p
}

func parse4(s string) []byte {
	var a, b, c, d byte
	fmt.Sscanf(s, "%d.%d.%d.%d", &a, &b, &c, &d)
	return []byte{a, b, c, d}
}

// ping sends one echo request with seq and reports whether the reply came
// within wait.
func (p *pinger) ping(seq uint16, wait time.Duration) bool {
	msg := make([]byte, 64)
	msg[0] = 8
	msg[4], msg[5] = byte(p.id>>8), byte(p.id)
	msg[6], msg[7] = byte(seq>>8), byte(seq)
	for i := 8; i < len(msg); i++ {
		msg[i] = byte(i)
	}
	var sum uint32
	for i := 0; i < len(msg); i += 2 {
		sum += uint32(msg[i])<<8 | uint32(msg[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	cs := ^uint16(sum)
	msg[2], msg[3] = byte(cs>>8), byte(cs)
	if err := unix.Sendto(p.fd, msg, 0, &unix.SockaddrInet4{Addr: p.dst}); err != nil {
		return false
	}
	deadline := time.Now().Add(wait)
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		tv := unix.NsecToTimeval(int64(time.Until(deadline)) + 1000)
		unix.SetsockoptTimeval(p.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, _, err := unix.Recvfrom(p.fd, buf, 0)
		if err != nil {
			continue
		}
		if n < 28 {
			continue
		}
		ihl := int(buf[0]&15) * 4
		ic := buf[ihl:n]
		if len(ic) >= 8 && ic[0] == 0 && uint16(ic[4])<<8|uint16(ic[5]) == p.id && uint16(ic[6])<<8|uint16(ic[7]) == seq {
			return true
		}
	}
	return false
}
