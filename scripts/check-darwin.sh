#!/bin/sh
# Cross-builds and vets bigbang for macOS on Apple silicon and Intel, so that
# Linux-only code (termios constants, syscalls) cannot slip back in: a Mac
# is a supported machine to install from. `make vet` (and so `make test`)
# runs it.
set -eu
GO=${GO:-go}
for arch in arm64 amd64; do
	echo "darwin/$arch: go build ./... && go vet ./..."
	GOOS=darwin GOARCH=$arch CGO_ENABLED=0 "$GO" build ./...
	GOOS=darwin GOARCH=$arch CGO_ENABLED=0 "$GO" vet ./...
done
