#!/usr/bin/env bash
# Benchmark of `bigbang install --output plain` with the stand-in
# nixos-anywhere flooding LINES lines (default 1,000,000), side by side with
#   - the stand-in piped to `cat >/dev/null` (no terminal, no processing), and
#   - the stand-in under a pseudo-terminal read by script(1) into /dev/null
#     (the cost of the terminal alone: the floor for anything that gives the
#     child a terminal, as bigbang must for sudo prompts and ssh -t),
# then the peak RSS of bigbang at 100,000 and 1,000,000 lines.
#
# Usage: scripts/bench-install.sh [LINES]
# Needs hyperfine and GNU time (apt-get install -y hyperfine time); without
# hyperfine it times each command once with bash's time.
set -euo pipefail

lines=${1:-1000000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$root"
go build -o "$work/bigbang" .
go build -o "$work/nixos-anywhere" ./testdata/standin-nixos-anywhere
mkdir -p "$work/keys"

host=192.0.2.7
standin="$work/nixos-anywhere --flake .#vps-arm --extra-files $work/keys --build-on remote opc@$host"
bigbang="$work/bigbang install --skip-preflight --host $host --yes-wipe $host --extra-files $work/keys --nixos-anywhere $work/nixos-anywhere --output plain --log $work/run.log"

echo "== $lines lines: time"
export STANDIN_FLOOD=$lines
if command -v hyperfine >/dev/null; then
	hyperfine --warmup 1 --runs "${RUNS:-5}" --style basic \
		--prepare "rm -f $work/run.log" \
		-n "stand-in | cat >/dev/null" "$standin 2>&1 | cat >/dev/null" \
		-n "stand-in under a terminal (script)" "script -qefc '$standin' /dev/null >/dev/null" \
		-n "bigbang install --output plain" "$bigbang >/dev/null 2>&1"
else
	for c in "$standin 2>&1 | cat >/dev/null" "script -qefc '$standin' /dev/null >/dev/null" "$bigbang >/dev/null 2>&1"; do
		rm -f "$work/run.log"
		echo "-- $c"
		time bash -c "$c"
	done
fi
echo "transcript: $(stat -c %s "$work/run.log") bytes"

echo "== peak RSS of bigbang install --output plain"
printf '%10s  %s\n' lines "max RSS (KiB)"
for n in 100000 1000000; do
	rm -f "$work/run.log"
	rss=$(STANDIN_FLOOD=$n /usr/bin/time -v $bigbang 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {print $2}')
	printf '%10s  %s\n' "$n" "$rss"
done
