package target

import (
	"fmt"

	"github.com/uptables/uptables/internal/xt"
)

// Do marks the packet untracked (§9.12): the engine's conntrack step then
// gives it the UNTRACKED state and no connection. A packet that already has
// a connection (a reply attached to the packet it answers) keeps it, as the
// kernel's CT target does nothing for an skb with a conntrack.
func (NoTrack) Do(c *xt.Ctx) xt.Verdict {
	if c.CT.Conn == nil {
		c.NoTrack = true
	}
	return xt.Continue
}

// ctRT is the runtime of one CT rule: --notrack, or a zone.
type ctRT struct {
	notrack  bool
	zone     uint16
	zoneMark bool
}

// Build accepts what the uptables conntrack can do (--notrack, --zone N,
// --zone mark) and refuses the rest by name: helpers, timeout policies and
// event masks have no counterpart, and directional zones
// (--zone-orig/--zone-reply) need zones per tuple direction, which the
// conntrack table does not have.
func (c *CT) Build(*xt.Env) (xt.PacketTarget, error) {
	unsupported := func(opt string) error {
		return fmt.Errorf("CT --%s is not supported by the uptables engine", opt)
	}
	switch {
	case c.NoTrack:
		return &ctRT{notrack: true}, nil
	case c.Helper != "":
		return nil, unsupported("helper")
	case c.Timeout != "":
		return nil, unsupported("timeout")
	case c.CTEvents != 0:
		return nil, unsupported("ctevents")
	case c.ExpEvents != 0:
		return nil, unsupported("expevents")
	case c.ZoneDir == CTZoneDirOrig:
		return nil, unsupported("zone-orig")
	case c.ZoneDir == CTZoneDirReply:
		return nil, unsupported("zone-reply")
	}
	return &ctRT{zone: c.Zone, zoneMark: c.ZoneMark}, nil
}

// Do sets NoTrack or the zone the engine's conntrack step looks the
// packet up in (--zone mark: the low 16 bits of the packet mark). Like
// the kernel's, it does nothing to a packet that already has a
// connection. CT continues.
func (r *ctRT) Do(c *xt.Ctx) xt.Verdict {
	if c.CT.Conn != nil {
		return xt.Continue
	}
	switch {
	case r.notrack:
		c.NoTrack = true
	case r.zoneMark:
		c.Zone = uint16(c.P.Mark)
	default:
		c.Zone = r.zone
	}
	return xt.Continue
}

// Do flags the packet for tracing (§9.14) and continues.
func (Trace) Do(c *xt.Ctx) xt.Verdict {
	c.Trace = true
	return xt.Continue
}
