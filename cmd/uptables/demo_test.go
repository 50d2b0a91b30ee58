package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `uptables demo` through the dispatcher: the embedded rules, the outcomes
// the kernel gives (internal/demo's TestKernelOutcomes reasons them out),
// and the counters.
func TestDemoCommand(t *testing.T) {
	c := newCLI(t)
	rc, out, errs := c.run("", "demo", "--duration", "0", "--quiet")
	if rc != 0 {
		if strings.Contains(errs, "not supported by the uptables engine yet") {
			t.Skip(errs)
		}
		t.Fatalf("rc %d: %s", rc, errs)
	}
	for _, s := range []string{
		"-m connlimit --connlimit-above 3 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with tcp-reset\n",
		"  alice 127.0.0.2 accept accept accept reset accept\n",
		"  bob   127.0.0.3 accept accept accept accept accept accept accept drop drop drop accept\n",
		"  erin  127.0.0.6 accept drop\n",
		"Chain INPUT (policy ACCEPT 0 packets, 0 bytes)\n",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q\n%s", s, out)
		}
	}
}

// --rules FILE replaces the embedded rules; --port lets them name the port.
func TestDemoRulesFile(t *testing.T) {
	c := newCLI(t)
	f := filepath.Join(t.TempDir(), "r")
	if err := os.WriteFile(f, []byte("-A INPUT -p tcp -s 127.0.0.3 -j REJECT --reject-with tcp-reset\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, out, errs := c.run("", "demo", "--rules", f, "--duration=0", "--quiet")
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, errs)
	}
	for _, s := range []string{
		"-A INPUT -s 127.0.0.3/32 -p tcp -j REJECT --reject-with tcp-reset\n",
		"  bob   127.0.0.3 " + strings.TrimSpace(strings.Repeat("reset ", 11)) + "\n",
		"  alice 127.0.0.2 accept accept accept accept accept\n",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q\n%s", s, out)
		}
	}
}

func TestDemoErrors(t *testing.T) {
	c := newCLI(t)
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("-A INPUT -m nosuchmatch -j DROP\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		rc   int
		err  string
	}{
		{[]string{"demo", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"demo", "--duration", "-1s"}, 2, "--duration -1s: must be between 0 and 1m"},
		{[]string{"demo", "--port", "70000"}, 2, "--port 70000: must be 0..65535"},
		{[]string{"demo", "--nosuch"}, 2, "flag provided but not defined: -nosuch"},
		{[]string{"demo", "--rules", filepath.Join(t.TempDir(), "missing")}, 1, "no such file or directory"},
		{[]string{"demo", "--rules", bad}, 1, bad + ": line 1:"},
	} {
		rc, _, errs := c.run("", tc.args...)
		if rc != tc.rc || !strings.Contains(errs, tc.err) {
			t.Errorf("%v: rc %d, stderr %q; want rc %d and %q", tc.args, rc, errs, tc.rc, tc.err)
		}
	}
}
