package match

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// owner (xt_owner): matches the socket that sent a locally generated packet:
// --uid-owner / --gid-owner ID[-ID] (file system uid/gid of the socket's
// file), --socket-exists, --suppl-groups (--gid-owner also tests the
// supplementary groups). The kernel allows it only in OUTPUT and
// POSTROUTING and refuses a range with min > max.
//
// Names: iptables asks NSS (getpwnam/getgrnam). uptables resolves names only
// through the passwd and group files given to it (NewIDFiles; the registry
// uses /etc/passwd and /etc/group of the host), never through NSS modules,
// LDAP or the network. A name that is not in those files is refused with
// iptables' error. Numbers always work. The same files give the names that
// `-L` (without -n) shows.

const (
	ownUID = iota
	ownGID
	ownSocketExists
	ownSupplGroups
)

var ownerOpts = optTable{
	{name: "uid-owner", id: ownUID, arg: xt.RequiredArg, flags: optInvert},
	{name: "gid-owner", id: ownGID, arg: xt.RequiredArg, flags: optInvert},
	{name: "socket-exists", id: ownSocketExists, arg: xt.NoArg, flags: optInvert},
	{name: "suppl-groups", id: ownSupplGroups, arg: xt.NoArg},
}

// IDFiles resolves user and group names through passwd/group files.
type IDFiles struct {
	Passwd, Group string // paths; "" disables names
}

// NewIDFiles returns a resolver over the host's /etc/passwd and /etc/group.
func NewIDFiles() IDFiles { return IDFiles{Passwd: "/etc/passwd", Group: "/etc/group"} }

// lookup scans a colon-separated file: byName finds the id of name, else the
// name of id.
func lookupIDFile(path, name string, id uint32, byName bool) (string, uint32, bool) {
	if path == "" {
		return "", 0, false
	}
	f, err := os.Open(path)
	if err != nil {
		return "", 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Split(sc.Text(), ":")
		if len(fl) < 3 {
			continue
		}
		v, err := strconv.ParseUint(fl[2], 10, 32)
		if err != nil {
			continue
		}
		if byName && fl[0] == name || !byName && uint32(v) == id {
			return fl[0], uint32(v), true
		}
	}
	return "", 0, false
}

// UID returns the uid of a user name.
func (r IDFiles) UID(name string) (uint32, bool) {
	_, v, ok := lookupIDFile(r.Passwd, name, 0, true)
	return v, ok
}

// GID returns the gid of a group name.
func (r IDFiles) GID(name string) (uint32, bool) {
	_, v, ok := lookupIDFile(r.Group, name, 0, true)
	return v, ok
}

// UserName returns the user name of a uid.
func (r IDFiles) UserName(id uint32) (string, bool) {
	n, _, ok := lookupIDFile(r.Passwd, "", id, false)
	return n, ok
}

// GroupName returns the group name of a gid.
func (r IDFiles) GroupName(id uint32) (string, bool) {
	n, _, ok := lookupIDFile(r.Group, "", id, false)
	return n, ok
}

// Owner is a configured owner match.
type Owner struct {
	seen            uint32
	ids             IDFiles
	UIDMin, UIDMax  uint32
	GIDMin, GIDMax  uint32
	HasUID, HasGID  bool
	SocketExists    bool
	SupplGroups     bool
	InvUID, InvGID  bool
	InvSocketExists bool
}

var (
	_ xt.Match         = (*Owner)(nil)
	_ xt.Checker       = (*Owner)(nil)
	_ xt.PacketMatcher = (*Owner)(nil)
)

func newOwnerSpec(ids IDFiles) *xt.MatchSpec {
	return &xt.MatchSpec{Name: "owner", Options: ownerOpts.options(), New: func() xt.Match { return &Owner{ids: ids} }}
}

// parseIDRange reads ID[-ID] or ID[:ID], each 0..2^32-2.
func parseIDRange(s string) (lo, hi uint32, ok bool) {
	v, rest, ok1 := xt.ParseUintPrefix(s)
	if !ok1 || v > 0xfffffffe || strings.HasPrefix(strings.TrimLeft(s, " \t"), "-") {
		return 0, 0, false
	}
	w := v
	if rest != "" && (rest[0] == '-' || rest[0] == ':') {
		var ok2 bool
		w, rest, ok2 = xt.ParseUintPrefix(rest[1:])
		if !ok2 || w > 0xfffffffe {
			return 0, 0, false
		}
	}
	if rest != "" {
		return 0, 0, false
	}
	return uint32(v), uint32(w), true
}

// Parse implements xt.Match.
func (m *Owner) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	e, err := ownerOpts.begin("owner", &m.seen, opt, invert)
	if err != nil {
		return err
	}
	switch e.id {
	case ownUID, ownGID:
		lo, hi, ok := parseIDRange(arg)
		if !ok {
			var id uint32
			if e.id == ownUID {
				id, ok = m.ids.UID(arg)
			} else {
				id, ok = m.ids.GID(arg)
			}
			if !ok {
				return errBadValue("owner", opt, arg)
			}
			lo, hi = id, id
		}
		if e.id == ownUID {
			m.HasUID, m.UIDMin, m.UIDMax, m.InvUID = true, lo, hi, invert
		} else {
			m.HasGID, m.GIDMin, m.GIDMax, m.InvGID = true, lo, hi, invert
		}
	case ownSocketExists:
		m.SocketExists, m.InvSocketExists = true, invert
	case ownSupplGroups:
		if !m.HasGID {
			return errBadValue("owner", opt, "you need to use --gid-owner first")
		}
		m.SupplGroups = true
	}
	return nil
}

// Final implements xt.Match.
func (m *Owner) Final(*xt.ParseContext) error {
	if !m.HasUID && !m.HasGID && !m.SocketExists {
		return xt.Errorf("owner: At least one of --uid-owner, --gid-owner or --socket-exists is required")
	}
	return ownerOpts.fcheck("owner", m.seen)
}

func idRange(lo, hi uint32) string {
	s := strconv.FormatUint(uint64(lo), 10)
	if hi != lo {
		s += "-" + strconv.FormatUint(uint64(hi), 10)
	}
	return s
}

// Save implements xt.Match.
func (m *Owner) Save(b *strings.Builder) {
	if m.SocketExists {
		saveNot(b, m.InvSocketExists)
		b.WriteString(" --socket-exists")
	}
	if m.HasUID {
		saveNot(b, m.InvUID)
		b.WriteString(" --uid-owner " + idRange(m.UIDMin, m.UIDMax))
	}
	if m.HasGID {
		saveNot(b, m.InvGID)
		b.WriteString(" --gid-owner " + idRange(m.GIDMin, m.GIDMax))
	}
	if m.SupplGroups {
		b.WriteString(" --suppl-groups")
	}
}

// List implements xt.Match. Without -n a single id is shown by name when
// the passwd/group file has one.
func (m *Owner) List(b *strings.Builder, numeric bool) {
	item := func(inv bool, text string) {
		b.WriteString(" ")
		if inv {
			b.WriteString("! ")
		}
		b.WriteString(text)
	}
	if m.SocketExists {
		item(m.InvSocketExists, "owner socket exists")
	}
	if m.HasUID {
		v := idRange(m.UIDMin, m.UIDMax)
		if n, ok := m.ids.UserName(m.UIDMin); ok && !numeric && m.UIDMin == m.UIDMax {
			v = n
		}
		item(m.InvUID, "owner UID match "+v)
	}
	if m.HasGID {
		v := idRange(m.GIDMin, m.GIDMax)
		if n, ok := m.ids.GroupName(m.GIDMin); ok && !numeric && m.GIDMin == m.GIDMax {
			v = n
		}
		item(m.InvGID, "owner GID match "+v)
		if m.SupplGroups {
			b.WriteString(" incl. suppl. groups")
		}
	}
}

// Check implements xt.Checker (owner_check and the match's hook mask).
func (m *Owner) Check(ctx *xt.CheckContext) error {
	if !ctx.Hooks.Only(xt.MaskOf(xt.LocalOut, xt.PostRouting)) {
		return xt.EINVAL("owner match: only valid in OUTPUT and POSTROUTING")
	}
	if m.HasUID && m.UIDMin > m.UIDMax || m.HasGID && m.GIDMin > m.GIDMax {
		return xt.EINVAL("owner match: id range min > max")
	}
	return nil
}

// Matches implements xt.PacketMatcher (owner_mt). A packet without a local
// socket (p.HasOwner false) matches only if every given option is inverted
// (the kernel compares the match and invert bit sets, so --suppl-groups,
// which cannot be inverted, makes it false). Supplementary groups are not
// known to the packet: --suppl-groups tests the primary gid only.
func (m *Owner) Matches(c *xt.Ctx) bool {
	p := c.P
	if !p.HasOwner {
		return !m.SupplGroups && (!m.SocketExists || m.InvSocketExists) && (!m.HasUID || m.InvUID) && (!m.HasGID || m.InvGID)
	}
	if m.SocketExists && m.InvSocketExists {
		return false
	}
	if m.HasUID && (p.UID >= m.UIDMin && p.UID <= m.UIDMax) == m.InvUID {
		return false
	}
	if m.HasGID && (p.GID >= m.GIDMin && p.GID <= m.GIDMax) == m.InvGID {
		return false
	}
	return true
}
