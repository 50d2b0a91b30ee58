package match

import "github.com/uptables/uptables/internal/xt"

// registerProtoAndState registers tcp, udp, icmp, multiport, state,
// conntrack, connlimit, recent, limit, hashlimit, length, ttl, sctp and ah.
func registerProtoAndState(r *xt.Registry) {
	r.RegisterMatch(newTCPSpec())
	r.RegisterMatch(newUDPSpec())
	r.RegisterMatch(newICMPSpec())
	r.RegisterMatch(newMultiportSpec())
	r.RegisterMatch(newStateSpec())
	r.RegisterMatch(newConntrackSpec())
	r.RegisterMatch(newConnlimitSpec())
	r.RegisterMatch(newRecentSpec())
	r.RegisterMatch(newLimitSpec())
	r.RegisterMatch(newHashlimitSpec())
	r.RegisterMatch(newLengthSpec())
	r.RegisterMatch(newTTLSpec())
	r.RegisterMatch(newSCTPSpec())
	r.RegisterMatch(newAHSpec())
}
