package iptables

import (
	"errors"
	"strings"
)

// SplitShell splits a line into words as a POSIX shell does for a simple
// command without expansions: blanks separate words; '...' is literal;
// "..." keeps everything but lets \ escape $ ` " \ and newline; outside
// quotes \ escapes any character. Used for command lines given as one
// string (tests, the conformance corpus, `eval`-style input).
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

func isRestoreBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
