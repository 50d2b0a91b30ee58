package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/uptables/uptables/internal/scenario"
)

const genUsage = `usage: uptables gen SCENARIO -o OUT.pcap [--raw] [--seed N]

Writes the traffic a scenario file describes as a pcap capture (Ethernet
with made-up MAC addresses, or raw IP with --raw). The same file and seed
always give the same bytes. The format is described in
examples/scenarios/README.md.

options:
  -o FILE     the capture to write (required; - = standard output)
  --raw       raw IP link type instead of Ethernet
  --seed N    override the scenario's seed
`

// runGen is `uptables gen`.
func runGen(e *env, args []string) int {
	fs := flag.NewFlagSet("uptables gen", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, genUsage) }
	out := fs.String("o", "", "")
	raw := fs.Bool("raw", false, "")
	seed := fs.Uint64("seed", 0, "")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(e.stderr, "uptables gen: "+format+"\n", a...)
		return code
	}
	if len(pos) != 1 {
		return fail(2, "want exactly one scenario file (got %d)", len(pos))
	}
	if *out == "" {
		return fail(2, "-o FILE is required")
	}
	text, err := os.ReadFile(pos[0])
	if err != nil {
		return fail(1, "%v", err)
	}
	s, err := scenario.Parse(string(text))
	if err != nil {
		return fail(1, "%s: %v", pos[0], err)
	}
	seedSet := false
	fs.Visit(func(f *flag.Flag) { seedSet = seedSet || f.Name == "seed" })
	if seedSet {
		s.Seed = *seed
	}
	if *raw {
		s.Link = scenario.RawIP
	}
	pkts := scenario.Generate(s)
	w := e.stdout
	var f *os.File
	if *out != "-" {
		if f, err = os.Create(*out); err != nil {
			return fail(1, "%v", err)
		}
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := scenario.WritePcap(bw, s.Link, pkts); err != nil {
		return fail(1, "%v", err)
	}
	if err := bw.Flush(); err != nil {
		return fail(1, "%v", err)
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return fail(1, "%v", err)
		}
	}
	if *out != "-" {
		fmt.Fprintf(e.stderr, "%s: %d packets\n", *out, len(pkts))
	}
	return 0
}
