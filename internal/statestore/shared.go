package statestore

// SharedStore is implemented by a Factory that keeps state outside the
// daemon (internal/statestore/redisstore), so that the control socket's
// `uptables status` and the metrics can say what is shared, where, and
// how the calls to it fare. The memory store does not implement it.
type SharedStore interface {
	SharedStatus() SharedStatus
}

// SharedStatus is a shared store's report.
type SharedStatus struct {
	// Backend names the store without credentials ("redis://10.0.0.5:6379/0").
	Backend string
	// Shared lists the kinds of state kept there: "recent", "hashlimit".
	Shared []string
	// Fail is the answer while the store is unreachable: "open" or "closed".
	Fail string
	// Calls succeeded, Errors failed, Skipped were answered by the fail
	// mode during a backoff, Hotdrops are packets dropped by fail=closed.
	Calls, Errors, Skipped, Hotdrops uint64
	// LastError is the last failure's text ("" when none).
	LastError string
}
