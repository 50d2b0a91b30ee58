package main

import (
	"bufio"
	"fmt"

	"github.com/uptables/uptables/internal/iptables"
)

// runIptables is `uptables [--ruleset FILE] <iptables options>`: FILE is
// to uptables what the kernel is to iptables. A command that changes the
// rule set rewrites FILE atomically; a failing one leaves it untouched;
// listings print exactly what iptables 1.8.9 prints; exit codes match.
func runIptables(e *env, args []string) int {
	file, args, err := takeRuleset(e, args)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables: "+err.Error())
		return 2
	}
	setsFile, args, err := takeSets(e, args)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables: "+err.Error())
		return 2
	}
	f, err := openRules(file, setsFile)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables: "+err.Error())
		return 1
	}
	defer f.close()
	cmd, err := iptables.ParseCommand(f.reg, 4, args, iptables.ParseOptions{})
	if err != nil {
		return report(e, "iptables", err)
	}
	for _, w := range cmd.Warnings {
		fmt.Fprintln(e.stderr, w)
	}
	rs, err := f.load()
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables: "+err.Error())
		return 1
	}
	out := bufio.NewWriter(e.stdout)
	res, err := iptables.Execute(rs, cmd, out)
	if ferr := out.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return report(e, "iptables", err)
	}
	if res.Changed {
		if err := f.store(res.Ruleset); err != nil {
			fmt.Fprintln(e.stderr, "uptables: writing "+file+": "+err.Error())
			return 1
		}
	}
	return 0
}
