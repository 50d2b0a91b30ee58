//go:build !race

package defrag

const raceEnabled = false
