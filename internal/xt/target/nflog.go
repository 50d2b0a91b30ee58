package target

import (
	"strings"

	"github.com/uptables/uptables/internal/xt"
)

var nflogOpts = []optDef{
	{name: "nflog-group", arg: xt.RequiredArg},
	{name: "nflog-prefix", arg: xt.RequiredArg},
	{name: "nflog-range", arg: xt.RequiredArg, excl: []string{"nflog-size"}},
	{name: "nflog-size", arg: xt.RequiredArg, excl: []string{"nflog-range"}},
	{name: "nflog-threshold", arg: xt.RequiredArg},
}

// nflogRangeWarning is what iptables-nft prints for --nflog-range, which it
// accepts and then drops.
// nflogPrefixMax is how much of --nflog-prefix the kernel keeps.
const nflogPrefixMax = 127

const nflogRangeWarning = "warn: --nflog-range has never worked and is no longer supported, please use --nflog-size instead"

// NFLOG is `-j NFLOG`: hand the packet to the nfnetlink_log group Group.
// Size is the copy length when HasSize (else the whole packet), Threshold
// the number of packets the kernel batches. The prefix is cut to 127
// bytes, as nf_tables stores it (NF_LOG_PREFIXLEN with its NUL; measured:
// a 2,000-byte --nflog-prefix lists with 127); legacy would cut it to 63.
type NFLOG struct {
	Group     uint16
	Prefix    string
	Size      uint32
	HasSize   bool
	Threshold uint16
	warnings  []string
	// rangeGiven: --nflog-range was given (warned about in Final).
	rangeGiven bool
	opts       tracker
}

var (
	_ xt.Target = (*NFLOG)(nil)
	_ Warner    = (*NFLOG)(nil)
)

func newNFLOG() xt.Target { return &NFLOG{opts: tracker{target: "NFLOG", defs: nflogOpts}} }

// Parse reads one NFLOG option.
func (n *NFLOG) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	if err := n.opts.mark(opt, invert); err != nil {
		return err
	}
	switch opt {
	case "nflog-group":
		v, err := parseRange("NFLOG", opt, arg, 0, 65535)
		if err != nil {
			return err
		}
		n.Group = uint16(v)
	case "nflog-prefix":
		if arg == "" {
			return xt.Errorf("Argument must have a minimum length of 1 characters\n")
		}
		n.Prefix = arg[:min(len(arg), nflogPrefixMax)]
	case "nflog-range":
		if _, err := parseRange("NFLOG", opt, arg, 0, 0xffffffff); err != nil {
			return err
		}
		n.rangeGiven = true
	case "nflog-size":
		v, err := parseRange("NFLOG", opt, arg, 0, 0xffffffff)
		if err != nil {
			return err
		}
		n.Size, n.HasSize = uint32(v), true
	case "nflog-threshold":
		v, err := parseRange("NFLOG", opt, arg, 0, 65535)
		if err != nil {
			return err
		}
		n.Threshold = uint16(v)
	}
	return nil
}

// Final warns about --nflog-range (iptables does it in its final check,
// so a repeated --nflog-range fails without the warning) and checks that
// --nflog-range and --nflog-size were not combined (after the warning,
// measured).
func (n *NFLOG) Final(*xt.ParseContext) error {
	if n.rangeGiven && len(n.warnings) == 0 {
		n.warnings = append(n.warnings, nflogRangeWarning)
	}
	return n.opts.final()
}

func (n *NFLOG) print(b *strings.Builder, dash string) {
	if n.Prefix != "" {
		b.WriteString(" " + dash + "nflog-prefix ")
		xt.SaveString(b, n.Prefix)
	}
	if n.Group != 0 {
		b.WriteString(" " + dash + "nflog-group ")
		writeUint(b, uint64(n.Group))
	}
	if n.HasSize {
		b.WriteString(" " + dash + "nflog-size ")
		writeUint(b, uint64(n.Size))
	}
	if n.Threshold != 0 {
		b.WriteString(" " + dash + "nflog-threshold ")
		writeUint(b, uint64(n.Threshold))
	}
}

// Save prints the options that differ from the defaults.
func (n *NFLOG) Save(b *strings.Builder) { n.print(b, "--") }

// List prints the same words without dashes.
func (n *NFLOG) List(b *strings.Builder, _ bool) { n.print(b, "") }

// Warnings returns the --nflog-range warning when that option was used.
func (n *NFLOG) Warnings() []string { return n.warnings }

func registerNFLOG(r *xt.Registry) {
	r.RegisterTarget(&xt.TargetSpec{Name: "NFLOG", Options: options(nflogOpts), New: newNFLOG})
}
