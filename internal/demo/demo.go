// Package demo is `uptables demo`: a self-contained tour of the
// unprivileged data plane. It starts a loopback backend (a small HTTP-ish
// echo server), puts the uptables proxy with stateful rules in front of it,
// drives a fixed connection pattern from several simulated clients (each
// with its own 127.0.0.x source address), and prints, connection by
// connection, what the client saw and which rule decided, ending with the
// `iptables -L -n -v` counters.
//
// The rules run on a simulated clock that the script advances (WithClock):
// limit, recent --seconds and conntrack see the script's times whatever the
// machine's speed, so the outcome sequence is the one the kernel gives for
// the same pattern in real time, and it is reproducible. --duration only
// sets how long the playback takes in real time.
package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/uptables/uptables"
	"github.com/uptables/uptables/internal/dataplane/proxy"
)

// Config configures Run. Zero values are the defaults named.
type Config struct {
	// Rules replaces the embedded rules (Rules(port)) when set.
	Rules *uptables.Rules
	// Port is the proxy's port on 127.0.0.1; 0 picks a free one (the
	// embedded rules name it in --dport).
	Port int
	// Out receives the report (os.Stdout when nil).
	Out io.Writer
	// Quiet prints only the rules, the per-client summary and the counters.
	Quiet bool
	// Duration is how long the playback of the script takes in real time;
	// 0 plays it as fast as the connections allow.
	Duration time.Duration
	// ReplyTimeout bounds each client's wait for the outcome of a
	// connection (3 s).
	ReplyTimeout time.Duration
}

// Attempt is one connection attempt of a simulated client and its outcome.
type Attempt struct {
	At     time.Duration  // on the script's clock
	Client string         // the client's name
	Addr   netip.AddrPort // the client's address and port (port 0 when connect failed)
	N      int            // the client's attempt number, from 1
	// Outcome is the data plane's verdict on the connection; Seen is what
	// the client observed: "reply", "reset", "eof", "timeout" or an error.
	Outcome uptables.Outcome
	Seen    string
	// Table, Chain and Rule (1-based, 0 = the chain's policy) name the rule
	// that decided: for an accepted connection the one that accepted its
	// SYN, otherwise the one that refused the first refused packet; Spec
	// is that rule in `iptables -S` form. Empty when no table decided.
	Table, Chain string
	Rule         int
	Spec         string
	// Packet is the synthetic packet that decided: "SYN", "SYN/ACK" or
	// "ACK" (the handshake's last).
	Packet string
}

// Result is what Run observed.
type Result struct {
	Port     int // the proxy's port
	Attempts []Attempt
	Counters []uptables.RuleCounter
	Stats    uptables.Stats
}

// Outcomes returns the outcome names ("accept", "reset", "drop", "close")
// of the named client's attempts, in order.
func (r *Result) Outcomes(client string) []string {
	var out []string
	for _, a := range r.Attempts {
		if a.Client == client {
			out = append(out, a.Outcome.String())
		}
	}
	return out
}

// Run plays the demo and returns what happened. It fails when the rules
// cannot run in the engine or the loopback sockets cannot be set up.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.ReplyTimeout <= 0 {
		cfg.ReplyTimeout = 3 * time.Second
	}
	out := &lockedWriter{w: cfg.Out}

	be, err := startBackend()
	if err != nil {
		return nil, err
	}
	defer be.close()

	d := &driver{cfg: cfg, out: out, clients: Clients(), tr: newTracker(),
		clock: &simClock{base: time.Now()}}
	d.held = make([][]net.Conn, len(d.clients))
	d.syns = make([][]time.Duration, len(d.clients))
	if err := d.start(be.addr()); err != nil {
		return nil, err
	}
	defer d.px.Close()

	d.header(be.addr())
	if err := d.play(ctx); err != nil {
		d.closeAll()
		return nil, err
	}
	res := &Result{Port: d.port, Attempts: d.attempts, Counters: d.fw.Counters(), Stats: d.fw.Stats()}
	d.footer(res)
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = d.px.Shutdown(sctx)
	return res, nil
}

// simClock is the clock the rules see: the wall clock at the start plus
// the script's time.
type simClock struct {
	base time.Time
	off  atomic.Int64
}

func (c *simClock) now() time.Time         { return c.base.Add(time.Duration(c.off.Load())) }
func (c *simClock) set(d time.Duration)    { c.off.Store(int64(d)) }
func (c *simClock) elapsed() time.Duration { return time.Duration(c.off.Load()) }
func (c *simClock) String() string         { return fmtAt(c.elapsed()) }
func fmtAt(d time.Duration) string         { return fmt.Sprintf("%6.2fs", d.Seconds()) }
func (w *lockedWriter) printf(f string, a ...any) {
	w.mu.Lock()
	fmt.Fprintf(w.w, f, a...)
	w.mu.Unlock()
}

// lockedWriter serialises the report: LOG lines arrive from the proxy's
// goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// driver plays the script against one firewall and proxy.
type driver struct {
	cfg      Config
	out      *lockedWriter
	clients  []Client
	tr       *tracker
	clock    *simClock
	fw       *uptables.Firewall
	px       *uptables.Proxy
	port     int
	specs    map[ruleKey]string
	chain    map[string][]uptables.RuleCounter // "table\x00chain" → its rules in order
	held     [][]net.Conn                      // per client, oldest first
	syns     [][]time.Duration                 // per client, the times of its attempts
	attempts []Attempt
}

type ruleKey struct {
	table, chain string
	rule         int
}

// start builds the firewall and the proxy. With a free port and the
// embedded rules, the port is chosen first (the rules name it); another
// process may take it in between, so that is retried a few times.
func (d *driver) start(upstream string) error {
	var lastErr error
	for try := 0; try < 5; try++ {
		port := d.cfg.Port
		if port == 0 {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("demo: cannot listen on loopback: %w", err)
			}
			port = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		rules := d.cfg.Rules
		if rules == nil {
			r, err := uptables.LoadRules(strings.NewReader(Rules(port)))
			if err != nil {
				return fmt.Errorf("demo: embedded rules: %w", err)
			}
			rules = r
		}
		fw, err := uptables.New(rules, uptables.WithObserver(d.tr.observe), uptables.WithClock(d.clock.now),
			uptables.WithLogLines(d.logLine))
		if err != nil {
			return err
		}
		px, err := fw.ListenProxy(uptables.ProxyConfig{
			Routes:         []string{fmt.Sprintf("tcp:127.0.0.1:%d=%s", port, upstream)},
			MaxConns:       64,
			ConnectTimeout: 2 * time.Second,
			IdleTimeout:    time.Minute,
		})
		if err != nil {
			lastErr = err
			if d.cfg.Port == 0 && errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			return fmt.Errorf("demo: %w", err)
		}
		d.fw, d.px, d.port = fw, px, port
		d.specs = map[ruleKey]string{}
		d.chain = map[string][]uptables.RuleCounter{}
		for _, c := range fw.Counters() {
			d.specs[ruleKey{c.Table, c.Chain, c.Rule}] = c.Spec
			if c.Rule > 0 {
				k := c.Table + "\x00" + c.Chain
				d.chain[k] = append(d.chain[k], c)
			}
		}
		return nil
	}
	return fmt.Errorf("demo: %w", lastErr)
}

func (d *driver) logLine(_ uint8, line []byte) {
	if !d.cfg.Quiet {
		d.out.printf("%s  LOG %s\n", d.clock, line)
	}
}

func (d *driver) header(backend string) {
	o := d.out
	o.printf("uptables demo: a loopback backend, the uptables proxy in front of it, %d simulated clients.\n", len(d.clients))
	o.printf("  backend  %s (HTTP-ish echo server)\n", backend)
	o.printf("  proxy    127.0.0.1:%d -> %s, enforcing the rules below\n", d.port, backend)
	names := make([]string, len(d.clients))
	for i, c := range d.clients {
		names[i] = c.Name + " " + c.Addr.String()
	}
	o.printf("  clients  %s\n", strings.Join(names, ", "))
	steps := script()
	span := steps[len(steps)-1].at
	o.printf("  clock    the rules' clock follows the script (%.1f s), played in %s\n", span.Seconds(), d.cfg.Duration)
	o.printf("\nRules (iptables -S):\n")
	writeSpecs(o, d.fw.Counters())
	o.printf("\nA DROP closes the connection without a byte and a REJECT tcp-reset resets it: the proxy's\n" +
		"kernel has already completed the handshake (the kernel firewall would leave the SYN unanswered).\n\n")
}

// writeSpecs prints the rules as `iptables -S` does, table by table.
func writeSpecs(o *lockedWriter, cs []uptables.RuleCounter) {
	var tables []string
	by := map[string][]uptables.RuleCounter{}
	for _, c := range cs {
		if _, ok := by[c.Table]; !ok {
			tables = append(tables, c.Table)
		}
		by[c.Table] = append(by[c.Table], c)
	}
	for _, t := range tables {
		if len(tables) > 1 || t != "filter" {
			o.printf("# -t %s\n", t)
		}
		policies := map[string]bool{}
		for _, c := range by[t] {
			if c.Rule == 0 {
				policies[c.Chain] = true
				o.printf("%s\n", c.Spec)
			}
		}
		seen := map[string]bool{}
		for _, c := range by[t] {
			if c.Rule > 0 && !policies[c.Chain] && !seen[c.Chain] {
				seen[c.Chain] = true
				o.printf("-N %s\n", c.Chain)
			}
		}
		for _, c := range by[t] {
			if c.Rule > 0 {
				o.printf("%s\n", c.Spec)
			}
		}
	}
}

// play runs the script, pacing it over cfg.Duration of real time.
func (d *driver) play(ctx context.Context) error {
	steps := script()
	span := steps[len(steps)-1].at
	start := time.Now()
	for _, s := range steps {
		if s.note != "" && !d.cfg.Quiet {
			d.out.printf("%s  -- %s\n", fmtAt(s.at), s.note)
		}
		if d.cfg.Duration > 0 && span > 0 {
			due := start.Add(time.Duration(float64(d.cfg.Duration) * float64(s.at) / float64(span)))
			t := time.NewTimer(time.Until(due))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		} else if err := ctx.Err(); err != nil {
			return err
		}
		d.clock.set(s.at)
		if err := d.do(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

func (d *driver) openCount() int {
	n := 0
	for _, h := range d.held {
		n += len(h)
	}
	return n
}

func (d *driver) do(ctx context.Context, s step) error {
	switch s.op {
	case opHold, opRequest:
		c, err := d.attempt(ctx, s)
		if err != nil {
			return err
		}
		if c == nil {
			return nil
		}
		if s.op == opHold {
			d.held[s.who] = append(d.held[s.who], c)
			return nil
		}
		c.Close()
		return d.waitActive()
	case opClose:
		if len(d.held[s.who]) == 0 {
			return nil
		}
		d.held[s.who][0].Close()
		d.held[s.who] = d.held[s.who][1:]
		return d.waitActive()
	case opCloseAll:
		d.closeAll()
		return d.waitActive()
	}
	return nil
}

func (d *driver) closeAll() {
	for i := range d.held {
		for _, c := range d.held[i] {
			c.Close()
		}
		d.held[i] = nil
	}
}

// waitActive waits until the proxy has seen every connection the clients
// closed end both ways (FINs and the last ACK run through the rules), so
// that conntrack, and connlimit with it, no longer counts them.
func (d *driver) waitActive() error {
	want := uint64(d.openCount())
	deadline := time.Now().Add(3 * time.Second)
	for d.fw.Stats().ConnsActive != want {
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: the proxy still has %d open connections 3 s after the clients closed theirs (want %d)",
				d.fw.Stats().ConnsActive, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// attempt opens one connection from the step's client and sends one
// request. It returns the connection when the reply came back.
func (d *driver) attempt(ctx context.Context, s step) (net.Conn, error) {
	cl := d.clients[s.who]
	d.syns[s.who] = append(d.syns[s.who], s.at)
	a := Attempt{At: s.at, Client: cl.Name, N: len(d.syns[s.who])}
	dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: cl.Addr.AsSlice()}, Timeout: d.cfg.ReplyTimeout}
	c, err := dl.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", d.port))
	if err == nil {
		a.Addr = c.LocalAddr().(*net.TCPAddr).AddrPort()
		_ = c.SetDeadline(time.Now().Add(d.cfg.ReplyTimeout))
		err = request(c, fmt.Sprintf("GET /%s/%d HTTP/1.1", cl.Name, a.N))
	}
	a.Seen = seen(err)
	if err != nil && c != nil {
		c.Close()
		c = nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EADDRNOTAVAIL) {
		return nil, fmt.Errorf("demo: %s cannot connect from %s: %w", cl.Name, cl.Addr, err)
	}
	h, ok := d.tr.take(cl.Addr, time.Second)
	if !ok {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("demo: the proxy reported no handshake for %s's connection %d (%s)", cl.Name, a.N, a.Seen)
	}
	ev := h.decisive
	a.Outcome = ev.Outcome
	a.Addr = ev.Client
	a.Packet = ev.Kind.String()
	if ev.Decision.Table != "" {
		a.Table, a.Chain, a.Rule = ev.Decision.Table, ev.Decision.Chain, ev.Decision.Rule
		a.Spec = d.specs[ruleKey{a.Table, a.Chain, a.Rule}]
	}
	if c != nil {
		_ = c.SetDeadline(time.Time{})
	}
	d.attempts = append(d.attempts, a)
	if !d.cfg.Quiet {
		d.report(s.who, a, c != nil)
	}
	return c, nil
}

// request writes an HTTP-ish request and reads the reply.
func request(c net.Conn, line string) error {
	if _, err := io.WriteString(c, line+"\r\nHost: demo\r\n\r\n"); err != nil {
		return err
	}
	br := bufio.NewReaderSize(c, 512)
	length := -1
	for {
		l, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		s := strings.TrimSpace(string(l))
		if s == "" {
			break
		}
		if v, ok := strings.CutPrefix(s, "Content-Length: "); ok {
			length, _ = strconv.Atoi(v)
		}
	}
	if length < 0 || length > 4096 {
		return errors.New("bad reply")
	}
	_, err := io.ReadFull(br, make([]byte, length))
	return err
}

// seen names what the client observed.
func seen(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "reply"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return err.Error()
}

// seenText explains what the client observed.
func seenText(s string) string {
	switch s {
	case "reply":
		return "the reply came back"
	case "reset":
		return "connection reset by peer (ECONNRESET)"
	case "eof":
		return "closed without a byte (EOF)"
	case "timeout":
		return "no answer (timeout)"
	}
	return s
}

// outcomeText is the outcome as the report prints it.
func outcomeText(o uptables.Outcome) string {
	switch o {
	case uptables.Accepted:
		return "ACCEPTED"
	case uptables.Dropped:
		return "DROPPED"
	case uptables.Reset:
		return "RESET"
	case uptables.Closed:
		return "CLOSED"
	}
	return o.String()
}

// report prints one attempt: outcome, the deciding rule, and the client's
// state the rule consulted.
func (d *driver) report(who int, a Attempt, open bool) {
	st := seenText(a.Seen)
	d.out.printf("%s  %-5s %-16s #%-2d %-8s  %s\n", fmtAt(a.At), a.Client, a.Addr, a.N, outcomeText(a.Outcome), st)
	switch {
	case a.Spec != "" && a.Rule == 0:
		d.out.printf("%8s  %s %s: no rule decided, the policy: %s\n", "", a.Table, a.Chain, a.Spec)
	case a.Spec != "":
		d.out.printf("%8s  %s %s rule %d: %s\n", "", a.Table, a.Chain, a.Rule, a.Spec)
	default:
		d.out.printf("%8s  no table had a rule for this packet\n", "")
	}
	d.out.printf("%8s  %s\n", "", d.why(who, a, open))
}

var (
	reAbove   = regexp.MustCompile(`--connlimit-above (\d+)`)
	reSeconds = regexp.MustCompile(`--seconds (\d+)`)
	reHit     = regexp.MustCompile(`--hitcount (\d+)`)
	reLimit   = regexp.MustCompile(`--limit (\S+)(?: --limit-burst (\d+))?`)
)

// why states the client's state the deciding rule looked at: its open
// connections (connlimit), its new connections in the rule's window
// (recent), the global budget (limit). These are the facts of the
// connection pattern, which is what the kernel's state records.
func (d *driver) why(who int, a Attempt, open bool) string {
	cl := d.clients[who]
	held := len(d.held[who])
	var facts []string
	if open {
		facts = append(facts, fmt.Sprintf("%s now holds %s, this one included", cl.Name, plural(held+1, "open connection")))
	} else {
		facts = append(facts, fmt.Sprintf("%s holds %s", cl.Name, plural(held, "other open connection")))
	}
	window := 10 * time.Second
	if m := reSeconds.FindStringSubmatch(a.Spec); m != nil {
		n, _ := strconv.Atoi(m[1])
		window = time.Duration(n) * time.Second
	}
	recent := 0
	for _, t := range d.syns[who] {
		if a.At-t <= window {
			recent++
		}
	}
	facts = append(facts, fmt.Sprintf("%s from %s in the last %s", plural(recent, "new connection"), cl.Addr, window))
	spec := a.Spec
	if a.Packet != "SYN" && a.Packet != "" {
		path := "client -> proxy, INPUT"
		if a.Packet == "SYN/ACK" {
			path = "proxy -> client, OUTPUT"
		}
		return fmt.Sprintf("the SYN passed; the handshake's %s (%s) decided; %s", a.Packet, path, strings.Join(facts, "; "))
	}
	switch {
	case a.Outcome != uptables.Accepted && strings.Contains(spec, "-m connlimit"):
		if m := reAbove.FindStringSubmatch(spec); m != nil {
			return fmt.Sprintf("connlimit: %d live connections from %s counting this one, above %s -> refused", held+1, cl.Addr, m[1])
		}
	case a.Outcome != uptables.Accepted && strings.Contains(spec, "-m recent"):
		hc := ""
		if m := reHit.FindStringSubmatch(spec); m != nil {
			hc = ", --hitcount " + m[1]
		}
		return fmt.Sprintf("recent: %d new connections from %s within %s counting this one%s -> refused (--update records this attempt too)",
			recent, cl.Addr, window, hc)
	case a.Outcome == uptables.Accepted && strings.Contains(spec, "-m limit"):
		facts = append(facts, "the limit's bucket had a token")
	case a.Outcome != uptables.Accepted:
		// A fall-through: name the limit rules above that let the packet
		// pass without matching.
		for _, c := range d.chain[a.Table+"\x00"+a.Chain] {
			if c.Rule >= a.Rule {
				break
			}
			if m := reLimit.FindStringSubmatch(c.Spec); m != nil && strings.Contains(c.Spec, "-m limit") {
				burst := m[2]
				if burst == "" {
					burst = "5"
				}
				facts = append(facts, fmt.Sprintf("rule %d (-m limit %s, burst %s) did not match: its bucket was empty", c.Rule, m[1], burst))
			}
		}
	}
	return strings.Join(facts, "; ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func (d *driver) footer(res *Result) {
	o := d.out
	o.printf("\nOutcomes per client:\n")
	for _, c := range d.clients {
		o.printf("  %-5s %-9s %s\n", c.Name, c.Addr, strings.Join(res.Outcomes(c.Name), " "))
	}
	st := res.Stats
	o.printf("\nProxy: %d connections accepted, %d reset, %d dropped, %d closed; %d synthetic packets in, %d out, %d refused\n",
		st.ConnsAccepted, st.ConnsReset, st.ConnsDropped, st.ConnsClosed, st.PacketsIn, st.PacketsOut, st.PacketsRefused)
	o.printf("\niptables -L -n -v:\n")
	o.mu.Lock()
	_ = d.fw.WriteList(o.w, "filter")
	o.mu.Unlock()
}

// tracker follows the handshakes the proxy runs through the rules
// (WithObserver) and hands each client attempt its deciding event.
// Attempts of one client are sequential, so the oldest finished handshake
// from the client's address is its latest attempt's.
type tracker struct {
	mu    sync.Mutex
	open  map[netip.AddrPort]*handshake
	queue map[netip.Addr][]*handshake
}

type handshake struct {
	decisive uptables.Event
	done     bool
}

func newTracker() *tracker {
	return &tracker{open: map[netip.AddrPort]*handshake{}, queue: map[netip.Addr][]*handshake{}}
}

// observe runs on the proxy's connection goroutines; it only records.
func (t *tracker) observe(ev uptables.Event) {
	if ev.Proto != 6 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch ev.Kind {
	case proxy.KindSYN:
		if !ev.FromPeer {
			return
		}
		h := &handshake{decisive: ev, done: ev.Outcome != uptables.Accepted}
		if !h.done {
			t.open[ev.Client] = h
		}
		a := ev.Client.Addr()
		t.queue[a] = append(t.queue[a], h)
	case proxy.KindSYNACK, proxy.KindACK:
		h := t.open[ev.Client]
		if h == nil {
			return
		}
		switch {
		case ev.Outcome != uptables.Accepted:
			h.decisive, h.done = ev, true
		case ev.Kind == proxy.KindACK && ev.FromPeer:
			h.done = true
		default:
			return
		}
		delete(t.open, ev.Client)
	}
}

// take returns the oldest finished handshake from addr, waiting up to
// wait for it.
func (t *tracker) take(addr netip.Addr, wait time.Duration) (*handshake, bool) {
	deadline := time.Now().Add(wait)
	for {
		t.mu.Lock()
		if q := t.queue[addr]; len(q) > 0 && q[0].done {
			t.queue[addr] = q[1:]
			t.mu.Unlock()
			return q[0], true
		}
		t.mu.Unlock()
		if time.Now().After(deadline) {
			return nil, false
		}
		time.Sleep(time.Millisecond)
	}
}
