package xt

import "github.com/uptables/uptables/internal/packet"

// Ctx is the per-packet context the engine hands to matches and targets.
// It is owned by the goroutine processing the packet and reused from packet
// to packet, so nothing in it may be retained after the call returns.
// The engine will add conntrack and state-store fields here.
type Ctx struct {
	P    *packet.Packet
	Hook Hook
	// HotDrop is set by a match that wants the packet dropped at once,
	// whatever the rule's target (the kernel's par->hotdrop), e.g. a
	// truncated TCP header under a tcp match.
	HotDrop bool
}

// PacketMatcher is implemented by a configured match that can test packets
// without per-rule mutable state (tcp, length, mark, ...). Matches returns
// the result after the match's own "!" handling. It must not allocate.
type PacketMatcher interface {
	Matches(c *Ctx) bool
}
