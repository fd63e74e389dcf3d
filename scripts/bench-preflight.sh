#!/bin/sh
# Preflight speed: bigbang's whole preflight (dial, auth, all facts) against
# one OpenSSH `ssh host true` and a naive one-ssh-per-fact script, all
# through a proxy adding 100 ms round trip to a real sshd on loopback; and
# how soon after a reboot bigbang notices the host is back.
# Usage: scripts/bench-preflight.sh [iterations]   (from the repository root)
set -eu
n=${1:-10}
out=$(go test -run '^$' -bench 'BenchmarkPreflight|BenchmarkRebootNotice' -benchtime "${n}x" ./sshexec/)
naive=$(go test -run '^$' -bench 'BenchmarkPreflight/naive' -benchtime 2x ./sshexec/)
printf '%s\n%s\n' "$out" "$naive" | awk '
/BenchmarkPreflight\/bigbang/ { b = $3 / 1e6 }
/BenchmarkPreflight\/openssh-true/ { o = $3 / 1e6 }
/BenchmarkPreflight\/naive/ { nv = $3 / 1e6 }
/BenchmarkRebootNotice/ { for (i = 1; i <= NF; i++) { if ($i == "median-notice-ms") med = $(i-1); if ($i == "max-notice-ms") mx = $(i-1) } }
END {
  printf "%-52s %10s\n", "preflight through a 100 ms RTT proxy", "ms/run"
  printf "%-52s %10.0f\n", "bigbang: dial + auth + all facts (one session)", b
  printf "%-52s %10.0f\n", "OpenSSH: ssh host true (the physical limit)", o
  printf "%-52s %10.0f\n", "naive: one ssh per fact (14 facts)", nv
  if (o > 0) printf "%-52s %10.2f\n", "ratio bigbang / ssh true (goal <= 1.25)", b / o
  printf "\n%-52s %10s\n", "reboot notice after sshd listens again", "ms"
  printf "%-52s %10s\n", "median (goal <= 1500)", med
  printf "%-52s %10s\n", "max", mx
}'
