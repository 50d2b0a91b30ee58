package match

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/uptables/uptables/internal/xt"
)

// string (xt_string revision 1): --string / --hex-string PATTERN (1-128
// bytes) searched with the kernel's textsearch algorithm --algo (bm, kmp)
// in the packet from the IP header on, between the offsets --from and --to
// (the whole pattern must lie in [from, to)); --icase ignores ASCII case.

const (
	strFrom = iota
	strTo
	strAlgo
	strICase
	strString
	strHex
)

const (
	stringMaxPattern = 128
	stringMaxAlgo    = 15 // XT_STRING_MAX_ALGO_NAME_SIZE - 1
)

var stringOpts = optTable{
	{name: "from", id: strFrom, arg: xt.RequiredArg},
	{name: "to", id: strTo, arg: xt.RequiredArg},
	{name: "algo", id: strAlgo, arg: xt.RequiredArg, flags: optMand},
	{name: "string", id: strString, arg: xt.RequiredArg, flags: optInvert, excl: 1 << strHex},
	{name: "hex-string", id: strHex, arg: xt.RequiredArg, flags: optInvert, excl: 1 << strString},
	{name: "icase", id: strICase, arg: xt.NoArg},
}

// String is a configured string match.
type String struct {
	seen    uint32
	Pattern []byte
	Algo    string
	From    uint16
	To      uint16 // default 65535
	ICase   bool
	Invert  bool
}

var (
	_ xt.Match         = (*String)(nil)
	_ xt.Checker       = (*String)(nil)
	_ xt.PacketMatcher = (*String)(nil)
)

func newStringSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "string", Options: stringOpts.options(), New: func() xt.Match { return &String{To: 0xffff} }}
}

// Parse implements xt.Match.
func (m *String) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	e, err := stringOpts.begin("string", &m.seen, opt, invert)
	if err != nil {
		return err
	}
	switch e.id {
	case strFrom, strTo:
		v, err := parseUintOpt("string", opt, arg, 0, 0xffff)
		if err != nil {
			return err
		}
		if e.id == strFrom {
			m.From = uint16(v)
		} else {
			m.To = uint16(v)
		}
	case strAlgo:
		if len(arg) > stringMaxAlgo {
			arg = arg[:stringMaxAlgo]
		}
		m.Algo = arg
	case strICase:
		m.ICase = true
	case strString:
		if len(arg) > stringMaxPattern {
			return xt.Errorf("STRING too long \"%s\"", arg)
		}
		m.Pattern, m.Invert = []byte(arg), invert
	case strHex:
		p, err := parseHexString(arg)
		if err != nil {
			return err
		}
		m.Pattern, m.Invert = p, invert
	}
	return nil
}

// parseHexString decodes iptables' mixed notation: plain characters, a
// backslash quoting the next character, and |..| blocks of hex byte pairs
// (blanks between pairs allowed). The error texts and the places where
// the length limit is checked (before each item) follow iptables.
func parseHexString(s string) ([]byte, error) {
	if s == "" {
		return nil, xt.Errorf("STRING must contain at least one char")
	}
	out := make([]byte, 0, len(s))
	hex, literal := false, false
	for i := 0; i < len(s); {
		if len(out) >= stringMaxPattern {
			return nil, xt.Errorf("STRING too long \"%s\"", s)
		}
		switch {
		case s[i] == '\\' && !hex:
			literal = true
		case s[i] == '\\':
			return nil, xt.Errorf("Cannot include literals in hex data")
		case s[i] == '|':
			if hex {
				hex = false
			} else {
				hex = true
				for i+1 < len(s) && s[i+1] == ' ' {
					i++
				}
			}
			if i+1 >= len(s) {
				return out, nil
			}
			i++
		}
		switch {
		case literal:
			if i+1 >= len(s) {
				return nil, xt.Errorf("Bad literal placement at end of string")
			}
			out = append(out, s[i+1])
			i += 2
			literal = false
		case hex:
			if s[i] == ' ' {
				i++
				continue
			}
			if i+1 >= len(s) {
				return nil, xt.Errorf("Odd number of hex digits")
			}
			if i+2 >= len(s) {
				return nil, xt.Errorf("Invalid hex block")
			}
			hi, ok1 := hexVal(s[i])
			if !ok1 {
				return nil, xt.Errorf("Invalid hex char '%c'", s[i])
			}
			lo, ok2 := hexVal(s[i+1])
			if !ok2 {
				return nil, xt.Errorf("Invalid hex char '%c'", s[i+1])
			}
			out = append(out, hi<<4|lo)
			if s[i+2] == ' ' {
				i += 3
			} else {
				i += 2
			}
		default:
			out = append(out, s[i])
			i++
		}
	}
	return out, nil
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Final implements xt.Match.
func (m *String) Final(*xt.ParseContext) error {
	if m.seen&(1<<strString|1<<strHex) == 0 {
		return xt.Errorf("STRING match: You must specify `--string' or `--hex-string'")
	}
	return stringOpts.fcheck("string", m.seen)
}

// pattern prints the pattern as iptables does: quoted text with '"' and '\'
// escaped when every byte is printable ASCII, otherwise one hex block.
func (m *String) pattern() (opt, text string) {
	printable := true
	for _, c := range m.Pattern {
		if c < 0x20 || c > 0x7e {
			printable = false
			break
		}
	}
	var b strings.Builder
	b.WriteByte('"')
	if printable {
		for _, c := range m.Pattern {
			if c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
		return "--string", b.String()
	}
	b.WriteByte('|')
	for _, c := range m.Pattern {
		fmt.Fprintf(&b, "%02x", c)
	}
	b.WriteString("|\"")
	return "--hex-string", b.String()
}

// Save implements xt.Match.
func (m *String) Save(b *strings.Builder) {
	opt, text := m.pattern()
	saveNot(b, m.Invert)
	b.WriteString(" " + opt + " " + text + " --algo " + m.Algo)
	if m.From != 0 {
		b.WriteString(" --from " + strconv.Itoa(int(m.From)))
	}
	if m.To != 0xffff {
		b.WriteString(" --to " + strconv.Itoa(int(m.To)))
	}
	if m.ICase {
		b.WriteString(" --icase")
	}
}

// List implements xt.Match.
func (m *String) List(b *strings.Builder, _ bool) {
	_, text := m.pattern()
	b.WriteString(" STRING match ")
	if m.Invert {
		b.WriteString("!")
	}
	b.WriteString(" " + text + " ALGO name " + m.Algo)
	if m.From != 0 {
		b.WriteString(" FROM " + strconv.Itoa(int(m.From)))
	}
	if m.To != 0xffff {
		b.WriteString(" TO " + strconv.Itoa(int(m.To)))
	}
	if m.ICase {
		b.WriteString(" ICASE")
	}
}

// Check implements xt.Checker (string_mt_check and textsearch_prepare).
func (m *String) Check(*xt.CheckContext) error {
	if m.From > m.To {
		return xt.EINVAL("xt_string: --from is beyond --to")
	}
	if len(m.Pattern) == 0 || len(m.Pattern) > stringMaxPattern {
		return xt.EINVAL("xt_string: pattern length out of range")
	}
	switch m.Algo {
	case "bm", "kmp":
	case "fsm":
		// The kernel has the finite-state-machine algorithm, but it takes
		// a token program, not a string: textsearch_prepare fails.
		return xt.EINVAL("textsearch: fsm cannot compile a plain pattern")
	default:
		return &xt.KernelError{Errno: syscall.ENOENT, Why: "textsearch: unknown algorithm " + m.Algo}
	}
	return nil
}

// Matches implements xt.PacketMatcher. As skb_find_text: the first
// occurrence at or after From must end no later than To (offsets from the
// start of the IP header). bm and kmp find the same first occurrence in
// linear data.
func (m *String) Matches(c *xt.Ctx) bool {
	return m.Search(c.P.Data) != m.Invert
}

// Search reports whether the pattern occurs in data within [From, To).
func (m *String) Search(data []byte) bool {
	from, to := int(m.From), int(m.To)
	if to > len(data) {
		to = len(data)
	}
	if from >= to {
		return false
	}
	win := data[from:to]
	if !m.ICase {
		return bytes.Index(win, m.Pattern) >= 0
	}
	n := len(m.Pattern)
	for i := 0; i+n <= len(win); i++ {
		j := 0
		for j < n && kernelToUpper(win[i+j]) == kernelToUpper(m.Pattern[j]) {
			j++
		}
		if j == n {
			return true
		}
	}
	return false
}

// kernelToUpper is the kernel's toupper (lib/ctype.c, Latin-1): the
// textsearch algorithms compare toupper(text) with the upper-cased pattern
// under --icase. Lower case are a-z and 0xDF-0xFF except 0xF7, each mapped
// 0x20 down (so 0xDF becomes 0xBF and 0xFF becomes 0xDF, as in the kernel).
func kernelToUpper(c byte) byte {
	if c >= 'a' && c <= 'z' || c >= 0xDF && c != 0xF7 {
		return c - 0x20
	}
	return c
}
