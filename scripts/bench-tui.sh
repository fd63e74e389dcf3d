#!/usr/bin/env bash
# Prints the TUI's speed figures for BENCHMARKS.md:
#   - rendering the progress screen with every pane at 120×40 (per frame),
#   - 20,000 lines/s through the event queue into a running program for
#     10 s: CPU, frames per second, worst key latency, memory,
#   - the same flood until 1,000,000 lines: memory at the end,
#   - time from starting `bigbang demo` to its first frame on a terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== progress screen render, 120x40, all panes"
go test -run '^$' -bench 'BenchmarkProgressView$' -benchtime 5000x -benchmem ./ui/ | grep Benchmark
echo "== 20,000 lines/s for 10 s"
go test -run '^$' -bench 'BenchmarkThroughput$' -benchtime 10x ./ui/ | grep Benchmark
echo "== 20,000 lines/s until 1,000,000 lines (50 s)"
go test -run '^$' -bench 'BenchmarkThroughput$' -benchtime 50x ./ui/ | grep Benchmark
echo "== time to first frame (bigbang demo on a pseudo-terminal)"
go test -run '^$' -bench 'BenchmarkFirstFrame$' -benchtime 10x . | grep Benchmark
