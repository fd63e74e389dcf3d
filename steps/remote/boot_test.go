package remote

import (
	"reflect"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
)

// a1Facts is what the facts script prints on an Oracle A1 VM with its boot
// volume on virtio-scsi (the driver lines as /sys gives them).
const a1Facts = `facts_version=1
kernel=Linux
arch=aarch64
user=opc
uid=1000
uefi=1
lsblk={"blockdevices": [{"name": "sda", "size": "50010783744", "type": "disk"}]}
disk_sysfs=/dev/sda /sys/devices/pci0000:00/0000:00:04.0/virtio2/host2/target2:0:0/2:0:0:1/block/sda
disk_driver=/dev/sda sd_mod module sd 2:0:0:1
disk_driver=/dev/sda virtio_scsi module virtio_scsi virtio2
disk_driver=/dev/sda virtio-pci builtin virtio-pci 0000:00:04.0
root_disk=/dev/sda
nic=enp0s3
nic_driver=enp0s3 virtio_net module virtio_net virtio1
nic_driver=enp0s3 virtio-pci builtin virtio-pci 0000:00:03.0
iscsi_sessions=0
cmdline=BOOT_IMAGE=/vmlinuz root=UUID=x ro console=tty1 console=ttyAMA0 -- ignored console=ttyS9
chassis_asset_tag=OracleCloud.com
sys_vendor=QEMU
end=1
`

func a1(t *testing.T) Facts {
	t.Helper()
	f, err := ParseFacts(strings.NewReader(a1Facts))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestParseBootFacts(t *testing.T) {
	f := a1(t)
	want := []Driver{{Module: "sd_mod", Name: "sd", Device: "2:0:0:1"}, {Module: "virtio_scsi", Name: "virtio_scsi", Device: "virtio2"},
		{Module: "virtio_pci", Builtin: true, Name: "virtio-pci", Device: "0000:00:04.0"}}
	if !reflect.DeepEqual(f.DiskDrivers["/dev/sda"], want) {
		t.Errorf("disk drivers = %+v", f.DiskDrivers)
	}
	if f.NIC != "enp0s3" || len(f.NICDrivers) != 2 || f.NICDrivers[0].Module != "virtio_net" || !reflect.DeepEqual(f.RootDisks, []string{"/dev/sda"}) {
		t.Errorf("nic/root = %q %+v %v", f.NIC, f.NICDrivers, f.RootDisks)
	}
	if !f.IsOracle() {
		t.Error("OracleCloud.com asset tag not read as Oracle")
	}
	if got := Consoles(strings.Fields(f.Cmdline)); !reflect.DeepEqual(got, []string{"tty1", "ttyAMA0"}) {
		t.Errorf("consoles = %v (those after -- belong to init)", got)
	}
	back, err := ParseFacts(strings.NewReader(FormatFacts(f)))
	if err != nil || !reflect.DeepEqual(back, f) {
		t.Errorf("FormatFacts round trip: %v\n%+v\n%+v", err, back, f)
	}
}

func TestBootDriversCases(t *testing.T) {
	a1Modules := []string{"xhci_pci", "virtio_pci", "virtio_scsi", "usbhid", "sd_mod", "virtio_net"}
	tests := []struct {
		name   string
		mutate func(*Facts)
		exp    steps.TargetExpect
		status steps.Status
		words  []string
	}{
		{"A1 with the quickstart's modules", nil, steps.TargetExpect{InitrdModules: a1Modules, KernelParams: []string{"console=ttyAMA0"}},
			steps.StatusOK, []string{"sd_mod, virtio_scsi, virtio_pci", "enp0s3", "ttyAMA0"}},
		{"the flake's disko disk, by id", func(f *Facts) {
			f.DiskLinks = map[string]string{"/dev/disk/by-id/scsi-0": "/dev/sda"}
			f.RootDisks = nil
		}, steps.TargetExpect{Disks: []steps.DiskNeed{{Device: "/dev/disk/by-id/scsi-0"}}, InitrdModules: []string{"virtio_pci", "sd_mod"}},
			steps.StatusFail, []string{"virtio_scsi", "/dev/sda", `[ "virtio_scsi" ]`}},
		{"virtio_pci built in here still needed", nil, steps.TargetExpect{InitrdModules: []string{"virtio_scsi", "sd_mod", "virtio_net"}},
			steps.StatusFail, []string{"virtio_pci", "built into the running kernel"}},
		{"iSCSI boot volume", func(f *Facts) {
			f.DiskSysfs["/dev/sda"] = "/sys/devices/platform/host2/session1/target2:0:0/2:0:0:1/block/sda"
		}, steps.TargetExpect{InitrdModules: a1Modules}, steps.StatusWarn, []string{"iSCSI", "paravirtualized"}},
		{"canTouchEfiVariables on Oracle, systemd-boot", nil, steps.TargetExpect{InitrdModules: a1Modules, EFICanTouch: true, SystemdBoot: true},
			steps.StatusWarn, []string{"canTouchEfiVariables", "Oracle", "canTouchEfiVariables = false;", "systemd-boot installs the fallback"}},
		{"canTouchEfiVariables on Oracle, GRUB", nil, steps.TargetExpect{InitrdModules: a1Modules, EFICanTouch: true},
			steps.StatusWarn, []string{"efiInstallAsRemovable = true"}},
		{"canTouchEfiVariables elsewhere", func(f *Facts) { f.ChassisAssetTag = "" }, steps.TargetExpect{InitrdModules: a1Modules, EFICanTouch: true},
			steps.StatusOK, nil},
		{"console on the wrong port", nil, steps.TargetExpect{InitrdModules: a1Modules, KernelParams: []string{"console=ttyS0,115200"}},
			steps.StatusWarn, []string{"console=ttyS0", "ttyAMA0", "Oracle's console connection"}},
		{"x86_64 without console=", func(f *Facts) {
			f.Arch = "x86_64"
			f.Cmdline = "ro console=ttyS0,9600"
		}, steps.TargetExpect{InitrdModules: a1Modules, KernelParams: []string{}},
			steps.StatusWarn, []string{"no console=", `"console=ttyS0"`}},
		{"no drivers read", func(f *Facts) { f.DiskDrivers, f.RootDisks = nil, nil }, steps.TargetExpect{InitrdModules: a1Modules},
			steps.StatusSkip, []string{"could not be read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := a1(t)
			if tt.mutate != nil {
				tt.mutate(&f)
			}
			c := checkBootDrivers(f, tt.exp)
			if c.ID != IDBootDrivers || c.Status != tt.status {
				t.Fatalf("%s = %s, want %s: %s (fix: %s)", c.ID, c.Status, tt.status, c.Summary, c.Fix)
			}
			for _, w := range tt.words {
				if !strings.Contains(c.Summary+" "+c.Fix, w) {
					t.Errorf("does not say %q: %s / %s", w, c.Summary, c.Fix)
				}
			}
			if c.Status != steps.StatusOK && c.Status != steps.StatusSkip && c.Fix == "" {
				t.Errorf("%s without a fix", c.Status)
			}
		})
	}
}

func TestOracleWording(t *testing.T) {
	f := a1(t)
	f.Arch = "x86_64"
	if c := checkArch(f, steps.TargetExpect{System: "aarch64-linux"}); c.Status != steps.StatusFail || !strings.Contains(c.Fix, "VM.Standard.A1.Flex") {
		t.Errorf("arch: %s %s", c.Status, c.Fix)
	}
	f.MemTotalBytes = 1000 << 20
	if c := checkRAM(f); c.Status != steps.StatusFail || !strings.Contains(c.Fix, "E2.1.Micro") {
		t.Errorf("ram: %s %s", c.Status, c.Fix)
	}
}
