package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/uptables/uptables/internal/dataplane/nfqueue"
	"github.com/uptables/uptables/internal/dataplane/proxy"
)

// DefaultSocket is the socket's name in the daemon's state directory.
const DefaultSocket = "uptables.sock"

// ExecPath is the one endpoint of the protocol.
const ExecPath = "/v1/exec"

// maxRequest bounds a request body (an iptables command line is far
// shorter; the bound keeps a misbehaving client from using memory).
const maxRequest = 1 << 20

// Request is the body of POST /v1/exec.
type Request struct {
	// Command is iptables, save, recent, conntrack, connlimit, hashlimit
	// or status.
	Command string   `json:"command"`
	Args    []string `json:"args"`
	// Stdin is the command's standard input (ipset restore); optional.
	Stdin string `json:"stdin,omitempty"`
}

// Reply is the answer: what the command line tool prints, and its exit
// status.
type Reply struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Exit   int    `json:"exit"`
}

// Config configures a Server.
type Config struct {
	// Path is the socket's path; required. An existing socket nobody
	// listens on (a crashed daemon's) is replaced; a live one is an error.
	Path string
	// Rules owns the daemon's rule set and engine; required.
	Rules *Rules
	// Mode is the data plane ("nfqueue" or "proxy"), for status.
	Mode string
	// Started is when the daemon started (zero = when the server is made).
	Started time.Time
	// Queues returns the NFQUEUE workers' counters (nfqueue mode).
	Queues func() []*nfqueue.QueueStats
	// Proxy returns the proxy's counters (proxy mode).
	Proxy func() proxy.Stats
	// Now is the clock; it must be the one that timestamps packets (recent
	// stamps and conntrack timeouts are compared with it). nil = time.Now.
	Now func() time.Time
	// BootNS is the packet-clock time of boot, the origin of the jiffies
	// printed in /proc/net/xt_recent format. 0 = this host's boot time from
	// /proc/uptime, so the values read like the kernel's own.
	BootNS int64
	// Logger receives the server's errors; nil = discard.
	Logger *slog.Logger
	// ReadTimeout bounds reading one request, headers and body, from its
	// first byte or from the connection's start; a client that connects
	// and sends nothing (or stalls in its body) is closed after it.
	// 0 = 10 s.
	ReadTimeout time.Duration
	// WriteTimeout bounds running a command and writing its reply, so a
	// client that never reads a long listing cannot hold the server's
	// goroutine. 0 = 2 min.
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection with no next request
	// (the CLI sends one request per connection). 0 = 30 s.
	IdleTimeout time.Duration
}

// maxHeader bounds a request's header block (the CLI sends ~150 bytes).
const maxHeader = 16 << 10

// Server is a running control socket. Close stops it.
type Server struct {
	cfg  Config
	ln   *net.UnixListener
	http *http.Server
	fi   os.FileInfo // the socket file, to remove only our own at Close
	done chan struct{}
	once sync.Once
}

type ctxKey struct{}

// Listen creates the socket (mode 0600: only its owner, root for the
// daemon, and root may connect; peers are also checked by SO_PEERCRED)
// and starts serving.
func Listen(cfg Config) (*Server, error) {
	if cfg.Path == "" || cfg.Rules == nil {
		return nil, errors.New("control: Path and Rules are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Started.IsZero() {
		cfg.Started = cfg.Now()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BootNS == 0 {
		cfg.BootNS = bootNS(cfg.Now())
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 2 * time.Minute
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	ln, err := listenUnix(cfg.Path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(cfg.Path)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, ln: ln, fi: fi, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+ExecPath, s.serveExec)
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.ReadTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeader,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, ctxKey{}, peerUID(c))
		},
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("control socket", "err", err)
		}
	}()
	return s, nil
}

// listenUnix binds path with mode 0600 without a window in which another
// user could connect: the socket is bound under a temporary name in the
// same directory, chmodded, then renamed into place.
func listenUnix(path string) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another uptables daemon is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	tmp := filepath.Join(dir, "."+filepath.Base(path)+"."+strconv.Itoa(os.Getpid()))
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, err
	}
	return ln, nil
}

// peerUID returns the uid of the process at the other end of a unix
// socket, -1 when unknown.
func peerUID(c net.Conn) int {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return -1
	}
	uid := -1
	_ = rc.Control(func(fd uintptr) {
		if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
			uid = int(cred.Uid)
		}
	})
	return uid
}

// bootNS estimates the wall-clock time of boot from /proc/uptime; the
// daemon's start is used when it cannot be read.
func bootNS(now time.Time) int64 {
	b, err := os.ReadFile("/proc/uptime")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if up, err := strconv.ParseFloat(f[0], 64); err == nil {
				return now.UnixNano() - int64(up*1e9)
			}
		}
	}
	return now.UnixNano()
}

// Addr returns the socket's path.
func (s *Server) Addr() string { return s.cfg.Path }

// Close stops the server, waits for requests in progress (at most 5 s)
// and removes the socket.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = s.http.Shutdown(ctx)
		<-s.done
		// Remove the socket only if it is still ours (a newer daemon may
		// have replaced a socket it found dead).
		if st, e := os.Lstat(s.cfg.Path); e == nil && os.SameFile(st, s.fi) {
			os.Remove(s.cfg.Path)
		}
		s.ln.Close()
	})
	return err
}

func (s *Server) serveExec(w http.ResponseWriter, r *http.Request) {
	uid, _ := r.Context().Value(ctxKey{}).(int)
	if uid != 0 && uid != os.Geteuid() {
		http.Error(w, "permission denied: only root and the daemon's user may control uptables", http.StatusForbidden)
		return
	}
	req, status, err := decodeRequest(http.MaxBytesReader(w, r.Body, maxRequest))
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	rep := s.Exec(req)
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(&rep); err != nil {
		s.cfg.Logger.Warn("control reply", "err", err)
	}
}

// decodeRequest reads exactly one Request object: a body over maxRequest,
// malformed JSON, an unknown field (a misspelt "args" would otherwise run
// the command without its arguments) or data after the object is refused,
// with the HTTP status to answer.
func decodeRequest(body io.Reader) (Request, int, error) {
	var req Request
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the request object")
			if terr != nil && !errors.Is(terr, io.ErrUnexpectedEOF) {
				err = terr
			}
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return req, http.StatusOK, nil
	case errors.As(err, &tooBig):
		return req, http.StatusRequestEntityTooLarge, fmt.Errorf("bad request: body over %d bytes", tooBig.Limit)
	}
	return req, http.StatusBadRequest, fmt.Errorf("bad request: %v", err)
}

// Commands lists the commands Exec knows, with their usage.
var Commands = []struct{ Name, Usage string }{
	{"iptables", "any iptables 1.8.9 command line (-L, -S, -A, -D, -I, -R, -N, -X, -E, -P, -F, -Z, -C)"},
	{"save", "[-c] [-t TABLE]: iptables-save of the live rule set"},
	{"recent", "[--proc|-x] [NAME] [+ADDR|-ADDR|/]: recent lists (/proc/net/xt_recent with --proc or -x)"},
	{"conntrack", "-L|-D|-F|-C [-s ADDR] [-d ADDR] [-r ADDR] [-q ADDR] [-p PROTO [--sport N] [--dport N] [--state S]] [-m MARK]"},
	{"connlimit", "connection counts of every connlimit rule, by address or prefix"},
	{"hashlimit", "[NAME]: hashlimit tables in /proc/net/ipt_hashlimit format"},
	{"status", "uptime, mode, rule-set loads, engine and data-plane counters"},
	{"ipset", "any ipset 7.17 command line on the live sets (create, add, del, test, list, save, restore, flush, rename, swap, destroy)"},
}

// Exec runs one command in-process (what the socket serves).
func (s *Server) Exec(req Request) Reply {
	var out, errb bytes.Buffer
	code := s.exec(req, &out, &errb)
	return Reply{Stdout: out.String(), Stderr: errb.String(), Exit: code}
}

func (s *Server) exec(req Request, out, errw *bytes.Buffer) int {
	switch req.Command {
	case "iptables":
		return s.cfg.Rules.Iptables(req.Args, out, errw)
	case "save":
		return s.save(req.Args, out, errw)
	case "recent":
		return s.recent(req.Args, out, errw)
	case "conntrack":
		return s.conntrack(req.Args, out, errw)
	case "connlimit":
		return s.connlimit(req.Args, out, errw)
	case "hashlimit":
		return s.hashlimit(req.Args, out, errw)
	case "status":
		return s.status(req.Args, out, errw)
	case "ipset":
		return s.cfg.Rules.Ipset(req.Args, strings.NewReader(req.Stdin), out, errw, s.nowNS())
	}
	fmt.Fprintf(errw, "uptables: unknown control command %q\n", req.Command)
	return 2
}

func (s *Server) save(args []string, out, errw *bytes.Buffer) int {
	counters, table := false, ""
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-c" || a == "--counters":
			counters = true
		case (a == "-t" || a == "--table") && i+1 < len(args):
			table = args[i+1]
			i++
		case strings.HasPrefix(a, "--table="):
			table = strings.TrimPrefix(a, "--table=")
		default:
			fmt.Fprintf(errw, "uptables save: unexpected argument %q\n", a)
			return 2
		}
	}
	if table != "" && !knownTable(table) {
		fmt.Fprintf(errw, "iptables-save v1.8.9 (nf_tables): table '%s' does not exist\n", table)
		return 1
	}
	if err := s.cfg.Rules.Save(out, counters, table); err != nil {
		fmt.Fprintln(errw, "uptables save: "+err.Error())
		return 1
	}
	return 0
}

func (s *Server) nowNS() int64 { return s.cfg.Now().UnixNano() }
