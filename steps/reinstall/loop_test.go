package reinstall

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// loopDisk makes a file-backed loop device of size bytes with partitions,
// detached when the test ends.
func loopDisk(t *testing.T, size string) string {
	t.Helper()
	testutil.NeedRoot(t, "loop devices need root")
	for _, tool := range []string{"losetup", "sgdisk", "partx", "mkfs.vfat", "mkfs.ext4", "mkswap", "blkid", "lsblk"} {
		testutil.Need(t, tool)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	run(t, "truncate", "-s", size, img)
	dev := strings.TrimSpace(run(t, "losetup", "-fP", "--show", img))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

func run(t *testing.T, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// partitionLikeDisko lays out dev the way disko's gpt type does: sgdisk
// --align-end --new=N:0:+SIZE (or -0 for 100%) with the disko label and type.
func partitionLikeDisko(t *testing.T, dev string, fd FlakeDisk) {
	t.Helper()
	for i, p := range SortedPartitions(fd.Partitions) {
		n := itoa(int64(i + 1))
		end := "+" + p.Size
		if p.Size == "100%" {
			end = "-0"
		}
		typ := p.Type
		if typ == "" {
			typ = "8300"
		}
		run(t, "sgdisk", "--align-end", "--new="+n+":0:"+end, "--change-name="+n+":"+fd.PartLabel(p), "--typecode="+n+":"+typ, dev)
	}
	// losetup -P scanned the empty disk; tell the kernel about the new table.
	_ = exec.Command("partx", "-a", dev).Run()
	_ = exec.Command("partx", "-u", dev).Run()
	for i, p := range SortedPartitions(fd.Partitions) {
		part := dev + "p" + itoa(int64(i+1))
		waitFor(t, part)
		switch p.Format {
		case "vfat":
			run(t, "mkfs.vfat", part)
		case "ext4":
			run(t, "mkfs.ext4", "-q", "-F", part)
		case "swap":
			run(t, "mkswap", part)
		}
	}
}

func waitFor(t *testing.T, path string) {
	t.Helper()
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not appear after partitioning", path)
}

// readLayout runs the facts script in a real shell, as sshexec does over
// SSH, and checks that it found dev.
func readLayout(t *testing.T, dev string) remote.Facts {
	t.Helper()
	out, err := exec.Command("sh", "-c", sshexec.FactsScript).Output()
	if err != nil {
		t.Fatalf("facts script: %v", err)
	}
	f, err := remote.ParseFacts(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Device(dev); !ok {
		t.Fatalf("%s not in the facts:\n%s", dev, out)
	}
	return f
}

func TestDriftOnLoopDevice(t *testing.T) {
	dev := loopDisk(t, "300M")
	layout := []FlakeDisk{{
		Name: "main", Device: dev, Table: "gpt",
		Partitions: []FlakePartition{
			{Name: "ESP", Size: "64M", Format: "vfat", Mountpoint: "/boot", Type: "EF00"},
			{Name: "swap", Size: "32M", Format: "swap", Type: "8200"},
			{Name: "persistent", Size: "100%", Format: "ext4", Mountpoint: "/persistent"},
		},
	}}
	partitionLikeDisko(t, dev, layout[0])
	live := readLayout(t, dev)

	tests := []struct {
		name    string
		change  func(fd *FlakeDisk)
		verdict string
		want    []string
	}{
		{name: "same layout", change: func(*FlakeDisk) {}, verdict: VerdictNone},
		{
			name:    "bigger swap",
			change:  func(fd *FlakeDisk) { fd.Partitions[1].Size = "64M" },
			verdict: VerdictReinstall,
			want:    []string{"changed|partition disk-main-swap (" + dev + "p2) size|32.0 MiB|64.0 MiB (64M)"},
		},
		{
			name: "btrfs persistent and a new partition",
			change: func(fd *FlakeDisk) {
				fd.Partitions[2].Format = "btrfs"
				fd.Partitions = append(fd.Partitions, FlakePartition{Name: "data", Size: "16M", Format: "ext4"})
			},
			verdict: VerdictReinstall,
			want: []string{
				// "data" sorts before the 100% partition, so disko would
				// number it 3: matching is by label, not by number.
				"added|partition disk-main-data||16M ext4",
				"changed|filesystem on partition disk-main-persistent (" + dev + "p3)|ext4|btrfs",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd := layout[0]
			fd.Partitions = append([]FlakePartition(nil), fd.Partitions...)
			tt.change(&fd)
			r := Compare([]FlakeDisk{fd}, live)
			var got []string
			for _, c := range r.Changes {
				got = append(got, c.Kind+"|"+c.What+"|"+c.Live+"|"+c.Flake)
			}
			if r.Verdict != tt.verdict || strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("verdict %s changes:\n%s\nwant %s:\n%s\nlive: %+v", r.Verdict, strings.Join(got, "\n"), tt.verdict, strings.Join(tt.want, "\n"), live)
			}
		})
	}
}
