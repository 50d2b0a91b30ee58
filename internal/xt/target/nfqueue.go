package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

var nfqueueOpts = []optDef{
	{name: "queue-num", arg: xt.RequiredArg, excl: []string{"queue-balance"}},
	{name: "queue-balance", arg: xt.RequiredArg, excl: []string{"queue-num"}},
	{name: "queue-bypass"},
	{name: "queue-cpu-fanout", also: []string{"queue-balance"}},
}

// NFQueue is `-j NFQUEUE` (§10): hand the packet to user space on queue
// Num, or on one of Num..Num+Total-1 chosen by flow hash (or by CPU with
// CPUFanout). Bypass accepts the packet (skipping the rest of the hook
// function) when no program listens.
type NFQueue struct {
	Num       uint16
	Total     uint32 // 1 without --queue-balance; up to 65535 after Check
	Bypass    bool
	CPUFanout bool
	opts      tracker
}

var (
	_ xt.Target  = (*NFQueue)(nil)
	_ xt.Checker = (*NFQueue)(nil)
)

func newNFQueue() xt.Target {
	return &NFQueue{Total: 1, opts: tracker{target: "NFQUEUE", defs: nfqueueOpts}}
}

func errBalance(near string) error {
	return xt.Errorf("NFQUEUE: bad value for option \"--queue-balance\" near \"%s\", or out of range (0-65535).\n", near)
}

// parseBalance parses "A:B" (":B" = 0:B, "A:" = A:65535), A < B, as
// libxtables' range type reads it: components left to right, each a
// strtoul number ("bad value ... near" the rest of the string when there
// is none, "unexpected characters" when it is not followed by ':' or the
// end), at most two, and NFQUEUE wants exactly two
// ("Bad range" for "5" or "").
func parseBalance(s string) (first, last uint32, err error) {
	var vals [2]uint64
	n := 0
	for rest := s; ; {
		if n == 2 {
			return 0, 0, xt.Errorf("NFQUEUE: Too many components for option \"--queue-balance\" (max: 2)\n")
		}
		if rest == "" || rest[0] == ':' {
			vals[n] = 0
			if n == 1 {
				vals[n] = 65535
			}
		} else {
			v, tail, ok := xt.ParseUintPrefix(rest)
			if !ok || v > 65535 {
				return 0, 0, errBalance(rest)
			}
			if tail != "" && tail[0] != ':' {
				return 0, 0, xt.Errorf("NFQUEUE: Argument to \"--queue-balance\" has unexpected characters near \"%s\".\n", tail)
			}
			vals[n] = v
			rest = tail
		}
		n++
		if rest == "" {
			break
		}
		rest = rest[1:]
	}
	if n != 2 {
		return 0, 0, xt.Errorf("Bad range \"%s\"", s)
	}
	if vals[0] >= vals[1] {
		return 0, 0, xt.Errorf("%d should be less than %d", vals[0], vals[1])
	}
	return uint32(vals[0]), uint32(vals[1]), nil
}

// Parse reads one NFQUEUE option.
func (q *NFQueue) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if err := q.opts.mark(opt, invert); err != nil {
		return err
	}
	switch opt {
	case "queue-num":
		v, err := parseRange("NFQUEUE", opt, arg, 0, 65535)
		if err != nil {
			return err
		}
		q.Num, q.Total = uint16(v), 1
	case "queue-balance":
		a, b, err := parseBalance(arg)
		if err != nil {
			return err
		}
		q.Num, q.Total = uint16(a), b-a+1
	case "queue-bypass":
		q.Bypass = true
	case "queue-cpu-fanout":
		q.CPUFanout = true
	}
	return nil
}

// Final checks num/balance exclusion and that cpu-fanout has a balance.
func (q *NFQueue) Final(*xt.ParseContext) error { return q.opts.final() }

func (q *NFQueue) print(b *strings.Builder, list bool) {
	switch {
	case q.Total > 1 && list:
		b.WriteString(" NFQUEUE balance ")
	case q.Total > 1:
		b.WriteString(" --queue-balance ")
	case list:
		b.WriteString(" NFQUEUE num ")
	default:
		b.WriteString(" --queue-num ")
	}
	writeUint(b, uint64(q.Num))
	if q.Total > 1 {
		b.WriteByte(':')
		writeUint(b, uint64(q.Num)+uint64(q.Total)-1)
	}
	prefix := " --queue-"
	if list {
		prefix = " "
	}
	if q.Bypass {
		b.WriteString(prefix + "bypass")
	}
	if q.CPUFanout {
		b.WriteString(prefix + "cpu-fanout")
	}
}

// Save prints --queue-num N (always, 0 included) or --queue-balance A:B,
// then --queue-bypass and --queue-cpu-fanout.
func (q *NFQueue) Save(b *strings.Builder) { q.print(b, false) }

// List prints "NFQUEUE num N" / "NFQUEUE balance A:B" [bypass] [cpu-fanout].
func (q *NFQueue) List(b *strings.Builder, _ bool) { q.print(b, true) }

// Check mirrors xt_NFQUEUE's checkentry: a balance may span at most 65535
// queues (0:65535 is refused). Allowed in every table.
func (q *NFQueue) Check(*xt.CheckContext) error {
	if q.Total > 0xffff {
		return xt.EINVAL("NFQUEUE: number of total queues is %d", q.Total)
	}
	return nil
}

func registerNFQueue(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "NFQUEUE", Options: options(nfqueueOpts), New: newNFQueue})
}
