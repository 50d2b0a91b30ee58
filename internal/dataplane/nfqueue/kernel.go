package nfqueue

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Mode says what the kernel queues.
type Mode string

const (
	// ModeExact queues every IPv4 packet of the chosen hooks: the engine
	// sees all traffic, counters and stateful matches are exact.
	ModeExact Mode = "exact"
	// ModeLifecycle queues only packets that start, change or end a
	// connection: conntrack state other than ESTABLISHED (NEW, INVALID,
	// RELATED, UNTRACKED) and TCP segments with SYN, FIN or RST. The rest
	// of established traffic is accepted in the kernel and never reaches
	// the engine (see the package comment for what that changes).
	ModeLifecycle Mode = "lifecycle"
)

// KernelRules are the kernel rules the daemon owns, installed with
// iptables-nft (the nft binary cannot be used: this kernel is built without
// CONFIG_NFT_QUEUE, so nft's native queue statement fails with ENOENT,
// while the xt NFQUEUE target works through nft_compat).
//
// They live in user chains of the mangle table, one per hook taken over
// (UPTABLES-INPUT, UPTABLES-OUTPUT, UPTABLES-FORWARD), each jumped to by
// the first rule of the built-in chain. mangle runs at priority -150: after
// conntrack (-200, so lifecycle mode can test ctstate) and before the
// kernel's own filter table (0), which an ACCEPT verdict hands the packet
// on to; a host keeps any kernel rules it has. An iptables-restore of the
// filter table does not touch them.
type KernelRules struct {
	// Hooks are "input", "output", "forward".
	Hooks []string
	// First and Last are the queue range: one queue when equal, else the
	// kernel balances flows over First..Last by a hash of the address pair
	// (both directions land in the same queue).
	First, Last uint16
	// Bypass adds --queue-bypass: with no listener bound (daemon dead,
	// SIGKILLed) packets are accepted instead of dropped.
	Bypass bool
	Mode   Mode
	// Iptables is the iptables binary; default "iptables" (iptables-nft).
	// Its -restore sibling is found by appending "-restore".
	Iptables string
	// Prefix is prepended to every command (tests: "ip netns exec NS").
	Prefix []string
}

// chainPrefix names the chains; leftovers are found by it.
const chainPrefix = "UPTABLES-"

// Validate checks the fields.
func (k *KernelRules) Validate() error {
	if len(k.Hooks) == 0 {
		return fmt.Errorf("no hook to take over")
	}
	seen := map[string]bool{}
	for _, h := range k.Hooks {
		switch h {
		case "input", "output", "forward":
		default:
			return fmt.Errorf("unknown hook %q (input, output, forward)", h)
		}
		if seen[h] {
			return fmt.Errorf("hook %q given twice", h)
		}
		seen[h] = true
	}
	if k.Last < k.First {
		return fmt.Errorf("queue range %d:%d: %d should be less than %d", k.First, k.Last, k.Last, k.First)
	}
	switch k.Mode {
	case "":
		k.Mode = ModeExact
	case ModeExact, ModeLifecycle:
	default:
		return fmt.Errorf("unknown mode %q (exact, lifecycle)", k.Mode)
	}
	if k.Iptables == "" {
		k.Iptables = "iptables"
	}
	return nil
}

// Restore is the iptables-restore --noflush input that creates the chains
// and their jumps in one transaction.
func (k *KernelRules) Restore() string {
	var b strings.Builder
	b.WriteString("*mangle\n")
	for _, h := range k.Hooks {
		fmt.Fprintf(&b, ":%s%s - [0:0]\n", chainPrefix, strings.ToUpper(h))
	}
	q := fmt.Sprintf("-j NFQUEUE --queue-num %d", k.First)
	if k.Last != k.First {
		q = fmt.Sprintf("-j NFQUEUE --queue-balance %d:%d", k.First, k.Last)
	}
	if k.Bypass {
		q += " --queue-bypass"
	}
	for _, h := range k.Hooks {
		c := chainPrefix + strings.ToUpper(h)
		if k.Mode == ModeLifecycle {
			fmt.Fprintf(&b, "-A %s -p tcp -m conntrack --ctstate ESTABLISHED -m tcp --tcp-flags FIN,SYN,RST NONE -j RETURN\n", c)
			fmt.Fprintf(&b, "-A %s ! -p tcp -m conntrack --ctstate ESTABLISHED -j RETURN\n", c)
		}
		fmt.Fprintf(&b, "-A %s %s\n", c, q)
		fmt.Fprintf(&b, "-I %s 1 -j %s\n", strings.ToUpper(h), c)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

func (k *KernelRules) run(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if len(k.Prefix) > 0 {
		args = append(append(append([]string{}, k.Prefix[1:]...), name), args...)
		name = k.Prefix[0]
	}
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Install removes leftovers of an earlier run, then creates the chains.
func (k *KernelRules) Install(ctx context.Context) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if err := k.Remove(ctx); err != nil {
		return err
	}
	_, err := k.run(ctx, k.Restore(), k.Iptables+"-restore", "--noflush", "--wait")
	return err
}

// StopQueueing empties the UPTABLES chains, so no new packet is queued
// while the daemon drains what is queued already. (Deleting the rules
// instead is fine too, but then the kernel drops packets still queued
// along with the hook they came from.)
func (k *KernelRules) StopQueueing(ctx context.Context) error {
	if err := k.Validate(); err != nil {
		return err
	}
	for _, c := range k.leftoverChains(ctx) {
		if _, err := k.run(ctx, "", k.Iptables, "-w", "-t", "mangle", "-F", c); err != nil {
			return err
		}
	}
	return nil
}

// leftoverChains lists every UPTABLES-* chain of the mangle table, whoever
// created it (this run, or a crashed one with other hooks).
func (k *KernelRules) leftoverChains(ctx context.Context) []string {
	out, err := k.run(ctx, "", k.Iptables, "-w", "-t", "mangle", "-S")
	if err != nil {
		return nil
	}
	var chains []string
	for _, l := range strings.Split(out, "\n") {
		if c, ok := strings.CutPrefix(l, "-N "); ok && strings.HasPrefix(c, chainPrefix) {
			chains = append(chains, strings.TrimSpace(c))
		}
	}
	return chains
}

// Remove deletes every jump to an UPTABLES-* chain and the chains, leaving
// the rest of the mangle table as it is. Missing rules are not an error.
func (k *KernelRules) Remove(ctx context.Context) error {
	if err := k.Validate(); err != nil {
		return err
	}
	out, err := k.run(ctx, "", k.Iptables, "-w", "-t", "mangle", "-S")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		// "-A INPUT -j UPTABLES-INPUT": delete by specification.
		if len(f) == 4 && f[0] == "-A" && f[2] == "-j" && strings.HasPrefix(f[3], chainPrefix) {
			if _, err := k.run(ctx, "", k.Iptables, "-w", "-t", "mangle", "-D", f[1], "-j", f[3]); err != nil {
				return err
			}
		}
	}
	for _, c := range k.leftoverChains(ctx) {
		if _, err := k.run(ctx, "", k.Iptables, "-w", "-t", "mangle", "-F", c); err != nil {
			return err
		}
		if _, err := k.run(ctx, "", k.Iptables, "-w", "-t", "mangle", "-X", c); err != nil {
			return err
		}
	}
	return nil
}
