package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/uptables/uptables/internal/control"
)

// DefaultControlSocket is where `uptables run --nfqueue` listens with the
// default state directory, and where the control commands look when
// neither --control nor $UPTABLES_CONTROL says otherwise.
const DefaultControlSocket = "/run/uptables/" + control.DefaultSocket

// takeControl removes "--control PATH" / "--control=PATH" from args.
// given reports whether the option was present.
func takeControl(args []string) (path string, given bool, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--control" {
			if i+1 >= len(args) {
				return "", false, nil, fmt.Errorf("--control requires a socket path")
			}
			path, given = args[i+1], true
			i++
			continue
		}
		if v, ok := strings.CutPrefix(a, "--control="); ok {
			path, given = v, true
			continue
		}
		rest = append(rest, a)
	}
	return path, given, rest, nil
}

func hasRulesetFlag(args []string) bool {
	for _, a := range args {
		if a == "--ruleset" || strings.HasPrefix(a, "--ruleset=") {
			return true
		}
	}
	return false
}

// controlDispatch sends an iptables command line (`uptables --control PATH
// -L -n -v`), `uptables save --control PATH [-c]` or `uptables --control
// PATH ipset <ipset command>` to a running daemon
// instead of the rule-set file: when --control is given, or
// $UPTABLES_CONTROL is set and --ruleset is not. ok is false when the
// command is not for the daemon (main then runs it offline).
func controlDispatch(e *env, args []string) (rc int, ok bool) {
	cmd := "iptables"
	rest := args
	if len(args) > 0 && args[0] == "save" {
		cmd, rest = "save", args[1:]
	} else if len(args) > 0 && !strings.HasPrefix(args[0], "-") && args[0] != "!" {
		return 0, false
	}
	path, given, rest, err := takeControl(rest)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables: "+err.Error())
		return 2, true
	}
	if given && hasRulesetFlag(rest) {
		fmt.Fprintln(e.stderr, "uptables: --control and --ruleset are exclusive: a running daemon or a rule-set file")
		return 2, true
	}
	if !given {
		if hasRulesetFlag(rest) || e.getenv("UPTABLES_CONTROL") == "" {
			return 0, false
		}
		path = e.getenv("UPTABLES_CONTROL")
	}
	if cmd == "iptables" && len(rest) > 0 && rest[0] == "ipset" {
		// uptables --control SOCK ipset <ipset command>
		return ctlIpset(e, path, rest[1:]), true
	}
	if cmd == "iptables" && len(rest) > 0 {
		switch rest[0] {
		case "recent", "conntrack", "connlimit", "hashlimit", "status":
			// uptables --control SOCK recent ..., the order people type
			// after `uptables --control SOCK -L`.
			return subcommands()[rest[0]].run(e, append([]string{"--control", path}, rest[1:]...)), true
		}
	}
	return ctlExec(e, path, cmd, rest), true
}

// ctlExec runs one command in the daemon and prints its reply.
func ctlExec(e *env, path, cmd string, args []string) int {
	ctx, cancel := context.WithTimeout(context.Background(), control.DefaultTimeout)
	defer cancel()
	rep, err := control.NewClient(path).Exec(ctx, cmd, args)
	if err != nil {
		fmt.Fprintln(e.stderr, "uptables: "+err.Error())
		return 1
	}
	_, _ = io.WriteString(e.stdout, rep.Stdout)
	_, _ = io.WriteString(e.stderr, rep.Stderr)
	return rep.Exit
}

// ctlSubcommand returns the subcommand that sends cmd to the daemon:
// `uptables recent|conntrack|connlimit|hashlimit|status [--control PATH]
// ARGS...`. The socket is --control, else $UPTABLES_CONTROL, else
// DefaultControlSocket.
func ctlSubcommand(cmd string) func(e *env, args []string) int {
	return func(e *env, args []string) int {
		path, given, rest, err := takeControl(args)
		if err != nil {
			fmt.Fprintf(e.stderr, "uptables %s: %v\n", cmd, err)
			return 2
		}
		if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help") {
			for _, c := range control.Commands {
				if c.Name == cmd {
					fmt.Fprintf(e.stdout, "usage: uptables %s [--control PATH] %s\n", cmd, c.Usage)
				}
			}
			fmt.Fprintf(e.stdout, "The daemon's socket: --control PATH, $UPTABLES_CONTROL, or %s.\n", DefaultControlSocket)
			return 0
		}
		if !given {
			path = e.getenv("UPTABLES_CONTROL")
		}
		if path == "" {
			path = DefaultControlSocket
		}
		return ctlExec(e, path, cmd, rest)
	}
}
