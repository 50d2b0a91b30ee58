// Command uptables is iptables reimplemented in user space. When the first
// argument is an option it behaves like iptables (`uptables -A INPUT ...`)
// on a rule-set file instead of the kernel; otherwise the first argument
// names a subcommand (save, restore, run, replay, gen, ipset, demo, and the
// control-socket clients recent, conntrack, connlimit, hashlimit, status;
// `uptables help` lists them).
//
// main.go only dispatches: each subcommand lives in its own file and is
// listed once in subcommands below.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// env is what a subcommand may use from the process; tests supply their own.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// subcommand runs with the arguments after its name and returns the exit status.
type subcommand struct {
	run     func(e *env, args []string) int
	summary string
}

func subcommands() map[string]subcommand {
	return map[string]subcommand{
		"save":      {runSave, "print the rule set in iptables-save format"},
		"restore":   {runRestore, "load an iptables-save file into the rule set (all or nothing)"},
		"run":       {runDispatch, "enforce a rule file: host firewall through NFQUEUE (--nfqueue, root) or TCP/UDP proxy (--proxy)"},
		"replay":    {runReplay, "run pcap/pcapng captures through a ruleset (counters, LOG, trace, jsonl)"},
		"gen":       {runGen, "write a capture from a traffic scenario file"},
		"ipset":     {runIpset, "ipset 7.17 on a sets file: create/add/del/test/list/save/restore/swap/rename/flush/destroy (--sets FILE)"},
		"demo":      {runDemo, "no privileges needed: a loopback backend, the proxy with connlimit/recent/limit rules, simulated clients, the trace and counters"},
		"recent":    {ctlSubcommand("recent"), "a running daemon's recent lists: list (blocked until), +ADDR, -ADDR, / (--control PATH)"},
		"conntrack": {ctlSubcommand("conntrack"), "a running daemon's connection table: -L, -D, -F, -C with conntrack filters (--control PATH)"},
		"connlimit": {ctlSubcommand("connlimit"), "a running daemon's connlimit rules: connections per address or prefix (--control PATH)"},
		"hashlimit": {ctlSubcommand("hashlimit"), "a running daemon's hashlimit tables in /proc/net/ipt_hashlimit format (--control PATH)"},
		"status":    {ctlSubcommand("status"), "a running daemon's uptime, mode, rule-set loads and counters (--control PATH)"},
	}
}

func main() {
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(dispatch(e, os.Args[1:]))
}

func dispatch(e *env, args []string) int {
	if rc, ok := controlDispatch(e, args); ok {
		return rc
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") && args[0] != "!" {
		if sc, ok := subcommands()[args[0]]; ok {
			return sc.run(e, args[1:])
		}
		if args[0] == "help" {
			usage(e.stdout)
			return 0
		}
	}
	return runIptables(e, args)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: uptables [--ruleset FILE] <iptables options>   (iptables 1.8.9 syntax)")
	fmt.Fprintln(w, "       uptables <subcommand> [options]")
	fmt.Fprintln(w, "\nsubcommands:")
	scs := subcommands()
	names := make([]string, 0, len(scs))
	for n := range scs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, scs[n].summary)
	}
	fmt.Fprintln(w, "\nThe rule set lives in FILE (iptables-save format), default $UPTABLES_RULESET or ./uptables.rules.")
}
