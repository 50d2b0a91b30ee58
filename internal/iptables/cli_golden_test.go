package iptables_test

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

type cliStep struct {
	line           string
	rc             int
	stdout, stderr string
}

type cliScenario struct {
	name  string
	steps []cliStep
}

// readCLIGolden reads testdata/cli-golden.txt, recorded from the real
// iptables 1.8.9 by testdata/gen-cli-golden.sh.
func readCLIGolden(t *testing.T) []cliScenario {
	data, err := os.ReadFile("testdata/cli-golden.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out []cliScenario
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "### "):
			out = append(out, cliScenario{name: l[4:]})
		case strings.HasPrefix(l, "=== "):
			st := cliStep{line: l[4:]}
			i++
			st.rc, _ = strconv.Atoi(strings.TrimPrefix(lines[i], "--- rc "))
			var buf []string
			for i++; lines[i] != "--- stderr" && !strings.HasSuffix(lines[i], "--- stderr"); i++ {
				buf = append(buf, lines[i])
			}
			if rest := strings.TrimSuffix(lines[i], "--- stderr"); rest != "" {
				buf = append(buf, rest)
				st.stdout = strings.Join(buf, "\n")
			} else if len(buf) > 0 {
				st.stdout = strings.Join(buf, "\n") + "\n"
			}
			buf = nil
			for i++; lines[i] != "--- end"; i++ {
				buf = append(buf, lines[i])
			}
			if len(buf) > 0 {
				st.stderr = strings.Join(buf, "\n") + "\n"
			}
			out[len(out)-1].steps = append(out[len(out)-1].steps, st)
		}
	}
	return out
}

// TestCLIGolden replays command sequences recorded from the real iptables
// 1.8.9 and compares exit status, stdout and stderr byte for byte.
// Without -n, iptables would resolve addresses through DNS; the recording
// was made in a namespace without network, so it prints numbers, as
// uptables always does.
func TestCLIGolden(t *testing.T) {
	reg := builtin.Registry()
	for _, sc := range readCLIGolden(t) {
		t.Run(strings.ReplaceAll(sc.name, " ", "_"), func(t *testing.T) {
			rs := ruleset.New(xt.IPv4)
			for _, st := range sc.steps {
				args, err := iptables.SplitShell(st.line)
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				res, warns, err := iptables.Run(rs, reg, args, &out)
				rc := 0
				var stderr strings.Builder
				for _, w := range warns {
					stderr.WriteString(w + "\n")
				}
				if err != nil {
					e := iptables.AsError(err, "", "")
					rc = e.ExitCode()
					stderr.WriteString(e.Text("iptables") + "\n")
				} else {
					rs = res.Ruleset
				}
				if rc != st.rc || out.String() != st.stdout || stderr.String() != st.stderr {
					t.Errorf("iptables %s\n want rc %d stdout %q stderr %q\n got  rc %d stdout %q stderr %q",
						st.line, st.rc, st.stdout, st.stderr, rc, out.String(), stderr.String())
				}
			}
		})
	}
}
