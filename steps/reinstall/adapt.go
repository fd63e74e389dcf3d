package reinstall

import (
	"github.com/bigbang-nix/bigbang/steps/flake"
)

// contentFSType names what blkid reports for a disko content type: the
// filesystem for a filesystem, the container signature for the others.
func contentFSType(c *flake.Content) string {
	if c == nil {
		return ""
	}
	switch c.Type {
	case "filesystem":
		if c.Format != nil {
			return *c.Format
		}
	case "swap":
		return "swap"
	case "luks":
		return "crypto_LUKS"
	case "lvm_pv":
		return "LVM2_member"
	case "zfs":
		return "zfs_member"
	case "btrfs":
		return "btrfs"
	case "mdraid":
		return "linux_raid_member"
	}
	return ""
}

// contentMountpoint is the mountpoint the live partition itself shows. A
// LUKS or LVM container is mounted through its mapped device, never the
// partition, so it has none here.
func contentMountpoint(c *flake.Content) string {
	if c == nil {
		return ""
	}
	switch c.Type {
	case "filesystem", "btrfs":
		if m := c.Mountpoints(); len(m) > 0 {
			return m[0]
		}
	}
	return ""
}

// FromDisko turns the flake's evaluated disko layout into Compare's input.
// nil (a configuration without disko) gives no disks.
func FromDisko(d *flake.Disko) []FlakeDisk {
	if d == nil {
		return nil
	}
	var out []FlakeDisk
	for _, fd := range d.Disks {
		disk := FlakeDisk{Name: fd.Name, Device: fd.Device, Table: fd.Table}
		legacy := fd.Table == "table"
		if legacy {
			// disko's legacy "table" type runs parted: the partition name
			// is the GPT label, and sizes are start/end positions, which
			// only the disk-size model reads; here they match any size.
			disk.Table = fd.TableFormat
			if disk.Table == "msdos" {
				disk.Table = "dos"
			}
		}
		for _, p := range fd.Partitions {
			fp := FlakePartition{Name: p.Name, Format: contentFSType(p.Content), Mountpoint: contentMountpoint(p.Content)}
			if p.Size != nil {
				fp.Size = *p.Size
			}
			if p.Type != nil {
				fp.Type = *p.Type
			}
			if p.Priority != nil {
				fp.Priority = *p.Priority
			}
			if legacy {
				fp.Label, fp.Size = p.Name, "100%"
			}
			disk.Partitions = append(disk.Partitions, fp)
		}
		out = append(out, disk)
	}
	return out
}
