package ui

import (
	"path"
	"runtime"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// ReportFromFacts builds the preflight report from the target's facts and
// the checks run over them. Wiped are the devices the flake's disko layout
// uses (empty: the default disk).
func ReportFromFacts(f remote.Facts, checks []steps.Check, hk HostKey, wiped []string) Report {
	r := Report{
		Checks:            checks,
		HostKey:           hk,
		TargetRAM:         f.MemTotalBytes,
		TargetSystem:      remote.NixSystem(f.Arch),
		LocalSystem:       LocalSystem(),
		TargetOS:          f.OSPrettyName,
		TargetIsInstaller: f.IsInstaller(),
		SudoNeedsPassword: !f.IsRoot && f.HasSudo && !f.PasswordlessSudo,
	}
	r.LocalCanBuild = r.LocalSystem == r.TargetSystem
	if len(wiped) == 0 {
		wiped = []string{remote.DefaultDisk}
	}
	for _, dev := range wiped {
		d, ok := f.Disk(dev)
		if !ok {
			r.Disks = append(r.Disks, Disk{Device: dev})
			continue
		}
		disk := Disk{Device: d.Path, Model: d.Model, Size: d.SizeBytes}
		for _, p := range d.Partitions {
			mp := ""
			if len(p.Mountpoints) > 0 {
				mp = p.Mountpoints[0]
			}
			disk.Partitions = append(disk.Partitions, Partition{Name: path.Base(p.Path), Size: p.SizeBytes, FSType: p.FSType, Mountpoint: mp})
		}
		r.Disks = append(r.Disks, disk)
	}
	return r
}

// LocalSystem is this machine's Nix system, e.g. x86_64-linux.
func LocalSystem() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return arch + "-" + runtime.GOOS
}
