// Command loadgen is the load generator and backend of
// scripts/bench-proxy.sh: it measures new TCP connections per second and
// streaming throughput on loopback, directly against the backend or
// through a proxy (uptables, HAProxy, nginx).
//
//	loadgen backend -listen 127.0.0.1:PORT       serve the two kinds of connection below
//	loadgen conns   -addr A -d 10s -c 32 -src 64 new connections/s: each one sends "R\n", reads the 64-byte reply, closes
//	loadgen stream  -addr A -d 10s -c 4          throughput: each connection sends "S\n" and reads what the backend streams
//	loadgen ports   -n 4                         print n free loopback ports
//	loadgen wait    -addr A [-addr B ...]        wait (10 s at most) until the addresses accept connections
//
// conns spreads its connections over -src client addresses 127.0.1.1,
// 127.0.1.2, ... (binding 127.0.0.0/8 addresses needs no privileges) so
// that per-address limits see a realistic number of clients and the
// client side does not run out of ports; with -src 0 the kernel picks
// 127.0.0.1. Results are one line of key=value pairs.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen backend|conns|stream|ports|wait [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "backend":
		err = backend(os.Args[2:])
	case "conns":
		err = conns(os.Args[2:])
	case "stream":
		err = stream(os.Args[2:])
	case "ports":
		err = ports(os.Args[2:])
	case "wait":
		err = wait(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// replyLen is the size of the backend's answer to a request ("R\n"): an
// HTTP-ish status line padded to 64 bytes.
const replyLen = 64

func reply() []byte { return []byte(fmt.Sprintf("%-*s\n", replyLen-1, "HTTP/1.0 200 OK loadgen")) }

func backend(args []string) error {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr())
	chunk := make([]byte, 64<<10)
	rep := reply()
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go serve(c, rep, chunk)
	}
}

// serve answers one connection: "R\n" gets the reply, then the backend
// waits for the client to close; "S\n" gets an endless stream of chunk.
func serve(c net.Conn, rep, chunk []byte) {
	defer c.Close()
	var b [2]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return
	}
	switch b[0] {
	case 'R':
		if _, err := c.Write(rep); err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
	case 'S':
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}
}

// hist is a latency histogram with 1 µs .. ~17 s log2 buckets (4 per
// octave).
type hist struct{ b [100]uint64 }

func bucket(d time.Duration) int {
	us := float64(d.Microseconds())
	i := 0
	for v := 1.0; v < us && i < 99; v *= 1.189207115 { // 2^(1/4)
		i++
	}
	return i
}

func (h *hist) add(d time.Duration) { h.b[bucket(d)]++ }
func (h *hist) merge(o *hist) {
	for i := range h.b {
		h.b[i] += o.b[i]
	}
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *hist) quantile(q float64) time.Duration {
	var n uint64
	for _, v := range h.b {
		n += v
	}
	if n == 0 {
		return 0
	}
	want := uint64(q * float64(n))
	var acc uint64
	bound := 1.0
	for i, v := range h.b {
		acc += v
		if acc > want || i == len(h.b)-1 {
			return time.Duration(bound * float64(time.Microsecond))
		}
		bound *= 1.189207115
	}
	return 0
}

func conns(args []string) error {
	fs := flag.NewFlagSet("conns", flag.ExitOnError)
	addr := fs.String("addr", "", "address to connect to")
	d := fs.Duration("d", 10*time.Second, "duration")
	c := fs.Int("c", 32, "concurrent clients")
	src := fs.Int("src", 64, "client source addresses 127.0.1.1 ... (0: let the kernel choose)")
	_ = fs.Parse(args)
	if *addr == "" || *c < 1 || *src < 0 || *src > 250 {
		return errors.New("conns: -addr is required; -c >= 1; -src 0..250")
	}
	var ok, failed, refused atomic.Uint64
	var mu sync.Mutex
	var all hist
	errs := map[string]int{}
	deadline := time.Now().Add(*d)
	start := time.Now()
	var wg sync.WaitGroup
	workers, nsrc := *c, *src
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var h hist
			buf := make([]byte, replyLen)
			for i := 0; time.Now().Before(deadline); i++ {
				dl := net.Dialer{Timeout: 5 * time.Second}
				if nsrc > 0 {
					ip := net.IPv4(127, 0, 1, byte(1+(w+i*workers)%nsrc))
					dl.LocalAddr = &net.TCPAddr{IP: ip}
				}
				t0 := time.Now()
				conn, err := dl.Dial("tcp", *addr)
				if err == nil {
					_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
					if _, err = conn.Write([]byte("R\n")); err == nil {
						_, err = io.ReadFull(conn, buf)
					}
					conn.Close()
				}
				if err != nil {
					if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "reset") {
						refused.Add(1)
					} else {
						failed.Add(1)
					}
					mu.Lock()
					if len(errs) < 8 {
						errs[err.Error()]++
					}
					mu.Unlock()
					continue
				}
				h.add(time.Since(t0))
				ok.Add(1)
			}
			mu.Lock()
			all.merge(&h)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	fmt.Printf("conns_per_sec=%.0f ok=%d refused=%d failed=%d p50_us=%d p99_us=%d\n",
		float64(ok.Load())/el, ok.Load(), refused.Load(), failed.Load(),
		all.quantile(0.5).Microseconds(), all.quantile(0.99).Microseconds())
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(os.Stderr, "loadgen conns: %d x %s\n", errs[k], k)
	}
	return nil
}

func stream(args []string) error {
	fs := flag.NewFlagSet("stream", flag.ExitOnError)
	addr := fs.String("addr", "", "address to connect to")
	d := fs.Duration("d", 10*time.Second, "duration")
	c := fs.Int("c", 4, "concurrent connections")
	_ = fs.Parse(args)
	if *addr == "" || *c < 1 {
		return errors.New("stream: -addr is required; -c >= 1")
	}
	var total atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(*d)
	errc := make(chan error, *c)
	for w := 0; w < *c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.DialTimeout("tcp", *addr, 5*time.Second)
			if err != nil {
				errc <- err
				return
			}
			defer conn.Close()
			_ = conn.SetDeadline(deadline)
			if _, err := conn.Write([]byte("S\n")); err != nil {
				errc <- err
				return
			}
			r := bufio.NewReaderSize(conn, 256<<10)
			buf := make([]byte, 256<<10)
			for {
				n, err := r.Read(buf)
				total.Add(uint64(n))
				if err != nil {
					var ne net.Error
					if !(errors.As(err, &ne) && ne.Timeout()) {
						errc <- err
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	el := time.Since(start).Seconds()
	nerr := 0
	for err := range errc {
		nerr++
		fmt.Fprintln(os.Stderr, "loadgen stream:", err)
	}
	fmt.Printf("mbytes_per_sec=%.0f gbit_per_sec=%.2f errors=%d\n",
		float64(total.Load())/el/1e6, float64(total.Load())*8/el/1e9, nerr)
	return nil
}

func ports(args []string) error {
	fs := flag.NewFlagSet("ports", flag.ExitOnError)
	n := fs.Int("n", 1, "how many")
	_ = fs.Parse(args)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < *n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

type addrs []string

func (a *addrs) String() string     { return strings.Join(*a, ",") }
func (a *addrs) Set(s string) error { *a = append(*a, s); return nil }

func wait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	var as addrs
	fs.Var(&as, "addr", "address (repeatable)")
	_ = fs.Parse(args)
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range as {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s does not accept connections: %v", a, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}
