package target

import (
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// LOG flag bits, as the kernel's nf_log flags (and `iptables -L -n` prints
// their sum after "flags").
const (
	LogTCPSeq    uint8 = 0x01
	LogTCPOpt    uint8 = 0x02
	LogIPOpt     uint8 = 0x04
	LogUID       uint8 = 0x08
	LogMACDecode uint8 = 0x20
)

// LogPrefixMax is the longest --log-prefix iptables keeps (the kernel's
// 30-byte field with its terminating NUL); longer ones are cut silently.
const LogPrefixMax = 29

// logLevelNames are the names --log-level accepts (exactly these: "err"
// and "warn" are refused by iptables 1.8.9).
var logLevelNames = [...]struct {
	name  string
	level uint8
}{
	{"alert", 1}, {"crit", 2}, {"debug", 7}, {"emerg", 0}, {"error", 3},
	{"info", 6}, {"notice", 5}, {"panic", 0}, {"warning", 4},
}

// logLevelListNames is how `iptables -L` (without -n) names a level.
var logLevelListNames = [...]string{"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"}

var logOpts = []optDef{
	{name: "log-level", arg: xt.RequiredArg},
	{name: "log-prefix", arg: xt.RequiredArg},
	{name: "log-tcp-sequence"},
	{name: "log-tcp-options"},
	{name: "log-ip-options"},
	{name: "log-uid"},
	{name: "log-macdecode"},
}

// logFlagOpts maps the flag options to their bits, in listing order.
var logFlagOpts = [...]struct {
	opt  string
	flag uint8
}{
	{"log-tcp-sequence", LogTCPSeq},
	{"log-tcp-options", LogTCPOpt},
	{"log-ip-options", LogIPOpt},
	{"log-uid", LogUID},
	{"log-macdecode", LogMACDecode},
}

// Log is `-j LOG`: write a kernel log line for the packet and continue
// (§7). Level is the syslog level (default 4), Prefix at most 29 bytes,
// Flags the Log* bits selecting the optional fields.
type Log struct {
	Level  uint8
	Prefix string
	Flags  uint8
	opts   tracker
}

var _ xt.Target = (*Log)(nil)

func newLog() xt.Target {
	return &Log{Level: 4, opts: tracker{target: "LOG", defs: logOpts}}
}

// Parse reads one LOG option.
func (l *Log) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if err := l.opts.mark(opt, invert); err != nil {
		return err
	}
	switch opt {
	case "log-level":
		lv, ok := parseLogLevel(arg)
		if !ok {
			return xt.Errorf("log level \"%s\" unknown\n", arg)
		}
		l.Level = lv
	case "log-prefix":
		if arg == "" {
			return xt.Errorf("Argument must have a minimum length of 1 characters\n")
		}
		if strings.IndexByte(arg, '\n') >= 0 {
			return xt.Errorf("Newlines not allowed in --log-prefix")
		}
		if len(arg) > LogPrefixMax {
			arg = arg[:LogPrefixMax]
		}
		l.Prefix = arg
	default:
		for _, f := range logFlagOpts {
			if f.opt == opt {
				l.Flags |= f.flag
			}
		}
	}
	return nil
}

// parseLogLevel accepts a number 0-7 (any base strtoul accepts) or one of
// the names iptables knows.
func parseLogLevel(s string) (uint8, bool) {
	if v, ok := xt.ParseUint(s, 0, 7); ok {
		return uint8(v), true
	}
	for _, n := range logLevelNames {
		if n.name == s {
			return n.level, true
		}
	}
	return 0, false
}

// Final has no combination to check.
func (l *Log) Final(*xt.ParseContext) error { return l.opts.final() }

// Save prints prefix, level (omitted when 4) and the flags, in iptables'
// order.
func (l *Log) Save(b *strings.Builder) {
	if l.Prefix != "" {
		b.WriteString(" --log-prefix ")
		xt.SaveString(b, l.Prefix)
	}
	if l.Level != 4 {
		b.WriteString(" --log-level ")
		b.WriteString(strconv.Itoa(int(l.Level)))
	}
	for _, f := range logFlagOpts {
		if l.Flags&f.flag != 0 {
			b.WriteString(" --")
			b.WriteString(f.opt)
		}
	}
}

// List prints "LOG flags N level N" with -n, "LOG level NAME flag..."
// without, then the prefix in plain double quotes.
func (l *Log) List(b *strings.Builder, numeric bool) {
	b.WriteString(" LOG")
	if numeric {
		b.WriteString(" flags ")
		b.WriteString(strconv.Itoa(int(l.Flags)))
		b.WriteString(" level ")
		b.WriteString(strconv.Itoa(int(l.Level)))
	} else {
		b.WriteString(" level ")
		if int(l.Level) < len(logLevelListNames) {
			b.WriteString(logLevelListNames[l.Level])
		} else {
			b.WriteString(strconv.Itoa(int(l.Level)))
		}
		for _, f := range logFlagOpts {
			if l.Flags&f.flag != 0 {
				b.WriteByte(' ')
				b.WriteString(strings.TrimPrefix(f.opt, "log-"))
			}
		}
	}
	if l.Prefix != "" {
		b.WriteString(" prefix \"")
		b.WriteString(l.Prefix)
		b.WriteByte('"')
	}
}

func registerLog(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "LOG", Options: options(logOpts), New: newLog})
}
