package scenario

import (
	"fmt"
	"math"
	"time"
)

// Bounds on what one scenario may ask for. Generate builds every packet in
// memory before sorting them by time, so a few lines of text
// ("count 100000000" on a TCP action that sends 65000 bytes) could
// otherwise ask for terabytes. At the bounds a scenario takes about
// MaxBytes + 64 bytes × MaxPackets of memory (~2.6 GiB); a 10-million
// packet SYN flood, ten times the largest benchmark, takes ~1.3 GiB.
const (
	// MaxPackets bounds the packets of a scenario (all lines together).
	MaxPackets = 10_000_000
	// MaxBytes bounds the IP bytes of a scenario (all lines together).
	MaxBytes = 2 << 30
	// MaxSpan bounds the time from t=0 to the last packet; far beyond any
	// capture, and well inside time.Duration (292 years).
	MaxSpan = 100 * 365 * 24 * time.Hour
)

// hdrMax is the largest header a generated packet has: IPv6 (40) plus a
// TCP header with the SYN options (40), rounded up.
const hdrMax = 80

// Size returns an upper bound of the packets and IP bytes Generate makes
// for s (exact for the packet count of most actions; headers are counted
// at their largest).
func (s *Scenario) Size() (packets, bytes int64) {
	for i := range s.Actions {
		p, b := s.Actions[i].size()
		packets += p
		bytes += b
	}
	return packets, bytes
}

// size is Size for one action: per repetition, times Count.
func (a *Action) size() (packets, bytes int64) {
	var p, b int64
	pkt := func(n, payload int64) { p += n; b += n*hdrMax + payload }
	switch a.Kind {
	case TCP:
		pkt(1, 0) // SYN
		switch a.End {
		case Unanswered:
		case Refused:
			pkt(1, 0)
		default:
			pkt(2, 0) // SYN/ACK, ACK
			for _, n := range []int{a.Send, a.Recv} {
				if n > 0 {
					pkt(int64((n+1459)/1460)+1, int64(n)) // segments and their ACK
				}
			}
			switch a.End {
			case Close:
				pkt(3, 0)
			case Reset:
				pkt(1, 0)
			}
		}
	case SYNFlood:
		pkt(1, 0)
	case Ping:
		pkt(1, int64(a.Send))
		if !a.NoReply {
			pkt(1, int64(a.Send))
		}
	case UDP:
		pkt(1, int64(a.Send))
		if a.Recv > 0 {
			pkt(1, int64(a.Recv))
		}
	}
	return p * int64(a.Count), b * int64(a.Count)
}

// checkSize refuses a scenario beyond the bounds, naming the line that
// crossed them.
func (s *Scenario) checkSize() error {
	var packets, bytes int64
	for i := range s.Actions {
		a := &s.Actions[i]
		p, b := a.size()
		packets += p
		bytes += b
		if packets > MaxPackets {
			return fmt.Errorf("line %d: the scenario would generate %d packets or more, over the limit of %d", a.Line, packets, MaxPackets)
		}
		if bytes > MaxBytes {
			return fmt.Errorf("line %d: the scenario would generate %d MiB or more, over the limit of %d MiB", a.Line, bytes>>20, MaxBytes>>20)
		}
		// The last packet leaves at most a few RTTs after the last
		// repetition's start plus its hold.
		last := float64(a.At) + float64(a.Every)*float64(a.Count-1) + float64(a.Hold) + 8*float64(s.RTT)
		if last > float64(MaxSpan) {
			return fmt.Errorf("line %d: traffic would last past %v", a.Line, MaxSpan)
		}
	}
	return nil
}

// toDuration converts a float64 number of nanoseconds, refusing what does
// not fit (NaN, infinities, more than MaxSpan).
func toDuration(ns float64, what string) (time.Duration, error) {
	if math.IsNaN(ns) || ns < 0 || ns > float64(MaxSpan) {
		return 0, fmt.Errorf("%s out of range (0 to %v)", what, MaxSpan)
	}
	return time.Duration(ns), nil
}
