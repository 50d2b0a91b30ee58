package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

// DefaultRulesetFile is used when neither --ruleset nor $UPTABLES_RULESET
// names the rule-set file.
const DefaultRulesetFile = "uptables.rules"

// takeRuleset removes "--ruleset FILE" / "--ruleset=FILE" from args and
// returns the file (default $UPTABLES_RULESET, then ./uptables.rules).
func takeRuleset(e *env, args []string) (file string, rest []string, err error) {
	return takeFileFlag(e, args, "ruleset", "UPTABLES_RULESET", DefaultRulesetFile)
}

// takeFileFlag removes "--NAME FILE" / "--NAME=FILE" (anywhere, the last
// one winning) from args and returns the file: the flag's, else $ENV, else
// def. Used for the files the offline commands work on, whose flags may
// appear anywhere among iptables' own options.
func takeFileFlag(e *env, args []string, name, envName, def string) (file string, rest []string, err error) {
	flag := "--" + name
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == flag {
			if i+1 >= len(args) {
				return "", nil, errors.New(flag + " requires a file name")
			}
			file = args[i+1]
			i++
			continue
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			file = v
			continue
		}
		rest = append(rest, a)
	}
	if file == "" {
		file = e.getenv(envName)
	}
	if file == "" {
		file = def
	}
	return file, rest, nil
}

// rulesFile is an open, locked rule-set file.
type rulesFile struct {
	path string
	lock *os.File
	reg  *xt.Registry
}

// openRules takes an exclusive flock on the directory holding FILE (as
// iptables takes the xtables lock) so that concurrent uptables commands do
// not lose each other's changes. Locking the directory, not the file, keeps
// the lock valid across the rename that replaces the file, and leaves no
// lock file behind.
//
// Rules are parsed against the sets of setsPath (`uptables ipset` keeps
// it; a missing file has no sets), as iptables checks with the kernel
// that a set named by -m set or -j SET exists. The sets file is read
// without its lock: `uptables ipset` replaces it by rename, so a reader
// sees the old or the new file whole (and taking a second flock on the
// same directory would block on our own).
func openRules(path, setsPath string) (*rulesFile, error) {
	sets, err := LoadSetsFile(setsPath, time.Now().UnixNano())
	if err != nil {
		return nil, err
	}
	lf, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		lf.Close()
		return nil, err
	}
	return &rulesFile{path: path, lock: lf, reg: builtin.RegistryWithSets(sets)}, nil
}

func (f *rulesFile) close() { f.lock.Close() }

// load reads the rule set; a missing file is an empty rule set (every table
// empty with ACCEPT policies, as a fresh kernel).
func (f *rulesFile) load() (*ruleset.Ruleset, error) {
	empty := ruleset.New(xt.IPv4)
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return empty, nil
	}
	if err != nil {
		return nil, err
	}
	rs, err := iptables.Restore(empty, f.reg, bytes.NewReader(data), iptables.RestoreOptions{Counters: true})
	if err != nil {
		if e, ok := err.(*iptables.Error); ok {
			return nil, fmt.Errorf("%s: %s", f.path, e.Text("iptables-restore"))
		}
		return nil, fmt.Errorf("%s: %w", f.path, err)
	}
	return rs, nil
}

// store writes the rule set atomically: a temporary file in the same
// directory, fsync, rename over FILE, fsync of the directory. A crash
// leaves either the old or the new file, never a mix.
func (f *rulesFile) store(rs *ruleset.Ruleset) error {
	var buf bytes.Buffer
	if err := iptables.WriteSave(&buf, rs, iptables.SaveOptions{Counters: true, Now: time.Now()}); err != nil {
		return err
	}
	// Never write a file that would not load again (an extension printing
	// a form its own parser refuses would otherwise lock the user out).
	if _, err := iptables.Restore(ruleset.New(xt.IPv4), f.reg, bytes.NewReader(buf.Bytes()), iptables.RestoreOptions{Counters: true}); err != nil {
		msg := err.Error()
		if e, ok := err.(*iptables.Error); ok {
			msg = e.Text("iptables-restore")
		}
		return fmt.Errorf("the new rule set would not load back, so %s is left unchanged (iptables 1.8.9 accepts such a rule, but its own iptables-save text of it, e.g. a name with a blank, cannot be restored; uptables keeps its rule-set file restorable):\n%s", f.path, msg)
	}
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if st, err := os.Stat(f.path); err == nil {
		_ = tmp.Chmod(st.Mode().Perm())
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// report prints an error as the iptables tool prog does, plus uptables'
// hint, and returns the exit status.
func report(e *env, prog string, err error) int {
	if iptables.IsCommandError(err) {
		ie := iptables.AsError(err, "", "")
		fmt.Fprintln(e.stderr, ie.Text(prog))
		if ie.Hint != "" {
			fmt.Fprintln(e.stderr, "uptables: hint: "+ie.Hint)
		}
		return ie.ExitCode()
	}
	fmt.Fprintln(e.stderr, "uptables: "+err.Error())
	return 1
}
