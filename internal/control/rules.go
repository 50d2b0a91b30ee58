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
	"sync"
	"syscall"
	"time"

	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
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
	// Sets are the daemon's ipsets (nil: none). Registry must be
	// builtin.RegistryWithSets(Sets) and the engine must have them pinned
	// (builtin.PinSets). After each load the sets' reference counts are
	// set from the rules (References: in listings; a referenced set
	// cannot be destroyed). Sets live independently of the rules: a load
	// that drops every rule naming a set keeps the set.
	Sets *ipset.Sets
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
// Counters follow iptables-nft: an unchanged rule keeps its counters across
// a change or reload (the engine carries them over), -Z and -c set them
// (the engine loads them from the new rule set).
type Rules struct {
	cfg RulesConfig
	mu  sync.Mutex // serialises loads, command execution and file writes
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
	return &Rules{cfg: cfg}
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
	return r.loadLocked(rs, netfilter.LoadOptions{})
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
	return r.cfg.Engine.Ruleset()
}

func (r *Rules) failLocked(err error) {
	r.st.Failures++
	r.st.LastFailure = r.cfg.Now()
	r.st.LastError = err.Error()
}

func (r *Rules) loadLocked(rs *ruleset.Ruleset, o netfilter.LoadOptions) error {
	if err := r.cfg.Engine.LoadWith(rs, o); err != nil {
		r.failLocked(err)
		return err
	}
	r.st.Loads++
	r.st.LastLoad = r.cfg.Now()
	if r.cfg.Sets != nil {
		r.cfg.Sets.SetReferences(builtin.SetReferences(rs))
	}
	return nil
}

// Sets returns the daemon's ipsets (nil when it has none).
func (r *Rules) Sets() *ipset.Sets { return r.cfg.Sets }

// Ipset runs one ipset 7.17 command line against the live sets, as the
// ipset tool does against the kernel (the same code and texts as
// `uptables ipset --sets FILE`, so listings are byte for byte those of
// the offline form): changes apply at once, entry by entry, and a restore
// stops at its first bad line with the lines before it applied, as the
// kernel's does. It is serialised with rule loads, so that a destroy and
// a load naming the set cannot race. now is the engine's clock.
func (r *Rules) Ipset(args []string, stdin io.Reader, stdout, stderr io.Writer, now int64) int {
	if r.cfg.Sets == nil {
		fmt.Fprintln(stderr, "uptables: this daemon has no ipsets (start it with --ipsets FILE)")
		return 1
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out bytes.Buffer
	err := r.cfg.Sets.Exec(args, stdin, &out, now)
	_, _ = stdout.Write(out.Bytes())
	msg, code := ipset.Report(err)
	_, _ = io.WriteString(stderr, msg)
	return code
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
	view := r.cfg.Engine.Ruleset()
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
	// -Z and -c set counters: the engine takes them from the new rule set;
	// any other change keeps the running counters of unchanged rules.
	o := netfilter.LoadOptions{Counters: cmd.Cmd&(iptables.CmdZero|iptables.CmdZeroNum) != 0 || cmd.SetCounters != nil}
	if err := r.applyLocked(res.Ruleset, o); err != nil {
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
func (r *Rules) applyLocked(rs *ruleset.Ruleset, o netfilter.LoadOptions) error {
	if r.cfg.File == "" {
		return r.loadLocked(rs, o)
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
	prev := r.cfg.Engine.Ruleset()
	if err := r.loadLocked(rs, o); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), r.cfg.File); err != nil {
		_ = r.cfg.Engine.LoadWith(prev, netfilter.LoadOptions{Counters: true})
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
