//go:build race

package statestore_test

const floodPackets = 100_000
