package target

import (
	"fmt"

	"github.com/uptables/uptables/internal/xt"
)

// logRT is the runtime of one LOG rule.
type logRT struct{ l *Log }

// Build refuses ip6tables LOG rules: the IPv6 line (nf_log_ipv6) is not
// formatted by uptables, and a LOG that silently printed nothing would
// mislead.
func (l *Log) Build(env *xt.Env) (xt.PacketTarget, error) {
	if env.Family != xt.IPv4 {
		return nil, fmt.Errorf("LOG: IPv6 log lines are not supported by the uptables engine")
	}
	cp := *l
	cp.opts = tracker{}
	return &logRT{l: &cp}, nil
}

// Do formats the kernel's line into the worker's scratch buffer, hands it
// to the emitter with the rule's syslog level and continues (§7: LOG is
// not terminating).
func (r *logRT) Do(c *xt.Ctx) xt.Verdict {
	line := r.l.AppendLine(c.Scratch[:0], c.P)
	if len(line) > 0 {
		c.Out.Log(c, r.l.Level, line)
	}
	return xt.Continue
}

// Do hands the packet to the emitter's nfnetlink_log listener when it has
// one (xt.NFLogger); without one it does nothing, as the kernel's NFLOG
// with nobody bound to the group. Either way the packet goes on to the
// next rule.
func (n *NFLOG) Do(c *xt.Ctx) xt.Verdict {
	if l, ok := c.Out.(xt.NFLogger); ok {
		size := -1
		if n.HasSize {
			size = int(n.Size)
		}
		l.NFLog(c, n.Group, n.Prefix, size, n.Threshold)
	}
	return xt.Continue
}
