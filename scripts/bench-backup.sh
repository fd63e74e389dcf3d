#!/bin/sh
# Backup speed and memory: bigbang's backup through a real OpenSSH sshd on
# loopback (with its SHA-256 and read-back verification) against plain
# `ssh host tar c … > file` with the same tar and zstd, side by side, and
# the peak Go heap during each backup (flat whatever the archive size).
#
#   scripts/bench-backup.sh            # trees of 256 MiB and 1 GiB
#   BIGBANG_BENCH_SIZES_MIB=64,4096 scripts/bench-backup.sh
#
# Needs sshd, ssh, tar and zstd, and root (the test host logs in as the
# current user; root restores numeric owners).
set -eu
cd "$(dirname "$0")/.."
BIGBANG_BENCH=1 exec go test -count=1 -run '^TestBenchBackup$' -v ./steps/reinstall/ 2>&1 |
	grep -v -e '^=== RUN' -e '^--- PASS' -e '^PASS$' -e '^ok '
