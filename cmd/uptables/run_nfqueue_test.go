package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/uptables/uptables/internal/dataplane/nfqueue"
)

func TestNfqueueFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "u.toml")
	os.WriteFile(cfg, []byte("rules = \"/r\"\nlog = \"syslog\"\n[nfqueue]\nqueues = [2, 3]\nhooks = [\"forward\"]\nfail_closed = true\nmode = \"lifecycle\"\n"), 0o600)
	cfgNoGSO := filepath.Join(dir, "nogso.toml")
	os.WriteFile(cfgNoGSO, []byte("rules = \"/r\"\n[nfqueue]\ngso = false\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want *nfqueueOpts
		err  string
	}{
		{args: []string{"--rules", "r", "--nfqueue"},
			want: &nfqueueOpts{rules: "r", hooks: []string{"input", "output"}, mode: nfqueue.ModeExact, log: "stdout", stateDir: "/run/uptables", persistDir: "/var/lib/uptables", maxLen: 4096, rcvBuf: 16 << 20, gso: true, batch: 64, iptables: "iptables"}},
		{args: []string{"--rules", "r", "--nfqueue", "--queue", "1,2,3", "--hooks", "forward", "--fail-closed", "--mode", "lifecycle"},
			want: &nfqueueOpts{rules: "r", first: 1, last: 3, hooks: []string{"forward"}, failClosed: true, mode: nfqueue.ModeLifecycle, log: "stdout", stateDir: "/run/uptables", persistDir: "/var/lib/uptables", maxLen: 4096, rcvBuf: 16 << 20, gso: true, batch: 64, iptables: "iptables"}},
		// The file gives values, flags win.
		{args: []string{"--config", cfg, "--nfqueue", "--mode", "exact"},
			want: &nfqueueOpts{rules: "/r", first: 2, last: 3, hooks: []string{"forward"}, failClosed: true, mode: nfqueue.ModeExact, log: "syslog", stateDir: "/run/uptables", persistDir: "/var/lib/uptables", maxLen: 4096, rcvBuf: 16 << 20, gso: true, batch: 64, iptables: "iptables"}},
		// GSO is on unless turned off, by flag or by the file's gso = false.
		{args: []string{"--rules", "r", "--gso=false"},
			want: &nfqueueOpts{rules: "r", hooks: []string{"input", "output"}, mode: nfqueue.ModeExact, log: "stdout", stateDir: "/run/uptables", persistDir: "/var/lib/uptables", maxLen: 4096, rcvBuf: 16 << 20, batch: 64, iptables: "iptables"}},
		{args: []string{"--config", cfgNoGSO},
			want: &nfqueueOpts{rules: "/r", hooks: []string{"input", "output"}, mode: nfqueue.ModeExact, log: "stdout", stateDir: "/run/uptables", persistDir: "/var/lib/uptables", maxLen: 4096, rcvBuf: 16 << 20, batch: 64, iptables: "iptables"}},
		{args: []string{"--config", cfgNoGSO, "--gso"},
			want: &nfqueueOpts{rules: "/r", hooks: []string{"input", "output"}, mode: nfqueue.ModeExact, log: "stdout", stateDir: "/run/uptables", persistDir: "/var/lib/uptables", maxLen: 4096, rcvBuf: 16 << 20, gso: true, batch: 64, iptables: "iptables"}},
		{args: []string{"--nfqueue"}, err: "--rules FILE is required"},
		{args: []string{"--rules", "r", "--queue", "1,3"}, err: "queues must be consecutive"},
		{args: []string{"--rules", "r", "--queue-balance", "4:2"}, err: "2 should be less than 4"},
		{args: []string{"--rules", "r", "--queue", "70000"}, err: "bad queue number"},
		{args: []string{"--rules", "r", "--hooks", "prerouting"}, err: `unknown hook "prerouting"`},
		{args: []string{"--rules", "r", "--mode", "fast"}, err: `unknown mode "fast"`},
		{args: []string{"--rules", "r", "--queue", "1", "--queue-balance", "1:2"}, err: "exclusive"},
		{args: []string{"--rules", "r", "--bogus"}, err: "flag provided but not defined: -bogus"},
	} {
		var stderr bytes.Buffer
		o, rc := parseNfqueueFlags(&env{stderr: &stderr, getenv: func(string) string { return "" }}, tc.args)
		if tc.err != "" {
			if o != nil || rc != 2 || !strings.Contains(stderr.String(), tc.err) {
				t.Errorf("%v: rc %d stderr %q, want %q", tc.args, rc, stderr.String(), tc.err)
			}
			continue
		}
		if o == nil {
			t.Errorf("%v: %s", tc.args, stderr.String())
			continue
		}
		if !reflect.DeepEqual(o, tc.want) {
			t.Errorf("%v:\n got %+v\nwant %+v", tc.args, o, tc.want)
		}
	}
}

func TestRunDispatch(t *testing.T) {
	var stderr bytes.Buffer
	e := &env{stderr: &stderr, stdout: &bytes.Buffer{}, getenv: func(string) string { return "" }}
	if rc := runDispatch(e, []string{"--nfqueue", "--proxy", "tcp:1=2"}); rc != 2 || !strings.Contains(stderr.String(), "choose one") {
		t.Errorf("both planes: rc %d %q", rc, stderr.String())
	}
	stderr.Reset()
	// A config file whose mode is nfqueue selects the NFQUEUE plane.
	cfg := filepath.Join(t.TempDir(), "u.toml")
	os.WriteFile(cfg, []byte("mode = \"nfqueue\"\n"), 0o600)
	if rc := runDispatch(e, []string{"--config", cfg}); rc != 2 || !strings.Contains(stderr.String(), "--rules FILE is required") {
		t.Errorf("config mode nfqueue: rc %d %q", rc, stderr.String())
	}
}
