package remote

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
)

const oracleFacts = `facts_version=1
kernel=Linux
kernel_release=5.15.0-oracle
arch=aarch64
os_id=ubuntu
os_variant_id=
os_pretty_name=Ubuntu 22.04.4 LTS
user=opc
uid=1000
has_sudo=1
sudo_nopasswd=1
has_doas=0
tool=tar
tool=cpio
tool=setsid
tool=curl
setsid_wait=1
container=none
mem_total_kb=24546780
mem_available_kb=23000000
lsblk={"blockdevices": [{"name": "sda", "model": "BlockVolume", "size": "50010783744", "type": "disk", "fstype": null, "mountpoint": null, "children": [{"name": "sda1", "model": null, "size": "104857600", "type": "part", "fstype": null, "mountpoint": "/boot/efi"}, {"name": "sda2", "size": "49905926144", "type": "part", "fstype": "ext4", "mountpoint": "/"}]}, {"name": "loop0", "size": "1000", "type": "loop"}]}
probe=DEVNAME=/dev/sda1
probe=UUID=AB-CD
probe=TYPE=vfat
mount=/dev/sda2 /
disk_link=/dev/disk/by-id/scsi-360abc /dev/sda
uefi=1
secure_boot=0
lockdown=[none] integrity confidentiality
kexec_load_disabled=0
home=/home/opc
home_free_kb=40000000
hostname=vps-arm
host_key=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFG9+urPvUOp2JdWiybf0PXjR4ZO4474YU2AElrKsALx root@vm
ipv4_default_route=0
ipv6_default_route=1
end=1
`

func TestParseFacts(t *testing.T) {
	f, err := ParseFacts(strings.NewReader(oracleFacts))
	if err != nil {
		t.Fatal(err)
	}
	if f.Arch != "aarch64" || f.IsRoot || !f.PasswordlessSudo || f.MemTotalBytes != 24546780*1024 || !f.UEFI || f.Lockdown != "none" {
		t.Errorf("facts: %+v", f)
	}
	if !f.IPv6Only {
		t.Error("IPv6Only not derived")
	}
	wantDisks := []Disk{{Path: "/dev/sda", Model: "BlockVolume", SizeBytes: 50010783744, Type: "disk", Partitions: []Partition{
		{Path: "/dev/sda1", SizeBytes: 104857600, Type: "part", FSType: "vfat", Mountpoints: []string{"/boot/efi"}},
		{Path: "/dev/sda2", SizeBytes: 49905926144, Type: "part", FSType: "ext4", Mountpoints: []string{"/"}},
	}}}
	if !reflect.DeepEqual(f.Disks, wantDisks) {
		t.Errorf("disks = %+v", f.Disks)
	}
	if d, ok := f.Disk("/dev/disk/by-id/scsi-360abc"); !ok || d.Path != "/dev/sda" {
		t.Errorf("by-id link not followed: %+v", d)
	}
	// The fingerprint ssh-keygen -l prints for this key.
	if len(f.HostKeys) != 1 || f.HostKeys[0].Fingerprint != "SHA256:K3P/HsdVqlkn9r64z0QUbiwlH5+LdSOAO5VR9JowBsk" {
		t.Errorf("host keys = %+v", f.HostKeys)
	}
	back, err := ParseFacts(strings.NewReader(FormatFacts(f)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, f) {
		t.Errorf("round trip:\n%+v\n%+v", back, f)
	}
}

// TestParseFactsDisks: the disks come from lsblk's tree or its flat list
// (partitions naming their disk in PKNAME), loop devices apart, and what
// lsblk could not read comes from blkid -p.
func TestParseFactsDisks(t *testing.T) {
	tree := `{"blockdevices":[{"path":"/dev/sda","pkname":null,"model":"BlockVolume ","size":53687091200,"type":"disk","fstype":null,"partlabel":null,"parttype":null,"pttype":"gpt","mountpoints":[null],
	  "children":[{"path":"/dev/sda1","pkname":"sda","model":null,"size":"536870912","type":"part","fstype":"vfat","partlabel":"disk-main-ESP","parttype":"C12A7328-F81F-11D2-BA4B-00A0C93EC93B","pttype":"gpt","mountpoints":["/boot"]}]},
	  {"path":"/dev/sr0","size":1024,"type":"rom"}]}`
	flat := `{"blockdevices":[{"path":"/dev/loop0","pkname":null,"size":104857600,"type":"loop","mountpoints":[null]},
	  {"path":"/dev/loop0p1","pkname":"loop0","size":33554432,"type":"part","mountpoints":[null]},
	  {"path":"/dev/vda","pkname":null,"size":10,"type":"disk"}]}`
	probe := "probe=DEVNAME=/dev/loop0\nprobe=PTUUID=x\nprobe=PTTYPE=gpt\nprobe=DEVNAME=/dev/loop0p1\nprobe=TYPE=vfat\n" +
		"probe=PART_ENTRY_NAME=my\\ disk\\ label\nprobe=PART_ENTRY_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n"
	show := func(disks []Disk) string {
		var out []string
		for _, d := range disks {
			s := strings.Join([]string{d.Path, d.Model, strconv.FormatInt(d.SizeBytes, 10), d.Table}, " ")
			for _, p := range d.Partitions {
				s += " [" + strings.Join([]string{p.Path, strconv.FormatInt(p.SizeBytes, 10), p.PartLabel, p.PartType, p.FSType, strings.Join(p.Mountpoints, ",")}, " ") + "]"
			}
			out = append(out, s)
		}
		return strings.Join(out, "|")
	}
	tests := []struct {
		name, lsblk, extra string
		disks, loops       string
	}{
		{name: "tree", lsblk: tree,
			disks: "/dev/sda BlockVolume 53687091200 gpt [/dev/sda1 536870912 disk-main-ESP c12a7328-f81f-11d2-ba4b-00a0c93ec93b vfat /boot]"},
		{name: "flat", lsblk: flat, disks: "/dev/vda  10 ", loops: "/dev/loop0  104857600  [/dev/loop0p1 33554432    ]"},
		{name: "flat, blkid -p", lsblk: flat, extra: probe, disks: "/dev/vda  10 ",
			loops: "/dev/loop0  104857600 gpt [/dev/loop0p1 33554432 my disk label c12a7328-f81f-11d2-ba4b-00a0c93ec93b vfat ]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFacts(strings.NewReader("facts_version=1\nuid=1000\nlsblk=" + strings.ReplaceAll(tt.lsblk, "\n", " ") + "\n" + tt.extra + "end=1\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := show(f.Disks); got != tt.disks {
				t.Errorf("disks\ngot  %q\nwant %q", got, tt.disks)
			}
			if got := show(f.Loops); got != tt.loops {
				t.Errorf("loops\ngot  %q\nwant %q", got, tt.loops)
			}
			for _, d := range f.Loops {
				if _, ok := f.Disk(d.Path); ok {
					t.Errorf("Disk(%s) found a loop device", d.Path)
				}
				if got, ok := f.Device(d.Path); !ok || got.Path != d.Path {
					t.Errorf("Device(%s) = %+v, %v", d.Path, got, ok)
				}
			}
			back, err := ParseFacts(strings.NewReader(FormatFacts(f)))
			if err != nil || !reflect.DeepEqual(back, f) {
				t.Errorf("round trip (%v):\n%+v\n%+v", err, back, f)
			}
		})
	}
}

func TestParseFactsErrors(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"truncated", "facts_version=1\narch=x86_64\n"},
		{"newer version", "facts_version=99\nend=1\n"},
		{"bad lsblk", "facts_version=1\nlsblk={not json\nend=1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseFacts(strings.NewReader(tt.in)); err == nil {
				t.Error("no error")
			}
		})
	}
}

func good() Facts {
	return Facts{Kernel: "Linux", Arch: "aarch64", OSID: "ubuntu", User: "opc", UID: 1000, HasSudo: true, PasswordlessSudo: true,
		Tools: []string{"cpio", "curl", "setsid", "tar"}, SetsidWait: true, MemTotalBytes: 24 << 30, MemAvailableBytes: 23 << 30,
		Disks: []Disk{{Path: "/dev/sda", SizeBytes: 50 << 30, Type: "disk"}}, UEFI: true, Lockdown: "none", Home: "/home/opc", HomeFreeBytes: 40 << 30}
}

func TestChecks(t *testing.T) {
	efi := true
	tests := []struct {
		name   string
		mutate func(f *Facts)
		exp    steps.TargetExpect
		id     string
		want   steps.Status
	}{
		{"all good", nil, steps.TargetExpect{System: "aarch64-linux", EFI: &efi, Disks: []steps.DiskNeed{{Device: "/dev/sda", MinSizeBytes: 10 << 30}}}, IDArch, steps.StatusOK},
		{"arch mismatch", nil, steps.TargetExpect{System: "x86_64-linux"}, IDArch, steps.StatusFail},
		{"arch unknown to the flake", nil, steps.TargetExpect{}, IDArch, steps.StatusSkip},
		{"unsupported arch", func(f *Facts) { f.Arch = "riscv64" }, steps.TargetExpect{}, IDArch, steps.StatusFail},
		{"not linux", func(f *Facts) { f.Kernel = "FreeBSD" }, steps.TargetExpect{}, IDOS, steps.StatusFail},
		{"installer", func(f *Facts) { f.OSID, f.OSVariantID = "nixos", "installer" }, steps.TargetExpect{}, IDInstaller, steps.StatusOK},
		{"installed nixos", func(f *Facts) { f.OSID = "nixos" }, steps.TargetExpect{}, IDInstaller, steps.StatusWarn},
		{"container", func(f *Facts) { f.Container = "lxc" }, steps.TargetExpect{}, IDContainer, steps.StatusFail},
		{"sudo needs a password", func(f *Facts) { f.PasswordlessSudo = false }, steps.TargetExpect{}, IDPrivilege, steps.StatusFail},
		{"no sudo nor doas", func(f *Facts) { f.PasswordlessSudo, f.HasSudo = false, false }, steps.TargetExpect{}, IDPrivilege, steps.StatusFail},
		{"doas", func(f *Facts) { f.PasswordlessSudo, f.HasSudo, f.PasswordlessDoas = false, false, true }, steps.TargetExpect{}, IDPrivilege, steps.StatusOK},
		{"root", func(f *Facts) { f.PasswordlessSudo, f.HasSudo, f.IsRoot = false, false, true }, steps.TargetExpect{}, IDPrivilege, steps.StatusOK},
		{"no cpio", func(f *Facts) { f.Tools = []string{"curl", "setsid", "tar"} }, steps.TargetExpect{}, IDTools, steps.StatusFail},
		{"busybox setsid", func(f *Facts) { f.SetsidWait = false }, steps.TargetExpect{}, IDTools, steps.StatusFail},
		{"no downloader", func(f *Facts) { f.Tools = []string{"cpio", "setsid", "tar"} }, steps.TargetExpect{}, IDTools, steps.StatusWarn},
		{"ram 0.9 GiB", func(f *Facts) { f.MemTotalBytes = 900 << 20 }, steps.TargetExpect{}, IDRAM, steps.StatusFail},
		{"ram 1.2 GiB", func(f *Facts) { f.MemTotalBytes = 1200 << 20 }, steps.TargetExpect{}, IDRAM, steps.StatusWarn},
		{"ram 1.5 GiB", func(f *Facts) { f.MemTotalBytes = RAMWarnBelow }, steps.TargetExpect{}, IDRAM, steps.StatusOK},
		{"default disk missing", func(f *Facts) { f.Disks[0].Path = "/dev/vda" }, steps.TargetExpect{}, IDDisk, steps.StatusFail},
		{"disk too small", nil, steps.TargetExpect{Disks: []steps.DiskNeed{{Device: "/dev/sda", MinSizeBytes: 100 << 30}}}, IDDisk, steps.StatusFail},
		{"efi config on bios", func(f *Facts) { f.UEFI = false }, steps.TargetExpect{EFI: &efi}, IDUEFI, steps.StatusFail},
		{"efi unknown", nil, steps.TargetExpect{}, IDUEFI, steps.StatusSkip},
		{"lockdown", func(f *Facts) { f.Lockdown = "integrity" }, steps.TargetExpect{}, IDLockdown, steps.StatusFail},
		{"secure boot", func(f *Facts) { f.SecureBoot = true }, steps.TargetExpect{}, IDLockdown, steps.StatusFail},
		{"kexec disabled", func(f *Facts) { f.KexecLoadDisabled = true }, steps.TargetExpect{}, IDLockdown, steps.StatusFail},
		{"home full", func(f *Facts) { f.HomeFreeBytes = 100 << 20 }, steps.TargetExpect{}, IDHomeSpace, steps.StatusFail},
		{"home tight", func(f *Facts) { f.HomeFreeBytes = 700 << 20 }, steps.TargetExpect{}, IDHomeSpace, steps.StatusWarn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := good()
			if tt.mutate != nil {
				tt.mutate(&f)
			}
			checks := Checks(f, tt.exp, CheckOptions{HostKeyOutcome: HostKeyKnown, HostKeyFingerprint: "SHA256:x"})
			if len(checks) != len(IDs) {
				t.Fatalf("%d checks, want %d", len(checks), len(IDs))
			}
			for i, c := range checks {
				if c.ID != IDs[i] {
					t.Errorf("check %d is %s, want %s", i, c.ID, IDs[i])
				}
				if (c.Status == steps.StatusFail || c.Status == steps.StatusWarn) && c.Fix == "" {
					t.Errorf("%s %s without a fix", c.ID, c.Status)
				}
				if c.ID == tt.id && c.Status != tt.want {
					t.Errorf("%s = %s (%s), want %s", c.ID, c.Status, c.Summary, tt.want)
				}
			}
		})
	}
	t.Run("ram above 1.5 GiB offers building on the target", func(t *testing.T) {
		c := Checks(good(), steps.TargetExpect{}, CheckOptions{})[8]
		if c.ID != IDRAM || !strings.Contains(c.Summary, "--build-on remote") {
			t.Errorf("%+v", c)
		}
	})
}

func TestUnreached(t *testing.T) {
	cs := Unreached(IDHostKey, "changed", "remove it")
	if cs[0].Status != steps.StatusFail || cs[0].Fix != "remove it" || steps.CountBlocking(cs) != 1 {
		t.Errorf("%+v", cs)
	}
}

// TestParseFactsNoDisks: a target whose lsblk printed nothing still reports
// a list of disks, empty, so that JSON readers can iterate over it.
func TestParseFactsNoDisks(t *testing.T) {
	f, err := ParseFacts(strings.NewReader("facts_version=1\narch=aarch64\nend=1\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"disks":[]`) {
		t.Fatalf("facts JSON without disks: %s", b)
	}
}
