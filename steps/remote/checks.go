package remote

import (
	"fmt"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
)

// The check IDs of the remote preflight; `bigbang check --output json` and
// the UI rely on them.
const (
	IDHostKey   = "remote.hostkey"
	IDAuth      = "remote.auth"
	IDOS        = "remote.os"
	IDArch      = "remote.arch"
	IDInstaller = "remote.installer"
	IDContainer = "remote.container"
	IDPrivilege = "remote.privilege"
	IDTools     = "remote.tools"
	IDRAM       = "remote.ram"
	IDDisk      = "remote.disk"
	IDUEFI      = "remote.uefi"
	IDLockdown  = "remote.lockdown"
	IDHomeSpace = "remote.home_space"
)

// IDs lists every remote check ID in the order Checks returns them.
var IDs = []string{IDHostKey, IDAuth, IDOS, IDArch, IDInstaller, IDContainer, IDPrivilege,
	IDTools, IDRAM, IDDisk, IDUEFI, IDLockdown, IDHomeSpace, IDBootDrivers, IDRootKeys}

// Thresholds of the checks. kexec unpacks the installer into RAM, so the
// RAM limits are those nixos-anywhere documents (1.5 GB, ~1 GB only with
// --no-disko-deps); the kexec tarball is unpacked in $HOME/kexec.
const (
	RAMFailBelow       int64 = 1 << 30
	RAMWarnBelow       int64 = 3 << 29 // 1.5 GiB
	HomeSpaceFailBelow int64 = 512 << 20
	HomeSpaceWarnBelow int64 = 1 << 30
)

// DefaultDisk is the device the install wipes when the flake's disko layout
// is not known: the first disk of an Oracle Cloud VM.
const DefaultDisk = "/dev/sda"

// HostKeyOutcome says how the target's host key was trusted.
type HostKeyOutcome string

// The ways a host key was trusted.
const (
	HostKeyKnown    HostKeyOutcome = "known"    // it was in known_hosts
	HostKeyAccepted HostKeyOutcome = "accepted" // new, accepted by the operator and saved
)

// CheckOptions carries what the connection itself established, which the
// facts cannot tell.
type CheckOptions struct {
	HostKeyOutcome     HostKeyOutcome
	HostKeyType        string // e.g. "ssh-ed25519"
	HostKeyFingerprint string // "SHA256:…"
	KnownHostsFile     string
	LoginUser          string
	AuthMethod         string // e.g. "key ~/.ssh/id_ed25519" or "agent key …"
	// AuthKeyFingerprint is the SHA256 fingerprint of the key the target
	// accepted, AuthKeyFile the key file it came from ("" for an agent
	// key): remote.root_keys looks for it in the files that travel to
	// root.
	AuthKeyFingerprint string
	AuthKeyFile        string
	// Identity is the key file nixos-anywhere gets with -i ("" when it
	// makes its own install key), IdentityAccepted that it is the key the
	// target accepted (AuthKeyFile is that file); SkipKexec says the run's
	// phases leave kexec out (it then logs in to root@ directly). Host
	// is the target as the operator names it, for the fixes.
	Identity         string
	IdentityAccepted bool
	SkipKexec        bool
	Host             string
}

// Checks runs the remote preflight over the facts gathered on the target,
// against what the flake expects. Every warn and fail carries a fix.
func Checks(f Facts, exp steps.TargetExpect, opts CheckOptions) []steps.Check {
	return []steps.Check{
		checkHostKey(opts),
		checkAuth(f, opts),
		checkOS(f),
		checkArch(f, exp),
		checkInstaller(f),
		checkContainer(f),
		checkPrivilege(f),
		checkTools(f),
		checkRAM(f),
		checkDisk(f, exp),
		checkUEFI(f, exp),
		checkLockdown(f),
		checkHomeSpace(f),
		checkBootDrivers(f, exp),
		checkRootKeys(f, opts),
	}
}

// Unreached returns the remote checks when the target could not be reached
// or trusted: failedID (remote.hostkey or remote.auth) fails with summary
// and fix, and every check that needed facts is skipped.
func Unreached(failedID, summary, fix string) []steps.Check {
	out := make([]steps.Check, 0, len(IDs))
	for _, id := range IDs {
		c := steps.Check{ID: id, Status: steps.StatusSkip, Summary: "not checked: the target was not reached"}
		if id == failedID {
			c = steps.Check{ID: id, Status: steps.StatusFail, Summary: summary, Fix: fix}
		}
		out = append(out, c)
	}
	return out
}

func ok(id, format string, args ...any) steps.Check {
	return steps.Check{ID: id, Status: steps.StatusOK, Summary: fmt.Sprintf(format, args...)}
}

func skip(id, format string, args ...any) steps.Check {
	return steps.Check{ID: id, Status: steps.StatusSkip, Summary: fmt.Sprintf(format, args...)}
}

func warn(id, summary, fix string) steps.Check {
	return steps.Check{ID: id, Status: steps.StatusWarn, Summary: summary, Fix: fix}
}

func fail(id, summary, fix string) steps.Check {
	return steps.Check{ID: id, Status: steps.StatusFail, Summary: summary, Fix: fix}
}

func checkHostKey(o CheckOptions) steps.Check {
	key := strings.TrimSpace(strings.TrimPrefix(o.HostKeyType, "ssh-") + " " + o.HostKeyFingerprint)
	switch o.HostKeyOutcome {
	case HostKeyKnown:
		return ok(IDHostKey, "host key %s matches known_hosts", key)
	case HostKeyAccepted:
		return ok(IDHostKey, "new host key %s accepted and saved to %s", key, o.KnownHostsFile)
	}
	return skip(IDHostKey, "host key not checked")
}

func checkAuth(f Facts, o CheckOptions) steps.Check {
	user := f.User
	if user == "" {
		user = o.LoginUser
	}
	if o.AuthMethod != "" {
		return ok(IDAuth, "logged in as %s with %s", user, o.AuthMethod)
	}
	return ok(IDAuth, "logged in as %s", user)
}

func checkOS(f Facts) steps.Check {
	if f.Kernel != "" && f.Kernel != "Linux" {
		return fail(IDOS, fmt.Sprintf("the target runs %s, not Linux: nixos-anywhere's kexec needs a Linux kernel", f.Kernel),
			"reinstall the VPS with any Linux image (e.g. Ubuntu or Oracle Linux) from the provider's console, then run again")
	}
	name := f.OSPrettyName
	if name == "" {
		name = f.OSID
	}
	if name == "" {
		name = "an unknown distribution (no /etc/os-release)"
	}
	return ok(IDOS, "Linux %s: %s", f.KernelRelease, name)
}

// NixSystem maps `uname -m` to the Nix system name of a Linux target.
func NixSystem(arch string) string {
	switch arch {
	case "x86_64", "amd64":
		return "x86_64-linux"
	case "aarch64", "arm64":
		return "aarch64-linux"
	}
	return ""
}

func checkArch(f Facts, exp steps.TargetExpect) steps.Check {
	sys := NixSystem(f.Arch)
	if sys == "" {
		return fail(IDArch, fmt.Sprintf("the target's CPU is %q: nixos-anywhere's kexec installer exists for x86_64 and aarch64 only", f.Arch),
			"choose an x86_64 or aarch64 (Ampere) VPS shape")
	}
	if exp.System == "" {
		return skip(IDArch, "target is %s; the flake's system is not known, so it was not compared", sys)
	}
	if exp.System != sys {
		return fail(IDArch, fmt.Sprintf("the flake builds %s but the target is %s", exp.System, sys),
			archFix(sys, exp.System))
	}
	return ok(IDArch, "target is %s, as the flake expects", sys)
}

// archFix says how to make the flake and the target agree; an aarch64
// flake meets an x86_64 target when the Oracle instance was created with
// the default AMD shape instead of an Ampere one.
func archFix(target, flake string) string {
	fix := fmt.Sprintf("set nixpkgs.hostPlatform = \"%s\" in the configuration (or pick the attribute built for it), or use a %s VPS", target, flake)
	if flake == "aarch64-linux" && target == "x86_64-linux" {
		fix += " (on Oracle Cloud: create a VM.Standard.A1.Flex instance, the Ampere shape, and install onto that)"
	}
	return fix
}

func checkInstaller(f Facts) steps.Check {
	switch {
	case f.IsInstaller():
		return ok(IDInstaller, "the target already runs the NixOS installer: kexec will be skipped")
	case f.OSID == "nixos":
		return warn(IDInstaller, "the target already runs NixOS (not the installer): installing wipes it",
			"make sure this is the machine you mean to reinstall; `bigbang reinstall` backs up /persistent first")
	}
	return ok(IDInstaller, "not yet NixOS: kexec will boot the NixOS installer in RAM")
}

func checkContainer(f Facts) steps.Check {
	if f.Container != "" {
		return fail(IDContainer, fmt.Sprintf("the target is a %s container: kexec cannot replace its kernel", f.Container),
			"install onto a full virtual machine or bare metal, not a container")
	}
	return ok(IDContainer, "not a container")
}

// SudoersLine is the seed's prerequisite for a non-root login user.
const SudoersLine = `echo "$(whoami) ALL=(ALL) NOPASSWD:ALL" | sudo tee /etc/sudoers.d/90-nixos-anywhere`

func checkPrivilege(f Facts) steps.Check {
	switch {
	case f.IsRoot:
		return ok(IDPrivilege, "logged in as root")
	case f.PasswordlessSudo:
		return ok(IDPrivilege, "%s has passwordless sudo", f.User)
	case f.PasswordlessDoas:
		return ok(IDPrivilege, "%s has passwordless doas", f.User)
	case f.HasSudo:
		return fail(IDPrivilege, fmt.Sprintf("%s needs a password for sudo: nixos-anywhere cannot type it", f.User),
			"let `bigbang install` set up passwordless sudo (password typed once, never stored), or run on the target: "+SudoersLine)
	}
	return fail(IDPrivilege, fmt.Sprintf("%s is not root and has neither sudo nor doas", f.User),
		"log in as root (--user root) or install sudo on the target and give the user passwordless sudo")
}

func checkTools(f Facts) steps.Check {
	if f.IsInstaller() {
		return ok(IDTools, "the NixOS installer brings its own tools")
	}
	var missing []string
	for _, t := range []string{"tar", "cpio"} {
		if !f.HasTool(t) {
			missing = append(missing, t)
		}
	}
	if !f.SetsidWait {
		missing = append(missing, "setsid --wait")
	}
	if len(missing) > 0 {
		return fail(IDTools, "missing on the target: "+strings.Join(missing, ", ")+" (kexec needs them)",
			"install them on the target (Debian/Ubuntu: apt-get install tar cpio util-linux; Oracle Linux: dnf install tar cpio util-linux)")
	}
	if !f.HasTool("curl") && !f.HasTool("wget") {
		return warn(IDTools, "neither curl nor wget on the target: the kexec tarball will be uploaded from this machine",
			"install curl on the target to download it there (faster on a slow uplink)")
	}
	return ok(IDTools, "tar, cpio, setsid --wait and a downloader are present")
}

// GiB formats a byte count in GiB with one decimal.
func GiB(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

func checkRAM(f Facts) steps.Check {
	m := f.MemTotalBytes
	switch {
	case m <= 0:
		return warn(IDRAM, "the target's memory could not be read", "pass --ram with the VPS's RAM (e.g. --ram 24G)")
	case m < RAMFailBelow:
		return fail(IDRAM, fmt.Sprintf("%s RAM: the kexec installer needs at least 1.5 GiB and usually runs out of memory below 1 GiB", GiB(m)),
			"choose a shape with more RAM (on Oracle Cloud the 1 GB VM.Standard.E2.1.Micro is too small: a VM.Standard.A1.Flex (Ampere) is in the free tier with up to 24 GB); "+
				"at ~1 GiB only --no-disko-deps with services stopped has a chance")
	case m < RAMWarnBelow:
		return warn(IDRAM, fmt.Sprintf("%s RAM: below the 1.5 GiB nixos-anywhere asks for; kexec may run out of memory", GiB(m)),
			"use a bigger shape if you can; otherwise pass --no-disko-deps and build locally (--build-on local)")
	}
	return ok(IDRAM, "%s RAM (%s available): enough for kexec; the system can also be built on the target (--build-on remote)", GiB(m), GiB(f.MemAvailableBytes))
}

func describeDisks(f Facts) string {
	if len(f.Disks) == 0 {
		return "no disks"
	}
	var parts []string
	for _, d := range f.Disks {
		parts = append(parts, fmt.Sprintf("%s (%s)", d.Path, GiB(d.SizeBytes)))
	}
	return strings.Join(parts, ", ")
}

func checkDisk(f Facts, exp steps.TargetExpect) steps.Check {
	needs := exp.Disks
	if len(needs) == 0 {
		needs = []steps.DiskNeed{{Device: DefaultDisk}}
	}
	var found []string
	for _, n := range needs {
		d, ok := f.Disk(n.Device)
		if !ok {
			return fail(IDDisk, fmt.Sprintf("disko expects %s but the target has %s", n.Device, describeDisks(f)),
				"set the disk's device in your disko layout (disko.devices.disk.<name>.device) to the target's disk, e.g. "+firstDisk(f))
		}
		if n.MinSizeBytes > 0 && d.SizeBytes < n.MinSizeBytes {
			return fail(IDDisk, fmt.Sprintf("%s is %s but the disko layout needs at least %s", n.Device, GiB(d.SizeBytes), GiB(n.MinSizeBytes)),
				"shrink the fixed-size partitions of the disko layout or grow the boot volume in the provider's console")
		}
		desc := fmt.Sprintf("%s %s", n.Device, GiB(d.SizeBytes))
		if d.Model != "" {
			desc += " " + d.Model
		}
		found = append(found, desc)
	}
	return ok(IDDisk, "%s present and large enough (it will be wiped)", strings.Join(found, ", "))
}

func firstDisk(f Facts) string {
	for _, d := range f.Disks {
		if d.SizeBytes > 0 {
			return d.Path
		}
	}
	return DefaultDisk
}

func checkUEFI(f Facts, exp steps.TargetExpect) steps.Check {
	mode := "BIOS"
	if f.UEFI {
		mode = "UEFI"
	}
	switch {
	case exp.EFI == nil:
		return skip(IDUEFI, "target booted with %s; the flake's boot loader is not known, so it was not compared", mode)
	case *exp.EFI && !f.UEFI:
		return fail(IDUEFI, "the configuration boots with EFI but the target booted in legacy BIOS mode",
			"use a BIOS boot loader (boot.loader.grub.device with a BIOS boot partition) or a UEFI VM shape")
	case !*exp.EFI && f.UEFI:
		return warn(IDUEFI, "the target boots with UEFI but the configuration has no EFI boot loader",
			"enable an EFI boot loader (boot.loader.systemd-boot.enable or grub.efiSupport) with an ESP in the disko layout")
	}
	return ok(IDUEFI, "target boots with %s, as the configuration expects", mode)
}

func checkLockdown(f Facts) steps.Check {
	if f.IsInstaller() {
		return ok(IDLockdown, "already in the installer: no kexec needed")
	}
	var why []string
	if f.Lockdown == "integrity" || f.Lockdown == "confidentiality" {
		why = append(why, "kernel lockdown is "+f.Lockdown)
	}
	if f.SecureBoot {
		why = append(why, "Secure Boot is on")
	}
	if f.KexecLoadDisabled {
		why = append(why, "kernel.kexec_load_disabled is 1")
	}
	if len(why) > 0 {
		return fail(IDLockdown, strings.Join(why, ", ")+": kexec will be refused",
			"turn Secure Boot off in the provider's console (Oracle: shielded instance settings) and reboot, or boot a NixOS installer image instead")
	}
	return ok(IDLockdown, "kexec is allowed (no lockdown, no Secure Boot)")
}

func checkHomeSpace(f Facts) steps.Check {
	if f.IsInstaller() {
		return ok(IDHomeSpace, "already in the installer: nothing is unpacked in $HOME")
	}
	free := f.HomeFreeBytes
	switch {
	case free < HomeSpaceFailBelow:
		return fail(IDHomeSpace, fmt.Sprintf("only %s free in %s: the kexec installer is unpacked there", GiB(free), f.Home),
			"free at least 1 GiB in the login user's home (e.g. remove old packages or logs)")
	case free < HomeSpaceWarnBelow:
		return warn(IDHomeSpace, fmt.Sprintf("%s free in %s: tight for unpacking the kexec installer", GiB(free), f.Home),
			"free at least 1 GiB in the login user's home")
	}
	return ok(IDHomeSpace, "%s free in %s", GiB(free), f.Home)
}
