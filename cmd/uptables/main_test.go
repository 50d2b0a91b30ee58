package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type cli struct {
	t    *testing.T
	file string
	env  map[string]string
}

func (c *cli) run(stdin string, args ...string) (rc int, stdout, stderr string) {
	var o, e bytes.Buffer
	en := &env{stdin: strings.NewReader(stdin), stdout: &o, stderr: &e, getenv: func(k string) string { return c.env[k] }}
	rc = dispatch(en, args)
	return rc, o.String(), e.String()
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, file: filepath.Join(t.TempDir(), "rules"), env: map[string]string{}}
}

func TestOfflineIptables(t *testing.T) {
	c := newCLI(t)
	rc, out, _ := c.run("", "--ruleset", c.file, "-S")
	if rc != 0 || out != "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n" {
		t.Fatalf("missing file: rc %d out %q", rc, out)
	}
	if _, err := os.Stat(c.file); err == nil {
		t.Fatal("a listing created the file")
	}
	for _, args := range [][]string{
		{"-N", "ssh"},
		{"-A", "INPUT", "-s", "10.0.0.0/8", "-j", "ssh"},
		{"-P", "INPUT", "DROP"},
		{"-A", "ssh", "-j", "ACCEPT"},
	} {
		if rc, _, errs := c.run("", append([]string{"--ruleset", c.file}, args...)...); rc != 0 {
			t.Fatalf("%v: rc %d %s", args, rc, errs)
		}
	}
	want := "-P INPUT DROP\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-N ssh\n-A INPUT -s 10.0.0.0/8 -j ssh\n-A ssh -j ACCEPT\n"
	if _, out, _ := c.run("", "--ruleset="+c.file, "-S"); out != want {
		t.Fatalf("-S after changes:\n%s", out)
	}
	before, _ := os.ReadFile(c.file)
	st1, _ := os.Stat(c.file)

	// failing commands leave the file untouched, with iptables' exit codes
	for _, tc := range []struct {
		args []string
		rc   int
		err  string
	}{
		{[]string{"-A", "INPUT", "-j", "nosuch"}, 2, "Chain 'nosuch' does not exist"},
		{[]string{"-N", "ssh"}, 1, "iptables: Chain already exists.\n"},
		{[]string{"-X", "ssh"}, 4, "CHAIN_DEL failed (Device or resource busy): chain ssh"},
		{[]string{"-P", "INPUT", "RETURN"}, 1, "Bad policy name. Run `dmesg' for more information."},
		{[]string{"-A", "ssh", "-j", "ssh"}, 4, "RULE_APPEND failed (Too many links): rule in chain ssh"},
		{[]string{"-A", "INPUT", "-p", "tcp", "–dport", "22"}, 2, "did you mean --dport?"},
		{[]string{"-A", "INPUT", "-d", "!", "1.2.3.4"}, 2, "write `! -d 1.2.3.4'"},
		{[]string{"-A", "INPUT", "-s", "example.com"}, 2, "never resolves host names"},
		{[]string{"-s", "1.2.3.4"}, 2, "no command specified"},
		{[]string{"-A", "INPUT", "-p", "tcp", "--tcp-flags", "SYN", "-j", "DROP"}, 2, "iptables v1.8.9 (nf_tables): --tcp-flags requires two args.\nTry `iptables -h'"},
		{[]string{"-A", "INPUT", "-j", "LOG", "--log-level", "err"}, 2, "unknown\n\nTry `iptables -h' or 'iptables --help' for more information.\nuptables: hint: did you mean error (3)?"},
		{[]string{"-A", "INPUT", "-p", "tcp", "--dport", "!", "22"}, 2, "hint: put the negation before the option"},
		{[]string{"INPUT", "-p", "tcp", "-j", "DROP"}, 2, "Bad argument `INPUT'\nTry `iptables -h' or 'iptables --help' for more information.\nuptables: hint: `INPUT' is a chain name with no command before it; did you mean -A INPUT (append) or -I INPUT (insert)?"},
		{[]string{"-A", "INPUT", "-j", "ACCEPT\r"}, 2, "Invalid target name `ACCEPT\r'"},
	} {
		rc, _, errs := c.run("", append([]string{"--ruleset", c.file}, tc.args...)...)
		if rc != tc.rc || !strings.Contains(errs, tc.err) {
			t.Errorf("%v: rc %d stderr %q; want rc %d containing %q", tc.args, rc, errs, tc.rc, tc.err)
		}
	}
	after, _ := os.ReadFile(c.file)
	st2, _ := os.Stat(c.file)
	if !bytes.Equal(before, after) || !st1.ModTime().Equal(st2.ModTime()) {
		t.Error("a failing command changed the file")
	}

	// UPTABLES_RULESET names the default file
	c.env["UPTABLES_RULESET"] = c.file
	if rc, out, _ := c.run("", "-S", "ssh"); rc != 0 || out != "-N ssh\n-A ssh -j ACCEPT\n" {
		t.Errorf("UPTABLES_RULESET: rc %d %q", rc, out)
	}
}

func TestSaveRestore(t *testing.T) {
	c := newCLI(t)
	in := "*filter\n:INPUT DROP [7:700]\n:web - [0:0]\n[3:300] -A INPUT -p tcp --dport 80 -j web\n-A web -j ACCEPT\nCOMMIT\n"
	if rc, _, errs := c.run(in, "restore", "--ruleset", c.file, "--counters"); rc != 0 {
		t.Fatalf("restore: %d %s", rc, errs)
	}
	rc, out, _ := c.run("", "save", "--ruleset", c.file, "-c")
	if rc != 0 {
		t.Fatal(rc)
	}
	var body []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "# ") {
			body = append(body, l)
		}
	}
	want := "*filter\n:INPUT DROP [7:700]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:web - [0:0]\n[3:300] -A INPUT -p tcp -m tcp --dport 80 -j web\n[0:0] -A web -j ACCEPT\nCOMMIT\n"
	if got := strings.Join(body, "\n"); got != want {
		t.Fatalf("save -c:\n%s", got)
	}
	if _, out, _ := c.run("", "save", "--ruleset", c.file, "-t", "nat"); !strings.Contains(out, "*nat\n:PREROUTING ACCEPT [0:0]") || strings.Contains(out, "*filter") {
		t.Errorf("save -t nat: %q", out)
	}
	before, _ := os.ReadFile(c.file)
	bad := "*filter\n-A INPUT -j ACCEPT\n-A INPUT -p tcp --dport 99999 -j ACCEPT\nCOMMIT\n"
	rc, _, errs := c.run(bad, "restore", "--ruleset", c.file)
	if rc != 2 || !strings.Contains(errs, "invalid port/service `99999' specified\nError occurred at line: 3\n") {
		t.Errorf("bad restore: rc %d %q", rc, errs)
	}
	good := "*filter\n-A INPUT -j ACCEPT\nCOMMIT\n"
	if rc, _, _ := c.run(good, "restore", "--ruleset", c.file, "--test"); rc != 0 {
		t.Errorf("--test rc %d", rc)
	}
	// As iptables-restore --test: commit-time checks (a jump to a missing
	// chain) do not run, and warnings of an accepted file are printed.
	if rc, _, errs := c.run("*filter\n-A INPUT -j nochain\nCOMMIT\n", "restore", "--ruleset", c.file, "--test"); rc != 0 || errs != "" {
		t.Errorf("--test with a missing chain: rc %d %q", rc, errs)
	}
	if rc, _, errs := c.run("*filter\n-A INPUT -j NFLOG --nflog-range 100\nCOMMIT\n", "restore", "--ruleset", c.file, "--test"); rc != 0 ||
		errs != "warn: --nflog-range has never worked and is no longer supported, please use --nflog-size instead\n" {
		t.Errorf("--test warning: rc %d %q", rc, errs)
	}
	after, _ := os.ReadFile(c.file)
	if !bytes.Equal(before, after) {
		t.Error("failed or --test restore changed the file")
	}
	if rc, _, _ := c.run(good, "restore", "--ruleset", c.file, "--noflush"); rc != 0 {
		t.Fatal("noflush")
	}
	if _, out, _ := c.run("", "--ruleset", c.file, "-S", "INPUT"); out != "-P INPUT DROP\n-A INPUT -p tcp -m tcp --dport 80 -j web\n-A INPUT -j ACCEPT\n" {
		t.Errorf("after --noflush: %q", out)
	}
}
