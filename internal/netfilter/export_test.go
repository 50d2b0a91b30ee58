package netfilter

// AddrRunStats counts the address runs of e's active ruleset and the rules
// they cover, so tests can tell the lookup is in use.
func AddrRunStats(e *Engine) (runs, rules int) {
	for _, t := range e.cur.Load().tables {
		if t == nil {
			continue
		}
		for i := range t.chains {
			for _, r := range t.chains[i].runs {
				runs++
				rules += r.end - r.start
			}
		}
	}
	return runs, rules
}
