package iptables

import (
	"errors"
	"strings"
)

// SplitShell splits a line into words as a POSIX shell does for a simple
// command without expansions: blanks separate words; '...' is literal;
// "..." keeps everything but lets \ escape $ ` " \ and newline; outside
// quotes \ escapes any character. Used for command lines given as one
// string (tests, the conformance corpus, `eval`-style input). Bash's
// $'...' quoting is understood too, for control characters.
func SplitShell(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					cur.WriteByte(s[i])
				}
			}
		case c == '$' && i+1 < len(s) && s[i+1] == '\'':
			inWord = true
			n, err := ansiCQuote(s[i+2:], &cur)
			if err != nil {
				return nil, err
			}
			i += 1 + n
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
					i++
					if s[i] != '\n' {
						cur.WriteByte(s[i])
					}
					continue
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// ansiCQuote decodes the body of a bash $'...' word (s starts after the
// opening quote) into cur and returns how many bytes it used, the closing
// quote included: \a \b \e \f \n \r \t \v \\ \' \" \xHH and \NNN
// (octal), the forms rules need to carry control characters.
func ansiCQuote(s string, cur *strings.Builder) (int, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\'' {
			return i + 1, nil
		}
		if c != '\\' || i+1 >= len(s) {
			cur.WriteByte(c)
			continue
		}
		i++
		if b := strings.IndexByte(`abefnrtv\'"`, s[i]); b >= 0 {
			cur.WriteByte("\a\b\x1b\f\n\r\t\v\\'\""[b])
			continue
		}
		base, max := 0, 0
		switch {
		case s[i] == 'x':
			base, max = 16, 2
			i++
		case s[i] >= '0' && s[i] <= '7':
			base, max = 8, 3
		default: // unknown escapes stay as written
			cur.WriteByte('\\')
			cur.WriteByte(s[i])
			continue
		}
		v, n := 0, 0
		for ; n < max && i+n < len(s); n++ {
			d := strings.IndexByte("0123456789abcdef"[:base], lower(s[i+n]))
			if d < 0 {
				break
			}
			v = v*base + d
		}
		if n == 0 {
			cur.WriteString(`\x`)
			i--
			continue
		}
		cur.WriteByte(byte(v))
		i += n - 1
	}
	return 0, errors.New("unterminated $' quote")
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// SplitRestore splits an iptables-restore rule line into words with
// iptables-restore's own rules (its add_param_to_argv), which are not a
// shell's: blanks separate words; a double quote opens a quoted part in
// which a backslash takes the next character literally; the closing quote
// ends the word (so `""` is an empty word); outside quotes backslashes
// and single quotes are ordinary characters. Measured with 1.8.9:
// `"a b\" c"` is one word `a b" c`, `'x y'` is the two words `'x` and `y'`.
func SplitRestore(s string) ([]string, error) {
	w, _ := splitRestore(s, nil)
	return w, nil
}

// splitRestore appends the words of s to words (a buffer the caller may
// reuse) and reports whether the last word ran into the end of the line
// inside quotes. Words without quotes are substrings of s (no copy).
func splitRestore(s string, words []string) (_ []string, unterminated bool) {
	if strings.IndexByte(s, '"') < 0 {
		for i := 0; i < len(s); {
			for i < len(s) && isRestoreBlank(s[i]) {
				i++
			}
			start := i
			for i < len(s) && !isRestoreBlank(s[i]) {
				i++
			}
			if i > start {
				words = append(words, s[start:i])
			}
		}
		return words, false
	}
	var cur []byte
	inWord, quoted, escaped := false, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if quoted {
			switch {
			case escaped:
				cur = append(cur, c)
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				quoted = false
				words = append(words, string(cur))
				cur = cur[:0]
				inWord = false
			default:
				cur = append(cur, c)
			}
			continue
		}
		switch {
		case c == '"':
			quoted = true
			inWord = true
		case isRestoreBlank(c):
			if inWord {
				words = append(words, string(cur))
				cur = cur[:0]
				inWord = false
			}
		default:
			cur = append(cur, c)
			inWord = true
		}
	}
	if quoted {
		// iptables-restore accepts this: the word runs to the end of the
		// line.
		return append(words, string(cur)), true
	}
	if inWord {
		words = append(words, string(cur))
	}
	return words, false
}

// isRestoreBlank reports iptables-restore's word separators: blank, tab
// and newline only. A carriage return is part of the word (measured), so
// a CRLF file fails as it does with iptables-restore.
func isRestoreBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }
