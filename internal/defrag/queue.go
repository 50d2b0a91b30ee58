package defrag

import (
	"github.com/uptables/uptables/internal/header"
	"github.com/uptables/uptables/internal/packet"
)

// qkey identifies a datagram: the kernel's ipq key (saddr, daddr, id,
// protocol, user); user = hook<<16 | conntrack zone. The l3mdev (VRF)
// interface of the kernel key is not modelled.
type qkey struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
	user     uint32
}

// frag is one queued fragment: data bytes [off, end) of the datagram,
// stored at queue.data[pos:pos+end-off].
type frag struct{ off, end, pos int32 }

// run is a stretch of data made of fragments that arrived in order, each
// appended at the tail where the previous one ended. The kernel keeps its
// queue as a tree of such runs, and its duplicate test is "lies inside one
// run"; runs are never merged afterwards.
type run struct{ start, end int32 }

const (
	firstIn = 1 << iota // the fragment at offset 0 has been queued
	lastIn              // the fragment with MF clear has been seen
)

// ECN bits as the kernel accumulates them (one bit per codepoint seen).
const (
	ecnNotECT = 1 << iota
	ecnECT1
	ecnECT0
	ecnCE
)

// Memory charges, measured on 6.18 over a veth (/proc/net/sockstat FRAG
// memory): a queue 200 bytes, a fragment's skb 832 bytes for a 28- or 68-byte
// packet and 2304 bytes for a 1500-byte one.
const (
	queueCharge   = 200
	fragOverhead  = 804
	fragMinCharge = 832
	// queueSize approximates the Go size of a queue for the charge of what
	// is really held.
	queueSize = 160 + header.IPv4MaxLen
)

type queue struct {
	key      qkey
	hash     uint64
	next     *queue // hash chain
	hashed   bool
	older    *queue // age list
	newer    *queue
	deadline int64

	flags     uint8
	ecn       uint8
	hdrLen    uint8
	length    int32 // the kernel's q.len: end of the data (known or largest seen)
	meat      int32 // data bytes queued
	maxSize   int32 // largest fragment (total length)
	maxDFSize int32 // largest DF fragment
	hdr       [header.IPv4MaxLen]byte

	data  []byte
	frags []frag
	runs  []run // sorted by start, disjoint

	kernelCharge int64 // what the kernel would charge for the fragments
	charge       int64 // charged to Defrag.mem

	peerSlot int32
	peerGen  uint32
	rid      uint32
}

// resetData empties q's datagram state, keeping its buffers and the
// largest fragment sizes (ip_frag_reinit leaves max_size/max_df_size alone
// as far as we know; reset clears them for a recycled queue).
func (q *queue) resetData() {
	q.flags, q.ecn, q.hdrLen = 0, 0, 0
	q.length, q.meat = 0, 0
	q.data = q.data[:0]
	q.frags = q.frags[:0]
	q.runs = q.runs[:0]
	q.kernelCharge = 0
}

func (q *queue) reset() {
	q.resetData()
	q.maxSize, q.maxDFSize = 0, 0
	q.next, q.older, q.newer, q.hashed = nil, nil, nil, false
	q.charge = 0
	q.peerSlot, q.peerGen, q.rid = -1, 0, 0
}

// firstData returns the data of the fragment at offset 0.
func (q *queue) firstData() []byte {
	for _, f := range q.frags {
		if f.off == 0 {
			return q.data[f.pos : f.pos+f.end-f.off]
		}
	}
	return nil
}

// recharge recomputes q's charge after its buffers changed.
func (d *Defrag) recharge(q *queue) {
	c := max(queueCharge+q.kernelCharge,
		int64(queueSize+cap(q.data)+cap(q.frags)*12+cap(q.runs)*8))
	d.mem.Add(c - q.charge)
	q.charge = c
}

// placement classifies a fragment [off, end) against the runs: the
// kernel's inet_frag_queue_insert.
type placement uint8

const (
	placeNewRun placement = iota
	placeAppend           // extends the last run
	placeDup
	placeOverlap
)

func (q *queue) place(off, end int32) (placement, int) {
	n := len(q.runs)
	if n == 0 {
		return placeNewRun, 0
	}
	tail := q.runs[n-1].end
	if end > tail {
		// The common case: the fragment goes to the end.
		switch {
		case off < tail:
			return placeOverlap, 0
		case off == tail:
			return placeAppend, n - 1
		}
		return placeNewRun, n
	}
	// Binary search for the first run ending after off.
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if q.runs[m].end <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < n && q.runs[lo].start < end {
		r := q.runs[lo]
		if off >= r.start && end <= r.end {
			return placeDup, 0
		}
		return placeOverlap, 0
	}
	return placeNewRun, lo
}

// peer is the per-source fragment counter of the MaxDist check (the
// kernel's inet_peer rid). Slots are shared by hash; a slot taken over by
// another source gets a new generation, and queues of the old source skip
// the check rather than being restarted by someone else's fragments.
type peer struct {
	addr [16]byte
	gen  uint32
	rid  uint32
	used bool
}

const peerSlots = 256

// tooFar is ip_frag_too_far: it counts the fragment for its source and
// reports whether more than MaxDist fragments from that source went to
// other queues since q's previous fragment.
func (d *Defrag) tooFar(sh *shard, q *queue, srcHash uint64) bool {
	if d.maxDist < 0 {
		return false
	}
	slot := int32((srcHash >> 16) & (peerSlots - 1))
	p := &sh.peers[slot]
	if !p.used || p.addr != q.key.src {
		p.addr, p.used = q.key.src, true
		p.gen++
	}
	p.rid++
	if q.peerSlot != slot || q.peerGen != p.gen {
		q.peerSlot, q.peerGen, q.rid = slot, p.gen, p.rid
		return false
	}
	start := q.rid
	q.rid = p.rid
	return len(q.frags) > 0 && int(p.rid-start) > d.maxDist
}

// enqueue is ip_frag_queue for one fragment, under sh.mu.
func (d *Defrag) enqueue(sh *shard, q *queue, p *packet.Packet, now int64, srcHash uint64, dst []byte) (Result, error) {
	if d.tooFar(sh, q, srcHash) {
		// ip_frag_reinit: drop what was queued, re-arm the timer.
		d.reinits.Add(1)
		q.resetData()
		q.deadline = now + d.timeout
		sh.unlinkAge(q)
		sh.pushNewest(q)
		d.recharge(q)
	}
	ihl := int32(p.HdrLen)
	off := int32(p.FragOff) * 8
	end := off + int32(p.TotalLen) - ihl
	if !p.MoreFrag {
		// The last fragment: nothing may lie beyond it, and a second last
		// fragment must agree.
		if end < q.length || q.flags&lastIn != 0 && end != q.length {
			return d.fail(sh, q, ErrBadEnd)
		}
		q.flags |= lastIn
		q.length = end
	} else {
		end &^= 7
		if end > q.length {
			if q.flags&lastIn != 0 {
				return d.fail(sh, q, ErrBadEnd)
			}
			q.length = end
		}
	}
	if end == off {
		return d.fail(sh, q, ErrEmpty)
	}
	pl, at := q.place(off, end)
	switch pl {
	case placeDup:
		d.dups.Add(1)
		d.fails.Add(1)
		return Result{}, ErrDuplicate
	case placeOverlap:
		d.overlaps.Add(1)
		return d.fail(sh, q, ErrOverlap)
	}
	if d.maxFrags > 0 && len(q.frags) >= d.maxFrags {
		return d.fail(sh, q, ErrTooManyFrags)
	}
	switch pl {
	case placeAppend:
		q.runs[at].end = end
	case placeNewRun:
		q.runs = append(q.runs, run{})
		copy(q.runs[at+1:], q.runs[at:])
		q.runs[at] = run{off, end}
	}
	pos := int32(len(q.data))
	q.data = append(q.data, p.Data[ihl:ihl+end-off]...)
	q.frags = append(q.frags, frag{off, end, pos})
	q.meat += end - off
	q.ecn |= 1 << (p.TOS & 3)
	if off == 0 {
		q.flags |= firstIn
		q.hdrLen = uint8(ihl)
		copy(q.hdr[:], p.Data[:ihl])
	}
	size := ihl + end - off
	q.maxSize = max(q.maxSize, size)
	if p.DontFrag {
		q.maxDFSize = max(q.maxDFSize, size)
	}
	q.kernelCharge += max(fragMinCharge, fragOverhead+int64(size))
	d.recharge(q)

	if q.flags != firstIn|lastIn || q.meat != q.length {
		return Result{}, nil
	}
	return d.reassemble(sh, q, dst)
}

// fail discards the whole datagram for reason err.
func (d *Defrag) fail(sh *shard, q *queue, err error) (Result, error) {
	d.fails.Add(1)
	d.kill(sh, q)
	return Result{}, err
}

// reassemble is ip_frag_reasm: the datagram is complete.
func (d *Defrag) reassemble(sh *shard, q *queue, dst []byte) (Result, error) {
	var ce uint8
	switch e := q.ecn; {
	case e&ecnNotECT != 0 && e != ecnNotECT:
		return d.fail(sh, q, ErrECN)
	case e&ecnCE != 0 && e&(ecnECT0|ecnECT1) != 0:
		ce = 3
	}
	hl := int(q.hdrLen)
	n := hl + int(q.length)
	if n > MaxDatagram {
		return d.fail(sh, q, ErrOversize)
	}
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	out := dst[:n]
	copy(out, q.hdr[:hl])
	for _, f := range q.frags {
		copy(out[hl+int(f.off):], q.data[f.pos:f.pos+f.end-f.off])
	}
	h := header.IPv4(out)
	out[header.IPv4TOSOff] |= ce
	out[header.IPv4TotalLenOff] = byte(n >> 8)
	out[header.IPv4TotalLenOff+1] = byte(n)
	var ff uint16
	if q.maxDFSize == q.maxSize {
		ff = header.IPv4FlagDF
	}
	out[header.IPv4FragOff] = byte(ff >> 8)
	out[header.IPv4FragOff+1] = byte(ff)
	h.SetChecksum(h.CalculateChecksum())
	r := Result{Done: true, Out: out, MaxFragSize: int(q.maxSize)}
	d.oks.Add(1)
	d.kill(sh, q)
	return r, nil
}
