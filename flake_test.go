package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

// TestFlakeVendorHash keeps `nix run` working: flake.nix must parse, and its
// vendorHash must be the hash of what `go mod vendor` produces now, so that a
// change to go.sum cannot silently break the Nix build.
func TestFlakeVendorHash(t *testing.T) {
	instantiate := testutil.Need(t, "nix-instantiate")
	nix := testutil.Need(t, "nix")

	parsed, err := exec.Command(instantiate, "--parse", "flake.nix").CombinedOutput()
	if err != nil {
		t.Fatalf("flake.nix does not parse: %v\n%s", err, parsed)
	}
	for _, want := range []string{"packages", "apps", "devShells", "buildGoModule", "vendorHash"} {
		if !strings.Contains(string(parsed), want) {
			t.Errorf("flake.nix has no %s", want)
		}
	}
	m := regexp.MustCompile(`vendorHash = "([^"]+)"`).FindSubmatch(parsed)
	if m == nil {
		t.Fatal("flake.nix sets no vendorHash string")
	}
	declared := string(m[1])

	vendor := filepath.Join(t.TempDir(), "vendor")
	if out, err := exec.Command("go", "mod", "vendor", "-o", vendor).CombinedOutput(); err != nil {
		t.Fatalf("go mod vendor: %v\n%s", err, out)
	}
	out, err := exec.Command(nix, "--extra-experimental-features", "nix-command flakes", "hash", "path", vendor).Output()
	if err != nil {
		t.Fatalf("nix hash path: %v", err)
	}
	actual := strings.TrimSpace(string(out))
	if declared != actual {
		t.Fatalf("flake.nix vendorHash is %s but the vendored modules hash to %s: run scripts/update-vendor-hash.sh", declared, actual)
	}
}
