package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/uptables/uptables/internal/config"
	"github.com/uptables/uptables/internal/control"
	"github.com/uptables/uptables/internal/dataplane/nfqueue"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/metrics"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// nfqueueOpts is the resolved configuration of `uptables run --nfqueue`.
type nfqueueOpts struct {
	rules      string
	ipsets     string
	first      uint16
	last       uint16
	hooks      []string
	failClosed bool
	mode       nfqueue.Mode
	log        string
	stateDir   string
	persistDir string
	state      string
	maxLen     int
	rcvBuf     int
	gso        bool
	batch      int
	iptables   string
	verbose    bool
	// control is the control socket ("" = <stateDir>/uptables.sock,
	// "off" = none); metrics the /metrics address ("" = none).
	control string
	metrics string
}

// runNfqueue is `uptables run --nfqueue`: the host's firewall. The kernel
// sends the chosen hooks to NFQUEUE (rules installed in mangle's
// UPTABLES-* chains), each queue has a worker that runs the engine and
// answers with verdicts. SIGHUP reloads the rules (a failed reload keeps
// the old ones), SIGUSR1 writes counters and statistics to the state
// directory, SIGINT/SIGTERM stop queueing, drain, remove the kernel rules
// and exit.
func runNfqueue(e *env, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sig)
	return serveNfqueue(ctx, e, args, sig)
}

func parseNfqueueFlags(e *env, args []string) (*nfqueueOpts, int) {
	fs := flag.NewFlagSet("uptables run --nfqueue", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	o := &nfqueueOpts{}
	fs.Bool("nfqueue", true, "use the NFQUEUE data plane (root)")
	fs.StringVar(&o.rules, "rules", "", "rules `FILE` in iptables-save format")
	fs.StringVar(&o.ipsets, "ipsets", "", "sets `FILE` in ipset save format (uptables ipset --sets FILE writes one), loaded before the rules")
	queues := fs.String("queue", "0", "queue number(s) `N[,M...]`, consecutive; the kernel balances flows over several")
	balance := fs.String("queue-balance", "", "queue range `A:B` (same as --queue A,...,B)")
	hooks := fs.String("hooks", "input,output", "kernel hooks taken over: input,output (a host) or forward (a router), comma-separated")
	fs.BoolVar(&o.failClosed, "fail-closed", false, "drop when uptables cannot decide (no listener, full queue, panic); default is fail-open")
	mode := fs.String("mode", "exact", "what is queued: exact (every packet) or lifecycle (new connections and SYN/FIN/RST only)")
	fs.StringVar(&o.log, "log", "stdout", "LOG lines to stdout, syslog, or a `FILE` (appended)")
	fs.StringVar(&o.stateDir, "state-dir", "/run/uptables", "`DIR` for the pid file, lock, counters and statistics")
	cfgPath := fs.String("config", "", "TOML configuration `FILE` (flags win over it)")
	fs.IntVar(&o.maxLen, "queue-maxlen", 4096, "packets the kernel keeps waiting per queue before fail-open/closed applies")
	fs.IntVar(&o.rcvBuf, "rcvbuf", 16<<20, "netlink receive buffer `BYTES` per queue (SO_RCVBUFFORCE)")
	fs.BoolVar(&o.gso, "gso", true, "receive GSO/GRO aggregates whole, as the kernel's iptables sees and counts them (--gso=false: the kernel segments them first)")
	fs.IntVar(&o.batch, "batch", 64, "most verdicts sent in one batch")
	fs.StringVar(&o.iptables, "iptables", "iptables", "iptables-nft binary used to install the queueing rules")
	fs.BoolVar(&o.verbose, "v", false, "debug logging")
	fs.StringVar(&o.state, "state", "", "where recent lists and hashlimit tables live: memory (default) or a redis:// / valkey:// `URL` shared by several daemons (?prefix=&timeout=50ms&fail=open|closed&share=recent,hashlimit)")
	fs.StringVar(&o.persistDir, "persist-dir", "/var/lib/uptables", "`DIR` where recent lists and hashlimit tables are saved every minute and at exit, and restored at start (off = none)")
	fs.StringVar(&o.control, "control", "", "control socket `PATH` for uptables --control, recent, conntrack... (default <state-dir>/uptables.sock; off = none)")
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics on `ADDR` (host:port, /metrics), e.g. 127.0.0.1:9595")
	fs.Usage = func() {
		fmt.Fprint(e.stderr, "usage: uptables run --nfqueue --rules FILE [options]\n\n"+
			"The host's firewall (root): the kernel queues packets to uptables, which decides.\n"+
			"Without privileges, in front of a service: uptables run --proxy (uptables run --help).\n\noptions:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "uptables run: unexpected argument %q\n", fs.Arg(0))
		return nil, 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	bad := func(format string, a ...any) (*nfqueueOpts, int) {
		fmt.Fprintf(e.stderr, "uptables run: "+format+"\n", a...)
		return nil, 2
	}
	if set["proxy"] {
		return bad("--proxy cannot be combined with --nfqueue")
	}
	if *cfgPath != "" {
		f, err := config.Load(*cfgPath)
		if err != nil {
			return bad("%v", err)
		}
		if f.Mode == "proxy" {
			return bad("%s: mode = \"proxy\" but --nfqueue given", *cfgPath)
		}
		c := f.NFQueue
		if !set["rules"] && f.Rules != "" {
			o.rules = f.Rules
		}
		if !set["ipsets"] && f.Ipsets != "" {
			o.ipsets = f.Ipsets
		}
		if !set["log"] && f.Log != "" {
			o.log = f.Log
		}
		if !set["state-dir"] && f.StateDir != "" {
			o.stateDir = f.StateDir
		}
		if !set["control"] && f.Control != "" {
			o.control = f.Control
		}
		if !set["state"] && f.State != "" {
			o.state = f.State
		}
		if !set["persist-dir"] && f.PersistDir != "" {
			o.persistDir = f.PersistDir
		}
		if !set["metrics"] && f.Metrics != "" {
			o.metrics = f.Metrics
		}
		if !set["queue"] && !set["queue-balance"] {
			if c.Set["queues"] {
				var s []string
				for _, q := range c.Queues {
					s = append(s, strconv.Itoa(q))
				}
				*queues = strings.Join(s, ",")
			}
			if c.Set["queue_balance"] {
				*balance = c.QueueBalance
			}
		}
		if !set["hooks"] && c.Set["hooks"] {
			*hooks = strings.Join(c.Hooks, ",")
		}
		if !set["fail-closed"] && c.Set["fail_closed"] {
			o.failClosed = c.FailClosed
		}
		if !set["mode"] && c.Set["mode"] {
			*mode = c.Mode
		}
		if !set["queue-maxlen"] && c.Set["queue_maxlen"] {
			o.maxLen = c.QueueMaxLen
		}
		if !set["rcvbuf"] && c.Set["rcvbuf"] {
			o.rcvBuf = c.RcvBuf
		}
		if !set["gso"] && c.Set["gso"] {
			o.gso = c.GSO
		}
		if !set["batch"] && c.Set["batch"] {
			o.batch = c.Batch
		}
	}
	if o.rules == "" {
		return bad("--rules FILE is required")
	}
	var err error
	if *balance != "" {
		if set["queue"] {
			return bad("--queue and --queue-balance are exclusive")
		}
		o.first, o.last, err = parseQueueBalance(*balance)
	} else {
		o.first, o.last, err = parseQueueList(*queues)
	}
	if err != nil {
		return bad("%v", err)
	}
	o.hooks = strings.Split(*hooks, ",")
	o.mode = nfqueue.Mode(*mode)
	k := o.kernelRules()
	if err := k.Validate(); err != nil {
		return bad("%v", err)
	}
	if o.maxLen < 0 || o.rcvBuf < 0 || o.batch <= 0 {
		return bad("--queue-maxlen and --rcvbuf must not be negative, --batch must be positive")
	}
	return o, 0
}

func parseQueueNum(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil || n > 65535 {
		return 0, fmt.Errorf("bad queue number %q (0-65535)", s)
	}
	return uint16(n), nil
}

// parseQueueList accepts "N" or consecutive "N,N+1,...": the kernel's
// NFQUEUE balancing spreads over a range, so a list with holes cannot be
// expressed.
func parseQueueList(s string) (uint16, uint16, error) {
	parts := strings.Split(s, ",")
	first, err := parseQueueNum(parts[0])
	if err != nil {
		return 0, 0, err
	}
	last := first
	for _, p := range parts[1:] {
		n, err := parseQueueNum(p)
		if err != nil {
			return 0, 0, err
		}
		if n != last+1 {
			return 0, 0, fmt.Errorf("--queue %s: queues must be consecutive (the kernel balances over a range A:B)", s)
		}
		last = n
	}
	return first, last, nil
}

func parseQueueBalance(s string) (uint16, uint16, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("--queue-balance %q: want A:B", s)
	}
	first, err := parseQueueNum(a)
	if err != nil {
		return 0, 0, err
	}
	last, err := parseQueueNum(b)
	if err != nil {
		return 0, 0, err
	}
	if last < first {
		return 0, 0, fmt.Errorf("--queue-balance %s: %d should be less than %d", s, last, first)
	}
	return first, last, nil
}

func (o *nfqueueOpts) kernelRules() *nfqueue.KernelRules {
	return &nfqueue.KernelRules{Hooks: o.hooks, First: o.first, Last: o.last, Bypass: !o.failClosed, Mode: o.mode, Iptables: o.iptables}
}

func (o *nfqueueOpts) queues() []uint16 {
	var q []uint16
	for n := int(o.first); n <= int(o.last); n++ {
		q = append(q, uint16(n))
	}
	return q
}

// loadRuleset reads a rules file (iptables-save format or one iptables
// command per line) into a validated ruleset, parsed with reg (which knows
// the daemon's ipsets).
func loadRuleset(path string, reg *xt.Registry) (*ruleset.Ruleset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rs, err := iptables.ReadRules(reg, xt.IPv4, data, false)
	if err != nil {
		var ie *iptables.Error
		if errors.As(err, &ie) {
			return nil, fmt.Errorf("%s: %s", path, ie.TextHint("iptables-restore"))
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}

// stateDir holds the daemon's files: uptables.pid, uptables.lock (flock,
// one daemon per directory), counters.save (iptables-save -c of the
// engine's ruleset) and stats (per-queue counters), the last two written
// on SIGUSR1 and at exit.
type stateDir struct {
	dir  string
	lock *os.File
}

func openStateDir(dir string) (*stateDir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lf, err := os.OpenFile(filepath.Join(dir, "uptables.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		return nil, fmt.Errorf("%s: another uptables daemon holds this state directory", dir)
	}
	if err := os.WriteFile(filepath.Join(dir, "uptables.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		lf.Close()
		return nil, err
	}
	return &stateDir{dir: dir, lock: lf}, nil
}

func (s *stateDir) writeAtomic(name string, data []byte) error {
	tmp := filepath.Join(s.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, name))
}

func (s *stateDir) dump(rules *control.Rules, d *nfqueue.Daemon) error {
	var b bytes.Buffer
	if err := rules.Save(&b, true, ""); err != nil {
		return err
	}
	if err := s.writeAtomic("counters.save", b.Bytes()); err != nil {
		return err
	}
	b.Reset()
	d.WriteStats(&b)
	return s.writeAtomic("stats", b.Bytes())
}

func (s *stateDir) close() {
	os.Remove(filepath.Join(s.dir, "uptables.pid"))
	s.lock.Close()
}

func openLogSink(dest string, stdout *os.File) (nfqueue.LogSink, func(), error) {
	switch dest {
	case "", "stdout":
		return nfqueue.NewWriterSink(stdout), func() {}, nil
	case "syslog":
		s, err := nfqueue.NewSyslogSink("")
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, err
	}
	return nfqueue.NewWriterSink(f), func() { f.Close() }, nil
}

// serveNfqueue runs the daemon until ctx ends. sig delivers SIGHUP
// (reload) and SIGUSR1 (write state).
func serveNfqueue(ctx context.Context, e *env, args []string, sig <-chan os.Signal) int {
	o, rc := parseNfqueueFlags(e, args)
	if o == nil {
		return rc
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	fail := func(err error) int {
		fmt.Fprintf(e.stderr, "uptables run: %v\n", err)
		return 1
	}
	// The sets exist before the rules that name them, as `ipset restore`
	// runs before `iptables-restore` at boot.
	sets, err := daemonSets(o.ipsets)
	if err != nil {
		return fail(err)
	}
	reg := builtin.RegistryWithSets(sets)
	rs, err := loadRuleset(o.rules, reg)
	if err != nil {
		return fail(err)
	}
	started := time.Now()
	eng := netfilter.New(hostEngineConfig(log))
	if err := builtin.PinSets(eng, sets); err != nil {
		return fail(err)
	}
	closeStore, err := openStateStore(o.state, eng, log)
	if err != nil {
		return fail(err)
	}
	defer closeStore()
	rules := control.NewRules(control.RulesConfig{Engine: eng, Registry: reg, Sets: sets, File: o.rules,
		Read: func(path string) (*ruleset.Ruleset, error) { return loadRuleset(path, reg) }})
	if err := rules.Load(rs); err != nil {
		return fail(fmt.Errorf("%s: %w", o.rules, err))
	}
	saver, err := restoreState(o.persistDir, eng, log)
	if err != nil {
		return fail(err)
	}
	defer saver.stop(log)
	sd, err := openStateDir(o.stateDir)
	if err != nil {
		return fail(err)
	}
	defer sd.close()
	stdout, _ := e.stdout.(*os.File)
	if stdout == nil {
		stdout = os.Stdout
	}
	sink, closeSink, err := openLogSink(o.log, stdout)
	if err != nil {
		return fail(err)
	}
	defer closeSink()

	// Bind the queues first: once the kernel rules exist, packets must
	// find a listener (fail-closed would drop them otherwise).
	d, err := nfqueue.NewDaemon(nfqueue.DaemonConfig{Queues: o.queues(), FailOpen: !o.failClosed, GSO: o.gso,
		MaxLen: uint32(o.maxLen), RcvBuf: o.rcvBuf, BatchMax: o.batch, Engine: eng, Logger: log, LogSink: sink})
	if err != nil {
		return fail(err)
	}
	ctlPath := o.control
	if ctlPath == "" {
		ctlPath = filepath.Join(o.stateDir, control.DefaultSocket)
	}
	if ctlPath != "off" {
		cs, err := control.Listen(control.Config{Path: ctlPath, Rules: rules, Mode: "nfqueue", Started: started,
			Queues: d.Stats, Logger: log})
		if err != nil {
			d.Stop()
			return fail(err)
		}
		defer cs.Close()
	}
	if o.metrics != "" {
		ms, err := metrics.Listen(o.metrics, metrics.NewRegistry(metrics.Config{Engine: eng, Loads: rules.Stats,
			Queues: d.Stats, Started: started}), log)
		if err != nil {
			d.Stop()
			return fail(fmt.Errorf("--metrics %s: %w", o.metrics, err))
		}
		defer ms.Close()
	}
	k := o.kernelRules()
	d.Start()
	if err := k.Install(context.Background()); err != nil {
		d.Stop()
		k.Remove(context.Background())
		return fail(err)
	}
	log.Info("uptables running", "queues", fmt.Sprintf("%d:%d", o.first, o.last), "hooks", strings.Join(o.hooks, ","),
		"mode", string(o.mode), "fail_open", !o.failClosed, "rules", o.rules)
	for {
		select {
		case s := <-sig:
			switch s {
			case syscall.SIGHUP:
				if err := rules.Reload(); err != nil {
					log.Error("reload failed; the old rules stay", "err", err)
				} else {
					log.Info("rules reloaded", "file", o.rules)
				}
			case syscall.SIGUSR1:
				if err := sd.dump(rules, d); err != nil {
					log.Error("writing state", "err", err)
				}
			}
		case <-ctx.Done():
			rc := 0
			bg := context.Background()
			if err := k.StopQueueing(bg); err != nil {
				log.Error("stop queueing", "err", err)
				rc = 1
			}
			d.Drain(3 * time.Second)
			if err := k.Remove(bg); err != nil {
				log.Error("removing kernel rules", "err", err)
				rc = 1
			}
			if err := sd.dump(rules, d); err != nil {
				log.Error("writing state", "err", err)
			}
			log.Info("uptables stopped")
			return rc
		}
	}
}
