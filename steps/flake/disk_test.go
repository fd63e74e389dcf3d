package flake

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

func sp(s string) *string { return &s }

func TestSgdiskSectors(t *testing.T) {
	// Units as sgdisk reads them (gdisk support.cc IeeeToInt): binary
	// suffixes, bare numbers are sectors.
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"512M", 512 << 11, false},
		{"80G", 80 << 21, false},
		{"1T", 1 << 31, false},
		{"1K", 2, false},
		{"1P", 1 << 41, false},
		{"100", 100, false},
		{"0", 0, false},
		{"1.5G", 0, true},
		{"512MiB", 0, true},
		{"512m", 0, true},
		{"", 0, true},
		{"99999999999999999999P", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := SgdiskSectors(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrSize) {
					t.Fatalf("SgdiskSectors(%q) error = %v, want ErrSize", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("SgdiskSectors(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func gpt(parts ...Partition) Disk {
	return Disk{Name: "main", Device: "/dev/sda", Table: "gpt", Partitions: parts}
}
func part(name, size string) Partition {
	return Partition{Name: name, Size: sp(size)}
}

const (
	mib = 2048 // sectors
	gib = 1 << 21
)

// seedMinSectors is where sgdisk first fits the seed's layout: 1 MiB before
// the ESP, 512 MiB, 80 GiB, 1 MiB for the rest partition, the backup GPT.
const seedMinSectors = mib + 512*mib + 80*gib + mib + 33

func TestMinDiskBytes(t *testing.T) {
	prio := func(p Partition, n int) Partition { p.Priority = &n; return p }
	typed := func(p Partition, ty string) Partition { p.Type = &ty; return p }
	ended := func(p Partition, end string) Partition { p.End = &end; return p }
	tests := []struct {
		name string
		disk Disk
		want int64 // sectors
	}{
		{"seed layout", gpt(typed(part("ESP", "512M"), "EF00"), part("nix", "80G"), part("persistent", "100%")), seedMinSectors},
		{"order does not change the sum", gpt(part("persistent", "100%"), part("nix", "80G"), part("ESP", "512M")), seedMinSectors},
		{"bios boot partition first", gpt(part("root", "100%"), typed(part("boot", "1M"), "EF02")), mib + mib + mib + 33},
		{"bare number counts sectors, next start aligned", gpt(part("a", "100"), part("b", "1M")), mib + mib + mib + 33},
		{"default size 0 is the rest", gpt(part("a", "0")), mib + mib + 33},
		{"end -4G keeps room after the rest", gpt(part("a", "1G"), ended(part("b", "100%"), "-4G")), mib + gib + mib + 4*gib + 33},
		{"explicit priority puts 100% first", gpt(prio(part("rest", "100%"), 1), part("b", "1G")), mib + mib + gib + 33},
		{"one terabyte", gpt(part("ESP", "512M"), part("nix", "1T"), part("persistent", "100%")), mib + 512*mib + 512*gib*2 + mib + 33},
		{"no table: unknown", Disk{Name: "z", Device: "/dev/sdb", Table: "zfs"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MinDiskBytes(tt.disk)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want*SectorSize {
				t.Fatalf("MinDiskBytes = %d bytes (%d sectors), want %d sectors", got, got/SectorSize, tt.want)
			}
		})
	}
}

func TestMinDiskBytesLegacyTable(t *testing.T) {
	d := Disk{Name: "vda", Device: "/dev/vda", Table: "table", TableFormat: "gpt", Partitions: []Partition{
		{Name: "ESP", Start: sp("1MiB"), End: sp("512MiB")},
		{Name: "root", Start: sp("512MiB"), End: sp("100%")},
	}}
	got, err := MinDiskBytes(d)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(513<<20 + 33*512); got != want {
		t.Fatalf("MinDiskBytes = %d, want %d", got, want)
	}
	d.Partitions[0].End = sp("lots")
	if _, err := MinDiskBytes(d); !errors.Is(err, ErrSize) {
		t.Fatalf("bad parted size: err = %v, want ErrSize", err)
	}
}

func TestNeedsBadSize(t *testing.T) {
	c := Config{Disko: &Disko{Disks: []Disk{gpt(part("a", "12X"))}}}
	if _, err := c.Needs(); !errors.Is(err, ErrSize) {
		t.Fatalf("Needs error = %v, want ErrSize", err)
	}
	if e := c.Expect(); e.Disks != nil {
		t.Fatalf("Expect with a bad size has disks %v, want none (unknown)", e.Disks)
	}
}

// TestSeedLayoutWithSgdisk checks the model against the real sgdisk: the
// seed's layout, created the way disko creates it, fits on a sparse image of
// exactly the minimum size and gives the last partition one whole MiB.
func TestSeedLayoutWithSgdisk(t *testing.T) {
	sgdisk := testutil.Need(t, "sgdisk")
	min, err := MinDiskBytes(gpt(part("ESP", "512M"), part("nix", "80G"), part("persistent", "100%")))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, min); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(sgdisk, append(args, img)...).CombinedOutput(); err != nil {
			t.Fatalf("sgdisk %v: %v\n%s", args, err, out)
		}
	}
	run("--clear")
	run("--align-end", "--new=1:0:+512M")
	run("--align-end", "--new=2:0:+80G")
	run("--align-end", "--new=3:0:-0")
	first, err := exec.Command(sgdisk, "--info=3", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	start := int64(mib + 512*mib + 80*gib)
	want := "Last sector: " + strconv.FormatInt(start+mib-1, 10)
	if !strings.Contains(string(first), want) {
		t.Fatalf("partition 3 on a %d-byte disk:\n%s\nwant %q", min, first, want)
	}
}
