package iptables

import (
	"strings"

	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// ruleCache speeds up big restore files, whose rules repeat the same
// options with different addresses: a successfully parsed -A line is kept
// as a template keyed by its words with the -s/-d values blanked out, and
// a later line with the same key is built from the template (addresses
// parsed, the same immutable extension configuration) without
// running the option parser again. The key only blanks words that the
// parser itself consumed as -s/-d values, so a hit parses identically.
type ruleCache struct {
	m   map[string]*parser
	key []byte // reused key buffer
}

// maxTemplates bounds the cache (memory stays bounded on any input).
const maxTemplates = 4096

func newRuleCache() *ruleCache { return &ruleCache{m: make(map[string]*parser)} }

// addrWordPositions returns where -s/-d values would be if the options are
// written as separate words (the form iptables-save prints).
func addrWordPositions(words []string) (src, dst int) {
	src, dst = -1, -1
	for i := 0; i+1 < len(words); i++ {
		switch words[i] {
		case "-s", "--source", "--src":
			src = i + 1
			i++
		case "-d", "--destination", "--dst":
			dst = i + 1
			i++
		}
	}
	return src, dst
}

func appendCacheKey(b []byte, table string, words []string, src, dst int) []byte {
	b = append(b, table...)
	for i, w := range words {
		b = append(b, 0)
		if i == src || i == dst {
			b = append(b, 1)
			continue
		}
		b = append(b, w...)
	}
	return b
}

// parse parses a line of a restore file, through the cache.
func (c *ruleCache) parse(reg *xt.Registry, fam xt.Family, words []string, po ParseOptions) (*Command, error) {
	src, dst := addrWordPositions(words)
	c.key = appendCacheKey(c.key[:0], po.DefaultTable, words, src, dst)
	if t, ok := c.m[string(c.key)]; ok {
		return t.instantiate(words, src, dst)
	}
	// the parser keeps its words: give it its own copy of the slice
	p, err := parse(reg, fam, append([]string(nil), words...), po)
	if err != nil {
		return nil, err
	}
	if p.cmd.Cmd == CmdAppend && p.srcPos == src && p.dstPos == dst && len(c.m) < maxTemplates {
		c.m[string(c.key)] = p
	}
	return p.cmd, nil
}

// instantiate builds the command of another line with the template's
// options and this line's addresses.
func (t *parser) instantiate(words []string, src, dst int) (*Command, error) {
	if (src < 0 || strings.IndexByte(words[src], ',') < 0) && (dst < 0 || strings.IndexByte(words[dst], ',') < 0) {
		return t.instantiateOne(words, src, dst)
	}
	var srcs, dsts []addrMask
	var err error
	if src >= 0 {
		if srcs, err = t.addrs(words[src], true); err != nil {
			return nil, err
		}
	} else if srcs, err = t.addrs("", false); err != nil {
		return nil, err
	}
	if dst >= 0 {
		if dsts, err = t.addrs(words[dst], true); err != nil {
			return nil, err
		}
	} else if dsts, err = t.addrs("", false); err != nil {
		return nil, err
	}
	if (len(srcs) > 1 || len(dsts) > 1) && (t.invSrc || t.invDst) {
		return nil, paramf("! not allowed with multiple source or destination IP addresses")
	}
	cmd := &Command{Cmd: t.cmd.Cmd, Table: t.cmd.Table, Chain: t.cmd.Chain, SetCounters: t.cmd.SetCounters, Warnings: t.cmd.Warnings}
	// The template's extension instances are shared with the new rule: an
	// xt.Match/xt.Target is immutable configuration once Final succeeded
	// (xt contract), and the engine builds per-rule runtime state with
	// MatchBuilder/TargetBuilder.Build for every rule separately.
	if err := t.buildRulesInto(cmd, srcs, dsts, true); err != nil {
		return nil, err
	}
	return cmd, nil
}

// instantiateOne is instantiate for the usual single source and
// destination.
func (t *parser) instantiateOne(words []string, src, dst int) (*Command, error) {
	var s, d string
	if src >= 0 {
		s = words[src]
	}
	if dst >= 0 {
		d = words[dst]
	}
	r, err := t.instantiateAddrs(s, d, src >= 0, dst >= 0)
	if err != nil {
		return nil, err
	}
	return &Command{Cmd: t.cmd.Cmd, Table: t.cmd.Table, Chain: t.cmd.Chain, SetCounters: t.cmd.SetCounters,
		Warnings: t.cmd.Warnings, Rules: []*ruleset.Rule{r}}, nil
}

// instantiateAddrs makes the template's rule with other single addresses;
// it shares the template's matches slice.
func (t *parser) instantiateAddrs(src, dst string, hasSrc, hasDst bool) (*ruleset.Rule, error) {
	tr := t.cmd.Rules[0]
	r := new(ruleset.Rule)
	*r = *tr
	// the template's own rule may have been given file counters since
	r.Counters = ruleset.Counters{}
	if t.cmd.SetCounters != nil {
		r.Counters = *t.cmd.SetCounters
	}
	if hasSrc {
		a, m, err := ParseAddrMask(t.fam, src)
		if err != nil {
			return nil, err
		}
		r.Src, r.SrcMask = a, m
	}
	if hasDst {
		a, m, err := ParseAddrMask(t.fam, dst)
		if err != nil {
			return nil, err
		}
		r.Dst, r.DstMask = a, m
	}
	// full slice expression: an append to one rule's Matches never
	// writes into another's
	r.Matches = tr.Matches[:len(tr.Matches):len(tr.Matches)]
	return r, nil
}

// lineCmd is a parsed restore line: either a command, or (template hit)
// one rule for the template's chain.
type lineCmd struct {
	cmd  *Command
	tmpl *parser
	rule *ruleset.Rule
}

// parseText parses the text of a restore rule line (counters stripped).
// Lines without quotes are looked up by a key computed from the text
// itself, so a template hit splits nothing into words.
func (c *ruleCache) parseText(reg *xt.Registry, fam xt.Family, text string, po ParseOptions, buf []string) (lineCmd, []string, error) {
	if strings.IndexByte(text, '"') < 0 && len(text) < maxRestoreParam {
		var src, dst string
		var hasSrc, hasDst bool
		c.key, src, dst, hasSrc, hasDst = appendRawKey(c.key[:0], po.DefaultTable, text)
		if t, ok := c.m[string(c.key)]; ok && strings.IndexByte(src, ',') < 0 && strings.IndexByte(dst, ',') < 0 {
			r, err := t.instantiateAddrs(src, dst, hasSrc, hasDst)
			return lineCmd{tmpl: t, rule: r}, buf, err
		}
	}
	words, buf := splitRuleWords(text, buf)
	if len(text) >= maxRestoreParam {
		if err := checkRestoreParams(words); err != nil {
			return lineCmd{}, buf, err
		}
	}
	cmd, err := c.parse(reg, fam, words, po)
	return lineCmd{cmd: cmd}, buf, err
}

// appendRawKey is appendCacheKey(addrWordPositions(words)) computed on
// the text of a line without quotes (whose words are its blank-separated
// fields), also returning the -s/-d values.
func appendRawKey(b []byte, table, text string) (key []byte, src, dst string, hasSrc, hasDst bool) {
	b = append(b, table...)
	mask := 0 // 1: this field is a -s value, 2: a -d value
	for i := 0; i < len(text); {
		for i < len(text) && isRestoreBlank(text[i]) {
			i++
		}
		start := i
		for i < len(text) && !isRestoreBlank(text[i]) {
			i++
		}
		if i == start {
			break
		}
		w := text[start:i]
		b = append(b, 0)
		switch mask {
		case 1:
			src, hasSrc = w, true
			b = append(b, 1)
			mask = 0
			continue
		case 2:
			dst, hasDst = w, true
			b = append(b, 1)
			mask = 0
			continue
		}
		b = append(b, w...)
		switch w {
		case "-s", "--source", "--src":
			mask = 1
		case "-d", "--destination", "--dst":
			mask = 2
		}
	}
	return b, src, dst, hasSrc, hasDst
}
