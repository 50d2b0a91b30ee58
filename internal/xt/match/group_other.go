package match

import "github.com/uptables/uptables/internal/xt"

// registerOthers registers the remaining matches (iprange, mark, connmark,
// comment, tos, dscp, addrtype, pkttype, mac, time, statistic, string, set,
// owner, quota, u32, helper, cpu, physdev, socket, devgroup).
//
// owner resolves user and group names through the host's /etc/passwd and
// /etc/group only (see owner.go); set looks names up with sets.
func registerOthers(r *xt.Registry, sets SetLookup) {
	for _, s := range otherSpecs(NewIDFiles(), sets) {
		r.RegisterMatch(s)
	}
}

// otherSpecs builds the specs with the given name resolver and set lookup.
func otherSpecs(ids IDFiles, sets SetLookup) []*xt.MatchSpec {
	return []*xt.MatchSpec{
		newIPRangeSpec(), newMarkSpec(), newConnmarkSpec(), newCommentSpec(),
		newTOSSpec(), newDSCPSpec(), newAddrTypeSpec(), newPktTypeSpec(),
		newMACSpec(), newTimeSpec(), newStatisticSpec(), newStringSpec(),
		newSetSpec(sets), newOwnerSpec(ids), newQuotaSpec(), newU32Spec(),
		newHelperSpec(), newCPUSpec(), newPhysdevSpec(), newSocketSpec(),
		newDevGroupSpec(),
	}
}
