package iptables

import (
	"embed"
	"strings"
)

// helpFiles holds what iptables 1.8.9 prints for -h: help/base.txt, then
// for each loaded extension the block its help function adds
// (help/t-NAME.txt, help/m-NAME.txt), recorded from the real iptables by
// help/gen.sh. Read-only data.
//
//go:embed help/*.txt
var helpFiles embed.FS

// helpText is iptables' -h output with the given extensions loaded: the
// target's block first, then the matches' in command-line order, as
// iptables' exit_printhelp prints them.
func helpText(exts []string) string {
	var b strings.Builder
	base, _ := helpFiles.ReadFile("help/base.txt")
	b.Write(base)
	for _, e := range exts {
		if blk, err := helpFiles.ReadFile("help/" + e + ".txt"); err == nil {
			b.Write(blk)
		}
	}
	return b.String()
}
