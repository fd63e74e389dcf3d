package steps

// Status is the verdict of one preflight check.
type Status string

// The check statuses of the JSON contract.
const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn"
	StatusFail Status = "fail"
	StatusSkip Status = "skip"
)

// Check is the result of one preflight check. ID is part of the contract
// (for example "remote.ram" or "local.flake"); Summary is one line; Fix says
// what to do when the status is warn or fail.
type Check struct {
	ID      string `json:"id"`
	Status  Status `json:"status"`
	Summary string `json:"summary"`
	Fix     string `json:"fix"`
}

// Blocking reports whether the check stops an install.
func (c Check) Blocking() bool { return c.Status == StatusFail }

// CountBlocking returns how many checks block an install.
func CountBlocking(checks []Check) int {
	n := 0
	for _, c := range checks {
		if c.Blocking() {
			n++
		}
	}
	return n
}

// Diagnosis explains a failure in words an operator understands: a stable
// ID, a one-line summary of what went wrong and the remedy.
type Diagnosis struct {
	ID      string `json:"id"`
	Summary string `json:"summary"`
	Remedy  string `json:"remedy"`
}

// DiskNeed is one disk the flake's disko layout will use, and the smallest
// size that layout fits on.
type DiskNeed struct {
	Device       string `json:"device"`
	MinSizeBytes int64  `json:"min_size_bytes"`
}

// TargetExpect is what the flake says the target must be, fed from the local
// flake evaluation to the remote checks. Zero values mean "not known": the
// check that needs it is skipped and says so.
type TargetExpect struct {
	System string     // e.g. "aarch64-linux"
	Disks  []DiskNeed // from the disko layout
	EFI    *bool      // the configuration boots with EFI

	// InitrdModules are the kernel modules the flake's initrd can load
	// (boot.initrd.availableKernelModules + boot.initrd.kernelModules);
	// nil: not known.
	InitrdModules []string
	// InitrdNetwork is boot.initrd.network.enable: the initrd needs the
	// NIC's driver too.
	InitrdNetwork bool
	// KernelParams is boot.kernelParams (where console= is); nil: not
	// known.
	KernelParams []string
	// EFICanTouch is boot.loader.efi.canTouchEfiVariables.
	EFICanTouch bool
	// GrubEFIRemovable is boot.loader.grub.efiInstallAsRemovable.
	GrubEFIRemovable bool
	// SystemdBoot says the boot loader is systemd-boot, which also
	// installs the firmware's fallback path.
	SystemdBoot bool
}
