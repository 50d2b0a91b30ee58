package conntrack

import "github.com/uptables/uptables/internal/siphash"

func (t *Table) hash(tu *Tuple) uint64 {
	s, d := tu.Src.As16(), tu.Dst.As16()
	var m [5]uint64
	m[0] = le64(s[:8])
	m[1] = le64(s[8:])
	m[2] = le64(d[:8])
	m[3] = le64(d[8:])
	m[4] = uint64(tu.SrcID)<<48 | uint64(tu.DstID)<<32 | uint64(tu.Proto)<<16 | uint64(tu.Zone)
	return siphash.Sum24(siphash.Key{K0: t.cfg.HashKey[0], K1: t.cfg.HashKey[1]}, m[:])
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
