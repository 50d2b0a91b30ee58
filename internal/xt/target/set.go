package target

import (
	"strings"

	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/match"
)

// SET (xt_SET revision 3): --add-set/--del-set NAME src|dst[,...] put the
// packet's element into an ipset or take it out, then the packet goes on
// to the next rule. iptables checks that the sets exist while it parses
// (the SetLookup given to RegisterWithSets); at run time the target finds
// them where the set match does (match.NamedSetsKind).
var setTargetOpts = []optDef{
	{name: "add-set", arg: xt.RequiredArg},
	{name: "del-set", arg: xt.RequiredArg},
	{name: "exist", arg: xt.NoArg},
	{name: "timeout", arg: xt.RequiredArg},
	{name: "map-set", arg: xt.RequiredArg},
	{name: "map-mark", arg: xt.NoArg},
	{name: "map-prio", arg: xt.NoArg},
	{name: "map-queue", arg: xt.NoArg},
}

// SetTarget is a configured SET target.
type SetTarget struct {
	AddName, AddFlags string
	DelName, DelFlags string
	addDirs, delDirs  [ipset.MaxDim]bool
	Exist             bool
	HasTimeout        bool
	Timeout           uint32
	opts              tracker
	exists            match.SetLookup
}

var _ xt.Target = (*SetTarget)(nil)
var _ xt.TargetBuilder = (*SetTarget)(nil)

func registerSet(r *xt.Registry, lookup match.SetLookup) {
	o := options(setTargetOpts)
	for i := range o {
		if o[i].Name == "add-set" || o[i].Name == "del-set" || o[i].Name == "map-set" {
			o[i].Extra = 1
		}
	}
	r.RegisterTarget(&xt.TargetSpec{Name: "SET", Family: xt.IPv4, Options: o, New: func() xt.Target {
		return &SetTarget{opts: tracker{target: "SET", defs: setTargetOpts}, exists: lookup}
	}})
}

func parseDirs(s string, dirs *[ipset.MaxDim]bool) error {
	parts := strings.Split(s, ",")
	if len(parts) > ipset.MaxDim {
		return xt.Errorf("Can't be more src/dst options than %d.", ipset.MaxDim)
	}
	for i, p := range parts {
		switch p {
		case "src":
			dirs[i] = true
		case "dst":
		default:
			return xt.Errorf("You must spefify (the comma separated list of) 'src' or 'dst'.")
		}
	}
	return nil
}

// Parse implements xt.Target.
func (t *SetTarget) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	if err := t.opts.mark(opt, invert); err != nil {
		return err
	}
	switch opt {
	case "add-set", "del-set":
		if len(extra) < 1 {
			return xt.Errorf("--%s requires two args.", opt)
		}
		if len(arg) > ipset.NameMax {
			return xt.Errorf("setname `%s' too long, max %d characters.", arg, ipset.NameMax)
		}
		if t.exists == nil || !t.exists(arg) {
			return &xt.ParamError{Msg: "Set " + arg + " doesn't exist.\n",
				Hint: "create it first: uptables ipset --sets FILE create " + arg + " TYPE"}
		}
		if opt == "add-set" {
			t.AddName, t.AddFlags = arg, extra[0]
			return parseDirs(extra[0], &t.addDirs)
		}
		t.DelName, t.DelFlags = arg, extra[0]
		return parseDirs(extra[0], &t.delDirs)
	case "exist":
		t.Exist = true
	case "timeout":
		v, err := parseRange("SET", opt, arg, 0, 2147483)
		if err != nil {
			return err
		}
		t.HasTimeout, t.Timeout = true, uint32(v)
	default:
		return &xt.ParamError{Msg: "SET: --" + opt + " is not supported by uptables (ipset skbinfo maps need sets of type with skbinfo, which uptables' ipset does not implement)"}
	}
	return nil
}

// Final implements xt.Target.
func (t *SetTarget) Final(*xt.ParseContext) error {
	if t.AddName == "" && t.DelName == "" {
		return xt.Errorf("You must specify either `--add-set' or `--del-set'")
	}
	return t.opts.final()
}

// Save implements xt.Target.
func (t *SetTarget) Save(b *strings.Builder) { t.text(b, "--") }

// List implements xt.Target.
func (t *SetTarget) List(b *strings.Builder, _ bool) { t.text(b, "") }

func (t *SetTarget) text(b *strings.Builder, dash string) {
	if t.AddName != "" {
		b.WriteString(" " + dash + "add-set " + t.AddName + " " + t.AddFlags)
		if t.Exist {
			b.WriteString(" " + dash + "exist")
		}
		if t.HasTimeout {
			b.WriteString(" " + dash + "timeout ")
			writeUint(b, uint64(t.Timeout))
		}
	}
	if t.DelName != "" {
		b.WriteString(" " + dash + "del-set " + t.DelName + " " + t.DelFlags)
	}
}

// setRuntime is the packet-time side of one SET rule.
type setRuntime struct {
	t        *SetTarget
	add, del *ipset.Ref
}

// Build implements xt.TargetBuilder.
func (t *SetTarget) Build(env *xt.Env) (xt.PacketTarget, error) {
	rt := &setRuntime{t: t}
	var err error
	if t.AddName != "" {
		if rt.add, err = match.SetRef(env, "SET", t.AddName); err != nil {
			return nil, err
		}
	}
	if t.DelName != "" {
		if rt.del, err = match.SetRef(env, "SET", t.DelName); err != nil {
			return nil, err
		}
	}
	return rt, nil
}

// Do implements xt.PacketTarget: add, then delete, then continue (the
// kernel's set_target_v3 order). IPv6 packets are left alone: the sets are
// family inet.
func (r *setRuntime) Do(c *xt.Ctx) xt.Verdict {
	if c.P.Version != 4 {
		return xt.Continue
	}
	var p ipset.Packet
	match.SetPacket(c.P, &p)
	if r.add != nil {
		if s := r.add.Set(); s != nil {
			s.AddPacket(&p, &r.t.addDirs, c.P.TimeNS, r.t.Timeout, r.t.HasTimeout, r.t.Exist)
		}
	}
	if r.del != nil {
		if s := r.del.Set(); s != nil {
			s.DelPacket(&p, &r.t.delDirs, c.P.TimeNS)
		}
	}
	return xt.Continue
}
