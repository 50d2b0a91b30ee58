package header

// OptionIter walks type-length-value options in the format IPv4 and TCP share:
// kind 0 ends the list, kind 1 is a one-byte NOP, every other kind is followed
// by a length byte counting kind and length. It stops, setting Malformed, at
// a length below 2 or running past the end, as the kernel's option parsers
// (tcp_parse_options, ip_options_compile) stop.
//
// It is a value type meant to live on the stack: no allocation.
type OptionIter struct {
	b         []byte
	off       int
	cur       int
	malformed bool
}

// NewOptionIter returns an iterator over the option bytes b.
func NewOptionIter(b []byte) OptionIter { return OptionIter{b: b} }

// Next returns the next option other than NOP: its kind and its data (the
// bytes after kind and length). It returns ok=false at the end of the list
// (kind 0, or no bytes left) or when the list is malformed.
func (it *OptionIter) Next() (kind uint8, data []byte, ok bool) {
	for it.off < len(it.b) {
		k := it.b[it.off]
		switch k {
		case 0:
			it.off = len(it.b)
			return 0, nil, false
		case 1:
			it.off++
			continue
		}
		if it.off+1 >= len(it.b) {
			it.malformed = true
			it.off = len(it.b)
			return 0, nil, false
		}
		n := int(it.b[it.off+1])
		if n < 2 || it.off+n > len(it.b) {
			it.malformed = true
			it.off = len(it.b)
			return 0, nil, false
		}
		it.cur = it.off
		data = it.b[it.off+2 : it.off+n]
		it.off += n
		return k, data, true
	}
	return 0, nil, false
}

// Offset returns the offset in the option bytes of the option Next returned
// last (of its kind byte).
func (it *OptionIter) Offset() int { return it.cur }

// Malformed reports whether iteration stopped at a bad length.
func (it *OptionIter) Malformed() bool { return it.malformed }
