package main

import (
	"os"
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

// stubNixpkgs is a nixpkgs stand-in for evaluating flake.nix without the
// network: lib.genAttrs and, for each system, a buildGoModule, mkShell and
// the devShell's packages that make plain derivations for that system.
// It checks the flake's own wiring, not nixpkgs' Go builder.
const stubNixpkgs = `{
  outputs = { self }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      drv = system: name: derivation { inherit name system; builder = "/bin/sh"; args = [ "-c" "echo stub > $out" ]; };
      pkgs = system: {
        stdenv.hostPlatform.system = system;
        buildGoModule = a: drv system "${a.pname}-${a.version}" // { inherit (a) meta; };
        mkShell = a: drv system "shell";
      } // builtins.listToAttrs (map (n: { name = n; value = drv system n; }) [ "go" "gopls" "gotools" "openssh" "tmux" "age" "sops" "gnumake" ]);
    in {
      lib.genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
      legacyPackages = builtins.listToAttrs (map (s: { name = s; value = pkgs s; }) systems);
    };
}
`

// TestFlakeDarwinOutputsEvaluate: the flake's darwin packages, apps and
// devShells evaluate to derivations for their system, with the app
// pointing at the package's bigbang. nixpkgs is a stand-in (no network
// here), so this checks the flake's outputs, not a real darwin build.
func TestFlakeDarwinOutputsEvaluate(t *testing.T) {
	nix := testutil.Need(t, "nix")
	dir := t.TempDir()
	stub, fl := filepath.Join(dir, "nixpkgs"), filepath.Join(dir, "bigbang")
	for _, d := range []string{stub, fl} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(stub, "flake.nix"), []byte(stubNixpkgs), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("flake.nix")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fl, "flake.nix"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	eval := func(attr string) string {
		t.Helper()
		cmd := exec.Command(nix, "--extra-experimental-features", "nix-command flakes", "eval", "--raw",
			"--override-input", "nixpkgs", "path:"+stub, "path:"+fl+"#"+attr)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("nix eval %s: %v\n%s", attr, err, stderr.String())
		}
		return string(out)
	}
	for _, sys := range []string{"aarch64-darwin", "x86_64-darwin"} {
		t.Run(sys, func(t *testing.T) {
			drv := eval("packages." + sys + ".default.drvPath")
			if !strings.HasPrefix(drv, "/nix/store/") || !strings.HasSuffix(drv, "-bigbang-0.1.0.drv") {
				t.Errorf("package drvPath = %q", drv)
			}
			if got := eval("packages." + sys + ".default.system"); got != sys {
				t.Errorf("package is for %q, want %s", got, sys)
			}
			if got := eval("packages." + sys + ".default.meta.mainProgram"); got != "bigbang" {
				t.Errorf("mainProgram = %q", got)
			}
			out := eval("packages." + sys + ".default.outPath")
			if got := eval("apps." + sys + ".default.program"); got != out+"/bin/bigbang" {
				t.Errorf("app program = %q, want %s/bin/bigbang", got, out)
			}
			if got := eval("devShells." + sys + ".default.system"); got != sys {
				t.Errorf("devShell is for %q, want %s", got, sys)
			}
		})
	}
}
