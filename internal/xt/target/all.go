package target

import "github.com/uptables/uptables/internal/xt"

// registerAll registers REJECT, LOG, NFLOG, MARK, CONNMARK, NOTRACK, CT,
// TTL, TCPMSS, DSCP, TOS, DNAT, SNAT, MASQUERADE, REDIRECT, NFQUEUE, TRACE.
func registerAll(r *xt.Registry) {
	registerReject(r)
	registerLog(r)
	registerNFLOG(r)
	registerMark(r)
	registerConnmark(r)
	registerNoTrack(r)
	registerCT(r)
	registerTTL(r)
	registerTCPMSS(r)
	registerDSCP(r)
	registerTOS(r)
	registerDNAT(r)
	registerSNAT(r)
	registerMasquerade(r)
	registerRedirect(r)
	registerNFQueue(r)
	registerTrace(r)
}
