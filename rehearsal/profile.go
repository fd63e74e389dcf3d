// Package rehearsal is the simulated VPS behind `bigbang demo`: an
// in-process SSH server with the profile of an Oracle Cloud Ampere A1
// machine that answers bigbang's facts script, and a recorded-shape
// nixos-anywhere 1.13.0 run that is replayed through the real runner. It
// touches nothing outside temporary files.
package rehearsal

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// DemoHost is the address the demo shows: a documentation address
// (TEST-NET-3, RFC 5737) that routes nowhere, mapped to the simulated
// server by a private ssh config.
const DemoHost = "203.0.113.7"

// Profile is the simulated machine.
type Profile struct {
	Facts remote.Facts
	CPUs  int
	// sudoSet records that the operator set up passwordless sudo (the
	// rehearsal of a machine without it): the facts say so from then on.
	sudoSet *atomic.Bool
}

// OracleA1 is an Oracle Cloud VM.Standard.A1.Flex with 4 OCPUs and 24 GB:
// aarch64, Oracle Linux 9, a 200 GB boot volume on /dev/sda, UEFI, user opc
// with passwordless sudo.
func OracleA1(hostKeyLine string) Profile {
	const gb = int64(1000 * 1000 * 1000)
	const mib = int64(1 << 20)
	size := 200 * gb
	keyType, key, _ := strings.Cut(strings.TrimSpace(hostKeyLine), " ")
	fp, _ := remote.Fingerprint(key)
	return Profile{CPUs: 4, Facts: remote.Facts{
		Kernel:           "Linux",
		KernelRelease:    "5.15.0-207.156.6.el9uek.aarch64",
		Arch:             "aarch64",
		OSID:             "ol",
		OSPrettyName:     "Oracle Linux Server 9.4",
		User:             "opc",
		UID:              1000,
		HasSudo:          true,
		PasswordlessSudo: true,
		Tools:            []string{"blkid", "cpio", "curl", "lsblk", "setsid", "sudo", "tar"},
		SetsidWait:       true,
		// 24 GiB minus what the firmware and the kernel keep.
		MemTotalBytes:     24_350_000 * 1024,
		MemAvailableBytes: 22_900_000 * 1024,
		Disks: []remote.Disk{{
			Path: "/dev/sda", Model: "BlockVolume", SizeBytes: size, Type: "disk",
			Partitions: []remote.Partition{
				{Path: "/dev/sda1", SizeBytes: 100 * mib, Type: "part", FSType: "vfat", Mountpoints: []string{"/boot/efi"}},
				{Path: "/dev/sda2", SizeBytes: 1024 * mib, Type: "part", FSType: "xfs", Mountpoints: []string{"/boot"}},
				{Path: "/dev/sda3", SizeBytes: size - 1124*mib - mib, Type: "part", FSType: "LVM2_member"},
			},
		}},
		DiskLinks:        map[string]string{"/dev/disk/by-path/pci-0000:18:00.0-scsi-0:0:0:1": "/dev/sda"},
		UEFI:             true,
		Lockdown:         "none",
		Home:             "/home/opc",
		HomeFreeBytes:    160 * gb,
		Hostname:         "instance-20260114-1042",
		HostKeys:         []remote.HostKey{{Type: keyType, Key: key, Fingerprint: fp}},
		IPv4DefaultRoute: true,
		// The boot volume on virtio-scsi behind a virtio PCI function, the
		// NIC on virtio-net: what /sys shows on an A1 (Oracle Linux's UEK
		// builds virtio_pci in).
		DiskSysfs: map[string]string{"/dev/sda": "/sys/devices/pci0000:00/0000:00:04.0/virtio1/host2/target2:0:0/2:0:0:1/block/sda"},
		DiskDrivers: map[string][]remote.Driver{"/dev/sda": {
			{Module: "sd_mod", Name: "sd", Device: "2:0:0:1"},
			{Module: "virtio_scsi", Name: "virtio_scsi", Device: "virtio1"},
			{Module: "virtio_pci", Builtin: true, Name: "virtio-pci", Device: "0000:00:04.0"},
		}},
		RootDisks: []string{"/dev/sda"},
		NIC:       "enp0s6",
		NICDrivers: []remote.Driver{
			{Module: "virtio_net", Name: "virtio_net", Device: "virtio2"},
			{Module: "virtio_pci", Builtin: true, Name: "virtio-pci", Device: "0000:00:06.0"},
		},
		Cmdline:         "BOOT_IMAGE=(hd0,gpt2)/vmlinuz-5.15.0-207.156.6.el9uek.aarch64 root=/dev/mapper/ocivolume-root ro crashkernel=auto console=ttyAMA0,115200 rd.lvm.lv=ocivolume/root",
		ChassisAssetTag: "OracleCloud.com",
		SysVendor:       "QEMU",
		// opc's authorized_keys, as cloud-init writes it from the key
		// given when the instance was created (WithLoginKey adds the
		// demo's key); root's holds Oracle's "login as opc" refusal.
		AuthKeyFiles: map[string]string{
			"/home/opc/.ssh/authorized_keys": "read", "/home/opc/.ssh/authorized_keys2": "absent", "/etc/ssh/authorized_keys.d/opc": "absent",
			"/root/.ssh/authorized_keys": "read", "/root/.ssh/authorized_keys2": "absent", "/etc/ssh/authorized_keys.d/root": "absent",
		},
		AuthKeysWritable: true,
		AuthKeysModes: []remote.PathMode{
			{Path: "/home/opc", Mode: 0o700, UID: 1000}, {Path: "/home/opc/.ssh", Mode: 0o700, UID: 1000}, {Path: "/home/opc/.ssh/authorized_keys", Mode: 0o600, UID: 1000},
		},
		SSHD: map[string]string{"authorizedkeysfile": ".ssh/authorized_keys", "authorizedkeyscommand": "none", "strictmodes": "yes", "pubkeyauthentication": "yes", "maxauthtries": "6"},
	}}
}

// WithLoginKey puts the operator's public key (an authorized_keys line)
// into opc's ~/.ssh/authorized_keys and, behind Oracle's command= that
// tells root logins to use opc, into root's.
func (p *Profile) WithLoginKey(line string) {
	typ, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	blob, _, _ := strings.Cut(rest, " ")
	fp, err := remote.Fingerprint(blob)
	if err != nil {
		return
	}
	for _, file := range []string{"/home/opc/.ssh/authorized_keys", "/root/.ssh/authorized_keys"} {
		p.Facts.AuthKeys = append(p.Facts.AuthKeys, remote.AuthKey{File: file, Type: typ, Fingerprint: fp, Key: blob})
	}
}

// Handler answers the commands bigbang sends to the simulated VPS: the facts
// script with the profile, the reboot check as a freshly installed NixOS,
// anything else as a quiet success.
func (p Profile) Handler() sshexec.SimHandler {
	return func(command string, stdin io.Reader, stdout, stderr io.Writer) int {
		f := p.Facts
		if p.sudoSet != nil && p.sudoSet.Load() {
			f.PasswordlessSudo = true
		}
		switch {
		case command == sshexec.FactsCommand || strings.Contains(command, "facts_version"):
			_, _ = io.WriteString(stdout, remote.FormatFacts(f))
		case strings.Contains(command, "bigbang-sudoers"):
			// The sudoers line, written with the password typed once.
			_, _ = io.Copy(io.Discard, stdin)
			if p.sudoSet != nil {
				p.sudoSet.Store(true)
			}
		case strings.Contains(command, "nixos-version") || strings.Contains(command, "is-system-running"):
			fmt.Fprintln(stdout, "nixos_version=25.11.20260110.3c1c9f2 (Xantusia)")
			fmt.Fprintln(stdout, "state=running")
		case strings.Contains(command, "uid="):
			nopasswd := 0
			if f.PasswordlessSudo {
				nopasswd = 1
			}
			fmt.Fprintf(stdout, "uid=%d\nuser=%s\nsudo=1\nvisudo=1\nnopasswd=%d\n", f.UID, f.User, nopasswd)
		}
		return 0
	}
}
