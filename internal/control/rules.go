// Package control is the live control plane of a running uptables daemon
// (`uptables run --nfqueue` or `--proxy`): a server on a unix socket that
// runs iptables commands against the engine's active ruleset, lists and
// edits recent lists and the connection table, shows connlimit counts and
// hashlimit tables and the daemon's status, and a client for it.
//
// The protocol is HTTP/1.1 over the unix socket: POST /v1/exec with a JSON
// body {"command": "iptables", "args": ["-L", "-n"]} answers 200 with
// {"stdout": "...", "stderr": "...", "exit": 0} - exactly what the
// command line tool prints and its exit status. The text is the API, so a
// listing through the daemon is byte for byte what the offline CLI prints
// for the same rule set and counters.
package control

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// RulesConfig configures Rules.
type RulesConfig struct {
	// Engine runs the rules; required.
	Engine *netfilter.Engine
	// Registry is the extension registry commands are parsed with; required.
	Registry *xt.Registry
	// File is the daemon's rules file: SIGHUP reloads read it, and changes
	// made through the control socket are written to it (iptables-save
	// format, without counters) so that a restart keeps them. "" = changes
	// live only in memory.
	File string
	// Read reads File into a rule set (the daemon's own loader, which may
	// accept more than the save format). nil = iptables-restore format.
	Read func(path string) (*ruleset.Ruleset, error)
	// Now is the clock for load times; nil = time.Now.
	Now func() time.Time
}

// LoadStats count the rule-set loads of a daemon: the first load, SIGHUP
// reloads and changes through the control socket alike.
type LoadStats struct {
	Loads, Failures uint64
	// LastLoad is the time of the last successful load (zero before any).
	LastLoad time.Time
	// LastFailure and LastError describe the last failed load.
	LastFailure time.Time
	LastError   string
}

// Rules owns a daemon's rule set: every load goes through it, one at a time,
// so that a control command, a SIGHUP reload and the rules file never race.
//
// It also keeps the counters iptables shows. The engine's counters only
// grow and follow a rule as long as its text is unchanged (iptables-nft
// keeps an unchanged rule's counters across a reload, so does the engine);
// -Z and -c set what iptables shows without resetting the engine. Rules
// keeps an offset per counter, keyed as the engine keys its counters
// (table, chain, rule text, occurrence among identical rules): what
// listings show is the engine's count minus the offset. Metrics export the
// engine's own counters, which never go backwards.
type Rules struct {
	cfg RulesConfig
	mu  sync.Mutex // serialises loads, command execution and file writes
	off map[string]ruleset.Counters
	st  LoadStats
}

// NewRules returns the rule set owner; nothing is loaded yet.
func NewRules(cfg RulesConfig) *Rules {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Read == nil {
		reg := cfg.Registry
		cfg.Read = func(path string) (*ruleset.Ruleset, error) { return ReadSaveFile(path, reg) }
	}
	return &Rules{cfg: cfg, off: map[string]ruleset.Counters{}}
}

// ReadSaveFile reads an iptables-save file into a rule set (counters are
// not restored, as iptables-restore without -c).
func ReadSaveFile(path string, reg *xt.Registry) (*ruleset.Ruleset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rs, err := iptables.Restore(ruleset.New(xt.IPv4), reg, bytes.NewReader(data), iptables.RestoreOptions{})
	if err != nil {
		var ie *iptables.Error
		if errors.As(err, &ie) {
			return nil, fmt.Errorf("%s: %s", path, ie.Text("iptables-restore"))
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}

// Engine returns the engine the rules run on.
func (r *Rules) Engine() *netfilter.Engine { return r.cfg.Engine }

// File returns the rules file ("" when none).
func (r *Rules) File() string { return r.cfg.File }

// Stats returns the load counters.
func (r *Rules) Stats() LoadStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// Load makes rs the active rule set (the daemon's first load). Counters
// shown by listings continue from the engine's for unchanged rules.
func (r *Rules) Load(rs *ruleset.Ruleset) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, raw := r.viewLocked()
	return r.loadLocked(rs, keepOffsets(rs, raw, r.off))
}

// Reload reads the rules file again and loads it (SIGHUP). On error the
// running rules stay.
func (r *Rules) Reload() error {
	if r.cfg.File == "" {
		return errors.New("no rules file")
	}
	rs, err := r.cfg.Read(r.cfg.File)
	if err != nil {
		r.mu.Lock()
		r.failLocked(err)
		r.mu.Unlock()
		return err
	}
	return r.Load(rs)
}

// Ruleset returns the active rule set with the counters iptables shows.
func (r *Rules) Ruleset() *ruleset.Ruleset {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs, _ := r.viewLocked()
	return rs
}

func (r *Rules) failLocked(err error) {
	r.st.Failures++
	r.st.LastFailure = r.cfg.Now()
	r.st.LastError = err.Error()
}

func (r *Rules) loadLocked(rs *ruleset.Ruleset, off map[string]ruleset.Counters) error {
	if err := r.cfg.Engine.Load(rs); err != nil {
		r.failLocked(err)
		return err
	}
	r.off = off
	r.st.Loads++
	r.st.LastLoad = r.cfg.Now()
	return nil
}

// counterKeys calls fn with the key and counters of every built-in
// policy and rule of rs, as the engine identifies them for carrying
// counters over a load: table/chain/policy, and table/chain/rule text
// numbered by occurrence among identical rules of the table.
func counterKeys(rs *ruleset.Ruleset, fn func(key string, c *ruleset.Counters)) {
	for _, t := range rs.Tables {
		seen := map[string]int{}
		for _, ch := range t.Chains {
			if ch.BuiltIn {
				fn(t.Name+"/"+ch.Name+"/policy", &ch.Counters)
			}
			for _, rl := range ch.Rules {
				k := t.Name + "/" + ch.Name + "/" + iptables.FormatRule(ch.Name, rl, false)
				seen[k]++
				fn(k+"#"+strconv.Itoa(seen[k]), &rl.Counters)
			}
		}
	}
}

// viewLocked returns the engine's rule set with the offsets applied, and
// the engine's raw counters by key.
func (r *Rules) viewLocked() (*ruleset.Ruleset, map[string]ruleset.Counters) {
	rs := r.cfg.Engine.Ruleset()
	raw := map[string]ruleset.Counters{}
	counterKeys(rs, func(k string, c *ruleset.Counters) {
		raw[k] = *c
		if o, ok := r.off[k]; ok {
			// Unsigned arithmetic wraps, so an offset "below zero" (-c
			// larger than the engine's count) works as well.
			c.Packets -= o.Packets
			c.Bytes -= o.Bytes
		}
	})
	return rs, raw
}

// keepOffsets returns the offsets for loading next when its counters are
// not meant to change what listings show (a file reload): the keys the
// engine carries over keep their offsets.
func keepOffsets(next *ruleset.Ruleset, raw, old map[string]ruleset.Counters) map[string]ruleset.Counters {
	off := map[string]ruleset.Counters{}
	counterKeys(next, func(k string, _ *ruleset.Counters) {
		if _, carried := raw[k]; carried {
			if o, ok := old[k]; ok {
				off[k] = o
			}
		}
	})
	return off
}

// setOffsets returns the offsets that make listings show next's counters:
// a key the engine carries over keeps its engine count, so the offset is
// the difference; a new key starts from next's counters (offset zero).
func setOffsets(next *ruleset.Ruleset, raw map[string]ruleset.Counters) map[string]ruleset.Counters {
	off := map[string]ruleset.Counters{}
	counterKeys(next, func(k string, c *ruleset.Counters) {
		if rc, carried := raw[k]; carried {
			o := ruleset.Counters{Packets: rc.Packets - c.Packets, Bytes: rc.Bytes - c.Bytes}
			if o != (ruleset.Counters{}) {
				off[k] = o
			}
		}
	})
	return off
}

// Iptables runs one iptables command line against the live rule set,
// writing what iptables 1.8.9 writes to stdout and stderr, and returns its
// exit status. Listings show the live counters. A command that changes the
// rule set is applied to a copy, validated, loaded atomically and written
// to the rules file; when any step fails nothing changes (neither the
// engine nor the file).
func (r *Rules) Iptables(args []string, stdout, stderr io.Writer) int {
	cmd, err := iptables.ParseCommand(r.cfg.Registry, xt.IPv4, args, iptables.ParseOptions{})
	if err != nil {
		return reportIptables(stderr, err)
	}
	for _, w := range cmd.Warnings {
		fmt.Fprintln(stderr, w)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	view, raw := r.viewLocked()
	out := bufio.NewWriter(stdout)
	res, err := iptables.Execute(view, cmd, out)
	if ferr := out.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return reportIptables(stderr, err)
	}
	if !res.Changed {
		return 0
	}
	if err := r.applyLocked(res.Ruleset, setOffsets(res.Ruleset, raw)); err != nil {
		fmt.Fprintln(stderr, "uptables: "+err.Error()+"; nothing changed")
		return 1
	}
	if r.cfg.File != "" {
		fmt.Fprintf(stderr, "uptables: applied to the running daemon and saved to %s\n", r.cfg.File)
	} else {
		fmt.Fprintln(stderr, "uptables: applied to the running daemon (no rules file: lost at restart)")
	}
	return 0
}

// applyLocked loads rs and writes it to the rules file, all or nothing:
// the file's new content is written and synced under a temporary name
// first, the engine loads rs, then the file is renamed into place; if the
// rename fails the previous rule set is loaded back.
func (r *Rules) applyLocked(rs *ruleset.Ruleset, off map[string]ruleset.Counters) error {
	if r.cfg.File == "" {
		return r.loadLocked(rs, off)
	}
	var buf bytes.Buffer
	if err := iptables.WriteSave(&buf, rs, iptables.SaveOptions{Now: r.cfg.Now()}); err != nil {
		return err
	}
	// Never write a file the daemon could not read back at its next start.
	if _, err := iptables.Restore(ruleset.New(xt.IPv4), r.cfg.Registry, bytes.NewReader(buf.Bytes()), iptables.RestoreOptions{}); err != nil {
		return fmt.Errorf("internal error: the new rule set would not load back from %s: %v", r.cfg.File, err)
	}
	dir := filepath.Dir(r.cfg.File)
	// The offline CLI (uptables --ruleset FILE) locks the directory while
	// it rewrites the file; take the same lock.
	lock, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(r.cfg.File)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if st, err := os.Stat(r.cfg.File); err == nil {
		_ = tmp.Chmod(st.Mode().Perm())
	}
	_, werr := tmp.Write(buf.Bytes())
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("writing %s: %w", r.cfg.File, werr)
	}
	prev, _ := r.viewLocked()
	prevOff := r.off
	if err := r.loadLocked(rs, off); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), r.cfg.File); err != nil {
		_, raw := r.viewLocked()
		if lerr := r.cfg.Engine.Load(prev); lerr == nil {
			r.off = keepOffsets(prev, raw, prevOff)
		}
		return fmt.Errorf("writing %s: %w", r.cfg.File, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Save writes the live rule set in iptables-save format (with [p:b]
// counters when counters), as `iptables-save [-c] [-t table]`.
func (r *Rules) Save(w io.Writer, counters bool, table string) error {
	return iptables.WriteSave(w, r.Ruleset(), iptables.SaveOptions{Counters: counters, Table: table, Now: r.cfg.Now()})
}

// reportIptables prints err as iptables does (plus uptables' hint) and
// returns the exit status.
func reportIptables(stderr io.Writer, err error) int {
	if iptables.IsCommandError(err) {
		ie := iptables.AsError(err, "", "")
		fmt.Fprintln(stderr, ie.Text("iptables"))
		if ie.Hint != "" {
			fmt.Fprintln(stderr, "uptables: hint: "+ie.Hint)
		}
		return ie.ExitCode()
	}
	fmt.Fprintln(stderr, "uptables: "+err.Error())
	return 1
}
