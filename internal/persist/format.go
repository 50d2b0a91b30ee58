package persist

// The file format: one JSON object (compact, written atomically).
//
//	{"format":"uptables-state","version":1,"saved_at_ns":…,"saved_at":"2026-…Z",
//	 "recent":[{"name":"SSH","mask":"ffffffffffffffffffffffffffffffff","capacity":100,"ring":32,
//	            "entries":[{"addr":"10.0.0.1","ttl":64,"index":3,"stamps_ns":[…],"rank":0}]}],
//	 "hashlimit":[{"family":"ipv4","name":"HL","mode":12,"srcmask":32,"dstmask":32,"bytes":false,
//	               "avg":200000,"burst":5,"size":8192,"max":65536,"gcinterval_ms":1000,"expire_ms":10000,
//	               "gc_started":true,"gc_next_ns":…,
//	               "entries":[{"src":"10.0.0.1","dst":"0.0.0.0","sport":0,"dport":22,
//	                           "credit":…,"cap":…,"cost":…,"last_ns":…,"expires_ns":…}]}]}
//
// Every time is ns on the engine's packet clock (ns since the Unix epoch
// for live traffic), exact: recent stamps as the list holds them, hashlimit
// jiffies times JiffyNS. Numbers are JSON integers; uint64 credits decode
// exactly. The decoder is strict: unknown fields, trailing data, a value
// of the wrong type or out of range, and any state the algorithms cannot
// produce are errors.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/uptables/uptables/internal/statestore"
)

const (
	// FormatName identifies a state file.
	FormatName = "uptables-state"
	// Version is the format version this package writes and reads. A file
	// of a higher version is refused: it may hold state this one would
	// silently lose.
	Version = 1
	// FileName is the state file inside the directory.
	FileName = "state.json"
	// MaxFileSize bounds what Load reads: 1 GiB holds the largest
	// configuration (hashlimit tables of htable-max 1048576) several times.
	MaxFileSize = 1 << 30
)

type fileHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
}

type fileV1 struct {
	Format    string          `json:"format"`
	Version   int             `json:"version"`
	SavedAtNS int64           `json:"saved_at_ns"`
	SavedAt   string          `json:"saved_at"` // informational, RFC 3339 UTC
	Recent    []recentJSON    `json:"recent"`
	Hashlimit []hashlimitJSON `json:"hashlimit"`
}

type recentJSON struct {
	Name     string            `json:"name"`
	Mask     string            `json:"mask"` // 16 bytes in hex
	Capacity int               `json:"capacity"`
	Ring     int               `json:"ring"`
	Entries  []recentEntryJSON `json:"entries"`
}

type recentEntryJSON struct {
	Addr   string  `json:"addr"`
	TTL    uint8   `json:"ttl"`
	Index  int     `json:"index"`
	Stamps []int64 `json:"stamps_ns"`
	Rank   int     `json:"rank,omitempty"`
}

type hashlimitJSON struct {
	Family       string        `json:"family"` // "ipv4" or "ipv6"
	Name         string        `json:"name"`
	Mode         uint8         `json:"mode"`
	SrcMask      uint8         `json:"srcmask"`
	DstMask      uint8         `json:"dstmask"`
	Bytes        bool          `json:"bytes"`
	Avg          uint64        `json:"avg"`
	Burst        uint64        `json:"burst"`
	Size         uint32        `json:"size"`
	Max          uint32        `json:"max"`
	GCIntervalMS uint32        `json:"gcinterval_ms"`
	ExpireMS     uint32        `json:"expire_ms"`
	GCStarted    bool          `json:"gc_started"`
	GCNextNS     int64         `json:"gc_next_ns"`
	Entries      []hlEntryJSON `json:"entries"`
}

type hlEntryJSON struct {
	Src       string `json:"src"`
	Dst       string `json:"dst"`
	SrcPort   uint16 `json:"sport"`
	DstPort   uint16 `json:"dport"`
	Credit    uint64 `json:"credit"`
	Cap       uint64 `json:"cap"`
	Cost      uint64 `json:"cost"`
	LastNS    int64  `json:"last_ns"`
	ExpiresNS int64  `json:"expires_ns"`
}

// state is a decoded, validated file.
type state struct {
	SavedAtNS int64
	Recent    []statestore.RecentSnapshot
	Hashlimit []statestore.HashlimitSnapshot
}

// encode renders st as the file's bytes.
func encode(st *state) ([]byte, error) {
	f := fileV1{Format: FormatName, Version: Version, SavedAtNS: st.SavedAtNS,
		SavedAt:   time.Unix(0, st.SavedAtNS).UTC().Format(time.RFC3339Nano),
		Recent:    make([]recentJSON, 0, len(st.Recent)),
		Hashlimit: make([]hashlimitJSON, 0, len(st.Hashlimit))}
	for i := range st.Recent {
		s := &st.Recent[i]
		r := recentJSON{Name: s.Name, Mask: hex.EncodeToString(s.Mask[:]), Capacity: s.Capacity, Ring: s.Ring,
			Entries: make([]recentEntryJSON, len(s.Entries))}
		for j := range s.Entries {
			e := &s.Entries[j]
			r.Entries[j] = recentEntryJSON{Addr: e.Addr.String(), TTL: e.TTL, Index: e.Index, Stamps: e.StampsNS, Rank: e.Rank}
		}
		f.Recent = append(f.Recent, r)
	}
	for i := range st.Hashlimit {
		s := &st.Hashlimit[i]
		c := &s.Config
		h := hashlimitJSON{Family: "ipv4", Name: c.Name, Mode: c.Mode, SrcMask: c.SrcMask, DstMask: c.DstMask,
			Bytes: c.Bytes, Avg: c.Avg, Burst: c.Burst, Size: c.Size, Max: c.Max, GCIntervalMS: c.GCIntervalMS,
			ExpireMS: c.ExpireMS, GCStarted: s.GCStarted, GCNextNS: s.GCNextNS, Entries: make([]hlEntryJSON, len(s.Entries))}
		if c.IPv6 {
			h.Family = "ipv6"
		}
		for j := range s.Entries {
			e := &s.Entries[j]
			h.Entries[j] = hlEntryJSON{Src: keyAddr(&e.Key.Src, c.IPv6).String(), Dst: keyAddr(&e.Key.Dst, c.IPv6).String(),
				SrcPort: e.Key.SrcPort, DstPort: e.Key.DstPort, Credit: e.Credit, Cap: e.CreditCap, Cost: e.Cost,
				LastNS: e.LastNS, ExpiresNS: e.ExpiresNS}
		}
		f.Hashlimit = append(f.Hashlimit, h)
	}
	b, err := json.Marshal(&f)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func keyAddr(a *[16]byte, ipv6 bool) netip.Addr {
	if ipv6 {
		return netip.AddrFrom16(*a)
	}
	return netip.AddrFrom4([4]byte(a[:4]))
}

// errNewer marks a file written by a newer uptables.
var errNewer = errors.New("written by a newer uptables")

// decode parses and validates a file's bytes. Nothing outside is touched.
func decode(data []byte) (*state, error) {
	if !json.Valid(data) {
		// Slow path, for the message only.
		var v any
		dec := json.NewDecoder(bytes.NewReader(data))
		err := dec.Decode(&v)
		switch {
		case err == io.EOF:
			return nil, errors.New("empty file, not valid JSON")
		case err == io.ErrUnexpectedEOF:
			return nil, errors.New("not valid JSON: truncated")
		case err != nil:
			return nil, fmt.Errorf("not valid JSON: %w", err)
		}
		return nil, errors.New("bad content: data after the end of the state object")
	}
	raw := data
	var h fileHeader
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("bad header: %w", err)
	}
	if h.Format != FormatName {
		return nil, fmt.Errorf("not an uptables state file (format %q, want %q)", h.Format, FormatName)
	}
	if h.Version > Version {
		return nil, fmt.Errorf("format version %d is %w (this one reads version %d); refusing to restore part of it", h.Version, errNewer, Version)
	}
	if h.Version != Version {
		return nil, fmt.Errorf("format version %d is not one this uptables reads (%d)", h.Version, Version)
	}
	var f fileV1
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("bad content: %w", err)
	}
	st := &state{SavedAtNS: f.SavedAtNS}
	names := map[string]bool{}
	for i := range f.Recent {
		r := &f.Recent[i]
		if names["r\x00"+r.Name] {
			return nil, fmt.Errorf("recent list %q appears twice", r.Name)
		}
		names["r\x00"+r.Name] = true
		s := statestore.RecentSnapshot{Name: r.Name}
		s.Capacity, s.Ring = r.Capacity, r.Ring
		m, err := hex.DecodeString(r.Mask)
		if err != nil || len(m) != 16 {
			return nil, fmt.Errorf("recent list %q: mask %q is not 16 bytes of hex", r.Name, r.Mask)
		}
		copy(s.Mask[:], m)
		s.Entries = make([]statestore.RecentSnapEntry, len(r.Entries))
		for j := range r.Entries {
			e := &r.Entries[j]
			a, err := netip.ParseAddr(e.Addr)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("recent list %q: entry %d: bad address %q", r.Name, j, e.Addr)
			}
			s.Entries[j] = statestore.RecentSnapEntry{Addr: a, TTL: e.TTL, Index: e.Index, StampsNS: e.Stamps, Rank: e.Rank}
		}
		if err := s.Validate(); err != nil {
			return nil, err
		}
		st.Recent = append(st.Recent, s)
	}
	for i := range f.Hashlimit {
		h := &f.Hashlimit[i]
		var v6 bool
		switch h.Family {
		case "ipv4":
		case "ipv6":
			v6 = true
		default:
			return nil, fmt.Errorf("hashlimit table %q: family %q is neither ipv4 nor ipv6", h.Name, h.Family)
		}
		if k := "h\x00" + h.Family + "\x00" + h.Name; names[k] {
			return nil, fmt.Errorf("hashlimit table %q (%s) appears twice", h.Name, h.Family)
		} else {
			names[k] = true
		}
		s := statestore.HashlimitSnapshot{Config: statestore.HashlimitConfig{Name: h.Name, IPv6: v6, Mode: h.Mode,
			SrcMask: h.SrcMask, DstMask: h.DstMask, Bytes: h.Bytes, Avg: h.Avg, Burst: h.Burst, Size: h.Size,
			Max: h.Max, GCIntervalMS: h.GCIntervalMS, ExpireMS: h.ExpireMS}, GCStarted: h.GCStarted, GCNextNS: h.GCNextNS}
		s.Entries = make([]statestore.HashlimitSnapEntry, len(h.Entries))
		for j := range h.Entries {
			e := &h.Entries[j]
			se := statestore.HashlimitSnapEntry{Credit: e.Credit, CreditCap: e.Cap, Cost: e.Cost, LastNS: e.LastNS, ExpiresNS: e.ExpiresNS}
			se.Key.SrcPort, se.Key.DstPort = e.SrcPort, e.DstPort
			if err := parseKeyAddr(&se.Key.Src, e.Src, v6); err != nil {
				return nil, fmt.Errorf("hashlimit table %q: entry %d: source: %w", h.Name, j, err)
			}
			if err := parseKeyAddr(&se.Key.Dst, e.Dst, v6); err != nil {
				return nil, fmt.Errorf("hashlimit table %q: entry %d: destination: %w", h.Name, j, err)
			}
			s.Entries[j] = se
		}
		if err := s.Validate(); err != nil {
			return nil, err
		}
		st.Hashlimit = append(st.Hashlimit, s)
	}
	return st, nil
}

func parseKeyAddr(dst *[16]byte, s string, v6 bool) error {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return fmt.Errorf("bad address %q", s)
	}
	if v6 != a.Is6() {
		return fmt.Errorf("address %q is not of the table's family", s)
	}
	if v6 {
		*dst = a.As16()
		return nil
	}
	b := a.As4()
	copy(dst[:4], b[:])
	return nil
}
