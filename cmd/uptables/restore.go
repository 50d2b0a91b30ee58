package main

import (
	"flag"
	"fmt"

	"github.com/uptables/uptables/internal/iptables"
)

// runRestore is `uptables restore --ruleset FILE [--test] [--noflush]
// [--counters] < rules`, iptables-restore for the rule-set file. The
// input is one transaction: one bad line and FILE stays as it was.
func runRestore(e *env, args []string) int {
	file, args, err := takeRuleset(e, args)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables restore: "+err.Error())
		return 2
	}
	setsFile, args, err := takeSets(e, args)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables restore: "+err.Error())
		return 2
	}
	fs := flag.NewFlagSet("uptables restore", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	test := fs.Bool("test", false, "only parse and validate, change nothing")
	fs.BoolVar(test, "t", false, "same as --test")
	noflush := fs.Bool("noflush", false, "keep the existing rules of the tables in the input")
	fs.BoolVar(noflush, "n", false, "same as --noflush")
	counters := fs.Bool("counters", false, "take [pkts:bytes] counters from the input")
	fs.BoolVar(counters, "c", false, "same as --counters")
	fs.Usage = func() {
		fmt.Fprint(e.stderr, "usage: uptables restore [--ruleset FILE] [--test] [--noflush] [--counters] < RULES\n\n"+
			"iptables-restore for the rule-set FILE (default $UPTABLES_RULESET, then ./uptables.rules):\n"+
			"the whole input is one transaction.\n\noptions:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "uptables restore: unexpected argument %q (the rules are read from standard input)\n", fs.Arg(0))
		return 2
	}
	f, err := openRules(file, setsFile)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables restore: "+err.Error())
		return 1
	}
	defer f.close()
	rs, err := f.load()
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables restore: "+err.Error())
		return 1
	}
	warn := func(msg string) { fmt.Fprintln(e.stderr, msg) } // as iptables-restore prints them
	n, err := iptables.Restore(rs, f.reg, e.stdin, iptables.RestoreOptions{NoFlush: *noflush, Counters: *counters, Test: *test, Warn: warn})
	if err != nil {
		return report(e, "iptables-restore", err)
	}
	if *test {
		return 0
	}
	if err := f.store(n); err != nil {
		fmt.Fprintln(e.stderr, "uptables restore: writing "+file+": "+err.Error())
		return 1
	}
	return 0
}
