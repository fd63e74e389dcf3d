#!/usr/bin/env bash
# Measures the local part of `bigbang check` (every local.* check on the
# seed-shaped fixture flake, with a host key and a sops file made by sops)
# against the single `nix eval` it is built on, and prints them side by
# side. The goal is a ratio within 1.2x. Needs nix, git, ssh-keygen and sops
# (make test installs them).
#   scripts/bench-check.sh [iterations]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-40}"
export PATH="$PATH:$(go env GOPATH)/bin"
out="$(go test -run '^$' -bench 'NixEvalAlone|LocalRun' -benchtime "${n}x" -count 3 ./steps/local/)"
echo "$out" | grep -E '^Benchmark' >&2 || { echo "$out" >&2; exit 1; }
echo "$out" | awk '
  /^Benchmark/ { name=$1; sub(/-[0-9]+$/, "", name); sum[name]+=$3; cnt[name]++ }
  END {
    eval = sum["BenchmarkNixEvalAlone"]/cnt["BenchmarkNixEvalAlone"]
    run  = sum["BenchmarkLocalRun"]/cnt["BenchmarkLocalRun"]
    cached = sum["BenchmarkLocalRunCached"]/cnt["BenchmarkLocalRunCached"]
    printf "%-44s %10s %8s\n", "what (seed fixture, mean of 3 runs)", "ms/run", "ratio"
    printf "%-44s %10.1f %8s\n", "nix eval --json … --apply (alone)", eval/1e6, "1.00x"
    printf "%-44s %10.1f %7.2fx\n", "bigbang check, local part (cold cache)", run/1e6, run/eval
    printf "%-44s %10.1f %7.2fx\n", "bigbang check, local part (flake unchanged)", cached/1e6, cached/eval
  }'
