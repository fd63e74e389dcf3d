package flake

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
)

// The disk size model follows how disko creates a GPT table
// (nix-community/disko lib/types/gpt.nix, 2026-03): partitions sorted by
// priority (default 100 for type EF02, 9001 for size "100%", 1000 otherwise),
// each created with `sgdisk --align-end --new=N:<start>:<end>`, where start
// defaults to "0" (the next free aligned sector) and end to "+<size>", or
// "-0" (the end of the free space) for size "100%". Size matches
// `[0-9]+[KMGTP]?`. sgdisk (gdisk's support.cc IeeeToInt) reads K, M, G, T, P
// as binary units (KiB, MiB, …) and a bare number as a count of sectors; the
// model assumes 512-byte logical sectors (Oracle's block volumes and virtio
// disks). sgdisk starts partitions on 2048-sector (1 MiB) boundaries; the
// backup GPT takes the last 33 sectors (32 sectors of entries and the
// header). These figures were confirmed with sgdisk on sparse image files:
// the seed's layout (512M, 80G, 100%) first fits on 168824865 sectors.
const (
	// SectorSize is the logical sector size the model assumes.
	SectorSize = 512
	// alignSectors is sgdisk's default alignment: 1 MiB.
	alignSectors = 2048
	// backupGPTSectors is the backup partition table at the end of the disk.
	backupGPTSectors = 33
	// restMinSectors is what the model gives a "100%" partition at least:
	// one alignment unit. A filesystem needs more; this is the floor under
	// which disko cannot even create the partition as declared.
	restMinSectors = alignSectors
)

// ErrSize is wrapped when a disko size cannot be read.
var ErrSize = fmt.Errorf("size not understood")

var sgdiskSizeRE = regexp.MustCompile(`^([0-9]+)([KMGTP]?)$`)

// SgdiskSectors reads a size as sgdisk does: K/M/G/T/P are binary units, a
// bare number counts sectors. It returns the size in 512-byte sectors,
// rounded up.
func SgdiskSectors(s string) (int64, error) {
	m := sgdiskSizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%w: %q (disko takes a number with an optional K, M, G, T or P suffix, or 100%%)", ErrSize, s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is too large", ErrSize, s)
	}
	if m[2] == "" {
		return n, nil
	}
	shift := map[string]uint{"K": 10, "M": 20, "G": 30, "T": 40, "P": 50}[m[2]]
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%w: %q is too large", ErrSize, s)
	}
	bytes := n << shift
	return (bytes + SectorSize - 1) / SectorSize, nil
}

func alignUp(s int64) int64 { return (s + alignSectors - 1) / alignSectors * alignSectors }

// orderedPartitions sorts partitions as disko does: by priority, ties kept
// in attribute-name order (builtins.sort is stable and attrValues is sorted
// by name).
func orderedPartitions(ps []Partition) []Partition {
	out := append([]Partition(nil), ps...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	prio := func(p Partition) int {
		if p.Priority != nil {
			return *p.Priority
		}
		if p.Size != nil && *p.Size == "100%" {
			return 9001
		}
		if p.Type != nil && strings.EqualFold(*p.Type, "EF02") {
			return 100
		}
		return 1000
	}
	sort.SliceStable(out, func(i, j int) bool { return prio(out[i]) < prio(out[j]) })
	return out
}

// MinDiskBytes is the smallest disk, in bytes, that disko can lay d out on.
// A disk without a partition table (a whole-disk filesystem, LVM or ZFS
// member) has no size of its own in the layout: it returns 0.
func MinDiskBytes(d Disk) (int64, error) {
	switch d.Table {
	case "gpt":
		s, err := gptMinSectors(d.Partitions)
		return s * SectorSize, err
	case "table":
		return partedMinBytes(d)
	}
	return 0, nil
}

func gptMinSectors(parts []Partition) (int64, error) {
	cursor := int64(alignSectors) // first usable sector (34), aligned
	var tail int64                // sectors a "-X" end keeps free after the last partition
	for _, p := range orderedPartitions(parts) {
		size := "0"
		if p.Size != nil {
			size = *p.Size
		}
		start := cursor
		if p.Start != nil && *p.Start != "0" && *p.Start != "" {
			abs, err := SgdiskSectors(*p.Start)
			if err != nil {
				return 0, fmt.Errorf("partition %s start: %w", p.Name, err)
			}
			start = abs
		}
		start = alignUp(start)
		end := "+" + size
		if size == "100%" {
			end = "-0"
		}
		if p.End != nil && *p.End != "" {
			end = *p.End
		}
		switch {
		case end == "-0" || end == "0" || end == "+0":
			// Up to the end of the free space: at least one alignment unit.
			cursor = start + restMinSectors
		case strings.HasPrefix(end, "-"):
			keep, err := SgdiskSectors(end[1:])
			if err != nil {
				return 0, fmt.Errorf("partition %s end: %w", p.Name, err)
			}
			cursor = start + restMinSectors
			tail = max(tail, keep)
		case strings.HasPrefix(end, "+"):
			n, err := SgdiskSectors(end[1:])
			if err != nil {
				return 0, fmt.Errorf("partition %s size: %w", p.Name, err)
			}
			cursor = start + n
		default:
			abs, err := SgdiskSectors(end)
			if err != nil {
				return 0, fmt.Errorf("partition %s end: %w", p.Name, err)
			}
			cursor = max(start+1, abs+1)
		}
	}
	return cursor + tail + backupGPTSectors, nil
}

var partedRE = regexp.MustCompile(`^(-?)([0-9]+(?:\.[0-9]+)?)\s*(s|B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB|%)?$`)

// partedBytes reads a position of disko's legacy "table" type, which parted
// creates: decimal (MB) and binary (MiB) units, sectors (s), percentages;
// parted's default unit is MB. It returns bytes, whether it counts back
// from the end, and the percentage when it is one.
func partedBytes(s string) (bytes float64, fromEnd bool, pct float64, err error) {
	m := partedRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, false, 0, fmt.Errorf("%w: %q (parted takes e.g. 1MiB, 512MB, 100%%)", ErrSize, s)
	}
	v, _ := strconv.ParseFloat(m[2], 64)
	mult := map[string]float64{
		"s": SectorSize, "B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	}
	if m[3] == "%" {
		return 0, m[1] == "-", v, nil
	}
	return v * mult[m[3]], m[1] == "-", 0, nil
}

func partedMinBytes(d Disk) (int64, error) {
	var need float64
	for _, p := range d.Partitions {
		var startB float64
		if p.Start != nil {
			b, fromEnd, pct, err := partedBytes(*p.Start)
			if err != nil {
				return 0, fmt.Errorf("partition %s start: %w", p.Name, err)
			}
			if !fromEnd && pct == 0 {
				startB = b
			}
		}
		endB := startB + 1<<20
		if p.End != nil {
			b, fromEnd, pct, err := partedBytes(*p.End)
			if err != nil {
				return 0, fmt.Errorf("partition %s end: %w", p.Name, err)
			}
			switch {
			case fromEnd:
				endB = startB + 1<<20 + b
			case pct > 0:
				// A percentage of a disk of unknown size: at least 1 MiB.
			default:
				endB = max(endB, b)
			}
		}
		need = max(need, endB)
	}
	n := int64(math.Ceil(need))
	if d.TableFormat == "gpt" {
		n += backupGPTSectors * SectorSize
	}
	return n, nil
}

// Needs returns the minimum size of every disk of the layout.
func (c Config) Needs() ([]steps.DiskNeed, error) {
	if c.Disko == nil {
		return nil, nil
	}
	var out []steps.DiskNeed
	for _, d := range c.Disko.Disks {
		n, err := MinDiskBytes(d)
		if err != nil {
			return nil, fmt.Errorf("disko disk %s (%s): %w: fix disko.devices.disk.%s in the flake", d.Name, d.Device, err, d.Name)
		}
		out = append(out, steps.DiskNeed{Device: d.Device, MinSizeBytes: n})
	}
	return out, nil
}

// Expect is what the configuration asks of the target, for the remote
// checks. A size that cannot be read leaves Disks empty (the check skips).
func (c Config) Expect() steps.TargetExpect {
	needs, _ := c.Needs()
	return steps.TargetExpect{System: c.System, Disks: needs, EFI: c.Boot.EFI(),
		InitrdModules: c.Boot.InitrdModules(), InitrdNetwork: c.Boot.InitrdNetwork,
		KernelParams: c.Boot.KernelParams, EFICanTouch: c.Boot.EFICanTouch, GrubEFIRemovable: c.Boot.GrubEFIRemovable,
		SystemdBoot: c.Boot.SystemdBoot}
}
