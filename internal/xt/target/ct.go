package target

import (
	"strings"
	"syscall"

	"github.com/uptables/uptables/internal/xt"
)

// CT zone direction flags (XT_CT_ZONE_DIR_*): both or neither = both
// directions.
const (
	CTZoneDirOrig  uint8 = 1
	CTZoneDirReply uint8 = 2
)

// ctEventNames in bit order (IPCT_*), the order iptables prints them.
var ctEventNames = [...]string{"new", "related", "destroy", "reply", "assured", "protoinfo", "helper", "mark", "natseqinfo", "secmark"}

// ctExpEventNames: only "new" is an expectation event iptables knows.
var ctExpEventNames = [...]string{"new"}

// ctHelpers are the conntrack helpers this kernel has, with the protocols
// they register for; CT --helper refuses anything else with ENOENT.
var ctHelpers = []struct {
	name   string
	protos []uint8
}{
	{"ftp", []uint8{6}}, {"tftp", []uint8{17}}, {"irc", []uint8{6}}, {"sip", []uint8{6, 17}},
	{"pptp", []uint8{6}}, {"amanda", []uint8{17}}, {"sane", []uint8{6}}, {"snmp", []uint8{17}},
	{"snmp_trap", []uint8{17}}, {"netbios-ns", []uint8{17}}, {"Q.931", []uint8{6}}, {"RAS", []uint8{17}},
}

var ctOpts = []optDef{
	{name: "notrack"},
	{name: "ctevents", arg: xt.RequiredArg},
	{name: "expevents", arg: xt.RequiredArg},
	{name: "helper", arg: xt.RequiredArg},
	{name: "timeout", arg: xt.RequiredArg},
	{name: "zone-orig", arg: xt.RequiredArg},
	{name: "zone-reply", arg: xt.RequiredArg},
	{name: "zone", arg: xt.RequiredArg},
}

// CT is `-j CT` (revision 2, §9.12): attach a template to new connections
// (zone, helper, timeout policy, event masks) or, with NoTrack, mark the
// packet untracked.
type CT struct {
	NoTrack   bool
	Helper    string
	Timeout   string
	CTEvents  uint32 // bit i = ctEventNames[i]
	ExpEvents uint32
	Zone      uint16
	ZoneMark  bool  // zone taken from the packet mark
	ZoneDir   uint8 // CTZoneDir* bits
	opts      tracker
}

var (
	_ xt.Target  = (*CT)(nil)
	_ xt.Checker = (*CT)(nil)
)

func newCT() xt.Target { return &CT{opts: tracker{target: "CT", defs: ctOpts}} }

func parseCTEvents(arg string, names []string) (uint32, error) {
	var mask uint32
	for _, w := range strings.Split(arg, ",") {
		found := false
		for i, n := range names {
			if w == n {
				mask |= 1 << i
				found = true
			}
		}
		if !found {
			return 0, xt.Errorf("Unknown event type \"%s\"", w)
		}
	}
	return mask, nil
}

// Parse reads one CT option.
func (c *CT) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if err := c.opts.mark(opt, invert); err != nil {
		return err
	}
	var err error
	switch opt {
	case "notrack":
		c.NoTrack = true
	case "helper":
		c.Helper = arg
	case "timeout":
		c.Timeout = arg
	case "ctevents":
		c.CTEvents, err = parseCTEvents(arg, ctEventNames[:])
	case "expevents":
		c.ExpEvents, err = parseCTEvents(arg, ctExpEventNames[:])
	case "zone", "zone-orig", "zone-reply":
		switch opt {
		case "zone-orig":
			c.ZoneDir |= CTZoneDirOrig
		case "zone-reply":
			c.ZoneDir |= CTZoneDirReply
		}
		if arg == "mark" {
			c.ZoneMark = true
			return nil
		}
		v, ok := xt.ParseUint(arg, 0, 65535)
		if !ok {
			return xt.Errorf("Cannot parse %s as a zone ID", arg)
		}
		c.Zone = uint16(v)
	}
	return err
}

// Final has no combination to check.
func (c *CT) Final(*xt.ParseContext) error { return c.opts.final() }

func writeEvents(b *strings.Builder, mask uint32, names []string) {
	first := true
	for i, n := range names {
		if mask&(1<<i) != 0 {
			if !first {
				b.WriteByte(',')
			}
			b.WriteString(n)
			first = false
		}
	}
}

func (c *CT) print(b *strings.Builder, dash string) {
	if c.NoTrack {
		b.WriteString(" " + dash + "notrack")
	}
	if c.Helper != "" {
		b.WriteString(" " + dash + "helper ")
		b.WriteString(c.Helper)
	}
	if c.Timeout != "" {
		b.WriteString(" " + dash + "timeout ")
		b.WriteString(c.Timeout)
	}
	if c.CTEvents != 0 {
		b.WriteString(" " + dash + "ctevents ")
		writeEvents(b, c.CTEvents, ctEventNames[:])
	}
	if c.ExpEvents != 0 {
		b.WriteString(" " + dash + "expevents ")
		writeEvents(b, c.ExpEvents, ctExpEventNames[:])
	}
	if c.Zone != 0 || c.ZoneMark {
		switch c.ZoneDir {
		case CTZoneDirOrig:
			b.WriteString(" " + dash + "zone-orig ")
		case CTZoneDirReply:
			b.WriteString(" " + dash + "zone-reply ")
		default:
			b.WriteString(" " + dash + "zone ")
		}
		if c.ZoneMark {
			b.WriteString("mark")
		} else {
			writeUint(b, uint64(c.Zone))
		}
	}
}

// Save prints the options in iptables' order: notrack, helper, timeout,
// ctevents, expevents, zone.
func (c *CT) Save(b *strings.Builder) { c.print(b, "--") }

// List prints "CT" and the same words without dashes.
func (c *CT) List(b *strings.Builder, _ bool) {
	b.WriteString(" CT")
	c.print(b, "")
}

// Check mirrors xt_CT's checkentry: raw table only; unless --notrack, the
// helper must exist for the rule's protocol (ENOENT) and no timeout
// policy can exist (uptables has no nfct timeout objects: EINVAL).
func (c *CT) Check(ctx *xt.CheckContext) error {
	if err := checkTable(ctx, "CT", "raw"); err != nil {
		return err
	}
	if c.NoTrack {
		return nil
	}
	if c.Helper != "" && !ctHelperKnown(c.Helper, ctx.Proto, ctx.InvProto) {
		return kernelErr(syscall.ENOENT, "xt_CT: No such helper \"%s\"", c.Helper)
	}
	if c.Timeout != "" {
		return xt.EINVAL("xt_CT: No such timeout policy \"%s\"", c.Timeout)
	}
	return nil
}

func ctHelperKnown(name string, proto uint8, inv bool) bool {
	if inv || proto == 0 {
		return false
	}
	for _, h := range ctHelpers {
		if h.name == name {
			for _, p := range h.protos {
				if p == proto {
					return true
				}
			}
		}
	}
	return false
}

func registerCT(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "CT", Options: options(ctOpts), New: newCT})
}
