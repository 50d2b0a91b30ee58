package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/uptables/uptables/internal/control"
	"github.com/uptables/uptables/internal/dataplane/replay"
	"github.com/uptables/uptables/internal/ipset"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
)

// takeSets removes "--sets FILE" / "--sets=FILE" from args and returns the
// sets file the offline iptables commands check -m set and -j SET
// against: --sets, else $UPTABLES_IPSETS, else ./uptables.ipsets (the
// file `uptables ipset` edits). iptables has no --sets option (nor one
// it abbreviates), so the name cannot shadow an iptables option.
func takeSets(e *env, args []string) (file string, rest []string, err error) {
	return takeFileFlag(e, args, "sets", "UPTABLES_IPSETS", DefaultSetsFile)
}

// daemonSets loads the daemon's --ipsets file ("" = no sets, an empty
// registry that control-socket `ipset create` may fill) and marks each
// set's origin, so that a restart restores what the previous run saved
// for the sets this file did not change (persist, ipset.RestoreState).
func daemonSets(file string) (*ipset.Sets, error) {
	now := time.Now().UnixNano()
	sets, err := loadIpsetsAt(file, now)
	if err != nil {
		return nil, fmt.Errorf("--ipsets: %w", err)
	}
	sets.MarkOrigin(now)
	return sets, nil
}

// readRulesWith returns a rules-file reader for the daemon that parses
// with reg (builtin.RegistryWithSets of the daemon's sets), in either form
// uptables.LoadRules accepts: iptables-save, or one iptables command per
// line ("-A INPUT -m set --match-set bl src -j DROP", optionally preceded
// by "iptables"; "#" starts a comment). The first error names its line.
func readRulesWith(reg *xt.Registry) func(path string) (*ruleset.Ruleset, error) {
	return func(path string) (*ruleset.Ruleset, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		rs, err := parseRulesText(reg, data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return rs, nil
	}
}

// parseRulesText reads rules text in either form (iptables.ReadRules),
// with iptables-restore's text for an error in a save file.
func parseRulesText(reg *xt.Registry, data []byte) (*ruleset.Ruleset, error) {
	rs, err := iptables.ReadRules(reg, xt.IPv4, data, false)
	if err != nil {
		var ie *iptables.Error
		if errors.As(err, &ie) {
			return nil, errors.New(ie.TextHint("iptables-restore"))
		}
		return nil, err
	}
	return rs, nil
}

func hasSetsFlag(args []string) bool {
	for _, a := range args {
		if a == "--sets" || strings.HasPrefix(a, "--sets=") {
			return true
		}
	}
	return false
}

// ctlIpset sends an ipset command line to a running daemon; `restore`
// sends standard input with it.
func ctlIpset(e *env, path string, args []string) int {
	stdin := ""
	for _, a := range args {
		if a == "restore" || a == "-R" {
			b, err := io.ReadAll(io.LimitReader(e.stdin, 1<<20))
			if err != nil {
				fmt.Fprintln(e.stderr, "uptables ipset: "+err.Error())
				return 1
			}
			stdin = string(b)
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), control.DefaultTimeout)
	defer cancel()
	rep, err := control.NewClient(path).ExecInput(ctx, "ipset", args, stdin)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables: "+err.Error())
		return 1
	}
	_, _ = io.WriteString(e.stdout, rep.Stdout)
	_, _ = io.WriteString(e.stderr, rep.Stderr)
	return rep.Exit
}

// errFirstFrame stops the pre-pass of firstFrameTime after one frame.
var errFirstFrame = errors.New("first frame seen")

type stopAtFirst struct{}

func (stopAtFirst) Event(*replay.Event) error { return errFirstFrame }

// firstFrameTime returns the timestamp of the capture's first frame (ns
// since the epoch), the origin of replay's set timeouts; 0 for a capture
// without frames. It reads one frame through a replayer with an empty
// engine, so every format replay reads is understood alike.
func firstFrameTime(capture string) (int64, error) {
	r := replay.New(netfilter.New(netfilter.Config{}), replay.Config{Observer: stopAtFirst{}})
	if err := r.ReplayFile(capture); err != nil && !errors.Is(err, errFirstFrame) {
		return 0, err
	}
	return r.FirstTimeNS(), nil
}
