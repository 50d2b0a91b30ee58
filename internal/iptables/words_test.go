package iptables

import (
	"reflect"
	"testing"
)

func TestSplitShell(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: `-A INPUT -j ACCEPT`, want: []string{"-A", "INPUT", "-j", "ACCEPT"}},
		{in: `-m comment --comment "a b\" c"`, want: []string{"-m", "comment", "--comment", `a b" c`}},
		{in: `'x y' z\ w`, want: []string{"x y", "z w"}},
		{in: `-N ''`, want: []string{"-N", ""}},
		{in: `$'A\vB' $'\r' $'\x41\101\e' $'it\'s' $'\q'`, want: []string{"A\vB", "\r", "AA\x1b", "it's", `\q`}},
		{in: `pre$'\t'post`, want: []string{"pre\tpost"}},
		{in: `$'open`, err: true},
		{in: `'open`, err: true},
		{in: `"open`, err: true},
	} {
		got, err := SplitShell(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("SplitShell(%q) error = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !tc.err && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitShell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
