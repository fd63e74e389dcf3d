#!/usr/bin/env bash
# Rewrites vendorHash in flake.nix to the hash of the current `go mod vendor`
# output, as buildGoModule computes it. Run it after changing go.mod/go.sum.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go mod vendor -o "$tmp/vendor"
hash=$(nix --extra-experimental-features 'nix-command flakes' hash path "$tmp/vendor")
sed -i -E "s|vendorHash = \"[^\"]*\";|vendorHash = \"$hash\";|" flake.nix
echo "vendorHash = $hash"
