package match

import (
	"strconv"
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

// SCTP chunk match types (the kernel's SCTP_CHUNK_MATCH_*).
const (
	SCTPChunkAny  = 1 // a listed chunk (with its flags) is present
	SCTPChunkAll  = 2 // every listed chunk is present
	SCTPChunkOnly = 4 // every chunk of the packet is listed
)

// sctpChunkName is one entry of libxt_sctp's chunk table. flags holds the
// letters of the flag bits 7..0 ('-' where the bit has no name).
type sctpChunkName struct {
	name  string
	typ   uint8
	flags string
}

// sctpChunkNames is the table of iptables 1.8.9, in its order: the index
// matters, because iptables records chunk flags under the index, not the
// chunk type (measured: "ASCONF:x" fails with "chunk type 18", and the
// '-' letter accepted by every entry lands in flag slot 193's index, so
// "ASCONF:-" prints as plain ASCONF).
var sctpChunkNames = [...]sctpChunkName{
	{"DATA", 0, "----IUBE"},
	{"INIT", 1, "--------"},
	{"INIT_ACK", 2, "--------"},
	{"SACK", 3, "--------"},
	{"HEARTBEAT", 4, "--------"},
	{"HEARTBEAT_ACK", 5, "--------"},
	{"ABORT", 6, "-------T"},
	{"SHUTDOWN", 7, "--------"},
	{"SHUTDOWN_ACK", 8, "--------"},
	{"ERROR", 9, "--------"},
	{"COOKIE_ECHO", 10, "--------"},
	{"COOKIE_ACK", 11, "--------"},
	{"ECN_ECNE", 12, "--------"},
	{"ECN_CWR", 13, "--------"},
	{"SHUTDOWN_COMPLETE", 14, "-------T"},
	{"I_DATA", 64, "----IUBE"},
	{"RE_CONFIG", 130, "--------"},
	{"PAD", 132, "--------"},
	{"ASCONF", 193, "--------"},
	{"ASCONF_ACK", 128, "--------"},
	{"FORWARD_TSN", 192, "--------"},
	{"I_FORWARD_TSN", 194, "--------"},
}

// sctpMaxFlags is XT_NUM_SCTP_FLAGS: the kernel struct has room for flag
// constraints on four chunk types.
const sctpMaxFlags = 4

// SCTPFlagInfo is one chunk-flag constraint: a chunk of type Type matches
// only when its flags&Mask == Flag (xt_sctp_flag_info).
type SCTPFlagInfo struct {
	Type, Flag, Mask uint8
}

// SCTP is the sctp match (`-p sctp [--sport] [--dport] [--chunk-types]`),
// the kernel's xt_sctp: iptables-nft 1.8.9 has no native translation for
// it, so the kernel checks the rule's protocol (`-p sctp`, not inverted)
// and the match runs as xt_sctp does.
type SCTP struct {
	SrcPorts, DstPorts PortRange
	InvSrc, InvDst     bool
	// ChunkType is SCTPChunkAny/All/Only, Chunks the bitmap of the chunk
	// types given (bit t of word t/32), InvChunks the "!".
	ChunkType uint8
	Chunks    [8]uint32
	InvChunks bool
	Flags     [sctpMaxFlags]SCTPFlagInfo
	NFlags    int

	seen uint8 // sctpSeen*: the kernel's flags field
}

const (
	sctpSeenSrc = 1 << iota
	sctpSeenDst
	sctpSeenChunks
)

var _ xt.Match = (*SCTP)(nil)
var _ xt.Checker = (*SCTP)(nil)
var _ xt.PacketMatcher = (*SCTP)(nil)

func newSCTPSpec() *xt.MatchSpec {
	return &xt.MatchSpec{
		Name: "sctp",
		Options: []xt.Option{
			{Name: "source-port", Arg: xt.RequiredArg},
			{Name: "sport", Arg: xt.RequiredArg},
			{Name: "destination-port", Arg: xt.RequiredArg},
			{Name: "dport", Arg: xt.RequiredArg},
			{Name: "chunk-types", Arg: xt.RequiredArg, Extra: 1},
		},
		New: func() xt.Match { return &SCTP{SrcPorts: psFullPorts, DstPorts: psFullPorts} },
	}
}

// sctpParsePorts is libxt_sctp's port parser (parsePortRange).
func sctpParsePorts(s string) (PortRange, error) { return parsePortRange(s, "sctp") }

// Parse implements xt.Match.
func (m *SCTP) Parse(ctx *xt.ParseContext, opt string, invert bool, arg string, extra []string) error {
	switch opt {
	case "source-port", "sport", "destination-port", "dport":
		r, src, err := portOption(opt, arg, &m.seen, sctpSeenSrc, sctpSeenDst, sctpParsePorts)
		if err != nil {
			return err
		}
		if src {
			m.SrcPorts, m.InvSrc = r, invert
		} else {
			m.DstPorts, m.InvDst = r, invert
		}
	case "chunk-types":
		if m.seen&sctpSeenChunks != 0 {
			return xt.Errorf("Only one `--chunk-types' allowed")
		}
		if len(extra) < 1 {
			return xt.Errorf("--chunk-types requires two args")
		}
		if err := m.parseChunks(arg, extra[0]); err != nil {
			return err
		}
		m.InvChunks = invert
		m.seen |= sctpSeenChunks
	default:
		return psUnknownOpt(opt)
	}
	return nil
}

// parseChunks reads the match type (case-insensitive ALL/ANY/ONLY) and the
// chunk list: the whole list "ALL" or "NONE" (case-insensitive) sets or
// clears every type; otherwise comma-separated names (empty items are
// skipped, as strtok does), each with optional ":FLAGS" letters, upper
// case requiring the bit set, lower case requiring it clear.
func (m *SCTP) parseChunks(typ, list string) error {
	switch strings.ToUpper(typ) {
	case "ALL":
		m.ChunkType = SCTPChunkAll
	case "ANY":
		m.ChunkType = SCTPChunkAny
	case "ONLY":
		m.ChunkType = SCTPChunkOnly
	default:
		return xt.Errorf("Match type has to be one of \"ALL\", \"ANY\" or \"ONLY\"")
	}
	m.Chunks = [8]uint32{}
	switch strings.ToUpper(list) {
	case "ALL":
		for i := range m.Chunks {
			m.Chunks[i] = ^uint32(0)
		}
		return nil
	case "NONE":
		return nil
	}
	for _, item := range strings.Split(list, ",") {
		if item == "" {
			continue
		}
		name, letters, _ := strings.Cut(item, ":")
		idx := -1
		for i := range sctpChunkNames {
			if strings.EqualFold(sctpChunkNames[i].name, name) {
				idx = i
				break
			}
		}
		if idx < 0 {
			return xt.Errorf("Unknown sctp chunk `%s'", name)
		}
		t := sctpChunkNames[idx].typ
		m.Chunks[t/32] |= 1 << (t % 32)
		for j := 0; j < len(letters); j++ {
			c := letters[j]
			pos := strings.IndexByte(sctpChunkNames[idx].flags, sctpUpper(c))
			if pos < 0 {
				return xt.Errorf("Invalid flags for chunk type %d", idx)
			}
			if err := m.addFlag(uint8(idx), uint8(1)<<(7-pos), c >= 'A' && c <= 'Z'); err != nil {
				return err
			}
		}
	}
	return nil
}

func sctpUpper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// addFlag records a flag bit for the chunk index slot (iptables keys flag
// constraints by table index, which the kernel then compares with chunk
// types; both agree for DATA, ABORT and SHUTDOWN_COMPLETE).
func (m *SCTP) addFlag(slot, bit uint8, set bool) error {
	for i := 0; i < m.NFlags; i++ {
		if m.Flags[i].Type == slot {
			m.Flags[i].Mask |= bit
			if set {
				m.Flags[i].Flag |= bit
			}
			return nil
		}
	}
	if m.NFlags == sctpMaxFlags {
		return xt.Errorf("Number of chunk types with flags exceeds currently allowed limit. " +
			"Increasing this limit involves changing IPT_NUM_SCTP_FLAGS and recompiling both the kernel space and user space modules")
	}
	f := SCTPFlagInfo{Type: slot, Mask: bit}
	if set {
		f.Flag = bit
	}
	m.Flags[m.NFlags] = f
	m.NFlags++
	return nil
}

// Final implements xt.Match.
func (m *SCTP) Final(ctx *xt.ParseContext) error { return nil }

// Check implements xt.Checker: xt_sctp is registered for protocol 132.
func (m *SCTP) Check(ctx *xt.CheckContext) error {
	if ctx.Proto != 132 || ctx.InvProto {
		return xt.EINVAL("xt_sctp: only valid for protocol 132")
	}
	return nil
}

func (m *SCTP) hasChunk(t uint8) bool { return m.Chunks[t/32]&(1<<(t%32)) != 0 }

func (m *SCTP) chunksAll() bool {
	for _, w := range m.Chunks {
		if w != ^uint32(0) {
			return false
		}
	}
	return true
}

func (m *SCTP) chunksNone() bool { return m.Chunks == [8]uint32{} }

// Save implements xt.Match.
func (m *SCTP) Save(b *strings.Builder) {
	if m.seen&sctpSeenSrc != 0 {
		psInv(b, m.InvSrc)
		b.WriteString(" --sport ")
		m.SrcPorts.appendSave(b)
	}
	if m.seen&sctpSeenDst != 0 {
		psInv(b, m.InvDst)
		b.WriteString(" --dport ")
		m.DstPorts.appendSave(b)
	}
	if m.seen&sctpSeenChunks != 0 {
		psInv(b, m.InvChunks)
		b.WriteString(" --chunk-types")
		m.appendChunks(b, false)
	}
}

// List implements xt.Match ("sctp spt:5 dpts:!1:2 ! only INIT,DATA:Be").
func (m *SCTP) List(b *strings.Builder, numeric bool) {
	b.WriteString(" sctp")
	psListPorts(b, "spt", m.SrcPorts, m.InvSrc, numeric, "sctp")
	psListPorts(b, "dpt", m.DstPorts, m.InvDst, numeric, "sctp")
	if m.seen&sctpSeenChunks != 0 {
		psInv(b, m.InvChunks)
		m.appendChunks(b, numeric)
	}
}

// appendChunks prints " TYPE LIST": ALL/NONE for a full/empty map, else
// the types in ascending order (names, or 0x%04X with -n), each followed
// by the flag letters recorded in the slot equal to its type.
func (m *SCTP) appendChunks(b *strings.Builder, numeric bool) {
	switch m.ChunkType {
	case SCTPChunkAny:
		b.WriteString(" any")
	case SCTPChunkAll:
		b.WriteString(" all")
	default:
		b.WriteString(" only")
	}
	switch {
	case m.chunksNone():
		b.WriteString(" NONE")
		return
	case m.chunksAll():
		b.WriteString(" ALL")
		return
	}
	sep := byte(' ')
	for t := 0; t < 256; t++ {
		if !m.hasChunk(uint8(t)) {
			continue
		}
		b.WriteByte(sep)
		sep = ','
		name := ""
		for i := range sctpChunkNames {
			if int(sctpChunkNames[i].typ) == t {
				name = sctpChunkNames[i].name
				break
			}
		}
		if numeric || name == "" {
			h := strings.ToUpper(strconv.FormatUint(uint64(t), 16))
			b.WriteString("0x" + strings.Repeat("0", 4-len(h)) + h)
		} else {
			b.WriteString(name)
		}
		for i := 0; i < m.NFlags; i++ {
			f := m.Flags[i]
			if int(f.Type) != t || int(f.Type) >= len(sctpChunkNames) {
				continue
			}
			b.WriteByte(':')
			letters := sctpChunkNames[f.Type].flags
			for bit := 7; bit >= 0; bit-- {
				if f.Mask&(1<<bit) == 0 {
					continue
				}
				c := letters[7-bit]
				if f.Flag&(1<<bit) == 0 && c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				b.WriteByte(c)
			}
		}
	}
}

// sctpCommonLen is the SCTP common header (ports, tag, checksum).
const sctpCommonLen = 12

// Matches implements xt.PacketMatcher as xt_sctp: a non-first fragment
// never matches; a common header cut short hot-drops. The tests run in the
// kernel's order and stop at the first failure, so the chunk walk (and its
// hot-drop on a chunk header cut short or of length 0) happens only when
// the ports matched. The walk steps over each chunk's length rounded up to
// 4 until the end of the packet.
func (m *SCTP) Matches(c *xt.Ctx) bool {
	l4, ok := rtXTHeader(c, sctpCommonLen, false)
	if !ok {
		return false
	}
	if m.seen&sctpSeenSrc != 0 {
		sp := uint16(l4[0])<<8 | uint16(l4[1])
		if m.SrcPorts.Contains(sp) == m.InvSrc {
			return false
		}
	}
	if m.seen&sctpSeenDst != 0 {
		dp := uint16(l4[2])<<8 | uint16(l4[3])
		if m.DstPorts.Contains(dp) == m.InvDst {
			return false
		}
	}
	if m.seen&sctpSeenChunks == 0 {
		return true
	}
	r, drop := m.matchChunks(l4)
	if drop {
		c.HotDrop = true
		return false
	}
	return r != m.InvChunks
}

// flagsOK is match_flags: a chunk with a flag constraint for its type
// matches when its flags agree under the mask.
func (m *SCTP) flagsOK(typ, flags uint8) bool {
	for i := 0; i < m.NFlags; i++ {
		if m.Flags[i].Type == typ {
			return flags&m.Flags[i].Mask == m.Flags[i].Flag
		}
	}
	return true
}

// matchChunks walks the chunk list; drop reports an invalid packet.
func (m *SCTP) matchChunks(l4 []byte) (match, drop bool) {
	left := m.Chunks // for "all": the types still to be seen
	off := sctpCommonLen
	for {
		if off+4 > len(l4) {
			return false, true
		}
		typ, flags := l4[off], l4[off+1]
		clen := int(l4[off+2])<<8 | int(l4[off+3])
		if clen == 0 {
			return false, true
		}
		if m.hasChunk(typ) {
			ok := m.flagsOK(typ, flags)
			switch m.ChunkType {
			case SCTPChunkAny:
				if ok {
					return true, false
				}
			case SCTPChunkAll:
				if ok {
					left[typ/32] &^= 1 << (typ % 32)
				}
			case SCTPChunkOnly:
				if !ok {
					return false, false
				}
			}
		} else if m.ChunkType == SCTPChunkOnly {
			return false, false
		}
		off += (clen + 3) &^ 3
		if off >= len(l4) {
			break
		}
	}
	switch m.ChunkType {
	case SCTPChunkAll:
		return left == [8]uint32{}, false
	case SCTPChunkOnly:
		return true, false
	}
	return false, false
}
