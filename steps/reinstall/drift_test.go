package reinstall

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/steps/remote"
)

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// seedLayout is the deployment plan's layout: an ESP, swap and the rest for
// /persistent (the root is a tmpfs).
func seedLayout() []FlakeDisk {
	return []FlakeDisk{{
		Name: "main", Device: "/dev/sda", Table: "gpt",
		Partitions: []FlakePartition{
			{Name: "persistent", Size: "100%", Format: "ext4", Mountpoint: "/persistent"},
			{Name: "ESP", Size: "512M", Format: "vfat", Mountpoint: "/boot", Type: "EF00"},
			{Name: "swap", Size: "4G", Format: "swap", Type: "8200"},
		},
	}}
}

// seedLive is seedLayout as disko made it on a 50 GiB disk, as the facts
// script reads it.
func seedLive() remote.Facts {
	return remote.Facts{Disks: []remote.Disk{{
		Path: "/dev/sda", SizeBytes: 50 * gib, Type: "disk", Table: "gpt",
		Partitions: []remote.Partition{
			{Path: "/dev/sda1", SizeBytes: 512 * mib, Type: "part", PartLabel: "disk-main-ESP", PartType: typeGUIDs["EF00"], FSType: "vfat", Mountpoints: []string{"/boot"}},
			{Path: "/dev/sda2", SizeBytes: 4 * gib, Type: "part", PartLabel: "disk-main-swap", PartType: typeGUIDs["8200"], FSType: "swap", Mountpoints: []string{"[SWAP]"}},
			{Path: "/dev/sda3", SizeBytes: 50*gib - 4*gib - 512*mib - 2*mib + 512*1024, Type: "part", PartLabel: "disk-main-persistent", PartType: typeGUIDs["8300"], FSType: "ext4", Mountpoints: []string{"/persistent", "/etc/ssh"}},
		},
	}}}
}

func TestSortedPartitionsAndLabels(t *testing.T) {
	d := FlakeDisk{Name: "main", Partitions: []FlakePartition{
		{Name: "root", Size: "100%"},
		{Name: "b", Size: "1G"},
		{Name: "a", Size: "1G"},
		{Name: "boot", Size: "1M", Type: "EF02"},
		{Name: "late", Size: "1G", Priority: 5000},
	}}
	var got []string
	for _, p := range SortedPartitions(d.Partitions) {
		got = append(got, d.PartLabel(p))
	}
	want := "disk-main-boot disk-main-a disk-main-b disk-main-late disk-main-root"
	if strings.Join(got, " ") != want {
		t.Fatalf("order = %v, want %s", got, want)
	}
	long := FlakeDisk{Name: "a-very-long-disk-name-indeed"}
	l := long.PartLabel(FlakePartition{Name: "persistent-data"})
	if len(l) != 36 || strings.HasPrefix(l, "disk-") {
		t.Fatalf("long label = %q, want a 36-digit hash like disko's", l)
	}
}

func TestParseDiskoSize(t *testing.T) {
	tests := []struct {
		in    string
		want  int64
		fixed bool
		err   bool
	}{
		{"512M", 512 * mib, true, false},
		{"80G", 80 * gib, true, false},
		{"1T", 1024 * gib, true, false},
		{"2048", 2048 * 512, true, false},
		{"100%", 0, false, false},
		{"12X", 0, false, true},
		{"", 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, fixed, err := ParseDiskoSize(tt.in)
			if (err != nil) != tt.err || got != tt.want || fixed != tt.fixed {
				t.Fatalf("ParseDiskoSize(%q) = %d, %v, %v", tt.in, got, fixed, err)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		name    string
		flake   func([]FlakeDisk) []FlakeDisk
		live    func(remote.Facts) remote.Facts
		verdict string
		changes []string // "kind|what|live|flake"
	}{
		{name: "unchanged", verdict: VerdictNone},
		{
			name: "within alignment",
			live: func(l remote.Facts) remote.Facts {
				l.Disks[0].Partitions[1].SizeBytes -= 512 * 1024
				return l
			},
			verdict: VerdictNone,
		},
		{
			name:    "swap grows",
			flake:   func(f []FlakeDisk) []FlakeDisk { f[0].Partitions[2].Size = "8G"; return f },
			verdict: VerdictReinstall,
			changes: []string{"changed|partition disk-main-swap (/dev/sda2) size|4.0 GiB|8.0 GiB (8G)"},
		},
		{
			name: "filesystem and type change",
			flake: func(f []FlakeDisk) []FlakeDisk {
				f[0].Partitions[0].Format = "btrfs"
				return f
			},
			verdict: VerdictReinstall,
			changes: []string{"changed|filesystem on partition disk-main-persistent (/dev/sda3)|ext4|btrfs"},
		},
		{
			name: "partition added and removed",
			flake: func(f []FlakeDisk) []FlakeDisk {
				f[0].Partitions[2] = FlakePartition{Name: "data", Size: "10G", Format: "xfs", Mountpoint: "/data"}
				return f
			},
			verdict: VerdictReinstall,
			changes: []string{
				"added|partition disk-main-data||10G xfs on /data",
				"removed|partition disk-main-swap|4.0 GiB swap on [SWAP]|",
			},
		},
		{
			name:    "mountpoint only",
			flake:   func(f []FlakeDisk) []FlakeDisk { f[0].Partitions[1].Mountpoint = "/efi"; return f },
			verdict: VerdictNone,
			changes: []string{"changed|mountpoint of partition disk-main-ESP (/dev/sda1)|/boot|/efi"},
		},
		{
			name:    "type code",
			flake:   func(f []FlakeDisk) []FlakeDisk { f[0].Partitions[1].Type = "EF02"; return f },
			verdict: VerdictReinstall,
			changes: []string{"changed|partition disk-main-ESP (/dev/sda1) type|EF00|EF02"},
		},
		{
			name:    "disk missing",
			flake:   func(f []FlakeDisk) []FlakeDisk { f[0].Device = "/dev/vdb"; return f },
			verdict: VerdictReinstall,
			changes: []string{"added|disk main||/dev/vdb: ESP 512M, swap 4G, persistent 100%"},
		},
		{
			name: "disk by id",
			flake: func(f []FlakeDisk) []FlakeDisk {
				f[0].Device = "/dev/disk/by-id/scsi-0Oracle_boot"
				return f
			},
			live: func(l remote.Facts) remote.Facts {
				l.DiskLinks = map[string]string{"/dev/disk/by-id/scsi-0Oracle_boot": "/dev/sda", "/dev/disk/by-id/other": "/dev/sdb"}
				return l
			},
			verdict: VerdictNone,
		},
		{
			name: "no labels: by order",
			live: func(l remote.Facts) remote.Facts {
				for i := range l.Disks[0].Partitions {
					l.Disks[0].Partitions[i].PartLabel = ""
				}
				l.Disks[0].Partitions[0].SizeBytes = 1 * gib
				return l
			},
			verdict: VerdictReinstall,
			changes: []string{"changed|partition disk-main-ESP (/dev/sda1) size|1.0 GiB|512.0 MiB (512M)"},
		},
		{
			name:    "table",
			live:    func(l remote.Facts) remote.Facts { l.Disks[0].Table = "dos"; return l },
			verdict: VerdictReinstall,
			changes: []string{"changed|disk main (/dev/sda) partition table|dos|gpt"},
		},
		{
			name: "devices below a partition are not partitions",
			live: func(l remote.Facts) remote.Facts {
				p := l.Disks[0].Partitions
				l.Disks[0].Partitions = append(p[:3:3], remote.Partition{Path: "/dev/mapper/crypted", SizeBytes: gib, Type: "crypt", FSType: "ext4"})
				return l
			},
			verdict: VerdictNone,
		},
		{
			name:  "loop device named by the flake",
			flake: func(f []FlakeDisk) []FlakeDisk { f[0].Device = "/dev/loop0"; return f },
			live: func(l remote.Facts) remote.Facts {
				l.Loops, l.Disks = l.Disks, nil
				l.Loops[0].Path, l.Loops[0].Type = "/dev/loop0", "loop"
				return l
			},
			verdict: VerdictNone,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, l := seedLayout(), seedLive()
			if tt.flake != nil {
				f = tt.flake(f)
			}
			if tt.live != nil {
				l = tt.live(l)
			}
			r := Compare(f, l)
			var got []string
			for _, c := range r.Changes {
				got = append(got, c.Kind+"|"+c.What+"|"+c.Live+"|"+c.Flake)
			}
			if r.Verdict != tt.verdict || strings.Join(got, "\n") != strings.Join(tt.changes, "\n") {
				t.Fatalf("verdict %s, changes:\n%s\nwant %s:\n%s", r.Verdict, strings.Join(got, "\n"), tt.verdict, strings.Join(tt.changes, "\n"))
			}
			s := r.Summary()
			switch {
			case r.Verdict == VerdictNone && len(r.Changes) == 0:
				if s != "no layout change: deploy with `nh os switch` / `nixos-rebuild`, no reinstall" {
					t.Fatalf("summary %q", s)
				}
			case r.Verdict == VerdictReinstall && !strings.HasPrefix(s, "reinstall required because "):
				t.Fatalf("summary %q", s)
			}
		})
	}
}

func TestReportJSON(t *testing.T) {
	f := seedLayout()
	f[0].Partitions[2].Size = "8G"
	out, err := json.Marshal(Compare(f, seedLive()))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"drift":{"verdict":"reinstall","changes":[{"kind":"changed","what":"partition disk-main-swap (/dev/sda2) size","live":"4.0 GiB","flake":"8.0 GiB (8G)"}]}}`
	if string(out) != want {
		t.Fatalf("json\n%s\nwant\n%s", out, want)
	}
	out, _ = json.Marshal(Compare(seedLayout(), seedLive()))
	if string(out) != `{"drift":{"verdict":"none","changes":[]}}` {
		t.Fatalf("json %s", out)
	}
}
