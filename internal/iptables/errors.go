// Package iptables is the iptables 1.8.9 (nf_tables) grammar: command lines
// (getopt_long with extension options merged in as libxtables does),
// iptables-save / iptables-restore files, and the -S / -L / save printers.
// It turns text into *ruleset.Ruleset values and back, byte for byte as the
// real tools do; it never resolves host names or touches the kernel.
package iptables

import (
	"errors"
	"strconv"
	"strings"
	"syscall"

	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// Version is the iptables version whose behaviour and texts are reproduced.
const Version = "v1.8.9 (nf_tables)"

// ErrorKind says how iptables reports an error and with which exit status.
type ErrorKind uint8

const (
	// KindParam is a parameter problem: exit 2, "PROG v1.8.9 (nf_tables):
	// MSG" then the "Try `PROG -h'" line ("Bad argument" without prefix).
	KindParam ErrorKind = iota
	// KindPlain is a libiptc-style failure: exit 1, "iptables: MSG".
	KindPlain
	// KindFatal is printed with the version prefix and no Try line.
	KindFatal
	// KindKernel is a kernel refusal: exit 4,
	// "PROG v1.8.9 (nf_tables):  OP failed (strerror): rule in chain C".
	KindKernel
	// KindRaw is "PROG: MSG" (iptables-restore's "COMMIT expected at
	// line N"), exit Code.
	KindRaw
)

// Error is a failed command as iptables reports it.
type Error struct {
	Kind     ErrorKind
	Code     int    // exit status
	Msg      string // the message without program prefix
	NoPrefix bool   // KindParam: print Msg without "PROG v1.8.9 (nf_tables): "
	Hint     string // uptables' own advice, printed on a separate line
	// Dmesg appends " Run `dmesg' for more information." (KindPlain).
	Dmesg bool
	// Kernel errors: the netlink operation and the object it concerned.
	Op     string // RULE_APPEND, RULE_INSERT, RULE_REPLACE, CHAIN_DEL ...
	Object string // "rule in chain INPUT", "chain c"
	Errno  syscall.Errno
	// Line is the iptables-restore line, 0 outside restore.
	Line int
	// Before is what iptables printed on stderr before it failed
	// (warnings such as "Ignoring deprecated --wait-interval option."),
	// each line ending in a newline.
	Before string
}

func (e *Error) Error() string { return e.Text("iptables") }

// TextHint is Text followed, when uptables has advice for this mistake, by
// the line "uptables: hint: ..." that the CLI prints after it.
func (e *Error) TextHint(prog string) string {
	if e.Hint == "" {
		return e.Text(prog)
	}
	return e.Text(prog) + "\nuptables: hint: " + e.Hint
}

// Text returns what iptables (prog "iptables") or iptables-restore (prog
// "iptables-restore", Line set) prints on stderr, without the hint and
// without a trailing newline.
func (e *Error) Text(prog string) string {
	var b strings.Builder
	b.WriteString(e.Before)
	restore := e.Line > 0
	switch e.Kind {
	case KindParam:
		if !e.NoPrefix {
			b.WriteString(prog + " " + Version + ": ")
		}
		if !e.NoPrefix || e.Msg != "" {
			b.WriteString(e.Msg)
			b.WriteByte('\n')
		}
		if restore {
			b.WriteString("Error occurred at line: " + strconv.Itoa(e.Line) + "\n")
		}
		b.WriteString("Try `" + prog + " -h' or '" + prog + " --help' for more information.")
	case KindPlain:
		if restore {
			b.WriteString(prog + ": line " + strconv.Itoa(e.Line) + " failed")
			if e.Msg != "" {
				b.WriteString(": " + e.Msg)
			}
		} else {
			b.WriteString(prog + ": " + e.Msg)
			if e.Dmesg {
				b.WriteString(" Run `dmesg' for more information.")
			}
		}
	case KindFatal:
		b.WriteString(prog + " " + Version + ": " + e.Msg)
	case KindRaw:
		b.WriteString(prog + ": " + e.Msg)
	case KindKernel:
		b.WriteString(prog + " " + Version + ": ")
		if restore {
			b.WriteString("\nline " + strconv.Itoa(e.Line) + ": ")
		} else {
			b.WriteString(" ")
		}
		b.WriteString(e.Op + " failed (" + Strerror(e.Errno) + "): " + e.Object)
	}
	return b.String()
}

// ExitCode returns the exit status iptables uses for the error.
func (e *Error) ExitCode() int {
	if e.Code != 0 {
		return e.Code
	}
	switch e.Kind {
	case KindParam:
		return 2
	case KindKernel:
		return 4
	}
	return 1
}

// Strerror returns glibc's text for an errno ("Invalid argument"); Go's
// syscall texts are the same words in lower case.
func Strerror(e syscall.Errno) string {
	s := e.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// paramf returns a parameter problem.
func paramf(msg string) *Error { return &Error{Kind: KindParam, Msg: msg} }

// plain returns an exit-1 libiptc-style error.
func plain(msg string) *Error { return &Error{Kind: KindPlain, Msg: msg} }

// IsCommandError reports whether err is one of the errors AsError
// understands (as opposed to, say, an I/O error).
func IsCommandError(err error) bool {
	var e *Error
	var pe *xt.ParamError
	var ve *ruleset.ValidationError
	var ke *xt.KernelError
	return errors.As(err, &e) || errors.As(err, &pe) || errors.As(err, &ve) || errors.As(err, &ke)
}

// AsError converts any error the grammar, the extensions or the validator
// produced into an *Error. op and chain name the kernel operation for
// validation failures (RULE_APPEND, "INPUT").
func AsError(err error, op, chain string) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var pe *xt.ParamError
	if errors.As(err, &pe) {
		h := pe.Hint
		if h == "" {
			h = extensionHint(pe.Msg)
		}
		return &Error{Kind: KindParam, Msg: pe.Msg, NoPrefix: pe.NoPrefix, Hint: h}
	}
	var ve *ruleset.ValidationError
	if errors.As(err, &ve) {
		if chain == "" {
			chain = ve.Chain
		}
		return &Error{Kind: KindKernel, Op: op, Object: "rule in chain " + chain, Errno: ve.Errno(), Hint: kernelHint(ve.Err)}
	}
	var ke *xt.KernelError
	if errors.As(err, &ke) {
		return &Error{Kind: KindKernel, Op: op, Object: "rule in chain " + chain, Errno: ke.Errno, Hint: ke.Why}
	}
	return &Error{Kind: KindParam, Msg: err.Error()}
}

func kernelHint(err error) string {
	var ke *xt.KernelError
	if errors.As(err, &ke) && ke.Why != "" {
		return "the kernel would log: " + ke.Why
	}
	return ""
}
