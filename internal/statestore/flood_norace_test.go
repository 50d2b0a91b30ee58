//go:build !race

package statestore_test

// floodPackets is the flood's size; the race detector's 10x slowdown gets a
// smaller one (flood_race_test.go).
const floodPackets = 1_000_000
