package iptables_test

import (
	"io"
	"testing"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// TestPrefixOfRepeatedExtensionOption: a long-option prefix that several
// instances of the same extension share is not ambiguous (iptables 1.8.9
// accepts `-m tcp -m tcp --dpo 22`); two different options are.
func TestPrefixOfRepeatedExtensionOption(t *testing.T) {
	reg := builtin.Registry()
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"-A INPUT -p tcp -m tcp -m tcp --dpo 22", true},
		{"-A INPUT -p tcp --dpo 22", true},
		{"-A INPUT -p tcp -m tcp --d 22", false}, // --dport or --destination
	} {
		args, _ := iptables.SplitShell(tc.line)
		_, _, err := iptables.Run(ruleset.New(xt.IPv4), reg, args, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok=%v", tc.line, err, tc.ok)
		}
	}
}
