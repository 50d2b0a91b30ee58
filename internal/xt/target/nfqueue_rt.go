package target

import (
	"github.com/uptables/uptables/internal/xt"
)

// nfqueueRT is the runtime of one NFQUEUE rule.
type nfqueueRT struct {
	num       uint16
	total     uint32
	bypass    bool
	cpuFanout bool
	seed      uint64
}

// Build draws the flow-hash seed from env.Rand, as the kernel seeds its
// hash randomly at boot (so only "same address pair, same queue" is
// reproducible, not the queue number itself).
func (q *NFQueue) Build(env *xt.Env) (xt.PacketTarget, error) {
	r := &nfqueueRT{num: q.Num, total: q.Total, bypass: q.Bypass, cpuFanout: q.CPUFanout}
	if r.total == 0 {
		r.total = 1
	}
	if env.Rand != nil {
		r.seed = uint64(env.Rand())<<32 | uint64(env.Rand())
	}
	return r, nil
}

// Do queues the packet (§10): to Num, or with --queue-balance to
// Num + scale(hash, Total) where the hash covers the two addresses in
// ascending order and the protocol, so both directions of an address pair
// share a queue (ports are not hashed, as in the kernel); with
// --queue-cpu-fanout to Num + (Ctx.CPU mod Total). The bypass flag goes
// with it: the data plane accepts the packet when no program listens.
func (r *nfqueueRT) Do(c *xt.Ctx) xt.Verdict {
	q := uint32(r.num)
	if r.total > 1 {
		if r.cpuFanout {
			cpu := c.CPU
			if cpu < 0 {
				cpu = -cpu
			}
			q += uint32(cpu) % r.total
		} else {
			q += uint32(uint64(r.flowHash(c)) * uint64(r.total) >> 32)
		}
	}
	c.Queue = xt.QueueInfo{Num: uint16(q), Bypass: r.bypass}
	return xt.VerdictQueue
}

// flowHash is a seeded, direction-independent 32-bit hash of the packet's
// address pair and protocol.
func (r *nfqueueRT) flowHash(c *xt.Ctx) uint32 {
	a, b := c.P.Src.As16(), c.P.Dst.As16()
	if c.P.Dst.Less(c.P.Src) {
		a, b = b, a
	}
	h := r.seed ^ uint64(c.P.Proto)
	for _, x := range [2][16]byte{a, b} {
		for i := 0; i < 16; i += 8 {
			w := uint64(x[i])<<56 | uint64(x[i+1])<<48 | uint64(x[i+2])<<40 | uint64(x[i+3])<<32 |
				uint64(x[i+4])<<24 | uint64(x[i+5])<<16 | uint64(x[i+6])<<8 | uint64(x[i+7])
			h = mix64(h ^ w)
		}
	}
	return uint32(h >> 32)
}
