#!/usr/bin/env bash
# Installs what bigbang's tests need when it is missing: Debian packages when
# run as root, otherwise a message that names them. Called by `make test`.
set -euo pipefail

# program -> Debian package
declare -A pkgs=(
  [sshd]=openssh-server
  [ssh]=openssh-client
  [ssh-keygen]=openssh-client
  [ssh-agent]=openssh-client
  [tmux]=tmux
  [nix]=nix-bin
  [nix-instantiate]=nix-bin
  [age]=age
  [sudo]=sudo
  [cpio]=cpio
  [visudo]=sudo
  [git]=git
  [sgdisk]=gdisk
  [parted]=parted
  [mkfs.ext4]=e2fsprogs
  [mkfs.vfat]=dosfstools
  [losetup]=mount
  [blkid]=util-linux
  [lsblk]=util-linux
  [zstd]=zstd
)

missing=()
for prog in "${!pkgs[@]}"; do
  if ! command -v "$prog" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$prog" ] && [ ! -x "/sbin/$prog" ]; then
    missing+=("${pkgs[$prog]}")
  fi
done
missing=($(printf '%s\n' "${missing[@]}" | sort -u))

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "test-deps: installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  else
    echo "test-deps: the tests need these Debian packages: ${missing[*]}" >&2
    echo "test-deps: install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# sops is not packaged in Debian 12: the tests build the pinned release.
gobin="$(go env GOPATH)/bin"
if ! command -v sops >/dev/null 2>&1 && [ ! -x "$gobin/sops" ]; then
  echo "test-deps: installing sops v3.13.3 with go install"
  go install github.com/getsops/sops/v3/cmd/sops@v3.13.3
fi
# staticcheck is part of `make test` (the vet target), pinned.
if [ ! -x "$gobin/staticcheck" ] || ! "$gobin/staticcheck" -version 2>/dev/null | grep -q "(0.8.2)"; then
  echo "test-deps: installing staticcheck 2026.2.2 (v0.8.2) with go install"
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
echo "test-deps: all test tools present"
