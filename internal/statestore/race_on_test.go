//go:build race

package statestore

// raceEnabled: the race detector slows the randomized tests ~50x; they
// run fewer seeds under it.
const raceEnabled = true
