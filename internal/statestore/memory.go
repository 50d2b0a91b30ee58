package statestore

import "fmt"

// Memory is the in-memory Factory. Each list or table it makes draws its
// own hash key from the seed source given here.
type Memory struct {
	rnd func() uint64
}

var _ Factory = (*Memory)(nil)

// NewMemory returns the in-memory store. rnd seeds the per-object hash
// keys; nil draws them from the runtime's random source.
func NewMemory(rnd func() uint64) *Memory { return &Memory{rnd: rnd} }

// NewRecentList implements Factory.
func (m *Memory) NewRecentList(cfg RecentConfig) (RecentList, error) {
	if cfg.Entries < 0 || cfg.Entries > 1<<20 {
		return nil, fmt.Errorf("recent: list size %d out of range", cfg.Entries)
	}
	return newRecentList(cfg, newSipKey(m.rnd)), nil
}

// NewHashlimitTable implements Factory.
func (m *Memory) NewHashlimitTable(cfg HashlimitConfig) (HashlimitTable, error) {
	return newHashlimitTable(cfg, newSipKey(m.rnd)), nil
}
