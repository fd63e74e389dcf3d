#!/usr/bin/env bash
# Benchmark of `bigbang explain` against a plain awk script doing the same
# job (the step-line match plus one pattern per known failure) over a
# realistic 1,000,000-line nixos-anywhere transcript, side by side, with the
# peak memory of each. Prints a Markdown table for BENCHMARKS.md.
#
# Usage: scripts/bench-explain.sh [LINES]   (default 1000000)
# Needs: go, awk, /usr/bin/time (Debian package "time"); hyperfine is used
# when installed (Debian package "hyperfine"), else a timing loop.
set -euo pipefail

lines=${1:-1000000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ ! -x /usr/bin/time ]]; then
	echo "bench-explain: /usr/bin/time is missing: apt-get install time" >&2
	exit 1
fi

echo "building bigbang…" >&2
(cd "$root" && go build -o "$work/bigbang" .)

echo "generating a ${lines}-line transcript…" >&2
# Mostly nix's copying-path lines and ssh's warnings, the 1.13.0 step lines
# spread over the run, the disko and install chatter, and a boot loader
# failure near the end (printed before "installation finished!" and Done!).
awk -v n="$lines" 'BEGIN {
	split("Uploading install SSH keys|Gathering machine facts|Switching system into kexec|Gathering machine facts|Building disko script|Formatting hard drive with disko|Uploading the system closure|Copying extra files|Installing NixOS|Rebooting|Waiting for the machine to become unreachable due to reboot", st, "|")
	# Where each step starts, as a fraction of the run: the closure copy
	# is most of a transcript.
	split("0 0.001 0.002 0.05 0.06 0.07 0.1 0.96 0.965 0.995 0.997", at, " ")
	ns = 11; k = 1; fail = int(n * 0.98)
	for (i = 0; i < n - 1; i++) {
		if (k <= ns && i >= int(at[k] * n)) { printf "### %s ###\n", st[k]; k++; continue }
		if (i == fail) { print "Died at /nix/store/0q9w8e7r6t5y4u3i2o1p0a9s8d7f6g5h-install-grub.pl line 827."; continue }
		r = i % 20
		if (r == 0) print "Warning: Permanently added '"'"'203.0.113.10'"'"' (ED25519) to the list of known hosts."
		else if (r == 1) print "Pseudo-terminal will not be allocated because stdin is not a terminal."
		else if (r == 2) printf "+ mount /dev/disk/by-partlabel/disk-main-root /mnt/nix -o compress=zstd -o noatime -o subvol=/nix%d\n", i
		else if (r == 3) printf "building '"'"'/nix/store/%032x-unit-%d.service.drv'"'"'...\n", i, i
		else printf "copying path '"'"'/nix/store/%032x-python3.12-package-%d'"'"' from '"'"'https://cache.nixos.org'"'"'...\n", i, i
	}
	print "### Done! ###"
}' >"$work/run.log"

# The awk script: the phase of each step line, then one pattern per known
# failure (the rows of the known-failures table and the shared transcripts).
cat >"$work/explain.awk" <<'AWK'
/^### .* ###$/ {
	s = substr($0, 5, length($0) - 8)
	if (s == "Uploading install SSH keys") p = "connect"
	else if (s == "Gathering machine facts") { if (p != "kexec") p = "connect" }
	else if (s == "Switching system into kexec" || s ~ /^Generating /) p = "kexec"
	else if (s == "Building disko script" || s == "Formatting hard drive with disko" || s ~ /^Uploading .* to /) p = "disko"
	else if (s == "Uploading the system closure" || s == "Building the system closure" || s == "Installing NixOS") p = "install"
	else if (s == "Copying extra files") p = "keys"
	else if (s == "Rebooting" || s ~ /^Waiting for the mach/) p = "reboot"
	else if (s == "Done!") done = 1
	if (!phase[p]++) order[++np] = p
	first[p] = first[p] ? first[p] : NR; last[p] = NR
	next
}
{ if (p != "") last[p] = NR }
/a password is required|a terminal is required to read the password/ { f = f ? f : "sudo-password"; fp = fp ? fp : p }
/Too many authentication failures/ { f = f ? f : "too-many-auth"; fp = fp ? fp : p }
/UNPROTECTED PRIVATE KEY FILE|bad permissions/ { f = f ? f : "key-mode"; fp = fp ? fp : p }
/All keys were skipped/ { skipped = 1 }
/authorized_keys: (Permission denied|Read-only file system)/ { f = f ? f : "authorized-keys-readonly"; fp = fp ? fp : p }
/Permission denied \(/ { f = f ? f : "root-permission-denied"; fp = fp ? fp : p }
/invoked oom-killer|Failure unpacking initrd/ { f = f ? f : "kexec-oom"; fp = fp ? fp : p }
/load failed: Permission denied|Key was rejected by service/ { f = f ? f : "secure-boot"; fp = fp ? fp : p }
/load failed: Resource busy|CPUs are stuck in the kernel/ { f = f ? f : "kexec-busy"; fp = fp ? fp : p }
/No route to host|Connection timed out/ { if (p == "kexec") { f = f ? f : "installer-no-network"; fp = fp ? fp : p } }
/is required to build .*but I am a/ { f = f ? f : "cross-build"; fp = fp ? fp : p }
/Could not create partition|Unable to open device|Problem opening \/dev\// { f = f ? f : "disko-layout"; fp = fp ? fp : p }
/will not make a filesystem here|target is busy/ { f = f ? f : "disk-busy"; fp = fp ? fp : p }
/Bus error/ { if (p == "disko") { f = f ? f : "disko-tool-crash"; fp = fp ? fp : p } }
/rsync error|rsync: connection unexpectedly closed/ { f = f ? f : "extra-files-rsync"; fp = fp ? fp : p }
/Died at .*install-grub\.pl|do not know how to make this configuration bootable|Traceback \(most recent call last\)/ { f = f ? f : "boot-loader"; fp = fp ? fp : p }
/Failed to decrypt|setupSecretsForUsers' failed/ { f = f ? f : "sops-decrypt"; fp = fp ? fp : p }
/switch-to-configuration: No such file or directory/ { f = f ? f : "switch-to-configuration-missing"; fp = fp ? fp : p }
END {
	outcome = f ? "failed" : (done ? "success" : "incomplete")
	printf "{\"outcome\":\"%s\",\"failed_phase\":\"%s\",\"phases\":[", outcome, fp
	for (i = 1; i <= np; i++) printf "%s{\"id\":\"%s\",\"first_line\":%d,\"last_line\":%d}", (i > 1 ? "," : ""), order[i], first[order[i]], last[order[i]]
	printf "],\"diagnosis\":{\"id\":\"%s\"}}\n", f
}
AWK

awk_bin=$(command -v awk)
awk_name=$(basename "$(readlink -f "$awk_bin")")
size=$(du -m "$work/run.log" | cut -f1)

echo "checking that both find the same failure…" >&2
"$work/bigbang" explain --json "$work/run.log" >"$work/bigbang.json"
"$awk_bin" -f "$work/explain.awk" "$work/run.log" >"$work/awk.json"
for f in bigbang awk; do
	if ! grep -q '"outcome":"failed","failed_phase":"install"' "$work/$f.json" || ! grep -q '"id":"boot-loader"' "$work/$f.json"; then
		echo "bench-explain: $f did not find the boot loader failure: $(cat "$work/$f.json")" >&2
		exit 1
	fi
done

peak_rss() { # peak RSS in KiB of a command
	/usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1
}
rss_bigbang=$(peak_rss "$work/bigbang" explain --json "$work/run.log")
rss_awk=$(peak_rss "$awk_bin" -f "$work/explain.awk" "$work/run.log")

if command -v hyperfine >/dev/null; then
	hyperfine --warmup 1 --runs 10 --export-json "$work/h.json" --style none \
		-n "bigbang explain --json" "$work/bigbang explain --json $work/run.log" \
		-n "$awk_name -f explain.awk" "$awk_bin -f $work/explain.awk $work/run.log" >&2
	read -r t_bigbang t_awk < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join("%.3f±%.3f" % (x["mean"], x["stddev"]) for x in r))' "$work/h.json")
else
	best() { # best of 5 wall-clock seconds
		local b=999999 t
		for _ in 1 2 3 4 5; do
			t=$(/usr/bin/time -f '%e' "$@" 2>&1 >/dev/null | tail -1)
			b=$(awk -v a="$b" -v c="$t" 'BEGIN { print (c < a ? c : a) }')
		done
		echo "$b"
	}
	t_bigbang=$(best "$work/bigbang" explain --json "$work/run.log")
	t_awk=$(best "$awk_bin" -f "$work/explain.awk" "$work/run.log")
fi

echo
echo "Transcript: ${lines} lines, ${size} MB; $(nproc) CPUs; $(go version | cut -d' ' -f3)"
echo
echo "| command | time (s) | peak RSS (MiB) |"
echo "|---|---|---|"
printf '| bigbang explain --json | %s | %.1f |\n' "$t_bigbang" "$(echo "$rss_bigbang / 1024" | bc -l)"
printf '| %s -f explain.awk | %s | %.1f |\n' "$awk_name" "$t_awk" "$(echo "$rss_awk / 1024" | bc -l)"
