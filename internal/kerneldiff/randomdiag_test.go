package kerneldiff

import (
	"strings"
	"testing"
)

func TestCompareDiag(t *testing.T) {
	syn := "IN=s OUT= SRC=10.0.0.2 DST=10.0.0.1 ID=7 PROTO=TCP SPT=1 DPT=2 SYN "
	ack := "IN=s OUT= SRC=10.0.0.2 DST=10.0.0.1 ID=8 PROTO=TCP SPT=1 DPT=2 ACK "
	rst := "IN= OUT=s SRC=10.0.0.1 DST=10.0.0.2 ID=0 PROTO=TCP SPT=2 DPT=1 RST "
	for _, tc := range []struct {
		name      string
		k, u      []string
		want      []string // substrings of the report, "" = agreement
		wantEmpty bool
	}{
		{name: "agree", k: []string{"dNEW " + syn, "IN other", "dEST " + ack}, u: []string{"dNEW " + syn, "dEST " + ack}, wantEmpty: true},
		{name: "no diag lines", k: []string{"IN x"}, u: []string{"IN y"}, wantEmpty: true},
		{name: "state differs", k: []string{"dNEW " + syn, "dINV " + ack}, u: []string{"dNEW " + syn, "dEST " + ack},
			want: []string{"1 differ, 1 agree", "kernel INV, uptables EST: " + strings.TrimSpace(ack)}},
		{name: "kernel only", k: []string{"dNEW " + syn, "dREL " + rst}, u: []string{"dNEW " + syn},
			want: []string{"kernel REL, uptables -: " + strings.TrimSpace(rst)}},
		{name: "uptables only", k: []string{"dNEW " + syn}, u: []string{"dNEW " + syn, "dEST " + rst},
			want: []string{"kernel -, uptables EST: " + strings.TrimSpace(rst)}},
		{name: "repeated packet paired in order", k: []string{"dEST " + rst, "dINV " + rst}, u: []string{"dEST " + rst, "dEST " + rst},
			want: []string{"1 differ, 1 agree", "kernel INV, uptables EST"}},
	} {
		got := CompareDiag(tc.k, tc.u)
		if tc.wantEmpty {
			if got != "" {
				t.Errorf("%s: want agreement, got\n%s", tc.name, got)
			}
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: report lacks %q:\n%s", tc.name, w, got)
			}
		}
	}
}

func TestKmsgMessage(t *testing.T) {
	for _, tc := range []struct{ rec, want string }{
		{"4,1234,5678,-;IN IN=a OUT= SRC=1.2.3.4\n", "IN IN=a OUT= SRC=1.2.3.4"},
		{"6,1,2,-;x\\x09y\n SUBSYSTEM=net\n", "x\ty"},
	} {
		got, ok := kmsgMessage([]byte(tc.rec))
		if !ok || got != tc.want {
			t.Errorf("kmsgMessage(%q) = %q, %v; want %q", tc.rec, got, ok, tc.want)
		}
	}
	if _, ok := kmsgMessage([]byte("no separator")); ok {
		t.Error("a record without ';' was accepted")
	}
}
