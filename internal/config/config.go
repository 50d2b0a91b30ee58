// Package config reads the daemon's TOML configuration (`uptables run
// --config FILE`). Keys mirror the command-line flags; a flag given on the
// command line wins over the file. Unknown keys are errors, so a typo is
// never silently ignored.
//
//	rules = "/etc/uptables/rules.v4"
//	ipsets = "/etc/uptables/ipsets"  # sets in `ipset save` format for -m set / -j SET; default none
//	mode = "nfqueue"            # uptables run --config runs only the NFQUEUE data plane today
//	log = "syslog"              # stdout, syslog, or a file name
//	state_dir = "/run/uptables"
//	control = "/run/uptables/uptables.sock"  # control socket; default <state_dir>/uptables.sock, "off" = none
//	metrics = "127.0.0.1:9595"               # Prometheus /metrics; default none
//
//	[nfqueue]
//	queues = [0, 1]             # or queue_balance = "0:3"
//	hooks = ["input", "output"] # or ["forward"]
//	fail_closed = false
//	mode = "exact"              # or "lifecycle"
//	queue_maxlen = 4096
//	rcvbuf = 16777216
//	gso = true                  # default; false makes the kernel segment GSO aggregates before queueing
//	batch = 64
package config

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// File is the whole configuration file.
type File struct {
	Rules string `toml:"rules"`
	// Ipsets is the sets file (`ipset save` format, as `uptables ipset
	// --sets FILE` writes it) loaded before the rules ("" = no sets).
	Ipsets   string `toml:"ipsets"`
	Mode     string `toml:"mode"`
	Log      string `toml:"log"`
	StateDir string `toml:"state_dir"`
	// State is where stateful matches keep their state (`--state`):
	// "" or "memory", or a redis://, rediss://, valkey:// or unix:// URL
	// that daemons share (recent lists).
	State string `toml:"state"`
	// PersistDir keeps recent lists and hashlimit tables across restarts
	// and reboots (`--persist-dir`; "off" = do not keep them).
	PersistDir string `toml:"persist_dir"`
	// Control is the control socket's path (`uptables run --control`):
	// "" = <state_dir>/uptables.sock, "off" = no control socket.
	Control string `toml:"control"`
	// Metrics is the address serving Prometheus /metrics (`--metrics`),
	// e.g. "127.0.0.1:9595"; "" = none.
	Metrics string  `toml:"metrics"`
	NFQueue NFQueue `toml:"nfqueue"`
	// Proxy is left undecoded for the proxy mode's own keys (section
	// [proxy]); Keys lists what it holds.
	Proxy map[string]any `toml:"proxy"`
}

// NFQueue is the [nfqueue] section.
type NFQueue struct {
	Queues       []int    `toml:"queues"`
	QueueBalance string   `toml:"queue_balance"`
	Hooks        []string `toml:"hooks"`
	FailClosed   bool     `toml:"fail_closed"`
	Mode         string   `toml:"mode"`
	QueueMaxLen  int      `toml:"queue_maxlen"`
	RcvBuf       int      `toml:"rcvbuf"`
	// GSO (default true when the key is absent) queues GSO/GRO aggregates
	// whole, as the kernel's own iptables sees and counts them.
	GSO   bool `toml:"gso"`
	Batch int  `toml:"batch"`
	// Set records which keys the file gave ("queues", "fail_closed"...),
	// so that defaults and flags can be told apart from explicit values.
	Set map[string]bool `toml:"-"`
}

// Parse decodes text (name is used in error messages).
func Parse(name, text string) (*File, error) {
	var f File
	md, err := toml.Decode(text, &f)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	var unknown []string
	for _, k := range md.Undecoded() {
		if len(k) > 0 && k[0] == "proxy" {
			continue
		}
		unknown = append(unknown, k.String())
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("%s: unknown key(s): %s", name, strings.Join(unknown, ", "))
	}
	f.NFQueue.Set = map[string]bool{}
	for _, k := range md.Keys() {
		if len(k) == 2 && k[0] == "nfqueue" {
			f.NFQueue.Set[k[1]] = true
		}
	}
	switch f.Mode {
	case "", "nfqueue", "proxy":
	default:
		return nil, fmt.Errorf("%s: mode %q: want \"nfqueue\" or \"proxy\"", name, f.Mode)
	}
	for _, q := range f.NFQueue.Queues {
		if q < 0 || q > 65535 {
			return nil, fmt.Errorf("%s: nfqueue.queues: %d out of range (0-65535)", name, q)
		}
	}
	if f.NFQueue.QueueMaxLen < 0 || f.NFQueue.RcvBuf < 0 || f.NFQueue.Batch < 0 {
		return nil, fmt.Errorf("%s: nfqueue: queue_maxlen, rcvbuf and batch must not be negative", name)
	}
	return &f, nil
}

// Load reads and parses the file at path.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, string(b))
}
