package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	text := `
rules = "/etc/uptables/rules.v4"
mode = "nfqueue"
log = "syslog"
state_dir = "/run/uptables"

[nfqueue]
queues = [0, 1]
hooks = ["input", "output"]
fail_closed = true
mode = "lifecycle"
queue_maxlen = 4096
rcvbuf = 16777216
gso = true
batch = 32

[proxy]
listen = ["tcp::8080=127.0.0.1:80"]
`
	f, err := Parse("x.toml", text)
	if err != nil {
		t.Fatal(err)
	}
	want := NFQueue{Queues: []int{0, 1}, Hooks: []string{"input", "output"}, FailClosed: true, Mode: "lifecycle",
		QueueMaxLen: 4096, RcvBuf: 16 << 20, GSO: true, Batch: 32,
		Set: map[string]bool{"queues": true, "hooks": true, "fail_closed": true, "mode": true, "queue_maxlen": true, "rcvbuf": true, "gso": true, "batch": true}}
	if !reflect.DeepEqual(f.NFQueue, want) {
		t.Errorf("nfqueue = %+v\nwant %+v", f.NFQueue, want)
	}
	if f.Rules != "/etc/uptables/rules.v4" || f.Mode != "nfqueue" || f.Log != "syslog" || f.StateDir != "/run/uptables" {
		t.Errorf("top level = %+v", f)
	}
	if f.Proxy["listen"] == nil {
		t.Errorf("proxy section not kept: %v", f.Proxy)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"rule = \"x\"", "unknown key(s): rule"},
		{"[nfqueue]\nqueue = [1]\nfailopen = true", "unknown key(s): nfqueue.failopen, nfqueue.queue"},
		{"mode = \"kernel\"", `mode "kernel"`},
		{"[nfqueue]\nqueues = [70000]", "70000 out of range"},
		{"[nfqueue]\nbatch = -1", "must not be negative"},
		{"rules = ", "x.toml:"},
		{"[nfqueue]\nqueues = \"0\"", "x.toml:"},
	} {
		_, err := Parse("x.toml", tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want it to contain %q", tc.text, err, tc.want)
		}
	}
}

func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "u.toml")
	os.WriteFile(p, []byte("rules = \"r\"\n[nfqueue]\nhooks = [\"forward\"]\n"), 0o600)
	f, err := Load(p)
	if err != nil || f.Rules != "r" || !reflect.DeepEqual(f.NFQueue.Hooks, []string{"forward"}) || f.NFQueue.Set["fail_closed"] {
		t.Fatalf("Load = %+v, %v", f, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); err == nil {
		t.Fatal("missing file: no error")
	}
}
