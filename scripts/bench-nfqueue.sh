#!/bin/sh
# Benchmark of the NFQUEUE data plane between two network namespaces (root):
# established-TCP throughput and new connections per second with no
# firewall, the kernel's iptables, and uptables in exact and lifecycle mode.
# Usage: scripts/bench-nfqueue.sh [SECONDS_PER_MEASUREMENT] [OUT.md]
set -eu
cd "$(dirname "$0")/.."
UPTABLES_BENCH=1 UPTABLES_BENCH_SECONDS="${1:-3}" UPTABLES_BENCH_OUT="${2:-}" \
	go test -count=1 -run '^TestNFQueueBench$' -v -timeout 10m ./internal/dataplane/nfqueue
