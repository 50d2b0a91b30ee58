package kerneldiff

import "testing"

// TestCompareLogFlowOrder: lines of different flows may interleave
// differently, but every line and each flow's own order must agree.
func TestCompareLogFlowOrder(t *testing.T) {
	a1 := "X SRC=10.0.0.2 DST=10.0.0.1 LEN=52 PROTO=TCP SPT=1 DPT=2 ACK "
	a2 := "X SRC=10.0.0.2 DST=10.0.0.1 LEN=52 PROTO=TCP SPT=1 DPT=2 ACK FIN "
	b1 := "X SRC=10.0.0.3 DST=10.0.0.1 LEN=52 PROTO=TCP SPT=5 DPT=2 RST "
	for _, tc := range []struct {
		k, u []string
		same bool
	}{
		{[]string{a1, b1, a2}, []string{a1, a2, b1}, true},  // interleaving only
		{[]string{a1, a2, b1}, []string{a2, a1, b1}, false}, // a flow's order
		{[]string{a1, b1}, []string{a1, b1, b1}, false},     // an extra line
		{[]string{a1, b1}, []string{a1, a2}, false},         // another line
	} {
		if got := CompareLog(tc.k, tc.u) == ""; got != tc.same {
			t.Errorf("CompareLog(%q, %q) agrees = %v, want %v", tc.k, tc.u, got, tc.same)
		}
	}
}
