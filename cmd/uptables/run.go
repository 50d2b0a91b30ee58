package main

import (
	"fmt"
	"strings"

	"github.com/uptables/uptables/internal/config"
)

// runDispatch is `uptables run`. One subcommand, two data planes:
//
//	uptables run --rules FILE --nfqueue [...]   the host's firewall through NFQUEUE (run_nfqueue.go, root)
//	uptables run --rules FILE --proxy ...       a TCP/UDP proxy in front of services (run_proxy.go)
//
// A --config FILE whose top-level mode is "nfqueue" selects NFQUEUE too.
// Each data plane parses its own flags.
func runDispatch(e *env, args []string) int {
	nfq, proxy := false, false
	cfgPath := ""
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		if !strings.HasPrefix(args[i], "-") {
			continue
		}
		switch {
		case a == "nfqueue" || a == "nfqueue=true":
			nfq = true
		case a == "proxy" || strings.HasPrefix(a, "proxy="):
			proxy = true
		case a == "config" && i+1 < len(args):
			cfgPath = args[i+1]
			i++
		case strings.HasPrefix(a, "config="):
			cfgPath = strings.TrimPrefix(a, "config=")
		}
	}
	if cfgPath != "" && !nfq && !proxy {
		f, err := config.Load(cfgPath)
		if err != nil {
			fmt.Fprintf(e.stderr, "uptables run: %v\n", err)
			return 2
		}
		nfq = f.Mode == "nfqueue"
		proxy = f.Mode == "proxy"
	}
	switch {
	case nfq && proxy:
		fmt.Fprintln(e.stderr, "uptables run: --nfqueue and --proxy are two different data planes: choose one")
		return 2
	case nfq:
		return runNfqueue(e, args)
	case cfgPath != "":
		fmt.Fprintln(e.stderr, "uptables run: --config is supported with the NFQUEUE data plane only (--nfqueue, or mode = \"nfqueue\" in the file)")
		return 2
	}
	return runRun(e, args)
}
