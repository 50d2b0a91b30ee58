package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"github.com/uptables/uptables/internal/xt/match"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/uptables/uptables/internal/dataplane/replay"
	"github.com/uptables/uptables/internal/iptables"
	"github.com/uptables/uptables/internal/netfilter"
	"github.com/uptables/uptables/internal/ruleset"
	"github.com/uptables/uptables/internal/xt"
	"github.com/uptables/uptables/internal/xt/builtin"
)

const replayUsage = `usage: uptables replay --rules RULES [--local ADDR]... [options] CAPTURE...

Runs the packets of pcap/pcapng captures through RULES as the host with
the --local addresses would see them (-m addrtype knows them as LOCAL).

options:
  --rules FILE          the ruleset, iptables-save format or one iptables
                        command per line (required)
  --local ADDR[/LEN]    an address of this host (repeatable): packets from it
                        go OUTPUT/POSTROUTING, to it PREROUTING/INPUT, others
                        are forwarded
  --in-iface NAME       input device (default: the capture's interface name, else eth0)
  --out-iface NAME      output device (default: the same)
  --counters            print the ruleset with counters afterwards (iptables-save -c)
  --log FILE|-          write LOG lines to FILE (- = standard output)
  --recent NAME         print the recent list NAME afterwards (/proc/net/xt_recent format)
  --format text|jsonl   text: a summary on standard error (default); jsonl: one
                        JSON object per packet on standard output
  --monitor FILE|-      the trace events of packets the TRACE target marks, as
                        "xtables-monitor --trace" prints them
  --trace               explain every packet rule by rule (TRACE: lines), each
                        rule followed by a "why:" line: what its tests saw and
                        the state they consulted (recent hits, connlimit
                        counts, limit tokens, conntrack state)
  --trace-filter EXPR   only explain packets matching EXPR: host A, src A,
                        dst A, port N, proto P, joined by "and"
  --seed N              seed of the engine's random source (default 1)
  --local-owner UID[:GID]
                        owner of locally generated packets that a process's
                        socket sent (LOG --log-uid, -m owner); a capture does
                        not record it (default: no owner)
  --ipsets FILE         ipsets in ` + "`ipset save`" + ` format for -m set and -j SET
                        (uptables ipset --sets FILE writes one); their
                        timeouts count from the first frame's time
  --ipsets-out FILE|-   after the replay, the sets as ` + "`ipset save`" + ` prints
                        them at the last frame's time (what -j SET added)
`

// replayHostAddrs gives -m addrtype the replayed host's addresses: each
// --local address on the input device, and loopback. A --local prefix
// (every address in it is the host's) is taken as its addresses' network
// for addrtype, which can only name single addresses.
func replayHostAddrs(locals []netip.Prefix, iface string) func() []xt.HostAddr {
	if iface == "" {
		iface = "eth0"
	}
	addrs := []xt.HostAddr{{Iface: "lo", Prefix: netip.MustParsePrefix("127.0.0.1/8")}}
	for _, p := range locals {
		addrs = append(addrs, xt.HostAddr{Iface: iface, Prefix: p})
	}
	return func() []xt.HostAddr { return addrs }
}

// prefixList is a repeatable --local flag.
type prefixList []netip.Prefix

func (p *prefixList) String() string { return fmt.Sprint(*p) }
func (p *prefixList) Set(s string) error {
	x, err := replay.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("bad address %q", s)
	}
	*p = append(*p, x)
	return nil
}

// parseInterspersed parses flags wherever they are among the positional
// arguments, as the iptables tools accept them.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// runReplay is `uptables replay`.
func runReplay(e *env, args []string) int {
	fs := flag.NewFlagSet("uptables replay", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, replayUsage) }
	var locals prefixList
	rules := fs.String("rules", "", "")
	fs.Var(&locals, "local", "")
	inIface := fs.String("in-iface", "", "")
	outIface := fs.String("out-iface", "", "")
	counters := fs.Bool("counters", false, "")
	logTo := fs.String("log", "", "")
	monitorTo := fs.String("monitor", "", "")
	recent := fs.String("recent", "", "")
	format := fs.String("format", "text", "")
	trace := fs.Bool("trace", false, "")
	traceFilter := fs.String("trace-filter", "", "")
	seed := fs.Uint64("seed", 1, "")
	owner := fs.String("local-owner", "", "")
	ipsetsFile := fs.String("ipsets", "", "")
	ipsetsOut := fs.String("ipsets-out", "", "")
	captures, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(e.stderr, "uptables replay: "+format+"\n", a...)
		return code
	}
	switch {
	case *rules == "":
		return fail(2, "--rules FILE is required")
	case len(captures) == 0:
		return fail(2, "no capture file given")
	case *format != "text" && *format != "jsonl":
		return fail(2, "--format %q: want text or jsonl", *format)
	case *traceFilter != "" && !*trace:
		return fail(2, "--trace-filter needs --trace")
	}
	var localOwner *replay.Owner
	if *owner != "" {
		u, g, ok := strings.Cut(*owner, ":")
		uid, err1 := strconv.ParseUint(u, 10, 32)
		gid, err2 := uint64(0), error(nil)
		if ok {
			gid, err2 = strconv.ParseUint(g, 10, 32)
		} else {
			gid = uid
		}
		if err1 != nil || err2 != nil {
			return fail(2, "--local-owner %q: want UID[:GID] as numbers", *owner)
		}
		localOwner = &replay.Owner{UID: uint32(uid), GID: uint32(gid)}
	}
	var filter *replay.Filter
	if *traceFilter != "" {
		if filter, err = replay.ParseFilter(*traceFilter); err != nil {
			return fail(2, "%v", err)
		}
	}

	// Set timeouts run on the capture's clock: the elements of the sets
	// file count their remaining timeouts from the first frame's time, as
	// if `ipset restore` had run just before the capture started.
	var setsNow int64
	if *ipsetsFile != "" {
		if setsNow, err = firstFrameTime(captures[0]); err != nil {
			return fail(1, "%v", err)
		}
	}
	sets, err := loadIpsetsAt(*ipsetsFile, setsNow)
	if err != nil {
		return fail(1, "%v", err)
	}
	rs, err := loadRules(*rules, builtin.RegistryWithSets(sets))
	if err != nil {
		return fail(1, "%v", err)
	}
	eng := netfilter.New(netfilter.Config{Seed: *seed, RuleText: iptables.RuleText, LocalAddrs: replayHostAddrs(locals, *inIface)})
	if err := builtin.PinSets(eng, sets); err != nil {
		return fail(1, "%v", err)
	}
	if err := eng.Load(rs); err != nil {
		return fail(1, "%s: %v", *rules, err)
	}
	var lister replay.RecentLister
	if *recent != "" {
		lister = engineRecent{eng}
		// Lists exist from the moment a rule naming them is loaded.
		if _, ok := lister.RecentEntries(*recent); !ok {
			return fail(1, "--recent: no list named %q (no rule of the ruleset uses it)", *recent)
		}
	}

	// Everything bound for standard output shares one buffer, so that
	// JSON lines, trace lines and LOG lines stay in packet order.
	stdout := bufio.NewWriterSize(e.stdout, 1<<16)
	defer stdout.Flush()
	cfg := replay.Config{Local: locals, InIface: *inIface, OutIface: *outIface, LocalOwner: localOwner}
	switch *logTo {
	case "":
	case "-":
		cfg.Log = stdout
	default:
		f, err := os.Create(*logTo)
		if err != nil {
			return fail(1, "%v", err)
		}
		defer f.Close()
		cfg.Log = f
	}
	switch *monitorTo {
	case "":
	case "-":
		cfg.Monitor = stdout
		if cfg.Log == stdout {
			cfg.Monitor = cfg.Log
		}
	default:
		f, err := os.Create(*monitorTo)
		if err != nil {
			return fail(1, "%v", err)
		}
		defer f.Close()
		cfg.Monitor = f
	}
	var jsonl *replay.JSONL
	if *format == "jsonl" {
		jsonl = replay.NewJSONL(stdout)
		cfg.Observer = jsonl
	}
	if *trace {
		cfg.Trace = &replay.Trace{W: stdout, Filter: filter}
	}
	r := replay.New(eng, cfg)
	var lastTime int64
	for _, c := range captures {
		if err := r.ReplayFile(c); err != nil {
			stdout.Flush()
			return fail(1, "%v", err)
		}
	}
	if jsonl != nil {
		if err := jsonl.Flush(); err != nil {
			return fail(1, "%v", err)
		}
	}
	if err := r.Flush(); err != nil {
		return fail(1, "%v", err)
	}
	lastTime = r.LastTimeNS()
	if *ipsetsOut != "" {
		var b bytes.Buffer
		_ = sets.Exec([]string{"save"}, nil, &b, lastTime)
		if *ipsetsOut == "-" {
			stdout.Write(b.Bytes())
		} else if err := os.WriteFile(*ipsetsOut, b.Bytes(), 0o644); err != nil {
			return fail(1, "%v", err)
		}
	}
	if *counters {
		// The header date is the end of the capture, so the output is
		// reproducible; iptables-save would print the current time.
		if err := iptables.WriteSave(stdout, eng.Ruleset(), iptables.SaveOptions{Counters: true, Now: time.Unix(0, lastTime).UTC()}); err != nil {
			return fail(1, "%v", err)
		}
	}
	if lister != nil {
		entries, ok := lister.RecentEntries(*recent)
		if !ok {
			stdout.Flush()
			return fail(1, "--recent: no list named %q (no rule of the ruleset uses it)", *recent)
		}
		if err := replay.WriteRecentProc(stdout, entries, replay.Jiffies{BootNS: r.FirstTimeNS()}); err != nil {
			return fail(1, "%v", err)
		}
	}
	if err := stdout.Flush(); err != nil {
		return fail(1, "%v", err)
	}
	if *format == "text" {
		writeSummary(e.stderr, r.Stats())
	}
	return 0
}

// writeSummary prints what the replay saw, on one or two lines.
func writeSummary(w io.Writer, st replay.Stats) {
	fmt.Fprintf(w, "%d frames: %d packets replayed (%d accepted, %d dropped, %d queued), %d replies emitted, %d LOG lines\n",
		st.Frames, st.Processed, st.Accepted, st.Dropped, st.Queued, st.Replies, st.LogLines)
	if st.Reassembly > 0 {
		fmt.Fprintf(w, "%d fragments held for reassembly (the chains saw the reassembled datagrams)\n", st.Reassembly)
	}
	var parts []string
	for k := replay.Skip(1); int(k) < len(st.Skipped); k++ {
		if st.Skipped[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, st.Skipped[k]))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "skipped: %s\n", strings.Join(parts, ", "))
	}
}

// loadRules reads a rules file (iptables-save format or one iptables
// command per line) into a fresh ruleset.
func loadRules(path string, reg *xt.Registry) (*ruleset.Ruleset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rs, err := iptables.ReadRules(reg, xt.IPv4, data, true)
	if err != nil {
		var ie *iptables.Error
		if errors.As(err, &ie) {
			return nil, fmt.Errorf("%s: %s", path, ie.TextHint("iptables-restore"))
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}

// engineRecent lists the engine's recent lists for --recent.
type engineRecent struct{ e *netfilter.Engine }

func (r engineRecent) RecentEntries(name string) ([]replay.RecentEntry, bool) {
	l, ok := match.RecentListByName(r.e.Named(), name)
	if !ok {
		return nil, false
	}
	return l.Entries(nil), true
}
