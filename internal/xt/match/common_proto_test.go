package match

import (
	"errors"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/xt"
)

// psCase is one table row: the words after `-m NAME` (with "!" before an
// option to negate it), the rule's -p, and the expected -S text, -L text
// (numeric and not) or error.
type psCase struct {
	args  string
	proto uint8
	save  string // expected Save output (without leading space)
	list  string // expected List output with -n ("" = not checked)
	listN string // expected List output without -n ("" = not checked)
	err   string // expected error message (Msg of the ParamError)
}

// psRun feeds args to a fresh instance of the named match the way the
// grammar does and returns the match or the first error.
func psRun(t *testing.T, name string, fam xt.Family, proto uint8, args string) (xt.Match, error) {
	t.Helper()
	r := xt.NewRegistry()
	Register(r)
	spec, ok := r.Match(name)
	if !ok {
		t.Fatalf("match %s not registered", name)
	}
	m := spec.New()
	ctx := &xt.ParseContext{Family: fam, Table: "filter", Chain: "INPUT", Proto: proto}
	words := strings.Fields(args)
	for i := 0; i < len(words); i++ {
		inv := false
		if words[i] == "!" {
			inv = true
			i++
		}
		opt := strings.TrimPrefix(words[i], "--")
		var o *xt.Option
		for j := range spec.Options {
			if spec.Options[j].Name == opt {
				o = &spec.Options[j]
			}
		}
		if o == nil {
			t.Fatalf("%s: unknown option %q", args, opt)
		}
		arg := ""
		var extra []string
		if o.Arg == xt.RequiredArg && i+1 < len(words) {
			i++
			arg = words[i]
			if arg == "''" {
				arg = ""
			}
			for k := 0; k < o.Extra && i+1 < len(words) && !strings.HasPrefix(words[i+1], "-") && words[i+1] != "!"; k++ {
				i++
				extra = append(extra, words[i])
			}
		}
		if err := m.Parse(ctx, opt, inv, arg, extra); err != nil {
			return nil, err
		}
	}
	if err := m.Final(ctx); err != nil {
		return nil, err
	}
	// the grammar asks for the rule-building error (tcp/udp without their
	// -p) when it adds the rule
	if pe, ok := m.(interface{ ProtoError() error }); ok {
		if err := pe.ProtoError(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func psRunCases(t *testing.T, name string, fam xt.Family, cases []psCase) {
	t.Helper()
	for _, c := range cases {
		m, err := psRun(t, name, fam, c.proto, c.args)
		if c.err != "" {
			var pe *xt.ParamError
			if !errors.As(err, &pe) || pe.Msg != c.err {
				t.Errorf("-m %s %s: error %q, want %q", name, c.args, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("-m %s %s: unexpected error %v", name, c.args, err)
			continue
		}
		var b strings.Builder
		m.Save(&b)
		if got := strings.TrimPrefix(b.String(), " "); got != c.save {
			t.Errorf("-m %s %s: Save %q, want %q", name, c.args, got, c.save)
		}
		if c.list != "" {
			b.Reset()
			m.List(&b, true)
			if got := strings.TrimPrefix(b.String(), " "); got != c.list {
				t.Errorf("-m %s %s: List -n %q, want %q", name, c.args, got, c.list)
			}
		}
		if c.listN != "" {
			b.Reset()
			m.List(&b, false)
			if got := strings.TrimPrefix(b.String(), " "); got != c.listN {
				t.Errorf("-m %s %s: List %q, want %q", name, c.args, got, c.listN)
			}
		}
	}
}

func TestPsOptionFramework(t *testing.T) {
	tab := psConnlimitOpts
	if _, err := tab.begin(1<<clOptAbove, "connlimit-above", false); err == nil ||
		err.Error() != "connlimit: option \"--connlimit-above\" can only be used once.\n" {
		t.Errorf("once: %v", err)
	}
	if _, err := tab.begin(0, "connlimit-mask", true); err == nil ||
		err.Error() != "connlimit: option \"--connlimit-mask\" cannot be inverted.\n" {
		t.Errorf("invert: %v", err)
	}
	if err := tab.fcheck(1<<clOptSaddr | 1<<clOptDaddr); err == nil ||
		err.Error() != "connlimit: option \"--connlimit-saddr\" cannot be used together with \"--connlimit-daddr\".\n" {
		t.Errorf("excl: %v", err)
	}
}

func TestPsServiceNum(t *testing.T) {
	for in, want := range map[string]uint16{"70000": 4464, "4294967296": 0, "-0": 0, " 5": 5, "+5": 5, "2147483647": 65535, "domain": 53} {
		got, ok := psPortByName(in)
		if !ok || got != want {
			t.Errorf("psPortByName(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"-1", "4294967295", "2147483648"} {
		if _, ok := psPortByName(in); ok {
			t.Errorf("psPortByName(%q) accepted", in)
		}
	}
	if _, ok := psServiceNum("5 "); ok {
		t.Errorf("trailing blank accepted")
	}
}
