package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/uptables/uptables"
	"github.com/uptables/uptables/internal/demo"
)

// runDemo is `uptables demo`: with nothing installed and no privileges, a
// loopback backend, the proxy with stateful rules in front of it, and
// simulated clients whose connections are accepted, reset or dropped, with
// the rule that decided each and the final -L -n -v counters
// (internal/demo).
func runDemo(e *env, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return demoMain(ctx, e, args)
}

func demoMain(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("uptables demo", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	rulesFile := fs.String("rules", "", "use the rules in `FILE` (iptables-save format, or one iptables command per line) instead of the embedded ones")
	port := fs.Int("port", 0, "the proxy's port on 127.0.0.1 (0: a free port; use the port your --rules FILE names)")
	quiet := fs.Bool("quiet", false, "print only the rules, the outcomes per client and the counters")
	duration := fs.Duration("duration", 8*time.Second, "real time the playback of the script takes (0: as fast as possible)")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: uptables demo [--rules FILE] [--port N] [--quiet] [--duration D]")
		fmt.Fprintln(e.stderr, "\nA loopback backend, the uptables proxy with connlimit, recent and limit rules in front of it,")
		fmt.Fprintln(e.stderr, "and five simulated clients (127.0.0.2-6). Needs no privileges.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "uptables demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *duration < 0 || *duration > time.Minute {
		fmt.Fprintf(e.stderr, "uptables demo: --duration %s: must be between 0 and 1m\n", *duration)
		return 2
	}
	if *port < 0 || *port > 65535 {
		fmt.Fprintf(e.stderr, "uptables demo: --port %d: must be 0..65535\n", *port)
		return 2
	}
	cfg := demo.Config{Port: *port, Out: e.stdout, Quiet: *quiet, Duration: *duration}
	if *rulesFile != "" {
		r, err := uptables.LoadRulesFile(*rulesFile)
		if err != nil {
			fmt.Fprintf(e.stderr, "uptables demo: %v\n", err)
			return 1
		}
		cfg.Rules = r
	}
	if _, err := demo.Run(ctx, cfg); err != nil {
		fmt.Fprintf(e.stderr, "uptables demo: %v\n", err)
		return 1
	}
	return 0
}
