package xt

import "strings"

// dscpClasses are the DiffServ class names iptables knows, in its table
// order, which decides between names that prefix each other.
var dscpClasses = [...]struct {
	name string
	val  uint8
}{
	{"CS0", 0x00}, {"CS1", 0x08}, {"CS2", 0x10}, {"CS3", 0x18}, {"CS4", 0x20}, {"CS5", 0x28},
	{"CS6", 0x30}, {"CS7", 0x38}, {"BE", 0x00}, {"AF11", 0x0a}, {"AF12", 0x0c}, {"AF13", 0x0e},
	{"AF21", 0x12}, {"AF22", 0x14}, {"AF23", 0x16}, {"AF31", 0x1a}, {"AF32", 0x1c}, {"AF33", 0x1e},
	{"AF41", 0x22}, {"AF42", 0x24}, {"AF43", 0x26}, {"EF", 0x2e},
}

// ParseDSCPClass maps a DiffServ class name to its code point, for -m dscp
// --dscp-class and -j DSCP --set-dscp-class. Like iptables it compares only
// as many characters as the class name has, case-insensitively, taking the
// first class in table order (measured: `af41x` is AF41, `cs10` is CS1,
// `EFx` is EF; `AF1` and `E` are refused).
func ParseDSCPClass(s string) (uint8, bool) {
	for _, c := range dscpClasses {
		if len(s) >= len(c.name) && strings.EqualFold(s[:len(c.name)], c.name) {
			return c.val, true
		}
	}
	return 0, false
}
