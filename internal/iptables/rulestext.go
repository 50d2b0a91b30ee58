package iptables

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// ReadRules reads a rules file in either of the two forms people keep
// their firewall in, deciding by its first line that is neither blank nor
// a comment:
//
//   - iptables-save format ("*filter", ":INPUT ACCEPT [0:0]", "-A ...",
//     "COMMIT"), read exactly as iptables-restore 1.8.9 reads it ("[p:b]"
//     counters only when counters is set, as with -c); an error is the
//     *Error of Restore, naming the line;
//   - plain iptables commands, one per line ("-A INPUT -s 10.0.0.0/8 -j
//     DROP", "-t nat -A ...", "-P INPUT DROP", "-N chain"), optionally
//     preceded by "iptables", "#" starting a comment, each parsed, validated
//     and executed as iptables 1.8.9 would; the first error is returned as
//     "line N: " and iptables' message, with uptables' hint line if any.
//
// Both forms start from empty tables with ACCEPT policies.
func ReadRules(reg *xt.Registry, fam xt.Family, data []byte, counters bool) (*ruleset.Ruleset, error) {
	empty := ruleset.New(fam)
	if saveFormat(data) {
		return Restore(empty, reg, bytes.NewReader(data), RestoreOptions{Counters: counters})
	}
	rs := empty
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), MaxRestoreLine)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		s = strings.TrimPrefix(s, "iptables ")
		args, err := SplitShell(s)
		if err != nil {
			return nil, lineError(line, err)
		}
		cmd, err := ParseCommand(reg, rs.Family, args, ParseOptions{})
		if err != nil {
			return nil, lineError(line, err)
		}
		res, err := Execute(rs, cmd, io.Discard)
		if err != nil {
			return nil, lineError(line, err)
		}
		rs = res.Ruleset
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return rs, nil
}

// lineError is an error of the command on line n, with iptables' text and
// uptables' hint when there is one.
func lineError(n int, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return fmt.Errorf("line %d: %s", n, e.TextHint("iptables"))
	}
	return fmt.Errorf("line %d: %v", n, err)
}

// saveFormat reports whether the first line that is not blank or a comment
// starts a table ("*filter").
func saveFormat(data []byte) bool {
	for _, l := range bytes.Split(data, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		return l[0] == '*'
	}
	return false
}
