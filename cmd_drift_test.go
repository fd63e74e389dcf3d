package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps"
)

// runCmd runs `bigbang args…` in process.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var cfg steps.Config
	root := newRoot(&cfg)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	msg := errOut.String()
	if err != nil {
		msg += err.Error()
	}
	return exitCode(context.Background(), err), out.String(), msg
}

// driftLoopDisk makes a 200 MiB loop device laid out as disko lays out
// the fixture flake's "same" configuration: ESP 32M vfat, then the rest
// ext4, with disko's partition labels.
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

func TestDriftCommand(t *testing.T) {
	dev := driftLoopDisk(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(strings.ReplaceAll(driftCmdFlake, "@DEVICE@", dev)), 0o644); err != nil {
		t.Fatal(err)
	}
	h := testhost.Start(t, testhost.Options{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	h.WriteKnownHosts(kh)
	common := []string{"drift", "--host", h.IP, "--port", h.PortString(), "--user", h.User, "-i", h.ClientKey, "--known-hosts", kh}

	type driftJSON struct {
		Drift struct {
			Verdict string `json:"verdict"`
			Changes []struct {
				Kind, What, Live, Flake string
			} `json:"changes"`
		} `json:"drift"`
	}
	tests := []struct {
		name     string
		config   string
		output   string
		code     int
		verdict  string
		contains string
	}{
		{"same layout, json", "same", "json", 0, "none", ""},
		{"bigger ESP, json", "bigger-esp", "json", 1, "reinstall", "partition disk-main-ESP (" + dev + "p1) size"},
		{"same layout, plain", "same", "plain", 0, "", "no layout change: deploy with `nh os switch` / `nixos-rebuild`, no reinstall"},
		{"bigger ESP, plain", "bigger-esp", "plain", 1, "", "reinstall required because partition disk-main-ESP (" + dev + "p1) size changes from 32.0 MiB to 64.0 MiB (64M)"},
		{"no disko", "no-disko", "plain", 1, "", "has no disko layout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, append(common, "--flake", dir+"#"+tt.config, "--output", tt.output)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			if tt.verdict != "" {
				var j driftJSON
				if err := json.Unmarshal([]byte(out), &j); err != nil {
					t.Fatalf("not JSON: %v\n%s", err, out)
				}
				if j.Drift.Verdict != tt.verdict || j.Drift.Changes == nil {
					t.Fatalf("verdict %q (changes %v), want %q", j.Drift.Verdict, j.Drift.Changes, tt.verdict)
				}
			}
			if !strings.Contains(out+errOut, tt.contains) {
				t.Fatalf("output lacks %q:\n%s\n%s", tt.contains, out, errOut)
			}
		})
	}
}
