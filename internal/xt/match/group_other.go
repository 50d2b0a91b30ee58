package match

import "github.com/uptables/uptables/internal/xt"

// registerOthers registers the remaining matches (iprange, mark, connmark,
// comment, tos, dscp, addrtype, pkttype, mac, time, statistic, string, set,
// owner, quota, u32, helper, cpu, physdev, socket, devgroup).
func registerOthers(r *xt.Registry) {
}
