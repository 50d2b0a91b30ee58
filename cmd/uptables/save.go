package main

import (
	"bufio"
	"flag"
	"fmt"
	"time"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/ruleset"
)

// runSave is `uptables save --ruleset FILE [-c] [-t table]`, iptables-save
// for the rule-set file.
func runSave(e *env, args []string) int {
	file, args, err := takeRuleset(e, args)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables save: "+err.Error())
		return 2
	}
	setsFile, args, err := takeSets(e, args)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables save: "+err.Error())
		return 2
	}
	fs := flag.NewFlagSet("uptables save", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	counters := fs.Bool("c", false, "include packet and byte counters")
	fs.BoolVar(counters, "counters", false, "same as -c")
	table := fs.String("t", "", "only this table")
	fs.StringVar(table, "table", "", "same as -t")
	fs.Usage = func() {
		fmt.Fprint(e.stderr, "usage: uptables save [--ruleset FILE] [-c] [-t TABLE]\n\n"+
			"iptables-save for the rule-set FILE (default $UPTABLES_RULESET, then ./uptables.rules).\n\noptions:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "uptables save: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *table != "" {
		if _, ok := ruleset.BuiltinHooks(*table); !ok {
			fmt.Fprintf(e.stderr, "iptables-save v1.8.9 (nf_tables): table '%s' does not exist\n", *table)
			return 1
		}
	}
	f, err := openRules(file, setsFile)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables save: "+err.Error())
		return 1
	}
	defer f.close()
	rs, err := f.load()
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables save: "+err.Error())
		return 1
	}
	out := bufio.NewWriter(e.stdout)
	if err := iptables.WriteSave(out, rs, iptables.SaveOptions{Counters: *counters, Table: *table, Now: time.Now()}); err != nil {
		fmt.Fprintln(e.stderr, "uptables save: "+err.Error())
		return 1
	}
	if err := out.Flush(); err != nil {
		return 1
	}
	return 0
}
