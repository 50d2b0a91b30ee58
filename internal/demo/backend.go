package demo

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
)

// backend is the service behind the proxy: an HTTP-ish echo server on
// 127.0.0.1:0. Each request (a request line and headers up to a blank
// line) gets a 200 reply echoing the request line; the connection stays
// open until the client closes it, so clients can hold connections.
type backend struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startBackend() (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: backend: %w", err)
	}
	b := &backend{ln: ln, conns: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns[c] = struct{}{}
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				serveEcho(c)
				b.mu.Lock()
				delete(b.conns, c)
				b.mu.Unlock()
			}()
		}
	}()
	return b, nil
}

func (b *backend) addr() string { return b.ln.Addr().String() }

// close stops the backend and ends its connections.
func (b *backend) close() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// serveEcho answers requests on c until the client closes (lines are
// bounded by the reader's 4 KiB buffer).
func serveEcho(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		req := strings.TrimSpace(string(line))
		for {
			h, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if strings.TrimSpace(string(h)) == "" {
				break
			}
		}
		body := "echo: " + req + "\n"
		if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
			return
		}
	}
}
