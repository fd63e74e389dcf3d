package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps"
)

// runRoot runs `bigbang args…` in process with stdin as its standard input
// and returns the exit code, the standard output, and the standard error
// followed by the returned error's text.
func runRoot(ctx context.Context, stdin string, args ...string) (code int, stdout, stderr string) {
	var out bytes.Buffer
	code, stderr = runRootTo(ctx, stdin, &out, args...)
	return code, out.String(), stderr
}

// runRootTo is runRoot with the standard output going to out, for a test
// that acts on the output while the command runs. Like fang in main, it
// prints no usage after an error.
func runRootTo(ctx context.Context, stdin string, out io.Writer, args ...string) (code int, stderr string) {
	var cfg steps.Config
	root := newRoot(&cfg)
	var errOut bytes.Buffer
	root.SetOut(out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	root.SilenceUsage = true
	err := root.ExecuteContext(ctx)
	if err != nil {
		errOut.WriteString(err.Error())
	}
	return cli.Code(ctx, err), errOut.String()
}

// parseJSONLines reads out as one JSON object a line (--output json),
// failing the test at the first line that is not one.
func parseJSONLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var v T
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %d is not a JSON object: %v: %q", i+1, err, l)
		}
		vs = append(vs, v)
	}
	return vs
}

var (
	standinOnce sync.Once
	standinBin  string
	standinErr  error
)

// buildStandin builds the stand-in nixos-anywhere of
// testdata/standin-nixos-anywhere once per test binary.
func buildStandin(t *testing.T) string {
	t.Helper()
	standinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "standin")
		if err != nil {
			standinErr = err
			return
		}
		standinBin = filepath.Join(dir, "nixos-anywhere")
		out, err := exec.Command("go", "build", "-o", standinBin, "./testdata/standin-nixos-anywhere").CombinedOutput()
		if err != nil {
			standinErr = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if standinErr != nil {
		t.Fatalf("building the stand-in: %v", standinErr)
	}
	return standinBin
}

// startTestHost starts the real-sshd test host and writes a known_hosts
// file that pins its host key.
func startTestHost(t *testing.T, opts testhost.Options) (h *testhost.Host, knownHosts string) {
	t.Helper()
	h = testhost.Start(t, opts)
	knownHosts = filepath.Join(t.TempDir(), "known_hosts")
	h.WriteKnownHosts(knownHosts)
	return h, knownHosts
}

// writeFlakeDir writes a fixture flake.nix into a new folder and gives the
// test its own flake evaluation cache.
func writeFlakeDir(t *testing.T, flake string) string {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(flake), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// copyHostKey puts the test host's key into an extra-files tree, as the
// operator's secrets-init/keys holds the machine's key.
func copyHostKey(t *testing.T, h *testhost.Host, keys string) {
	t.Helper()
	dir := filepath.Join(keys, "persistent", "etc", "ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"} {
		b, err := os.ReadFile(filepath.Join(h.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// driftLoopDisk makes a 200 MiB loop device laid out as disko lays out
// driftCmdFlake's "same" configuration: ESP 32M vfat, then the rest ext4,
// with disko's partition labels.
func driftLoopDisk(t *testing.T) string {
	t.Helper()
	testutil.NeedRoot(t, "loop devices need root")
	for _, tool := range []string{"losetup", "sgdisk", "partx", "mkfs.vfat", "mkfs.ext4", "blkid", "lsblk", "nix"} {
		testutil.Need(t, tool)
	}
	run := func(argv ...string) string {
		t.Helper()
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		return string(out)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	run("truncate", "-s", "200M", img)
	dev := strings.TrimSpace(run("losetup", "-fP", "--show", img))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	run("sgdisk", "--align-end", "--new=1:0:+32M", "--change-name=1:disk-main-ESP", "--typecode=1:EF00", dev)
	run("sgdisk", "--align-end", "--new=2:0:-0", "--change-name=2:disk-main-persistent", "--typecode=2:8300", dev)
	_ = exec.Command("partx", "-a", dev).Run()
	run("mkfs.vfat", dev+"p1")
	run("mkfs.ext4", "-q", "-F", dev+"p2")
	return dev
}

// driftCmdFlake lays out @DEVICE@ with an ESP and /persistent: "same" as
// driftLoopDisk does, "bigger-esp" with a 64M ESP, and "no-disko" without
// a disko layout.
const driftCmdFlake = `{
  outputs = { self }:
    let
      sys = espSize: {
        config.nixpkgs.hostPlatform = { system = "aarch64-linux"; };
        config.disko.devices.disk.main = {
          device = "@DEVICE@";
          type = "disk";
          content.type = "gpt";
          content.partitions = {
            ESP = { size = espSize; type = "EF00"; content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot"; }; };
            persistent = { size = "100%"; content = { type = "filesystem"; format = "ext4"; mountpoint = "/persistent"; }; };
          };
        };
      };
    in {
      nixosConfigurations.same = sys "32M";
      nixosConfigurations.bigger-esp = sys "64M";
      nixosConfigurations.no-disko = { config.nixpkgs.hostPlatform = { system = "aarch64-linux"; }; };
    };
}
`
