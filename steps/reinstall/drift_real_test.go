package reinstall

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// driftFlake has the attribute shape of real nixosSystem results with a
// disko layout on @DEVICE@: "same" is what the test lays out on the loop
// device, "changed" grows the swap and turns /persistent into btrfs.
const driftFlake = `{
  outputs = { self }:
    let
      sys = swapSize: persistentFormat: {
        config = {
          nixpkgs.hostPlatform = { system = "aarch64-linux"; };
          disko.devices.disk.main = {
            device = "@DEVICE@";
            type = "disk";
            content = {
              type = "gpt";
              partitions = {
                ESP = { size = "64M"; type = "EF00"; content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot"; }; };
                swap = { size = swapSize; type = "8200"; content = { type = "swap"; }; };
                persistent = { size = "100%"; content = { type = "filesystem"; format = persistentFormat; mountpoint = "/persistent"; }; };
              };
            };
          };
          disko.devices.nodev."/" = { fsType = "tmpfs"; };
        };
      };
    in {
      nixosConfigurations.same = sys "32M" "ext4";
      nixosConfigurations.changed = sys "64M" "btrfs";
    };
}
`

// TestDriftRealFlakeLoopSSHD puts the parts together as `bigbang drift`
// does: the layout evaluated by real nix from a fixture flake, the live
// disk a loop device partitioned like disko and read through a real sshd
// by the facts script.
func TestDriftRealFlakeLoopSSHD(t *testing.T) {
	testutil.Need(t, "nix")
	dev := loopDisk(t, "300M")
	partitionLikeDisko(t, dev, FlakeDisk{Name: "main", Device: dev, Table: "gpt", Partitions: []FlakePartition{
		{Name: "ESP", Size: "64M", Format: "vfat", Type: "EF00"},
		{Name: "swap", Size: "32M", Format: "swap", Type: "8200"},
		{Name: "persistent", Size: "100%", Format: "ext4"},
	}})

	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(strings.ReplaceAll(driftFlake, "@DEVICE@", dev)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	layouts := map[string][]FlakeDisk{}
	for _, name := range []string{"same", "changed"} {
		info, err := flake.Evaluate(ctx, dir+"#"+name)
		if err != nil {
			t.Fatalf("nix eval %s: %v", name, err)
		}
		layouts[name] = FromDisko(info.Config.Disko)
	}

	h := testhost.Start(t, testhost.Options{})
	c := dialTestHost(t, h, h.IP, h.Port)
	live, err := c.Facts(ctx)
	if err != nil {
		t.Fatalf("facts over ssh: %v", err)
	}
	if _, ok := live.Device(dev); !ok {
		t.Fatalf("%s not among the live disks %+v %+v", dev, live.Disks, live.Loops)
	}
	// The loop device is found among the facts' loop devices (Device), as
	// `bigbang drift` finds it.
	lives := map[string]remote.Facts{"facts": live}

	tests := []struct {
		flake, live, verdict string
		want                 []string
	}{
		{"same", "facts", VerdictNone, nil},
		{"changed", "facts", VerdictReinstall, []string{
			"changed|partition disk-main-swap (" + dev + "p2) size|32.0 MiB|64.0 MiB (64M)",
			"changed|filesystem on partition disk-main-persistent (" + dev + "p3)|ext4|btrfs",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.flake+" vs "+tt.live, func(t *testing.T) {
			r := Compare(layouts[tt.flake], lives[tt.live])
			var got []string
			for _, ch := range r.Changes {
				got = append(got, ch.Kind+"|"+ch.What+"|"+ch.Live+"|"+ch.Flake)
			}
			if r.Verdict != tt.verdict || strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("verdict %s changes:\n%s\nwant %s:\n%s\nflake %+v\nlive %+v", r.Verdict, strings.Join(got, "\n"), tt.verdict, strings.Join(tt.want, "\n"), layouts[tt.flake], lives[tt.live])
			}
		})
	}
}
