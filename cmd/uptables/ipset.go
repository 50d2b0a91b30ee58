package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

const ipsetUsage = `usage: uptables ipset [--sets FILE] [--ruleset FILE] <ipset command>
       uptables ipset --control SOCK <ipset command>

ipset 7.17 on FILE (ipset save format; default $UPTABLES_IPSETS, then
./uptables.ipsets), rewritten atomically, or on a running daemon's live sets.

commands: create add del test flush destroy rename swap list save restore
          (with -exist, -q, -s, -o save|plain, list -t|-n)
types:    hash:ip hash:net hash:ip,port hash:net,port bitmap:port (family inet)
options:  timeout counters comment hashsize maxelem (nomatch on hash:net entries)
`

// DefaultSetsFile is the ipset file when neither --sets nor
// $UPTABLES_IPSETS names one.
const DefaultSetsFile = "uptables.ipsets"

// runIpset is `uptables ipset [--sets FILE] [--ruleset FILE] <ipset
// command>`: ipset 7.17
// on a file in `ipset save` format, as `uptables --ruleset FILE` is
// iptables on a rule-set file. The command runs on a copy; only when it
// succeeds is the file rewritten (temporary file, fsync, rename), so a
// failing command, a failing restore line included, changes nothing.
// Commands on one FILE are serialised with a lock on its directory.
// The rules of the rule-set file (--ruleset, $UPTABLES_RULESET,
// ./uptables.rules) hold references on the sets they name, as rules in
// the kernel do: listings count them, destroy refuses such a set.
//
// With --control SOCK (or $UPTABLES_CONTROL, unless --sets or --ruleset
// names a file) the command runs against a running daemon's live sets
// instead, with the same output.
func runIpset(e *env, args []string) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(e.stdout, ipsetUsage)
		return 0
	}
	if path, given, rest, err := takeControl(args); err != nil || given || e.getenv("UPTABLES_CONTROL") != "" && !hasRulesetFlag(args) && !hasSetsFlag(args) {
		if err != nil {
			fmt.Fprintln(e.stderr, "uptables ipset: "+err.Error())
			return 2
		}
		if !given {
			path = e.getenv("UPTABLES_CONTROL")
		}
		return ctlIpset(e, path, rest)
	}
	rulesPath, args, err := takeRuleset(e, args)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables ipset: "+err.Error())
		return 2
	}
	file, rest, err := takeSets(e, args)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables ipset: "+err.Error())
		return 2
	}
	lf, err := os.Open(filepath.Dir(file))
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables ipset:", err)
		return 1
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		fmt.Fprintln(e.stderr, "uptables ipset:", err)
		return 1
	}
	now := time.Now().UnixNano()
	sets, err := LoadSetsFile(file, now)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables ipset:", err)
		return 1
	}
	sets.SetReferences(rulesReferences(rulesPath, sets))
	before := saveSets(sets, now)
	work := sets.Clone()
	var out bytes.Buffer
	err = work.Exec(rest, e.stdin, &out, now)
	e.stdout.Write(out.Bytes())
	msg, code := ipset.Report(err)
	fmt.Fprint(e.stderr, msg)
	if code != 0 {
		return code
	}
	if after := saveSets(work, now); !bytes.Equal(after, before) {
		if err := writeFileAtomic(file, after); err != nil {
			fmt.Fprintln(e.stderr, "uptables ipset:", err)
			return 1
		}
	}
	return 0
}

// LoadSetsFile reads a file in `ipset save` format (a missing file is no
// sets). Timeouts in it count from now, as `ipset restore` counts them.
func LoadSetsFile(file string, now int64) (*ipset.Sets, error) {
	sets := ipset.New(rand.Uint32)
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return sets, nil
	}
	if err != nil {
		return nil, err
	}
	if err := sets.Exec([]string{"restore"}, bytes.NewReader(data), &bytes.Buffer{}, now); err != nil {
		msg, _ := ipset.Report(err)
		return nil, fmt.Errorf("%s: %s", file, strings.TrimSpace(msg))
	}
	return sets, nil
}

func saveSets(s *ipset.Sets, now int64) []byte {
	var b bytes.Buffer
	_ = s.Exec([]string{"save"}, nil, &b, now)
	return b.Bytes()
}

// writeFileAtomic replaces file with data: temporary file in the same
// directory, fsync, rename, fsync of the directory.
func writeFileAtomic(file string, data []byte) error {
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
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
	if err := os.Rename(tmp.Name(), file); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// loadIpsetsAt reads the --ipsets file of run and replay ("" = no sets)
// with timeouts counting from now: the rules are parsed against these
// sets and the engine uses them. Unlike the offline CLI's sets file, it
// must exist when named.
func loadIpsetsAt(file string, now int64) (*ipset.Sets, error) {
	if file == "" {
		return ipset.New(rand.Uint32), nil
	}
	if _, err := os.Stat(file); err != nil {
		return nil, err
	}
	return LoadSetsFile(file, now)
}

// rulesReferences counts the references the rule-set file's rules hold on
// the sets (as the kernel counts rules using a set), so that `uptables
// ipset` lists "References:" and refuses to destroy a set the rules use.
// A missing or unreadable rule-set file holds none.
func rulesReferences(path string, sets *ipset.Sets) map[string]int {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	rs, err := iptables.Restore(ruleset.New(xt.IPv4), builtin.RegistryWithSets(sets), bytes.NewReader(data), iptables.RestoreOptions{Counters: true})
	if err != nil {
		return nil
	}
	return builtin.SetReferences(rs)
}
