package iptables

import (
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/xt/builtin"
)

// Every registered extension needs its recorded -h block (help/gen.sh
// lists the names; a new extension must be added there).
func TestHelpFilesCoverRegistry(t *testing.T) {
	reg := builtin.Registry()
	for _, n := range reg.MatchNames() {
		if _, err := helpFiles.ReadFile("help/m-" + n + ".txt"); err != nil {
			t.Errorf("-m %s: no help/m-%s.txt (add it to help/gen.sh and run it)", n, n)
		}
	}
	for _, n := range reg.TargetNames() {
		if _, err := helpFiles.ReadFile("help/t-" + n + ".txt"); err != nil {
			t.Errorf("-j %s: no help/t-%s.txt (add it to help/gen.sh and run it)", n, n)
		}
	}
}

func TestHelpTextOrder(t *testing.T) {
	reg := builtin.Registry()
	cmd, err := ParseCommand(reg, 4, strings.Fields("-A INPUT -m mark -m comment -j MARK -h --bogus"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := helpText(cmd.HelpExts)
	i, j, k := strings.Index(got, "MARK target options:"), strings.Index(got, "mark match options:"), strings.Index(got, "comment match options:")
	if !strings.HasPrefix(got, "iptables v1.8.9 (nf_tables)\n\nUsage:") || i < 0 || !(i < j && j < k) {
		t.Errorf("help text order: target %d, mark %d, comment %d\n%s", i, j, k, got)
	}
}
