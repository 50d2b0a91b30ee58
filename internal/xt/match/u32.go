package match

import (
	"fmt"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// u32 (xt_u32): --u32 TESTS, a small language that reads 32-bit big-endian
// words of the packet (from the IP header on), transforms them with &, <<,
// >> and @ (move to an offset computed from the value) and compares the
// result with value ranges:
//
//	tests    := test { "&&" test }
//	test     := location "=" value { "," value }
//	location := number { ("&" | "<<" | ">>" | "@") number }
//	value    := number [ ":" number ]
//
// At most 10 tests, 10 numbers per location and 10 values per test
// (XT_U32_MAXSIZE); the kernel refuses shifts by 32 or more.

const u32MaxSize = 10

// U32 operators (XT_U32_AND ...).
const (
	U32And uint8 = iota
	U32LeftSh
	U32RightSh
	U32At
)

// U32Location is one element of a location: the operator applied with
// Number (the first element's operator is unused).
type U32Location struct {
	Op     uint8
	Number uint32
}

// U32Range is an inclusive value range.
type U32Range struct{ Min, Max uint32 }

// U32Test is one test: the location expression and the accepted ranges.
type U32Test struct {
	Location []U32Location
	Values   []U32Range
}

var u32Opts = optTable{
	{name: "u32", id: 0, arg: xt.RequiredArg, flags: optMand | optInvert},
}

// U32 is a configured u32 match.
type U32 struct {
	seen   uint32
	Tests  []U32Test
	Invert bool
}

var (
	_ xt.Match         = (*U32)(nil)
	_ xt.Checker       = (*U32)(nil)
	_ xt.PacketMatcher = (*U32)(nil)
)

func newU32Spec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "u32", Options: u32Opts.options(), New: func() xt.Match { return &U32{} }}
}

// Parse implements xt.Match.
func (m *U32) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if _, err := u32Opts.begin("u32", &m.seen, opt, invert); err != nil {
		return err
	}
	t, err := parseU32(arg)
	if err != nil {
		return err
	}
	m.Tests, m.Invert = t, invert
	return nil
}

// u32Parser reads the expression; positions in errors are byte offsets.
type u32Parser struct {
	s   string
	pos int
}

func (p *u32Parser) skip() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\n') {
		p.pos++
	}
}

func (p *u32Parser) errAt(msg string) error {
	return xt.Errorf("u32: at char %d: %s", p.pos, msg)
}

// number reads an unsigned 32-bit number (base as strtoul with base 0).
func (p *u32Parser) number() (uint32, error) {
	rest := p.s[p.pos:]
	if strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
		return 0, p.errAt("not a number or out of range")
	}
	v, after, ok := xt.ParseUintPrefix(rest)
	if !ok || v > 0xffffffff {
		return 0, p.errAt("not a number or out of range")
	}
	p.pos += len(rest) - len(after)
	return uint32(v), nil
}

func parseU32(s string) ([]U32Test, error) {
	p := &u32Parser{s: s}
	var tests []U32Test
	for {
		var t U32Test
		// location
		p.skip()
		if p.pos >= len(s) {
			return nil, xt.Errorf("u32: abrupt end of input after location specifier")
		}
		op := U32And
		for {
			p.skip()
			n, err := p.number()
			if err != nil {
				return nil, err
			}
			t.Location = append(t.Location, U32Location{Op: op, Number: n})
			if len(t.Location) > u32MaxSize {
				return nil, p.errAt("too many operators")
			}
			p.skip()
			if p.pos >= len(s) {
				return nil, xt.Errorf("u32: abrupt end of input after location specifier")
			}
			c := s[p.pos]
			if c == '=' {
				p.pos++
				break
			}
			switch c {
			case '&':
				op = U32And
				p.pos++
			case '@':
				op = U32At
				p.pos++
			case '<', '>':
				p.pos++
				if p.pos >= len(s) || s[p.pos] != c {
					return nil, p.errAt(fmt.Sprintf("a second '%c' was expected", c))
				}
				p.pos++
				if c == '<' {
					op = U32LeftSh
				} else {
					op = U32RightSh
				}
			default:
				return nil, p.errAt("operator expected")
			}
		}
		// values
		for {
			p.skip()
			if p.pos >= len(s) && len(t.Values) == 0 {
				return nil, xt.Errorf("u32: test ended with no value specified")
			}
			lo, err := p.number()
			if err != nil {
				return nil, err
			}
			hi := lo
			p.skip()
			if p.pos < len(s) && s[p.pos] == ':' {
				p.pos++
				p.skip()
				if hi, err = p.number(); err != nil {
					return nil, err
				}
				p.skip()
			}
			t.Values = append(t.Values, U32Range{lo, hi})
			if len(t.Values) > u32MaxSize {
				return nil, p.errAt("too many \",\"s")
			}
			if p.pos < len(s) && s[p.pos] == ',' {
				p.pos++
				continue
			}
			break
		}
		tests = append(tests, t)
		if p.pos >= len(s) {
			if len(tests) > u32MaxSize {
				return nil, p.errAt("too many \"&&\"s")
			}
			return tests, nil
		}
		if s[p.pos] != '&' {
			return nil, p.errAt("expected \",\" or \"&&\"")
		}
		p.pos++
		if p.pos >= len(s) || s[p.pos] != '&' {
			return nil, p.errAt("a second '&' was expected")
		}
		if len(tests) > u32MaxSize {
			return nil, p.errAt("too many \"&&\"s")
		}
		p.pos++
	}
}

// Final implements xt.Match.
func (m *U32) Final(*xt.ParseContext) error { return u32Opts.fcheck("u32", m.seen) }

func (m *U32) expr() string {
	var b strings.Builder
	b.WriteByte('"')
	for i, t := range m.Tests {
		if i > 0 {
			b.WriteString("&&")
		}
		for j, l := range t.Location {
			if j > 0 {
				b.WriteString([...]string{"&", "<<", ">>", "@"}[l.Op])
			}
			fmt.Fprintf(&b, "0x%x", l.Number)
		}
		b.WriteByte('=')
		for j, v := range t.Values {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "0x%x", v.Min)
			if v.Max != v.Min {
				fmt.Fprintf(&b, ":0x%x", v.Max)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Save implements xt.Match.
func (m *U32) Save(b *strings.Builder) {
	saveNot(b, m.Invert)
	b.WriteString(" --u32 " + m.expr())
}

// List implements xt.Match.
func (m *U32) List(b *strings.Builder, _ bool) {
	b.WriteString(" u32")
	saveNot(b, m.Invert)
	b.WriteString(" " + m.expr())
}

// Check implements xt.Checker (u32_mt_checkentry): shifts must be < 32.
func (m *U32) Check(*xt.CheckContext) error {
	for _, t := range m.Tests {
		for _, l := range t.Location[1:] {
			if (l.Op == U32LeftSh || l.Op == U32RightSh) && l.Number >= 32 {
				return xt.EINVAL("xt_u32: shift count out of range")
			}
		}
	}
	return nil
}

// Matches implements xt.PacketMatcher.
func (m *U32) Matches(c *xt.Ctx) bool {
	return m.Eval(c.P.Data) != m.Invert
}

// Eval runs the tests on data (the packet from the IP header on), as
// u32_match_it: a read beyond the end makes the whole match false.
func (m *U32) Eval(data []byte) bool {
	n := uint64(len(data))
	word := func(off uint64) uint32 {
		return uint32(data[off])<<24 | uint32(data[off+1])<<16 | uint32(data[off+2])<<8 | uint32(data[off+3])
	}
	for ti := range m.Tests {
		t := &m.Tests[ti]
		pos := uint64(t.Location[0].Number)
		if n < 4 || pos > n-4 {
			return false
		}
		val := word(pos)
		var at uint64
		for _, l := range t.Location[1:] {
			switch l.Op {
			case U32And:
				val &= l.Number
			case U32LeftSh:
				val <<= l.Number & 31
			case U32RightSh:
				val >>= l.Number & 31
			case U32At:
				at += uint64(val)
				if at > 0xffffffff {
					return false
				}
				pos = uint64(l.Number)
				if at+4 > n || pos > n-at-4 {
					return false
				}
				val = word(at + pos)
			}
		}
		ok := false
		for _, r := range t.Values {
			if val >= r.Min && val <= r.Max {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
