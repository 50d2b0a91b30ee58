package match

import (
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

func TestState(t *testing.T) {
	psRunCases(t, "state", xt.IPv4, []psCase{
		{args: "--state NEW,ESTABLISHED", save: "--state NEW,ESTABLISHED", list: "state NEW,ESTABLISHED"},
		{args: "! --state NEW,invalid", save: "! --state INVALID,NEW", list: "! state INVALID,NEW"},
		{args: "--state UNTRACKED,INVALID,NEW,RELATED,ESTABLISHED", save: "--state INVALID,NEW,RELATED,ESTABLISHED,UNTRACKED"},
		{args: "--state E,N", save: "--state NEW,ESTABLISHED"},
		{args: "--state I", save: "--state INVALID"},
		{args: "--state new,FOO", err: "Bad state \"FOO\""},
		{args: "--state NEW,,ESTABLISHED", err: "Bad state \",ESTABLISHED\""},
		{args: "--state NEWX", err: "Bad state \"NEWX\""},
		{args: "--state SNAT", err: "Bad state \"SNAT\""},
		{args: "--state NEW,", err: "\"--state\" requires a list of states with no spaces, e.g. ESTABLISHED,RELATED"},
		{args: "--state NEW --state INVALID", err: "state: option \"--state\" can only be used once.\n"},
		{args: "", err: "state: option \"--state\" must be specified\n"},
	})
}
