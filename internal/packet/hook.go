package packet

import "fmt"

// Hook is a netfilter hook point, numbered as the kernel numbers them. It
// lives here, below conntrack and the extensions, because every layer that
// handles a packet needs to know where the packet is.
type Hook uint8

const (
	PreRouting Hook = iota
	LocalIn
	Forward
	LocalOut
	PostRouting
	NumHooks
)

var hookNames = [...]string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}

// String returns the built-in chain name of the hook.
func (h Hook) String() string {
	if int(h) < len(hookNames) {
		return hookNames[h]
	}
	return fmt.Sprintf("hook%d", uint8(h))
}

// HookByChain maps a built-in chain name to its hook.
func HookByChain(name string) (Hook, bool) {
	for i, n := range hookNames {
		if n == name {
			return Hook(i), true
		}
	}
	return 0, false
}
