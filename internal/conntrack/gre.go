package conntrack

import (
	"encoding/binary"
	"time"
)

// GRE tracking (nf_conntrack_proto_gre), measured on 6.18
// (testdata/kernel/scenarios-gre.txt):
//
//   - The tuple's ids are GRE keys. Only version 1 (enhanced GRE, PPTP,
//     RFC 2637) has one the kernel reads: the call id (bytes 6-7) is the
//     destination key. The source key would come from the PPTP helper's
//     keymap; uptables has no helpers, so it is 0, as in a kernel where the
//     helper is not attached (measured: srckey=0x0 dstkey=0xabcd).
//   - Version 0 (and 2-7), and any header shorter than the 4 bytes that
//     hold the version or - for version 1 - the 8 bytes up to the call id,
//     get keys 0 and are tracked by address pair, like the generic tracker.
//   - Version 1 with another protocol than PPP (0x880b) has no tuple: the
//     packet is INVALID.
//   - Timeouts are nf_conntrack_gre_timeout (30 s) until a reply has been
//     seen, then nf_conntrack_gre_timeout_stream (180 s) and ASSURED from
//     the first packet after the reply (as UDP, without UDP's 2 s delay).

const greProtoPPP = 0x880b

// greKeys returns the source and destination keys of a GRE header, and
// false when the packet cannot have a tuple (version 1, not PPP).
func greKeys(l []byte) (src, dst uint16, ok bool) {
	if len(l) < 4 || l[1]&0x07 != 1 {
		return 0, 0, true
	}
	if len(l) < 8 {
		return 0, 0, true
	}
	if binary.BigEndian.Uint16(l[2:]) != greProtoPPP {
		return 0, 0, false
	}
	return 0, binary.BigEndian.Uint16(l[6:]), true
}

// grePacket is nf_conntrack_gre_packet: no header checks beyond the tuple,
// only the timer and ASSURED.
func (t *Table) grePacket(c *Conn, fresh bool, now int64) (trackAction, Reason) {
	if fresh {
		c.node[1].t, _ = c.node[0].t.Invert()
	}
	var d time.Duration
	if c.Status()&StatusSeenReply != 0 {
		d = t.cfg.Timeouts.GREStream
		c.setStatus(StatusAssured)
	} else {
		d = t.cfg.Timeouts.GRE
	}
	c.refresh(now, d)
	return actAccept, ReasonNone
}
