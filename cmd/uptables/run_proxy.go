package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/uptables/uptables/internal/control"
	"github.com/uptables/uptables/internal/dataplane/proxy"
	"github.com/uptables/uptables/internal/metrics"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// runRun is `uptables run`: enforce a rule file in front of services
// without privileges (the TCP/UDP proxy). SIGHUP reloads the rules;
// SIGINT/SIGTERM stop accepting and let open connections finish within
// --shutdown-timeout.
func runRun(e *env, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return serveProxy(ctx, e, args, hup, nil)
}

// serveProxy runs until ctx ends; a value on reload reloads the rules.
// ready, if set, receives the bound addresses once listening.
func serveProxy(ctx context.Context, e *env, args []string, reload <-chan os.Signal, ready func([]string)) int {
	fs := flag.NewFlagSet("uptables run", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var routes, trusted listFlag
	rulesFile := fs.String("rules", "", "rules `FILE` (iptables-save format, or one iptables command per line)")
	ipsetsFile := fs.String("ipsets", "", "sets `FILE` in ipset save format (uptables ipset --sets FILE writes one), loaded before the rules")
	fs.Var(&routes, "proxy", "`tcp:LISTEN=UPSTREAM` or udp:LISTEN=UPSTREAM, optionally ,send-proxy or ,send-proxy-v2 (repeatable)")
	fs.Var(&trusted, "trusted-proxy", "`CIDR` whose connections start with a PROXY v1/v2 header (repeatable)")
	iface := fs.String("iface", "", "interface name the rules see (default: lo for local clients, else the one holding the listen address)")
	hold := fs.Duration("drop-hold", 0, "hold connections refused by DROP open this long before closing")
	maxConns := fs.Int("max-conns", 1024, "most TCP connections open at once")
	maxSessions := fs.Int("max-udp-sessions", 1024, "most UDP client sessions per route")
	connectTO := fs.Duration("connect-timeout", 5*time.Second, "upstream connect timeout")
	idleTO := fs.Duration("idle-timeout", 5*time.Minute, "close TCP connections idle this long")
	udpIdle := fs.Duration("udp-idle-timeout", 30*time.Second, "end UDP sessions idle this long")
	headerTO := fs.Duration("proxy-header-timeout", 5*time.Second, "wait this long for a PROXY header")
	shutdownTO := fs.Duration("shutdown-timeout", 30*time.Second, "on SIGINT/SIGTERM, let open connections finish this long")
	verbose := fs.Bool("v", false, "log every refused connection (debug level)")
	ctlPath := fs.String("control", "", "control socket `PATH` for uptables --control, recent, conntrack... (default none)")
	stateURL := fs.String("state", "", "where recent lists and hashlimit tables live: memory (default) or a redis:// / valkey:// `URL` shared by several daemons (?prefix=&timeout=50ms&fail=open|closed&share=recent,hashlimit)")
	persistDir := fs.String("persist-dir", "off", "`DIR` where recent lists and hashlimit tables are saved every minute and at exit, and restored at start (off = none)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on `ADDR` (host:port, /metrics), e.g. 127.0.0.1:9595")
	fs.Usage = func() {
		fmt.Fprint(e.stderr, "usage: uptables run --rules FILE --proxy tcp:LISTEN=UPSTREAM [--proxy ...] [options]\n\n"+
			"The rules in front of TCP/UDP services, without privileges. The host's firewall\n"+
			"through NFQUEUE (root) is uptables run --nfqueue; see uptables run --nfqueue --help.\n\noptions:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "uptables run: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *rulesFile == "" || len(routes) == 0 {
		fmt.Fprintln(e.stderr, "uptables run: --rules FILE and at least one --proxy tcp:LISTEN=UPSTREAM are required")
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	var prefixes []netip.Prefix
	for _, s := range trusted {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				fmt.Fprintf(e.stderr, "uptables run: --trusted-proxy %q: %v\n", s, err)
				return 2
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		prefixes = append(prefixes, p)
	}
	// The sets exist before the rules that name them.
	sets, err := daemonSets(*ipsetsFile)
	if err != nil {
		fmt.Fprintf(e.stderr, "uptables run: %v\n", err)
		return 1
	}
	reg := builtin.RegistryWithSets(sets)
	readRules := readRulesWith(reg)
	rs, err := readRules(*rulesFile)
	if err != nil {
		fmt.Fprintf(e.stderr, "uptables run: %v\n", err)
		return 1
	}
	var parsed []proxy.Route
	for _, s := range routes {
		r, err := proxy.ParseRoute(s)
		if err != nil {
			fmt.Fprintf(e.stderr, "uptables run: %v\n", err)
			return 1
		}
		parsed = append(parsed, r)
	}
	// The pieces uptables.New and ListenProxy assemble, built here so that
	// the control socket and the metrics reach the engine.
	started := time.Now()
	eng := netfilter.New(hostEngineConfig(log))
	if err := builtin.PinSets(eng, sets); err != nil {
		fmt.Fprintf(e.stderr, "uptables run: %v\n", err)
		return 1
	}
	closeStore, err := openStateStore(*stateURL, eng, log)
	if err != nil {
		fmt.Fprintf(e.stderr, "uptables run: %v\n", err)
		return 1
	}
	defer closeStore()
	rules := control.NewRules(control.RulesConfig{Engine: eng, Registry: reg, Sets: sets, File: *rulesFile, Read: readRules})
	if err := rules.Load(rs); err != nil {
		fmt.Fprintf(e.stderr, "uptables run: %s: %v\n", *rulesFile, err)
		return 1
	}
	saver, err := restoreState(*persistDir, eng, log)
	if err != nil {
		fmt.Fprintf(e.stderr, "uptables run: %v\n", err)
		return 1
	}
	defer saver.stop(log)
	gate := proxy.NewGate(proxy.GateConfig{Engine: eng, Logger: log, Iface: *iface})
	p, err := proxy.Listen(proxy.Config{Gate: gate, Routes: parsed,
		Admit:    proxy.AdmitConfig{TrustedProxies: prefixes, ProxyHeaderTimeout: *headerTO},
		MaxConns: *maxConns, MaxSessions: *maxSessions, ConnectTimeout: *connectTO,
		IdleTimeout: *idleTO, UDPIdleTimeout: *udpIdle, DropHold: *hold})
	if err != nil {
		fmt.Fprintf(e.stderr, "uptables run: %v\n", err)
		return 1
	}
	if *ctlPath != "" && *ctlPath != "off" {
		cs, err := control.Listen(control.Config{Path: *ctlPath, Rules: rules, Mode: "proxy", Started: started,
			Proxy: gate.Stats, Logger: log})
		if err != nil {
			p.Close()
			fmt.Fprintf(e.stderr, "uptables run: %v\n", err)
			return 1
		}
		defer cs.Close()
	}
	if *metricsAddr != "" {
		ms, err := metrics.Listen(*metricsAddr, metrics.NewRegistry(metrics.Config{Engine: eng, Loads: rules.Stats,
			Proxy: gate.Stats, Started: started}), log)
		if err != nil {
			p.Close()
			fmt.Fprintf(e.stderr, "uptables run: --metrics %s: %v\n", *metricsAddr, err)
			return 1
		}
		defer ms.Close()
	}
	if ready != nil {
		var addrs []string
		for _, a := range p.Addrs() {
			addrs = append(addrs, a.String())
		}
		ready(addrs)
	}
	for {
		select {
		case <-reload:
			if err := rules.Reload(); err != nil {
				log.Error("reload failed; the old rules stay", "err", err)
			} else {
				log.Info("rules reloaded", "file", *rulesFile)
			}
		case <-ctx.Done():
			log.Info("shutting down", "deadline", shutdownTO.String())
			sctx, cancel := context.WithTimeout(context.Background(), *shutdownTO)
			err := p.Shutdown(sctx)
			cancel()
			s := gate.Stats()
			log.Info("stopped", "accepted", s.ConnsAccepted, "dropped", s.ConnsDropped, "reset", s.ConnsReset,
				"closed", s.ConnsClosed, "cut", s.ConnsCut, "upstream_errors", s.UpstreamErrors)
			if err != nil {
				log.Warn("connections aborted at the shutdown deadline", "err", err)
			}
			return 0
		}
	}
}
