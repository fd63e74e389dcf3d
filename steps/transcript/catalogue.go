package transcript

import (
	"math/bits"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
)

// The diagnosis catalogue: what went wrong, in the operator's words, and what
// to do about it. The IDs are stable (tests, docs and the JSON output use
// them); the texts may be improved.
var catalogue = []steps.Diagnosis{
	// connect
	{ID: "sudo-password",
		Summary: "sudo on the target asked for a password, and nixos-anywhere cannot type one (it has no terminal).",
		Remedy:  "Give the login user passwordless sudo on the target: echo \"$(whoami) ALL=(ALL) NOPASSWD:ALL\" | sudo tee /etc/sudoers.d/90-nixos-anywhere — or log in as root — then run the install again."},
	{ID: "too-many-auth",
		Summary: "The target closed the connection with \"Too many authentication failures\": the SSH agent offered too many keys before the right one.",
		Remedy:  "Name the key to use with -i <key file> (bigbang passes it on to nixos-anywhere), or remove keys from the agent with ssh-add -D, then run the install again."},
	{ID: "key-mode",
		Summary: "ssh refused the private key file because other users can read it (mode 0644 or wider), so the run stopped without logging in.",
		Remedy:  "Restrict the key file: chmod 600 <key file>, then run the install again."},
	{ID: "keys-skipped",
		Summary: "ssh-copy-id skipped the install key (\"All keys were skipped\"), so root on the installer does not have it and asked for a password after kexec.",
		Remedy:  "Pass the key you log in with explicitly (-i <key file>) so nixos-anywhere installs that one; resume with --phases disko,install,reboot against root@host once root accepts it."},
	{ID: "authorized-keys-readonly",
		Summary: "The install key could not be added: the login user's ~/.ssh/authorized_keys on the target is read-only (often a link into /nix/store made by home-manager).",
		Remedy:  "On the target, replace ~/.ssh/authorized_keys with a normal writable file that already holds your key (or log in as root), then run the install again."},
	{ID: "login-denied",
		Summary: "The target refused the SSH login (Permission denied): none of the offered keys is authorised for this user.",
		Remedy:  "Check the user (--user) and the key (-i <key file>): ssh -i <key file> user@host must log in without a password. Then run the install again."},
	{ID: "target-unreachable",
		Summary: "The target could not be reached over SSH (connection refused, timed out, no route or unknown host name).",
		Remedy:  "Check the address and port, that sshd runs, and that the provider's firewall or security list allows port 22 from here; then run the install again."},
	{ID: "facts-failed",
		Summary: "nixos-anywhere logged in but could not read the target's facts (OS, architecture, tools), so it stopped.",
		Remedy:  "Run it once more with --debug to see the failing command; make sure the login user has a POSIX sh and passwordless sudo."},
	{ID: "target-missing-tools",
		Summary: "The target lacks a tool the kexec step needs (tar, cpio, or a setsid that supports --wait).",
		Remedy:  "Install the missing package on the target (for example apt-get install tar cpio util-linux), then run the install again."},
	{ID: "unsupported-target",
		Summary: "The target is not a Linux machine on x86_64 or aarch64, which the default kexec image needs.",
		Remedy:  "Use a Linux x86_64 or aarch64 target (Oracle Ampere is aarch64), or boot a NixOS installer image and install with --phases disko,install,reboot."},
	{ID: "ssh-controlmaster-hang",
		Summary: "The run stalled on an SSH connection: a ControlMaster/ControlPath setting in your ssh config makes nixos-anywhere's connections hang (right after 'Gathering machine facts' or during the closure copy).",
		Remedy:  "Turn connection sharing off for this host (--ssh-option ControlMaster=no, or remove ControlMaster/ControlPath from ~/.ssh/config for it), then run the install again."},
	// build
	{ID: "cross-build",
		Summary: "This machine cannot build the target's system (it needs an aarch64-linux builder and this machine is another architecture).",
		Remedy:  "Build on the target with --build-on remote (needs enough RAM there), or enable binfmt emulation (boot.binfmt.emulatedSystems) or a remote builder for aarch64-linux."},
	{ID: "flake-attribute",
		Summary: "The flake has no such nixosConfigurations attribute, so there is nothing to install.",
		Remedy:  "Check the name after # in --flake (nix flake show lists the configurations), then run the install again."},
	{ID: "nix-build-failed",
		Summary: "Building the system failed (a Nix build error).",
		Remedy:  "Read the first 'error:' lines above the failure; build the configuration on its own (nix build .#nixosConfigurations.<name>.config.system.build.toplevel) until it succeeds, then run the install again."},
	// kexec
	{ID: "kexec-oom",
		Summary: "The target ran out of memory while loading the NixOS installer into RAM (kexec).",
		Remedy:  "Use a shape with more RAM (at least 1.5 GB free; Oracle's 1 GB E2.1.Micro usually fails), or try --no-disko-deps after stopping services to free memory."},
	{ID: "kexec-no-room",
		Summary: "The kernel found no room to load the installer (kexec: Address not available or Invalid argument), typical of small-memory machines and some newer distribution kernels.",
		Remedy:  "Use a shape with more RAM, or reinstall the target with an older distribution release (for example Ubuntu 24.04) before running nixos-anywhere again."},
	{ID: "kexec-no-space",
		Summary: "There was no space left in the login user's home on the target to unpack the kexec tarball.",
		Remedy:  "Free space in the login user's home on the target (the tarball unpacks into $HOME/kexec, several hundred MB), then run the install again."},
	{ID: "secure-boot",
		Summary: "The target's kernel refused to load the installer: Secure Boot or kernel lockdown forbids kexec.",
		Remedy:  "Disable Secure Boot in the provider's console (shielded instance settings), or boot a NixOS installer image and install with --phases disko,install,reboot."},
	{ID: "kexec-old-kernel",
		Summary: "The target's kernel refused or lacks the kexec system call the installer image uses: an old kernel (CentOS 7, other 3.x kernels, legacy BIOS machines without Secure Boot) rather than Secure Boot.",
		Remedy:  "Use a kexec image built for old kernels (--kexec URL), or upgrade the target's kernel or distribution first, or boot a NixOS installer image and install with --phases disko,install,reboot."},
	{ID: "kexec-busy",
		Summary: "The target's kernel could not switch into the installer (kexec: Resource busy, CPUs stuck in the kernel).",
		Remedy:  "Reboot the target and run the install again right away; if it persists, boot a NixOS installer image from the provider's console and install with --phases disko,install,reboot."},
	{ID: "installer-no-network",
		Summary: "The machine switched into the NixOS installer but never came back on the network (timeouts, no route to host).",
		Remedy:  "Open the provider's serial console: if the installer runs without network or on another IP, fix the network (or use the new IP) and resume with --phases disko,install,reboot against root@host; otherwise reboot the machine from the console."},
	{ID: "kexec-failed",
		Summary: "Switching the target into the NixOS installer (kexec) failed.",
		Remedy:  "Read the kexec output above (and $HOME/kexec/nixos-anywhere.log on the target); check RAM (at least 1.5 GB), Secure Boot and free space in $HOME, then run the install again."},
	{ID: "root-permission-denied",
		Summary: "After kexec the installer refused root's login: your key was only in the old system's per-user keys (for example /etc/ssh/authorized_keys.d/$USER), not root's.",
		Remedy:  "Make sure root accepts your key before the install (or pass -i <key file>), then resume with --phases disko,install,reboot against root@host."},
	{ID: "nix-untrusted-path",
		Summary: "The installer's Nix refused a store path because it lacks a signature by a trusted key: the user nixos-anywhere logs in as is not a trusted Nix user there (typical of nixos@ on the NixOS installer ISO).",
		Remedy:  "Log in as root (root@host; give root your key first), or add the login user to nix.settings.trusted-users on the installer, then run the install again."},
	{ID: "installer-low-memory",
		Summary: "The NixOS installer ran low on memory: its Nix store lives in RAM, and Nix started garbage collecting (running auto-GC) or the copy stalled while it was filling.",
		Remedy:  "Use a shape with more RAM (at least 1.5 GB free after kexec), or pass --no-disko-deps and build locally (--build-on local) so less goes into the installer, then run the install again."},
	// disko
	{ID: "disko-layout",
		Summary: "disko could not partition the disk: the layout does not fit it, or the device named in disko.nix does not exist on this machine.",
		Remedy:  "Compare the device and sizes in disko.nix with lsblk on the target (bigbang check shows them); use a stable device path and a layout that fits, then resume with --phases disko,install,reboot."},
	{ID: "disk-busy",
		Summary: "disko could not format the disk because something still uses it (a mounted filesystem, often left by an earlier attempt).",
		Remedy:  "Reboot the installer (or unmount /mnt and stop swap/LVM/RAID on that disk), then resume with --phases disko,install,reboot."},
	{ID: "disko-tool-crash",
		Summary: "A disk tool crashed while disko ran (for example partprobe: Bus error).",
		Remedy:  "Check that the disk device in disko.nix is right for this machine (e.g. /dev/xvda on Xen, /dev/sda, /dev/nvme0n1); reboot the installer and resume with --phases disko,install,reboot."},
	// keys
	{ID: "extra-files-rsync",
		Summary: "Copying the extra files (the host keys) failed: the rsync-based copy of older nixos-anywhere versions crashed.",
		Remedy:  "Use nixos-anywhere 1.13.0 (bigbang's default), which copies the extra files with tar, then resume with --phases install,reboot."},
	{ID: "extra-files-copy",
		Summary: "Copying the extra files (the host keys) into the new system failed.",
		Remedy:  "Check the --extra-files folder (readable, no broken links) and free space on the target, then resume with --phases install,reboot."},
	// install
	{ID: "boot-loader",
		Summary: "Installing the boot loader failed; nixos-anywhere still printed 'installation finished!' and 'Done!', but the machine will probably not boot.",
		Remedy:  "Do not trust Done!: fix the boot loader configuration (systemd-boot needs an EFI system partition on a partitioned disk, GRUB needs the right device or efiSupport), then resume with --phases install,reboot or reinstall."},
	{ID: "sops-decrypt",
		Summary: "sops-nix could not decrypt the secrets at activation: the new host key is not a recipient of secrets.yaml.",
		Remedy:  "Add the host key's age recipient (bigbang keys shows it) to .sops.yaml, run sops updatekeys secrets.yaml, then resume with --phases install,reboot."},
	{ID: "activation-failed",
		Summary: "An activation script of the new system failed during installation; the system may come up broken.",
		Remedy:  "Read the snippet name in the failure line, fix that part of the configuration, then resume with --phases install,reboot."},
	{ID: "switch-to-configuration-missing",
		Summary: "Activation failed: the system has no switch-to-configuration (the configuration disables it, or a wrong system was installed).",
		Remedy:  "Make sure the flake attribute is a full NixOS system (system.switch.enable must stay on for installing), then resume with --phases install,reboot."},
	{ID: "install-no-space",
		Summary: "The new system's disk ran out of space while the closure was copied or installed.",
		Remedy:  "Make the root or /nix partition bigger in disko.nix (or use a bigger disk), then resume with --phases disko,install,reboot."},
	{ID: "install-oom",
		Summary: "The target ran out of memory while building or installing the system.",
		Remedy:  "Build locally (--build-on local) or use a shape with more RAM, then resume with --phases install,reboot."},
	{ID: "connection-lost",
		Summary: "The SSH connection to the installer broke in the middle of the run.",
		Remedy:  "Check that the installer is still up (provider console) and that the network is stable, then resume from the phase that failed with --phases."},
	// reboot
	{ID: "reboot-never",
		Summary: "nixos-anywhere asked the machine to reboot, but it never went away: the reboot did not happen.",
		Remedy:  "Check the machine in the provider's console and reboot it from there; then wait for the new system with bigbang status."},
	{ID: "reboot.verify",
		Summary: "The new system did not come back after the reboot, or did not answer as expected.",
		Remedy:  "Open the provider's serial console to see where the boot stopped (boot loader, initrd without the disk or network driver, a wrong console= setting); once it is up, check it with bigbang status."},
	{ID: "reboot.unverified",
		Summary: "The new system came back but its host key could not be checked against the pre-generated one, so bigbang cannot vouch for it.",
		Remedy:  "Check the host key with bigbang status (it compares the key with the one in --extra-files) before you trust the machine with secrets."},
	{ID: "reboot.timeout",
		Summary: "The new system did not come back within bigbang's wait after the reboot.",
		Remedy:  "Open the provider's serial console to see whether it is still booting or stuck; once it is up, check it with bigbang status."},
	// anywhere
	{ID: "nixos-anywhere-script",
		Summary: "nixos-anywhere's own script stopped on a shell error (for example an unbound variable): a bug of the version that ran, not a problem of the target.",
		Remedy:  "Run the pinned nixos-anywhere 1.13.0 (bigbang's default) or another release instead of an unpinned main branch, then run the install again."},
	{ID: "unrecognised-error",
		Summary: "nixos-anywhere stopped on an error bigbang has no specific diagnosis for; the error line is quoted below.",
		Remedy:  "Read the quoted error line and the lines just before it in the log; fix what it names, then resume from that phase with --phases."},
	{ID: "aborted",
		Summary: "nixos-anywhere stopped on one of its own checks (the 'aborted:' line says which).",
		Remedy:  "Read the 'aborted:' line: it names the option or fact that is wrong; fix it and run again."},
	{ID: "interrupted",
		Summary: "The run was interrupted (Ctrl-C) before it finished.",
		Remedy:  "Look at the lines before the interruption for why it was stopped; resume with --phases from the phase it was in (without kexec, as root@host, once the installer is up)."},
	{ID: "unknown",
		Summary: "nixos-anywhere failed without a message bigbang knows.",
		Remedy:  "Read the last lines of the failed phase in the log; run again with --debug for more detail; resume from that phase with --phases."},
	{ID: "incomplete",
		Summary: "The transcript stops without an error and without 'Done!': the run was still going, or the log was cut.",
		Remedy:  "If the run is still going, wait for it; otherwise look at the target in the provider's console and resume from the last phase with --phases."},
}

// Diagnoses returns the catalogue of diagnoses, for docs and tests.
func Diagnoses() []steps.Diagnosis {
	return append([]steps.Diagnosis(nil), catalogue...)
}

// diagnosis looks an entry up by ID; an unknown ID is a programming error
// caught by the tests, so it falls back to "unknown".
func diagnosis(id string) steps.Diagnosis {
	for _, d := range catalogue {
		if d.ID == id {
			return d
		}
	}
	return diagnosis("unknown")
}

// A rule recognises a failure line. All its needles must occur in the line.
type rule struct {
	diag  string
	all   []string
	where []steps.PhaseID // allowed current phases; empty: any phase
	// home is the phase the failure belongs to when nothing else places
	// the line (no step line seen yet, or only the local build). Empty: the
	// rule only applies where a phase is known.
	home steps.PhaseID
	// hard failures are kept even when the run goes on: they are printed
	// before "installation finished!" and "Done!" by failures the run does
	// not stop for. Soft failures are forgotten when a later step line shows
	// the run went on (the ssh-copy-id retry loop, the harmless cross-build
	// error of --build-on auto, the kexec wait loop).
	hard bool
	// generic rules give way to a specific one found later in the same
	// stretch of output (e.g. "kexec failed" before "Resource busy").
	generic bool
	mask    hitSet
}

var (
	afterKexec = []steps.PhaseID{steps.PhaseKexec, steps.PhaseDisko, steps.PhaseInstall, steps.PhaseKeys}
	midRun     = []steps.PhaseID{steps.PhaseDisko, steps.PhaseInstall, steps.PhaseKeys}
	onlyConn   = []steps.PhaseID{steps.PhaseConnect}
	onlyKexec  = []steps.PhaseID{steps.PhaseKexec}
	connKexec  = []steps.PhaseID{steps.PhaseConnect, steps.PhaseKexec}
	onlyDisko  = []steps.PhaseID{steps.PhaseDisko}
	onlyKeys   = []steps.PhaseID{steps.PhaseKeys}
	inInstall  = []steps.PhaseID{steps.PhaseInstall, steps.PhaseKeys}
	onTarget   = []steps.PhaseID{connect, kexec, disko, install, keys}
)

const (
	build   = steps.PhaseBuild
	connect = steps.PhaseConnect
	kexec   = steps.PhaseKexec
	disko   = steps.PhaseDisko
	keys    = steps.PhaseKeys
	install = steps.PhaseInstall
	reboot  = steps.PhaseReboot
)

// rules in priority order: within one line the first match wins, so the
// specific rules come before the generic ones that share words with them.
// A kexec refusal is listed as secure-boot; the classifier weighs the
// other facts of the transcript (Secure Boot state, kernel version) before
// it settles on Secure Boot or an old kernel.
var rules = []rule{
	{diag: "key-mode", all: []string{"UNPROTECTED PRIVATE KEY FILE"}, home: connect},
	{diag: "key-mode", all: []string{"bad permissions"}, home: connect},
	{diag: "key-mode", all: []string{"are too open"}, home: connect},
	{diag: "too-many-auth", all: []string{"Too many authentication failures"}, home: connect},
	{diag: "authorized-keys-readonly", all: []string{"authorized_keys: Permission denied"}, home: connect},
	{diag: "authorized-keys-readonly", all: []string{"authorized_keys: Read-only file system"}, home: connect},
	{diag: "sudo-password", all: []string{"a password is required"}, home: connect},
	{diag: "sudo-password", all: []string{"a terminal is required to read the password"}, home: connect},
	{diag: "sudo-password", all: []string{"sudo: no tty present"}, home: connect},
	{diag: "facts-failed", all: []string{"Retrieving host facts via"}, home: connect},
	{diag: "facts-failed", all: []string{"Failed to retrieve fact"}, home: connect},
	{diag: "target-missing-tools", all: []string{"no tar command found"}, home: connect},
	{diag: "target-missing-tools", all: []string{"no cpio command found"}, home: connect},
	{diag: "target-missing-tools", all: []string{"no setsid command"}, home: connect},
	{diag: "unsupported-target", all: []string{"Unsupported architecture"}, home: connect},
	{diag: "unsupported-target", all: []string{"requires Linux as the operating system"}, home: connect},
	{diag: "cross-build", all: []string{"is required to build", "but I am a"}, home: build},
	{diag: "flake-attribute", all: []string{"does not provide attribute"}, home: build},
	{diag: "nix-untrusted-path", all: []string{"lacks a signature by a trusted key"}, home: disko},
	{diag: "nix-untrusted-path", all: []string{"lacks a valid signature"}, home: disko},
	{diag: "nix-untrusted-path", all: []string{"not a trusted user"}, where: onTarget, generic: true},
	{diag: "kexec-old-kernel", all: []string{"load failed: Function not implemented"}, home: kexec},
	{diag: "kexec-old-kernel", all: []string{"syscall kexec_file_load not available"}, home: kexec},
	{diag: "secure-boot", all: []string{"load failed: Permission denied"}, home: kexec},
	{diag: "secure-boot", all: []string{"load failed: Operation not permitted"}, home: kexec},
	{diag: "secure-boot", all: []string{"Key was rejected by service"}, home: kexec},
	{diag: "secure-boot", all: []string{"kernel is locked down"}, home: kexec},
	{diag: "secure-boot", all: []string{"Lockdown: "}, where: onlyKexec},
	{diag: "kexec-busy", all: []string{"load failed: Resource busy"}, home: kexec},
	{diag: "kexec-busy", all: []string{"load failed: Device or resource busy"}, home: kexec},
	{diag: "kexec-busy", all: []string{"CPUs are stuck in the kernel"}, home: kexec},
	{diag: "kexec-no-room", all: []string{"load failed: Address not available"}, home: kexec},
	{diag: "kexec-no-room", all: []string{"load failed: Cannot assign requested address"}, home: kexec},
	{diag: "kexec-no-room", all: []string{"load failed: Invalid argument"}, home: kexec},
	{diag: "kexec-oom", all: []string{"invoked oom-killer"}, where: connKexec, home: kexec},
	{diag: "kexec-oom", all: []string{"Out of memory"}, where: connKexec, home: kexec},
	{diag: "kexec-oom", all: []string{"Failure unpacking initrd"}, home: kexec},
	{diag: "kexec-oom", all: []string{"load failed: Cannot allocate memory"}, home: kexec},
	{diag: "kexec-oom", all: []string{"Cannot allocate memory"}, where: onlyKexec},
	{diag: "kexec-oom", all: []string{"Killed"}, where: onlyKexec},
	{diag: "kexec-no-space", all: []string{"No space left on device"}, where: connKexec},
	{diag: "install-oom", all: []string{"invoked oom-killer"}, where: midRun},
	{diag: "install-oom", all: []string{"Out of memory"}, where: midRun},
	{diag: "install-oom", all: []string{"out of memory"}, where: midRun},
	{diag: "install-oom", all: []string{"Cannot allocate memory"}, where: midRun},
	{diag: "install-oom", all: []string{"Killed"}, where: midRun},
	{diag: "installer-no-network", all: []string{"No route to host"}, where: onlyKexec},
	{diag: "installer-no-network", all: []string{"Connection timed out"}, where: onlyKexec},
	{diag: "installer-no-network", all: []string{"Operation timed out"}, where: onlyKexec},
	{diag: "installer-no-network", all: []string{"Network is unreachable"}, where: onlyKexec},
	{diag: "kexec-failed", all: []string{"kexec failed"}, home: kexec, generic: true},
	{diag: "kexec-failed", all: []string{"Kexec failed"}, home: kexec, generic: true},
	{diag: "kexec-failed", all: []string{"Kexec may have failed"}, home: kexec, generic: true},
	{diag: "kexec-failed", all: []string{"Failed to kexec into NixOS installer"}, home: kexec, generic: true},
	{diag: "kexec-failed", all: []string{"_load failed"}, home: kexec, generic: true},
	{diag: "kexec-failed", all: []string{"kexec: failed"}, home: kexec, generic: true},
	{diag: "login-denied", all: []string{"Permission denied ("}, where: onlyConn, home: connect},
	{diag: "login-denied", all: []string{"Permission denied, please try again"}, where: onlyConn, home: connect},
	{diag: "root-permission-denied", all: []string{"Permission denied ("}, where: afterKexec},
	{diag: "root-permission-denied", all: []string{"Permission denied, please try again"}, where: afterKexec},
	{diag: "root-permission-denied", all: []string{"'s password:"}, where: afterKexec},
	{diag: "target-unreachable", all: []string{"Could not resolve hostname"}, where: onlyConn, home: connect},
	{diag: "target-unreachable", all: []string{"Connection refused"}, where: onlyConn, home: connect},
	{diag: "target-unreachable", all: []string{"Connection timed out"}, where: onlyConn, home: connect},
	{diag: "target-unreachable", all: []string{"No route to host"}, where: onlyConn, home: connect},
	{diag: "disk-busy", all: []string{"will not make a filesystem here"}, home: disko},
	{diag: "disk-busy", all: []string{"target is busy"}, where: onlyDisko},
	{diag: "disk-busy", all: []string{"is apparently in use by the system"}, home: disko},
	{diag: "disk-busy", all: []string{"Device or resource busy"}, where: onlyDisko},
	{diag: "disko-layout", all: []string{"Could not create partition"}, home: disko},
	{diag: "disko-layout", all: []string{"Unable to open device"}, home: disko},
	{diag: "disko-layout", all: []string{"Problem opening /dev/"}, home: disko},
	{diag: "disko-layout", all: []string{"Secondary header was placed beyond the disk"}, home: disko},
	{diag: "disko-layout", all: []string{"No space left on device"}, where: onlyDisko},
	{diag: "disko-layout", all: []string{"/dev/disk/by-", "No such file or directory"}, where: onlyDisko},
	{diag: "disko-layout", all: []string{"does not exist"}, where: onlyDisko},
	{diag: "disko-tool-crash", all: []string{"Bus error"}, where: onlyDisko},
	{diag: "disko-tool-crash", all: []string{"Segmentation fault"}, where: onlyDisko},
	{diag: "extra-files-rsync", all: []string{"rsync error"}, home: keys},
	{diag: "extra-files-rsync", all: []string{"rsync: "}, where: onlyKeys},
	{diag: "extra-files-copy", all: []string{"tar: "}, where: onlyKeys},
	{diag: "install-no-space", all: []string{"No space left on device"}, where: inInstall},
	{diag: "sops-decrypt", all: []string{"Failed to decrypt"}, home: install, hard: true},
	{diag: "sops-decrypt", all: []string{"setupSecretsForUsers' failed"}, home: install, hard: true},
	{diag: "sops-decrypt", all: []string{"setupSecrets' failed"}, home: install, hard: true},
	{diag: "switch-to-configuration-missing", all: []string{"switch-to-configuration: No such file or directory"}, home: install, hard: true},
	{diag: "activation-failed", all: []string{"Activation script snippet", "failed"}, home: install, hard: true},
	{diag: "boot-loader", all: []string{"Died at", "install-grub.pl"}, home: install, hard: true},
	{diag: "boot-loader", all: []string{"do not know how to make this configuration bootable"}, home: install, hard: true},
	{diag: "boot-loader", all: []string{"grub-install: error"}, home: install, hard: true},
	{diag: "boot-loader", all: []string{"bootctl", "returned non-zero exit status"}, home: install, hard: true},
	{diag: "boot-loader", all: []string{"Traceback (most recent call last)"}, where: inInstall, hard: true},
	{diag: "boot-loader", all: []string{"CalledProcessError"}, where: inInstall, hard: true},
	{diag: "nix-build-failed", all: []string{"error: builder for"}, home: build, generic: true},
	{diag: "nix-build-failed", all: []string{"error: Cannot build"}, home: build, generic: true},
	{diag: "nix-build-failed", all: []string{"dependencies of derivation", "failed to build"}, home: build, generic: true},
	{diag: "nixos-anywhere-script", all: []string{"nixos-anywhere.sh: line "}, home: connect},
	{diag: "nixos-anywhere-script", all: []string{"nixos-anywhere: line "}, home: connect},
	{diag: "connection-lost", all: []string{"Connection reset by peer"}, where: midRun, generic: true},
	{diag: "connection-lost", all: []string{"Broken pipe"}, where: midRun, generic: true},
	{diag: "connection-lost", all: []string{"Connection timed out"}, where: midRun, generic: true},
	{diag: "connection-lost", all: []string{"closed by remote host"}, where: midRun, generic: true},
	{diag: "connection-lost", all: []string{"unexpected end-of-file"}, where: midRun, generic: true},
	{diag: "installer-low-memory", all: []string{"running auto-GC"}, where: midRun, generic: true},
	{diag: "ssh-controlmaster-hang", all: []string{"mux_client_request_session"}, where: onTarget, generic: true},
	{diag: "ssh-controlmaster-hang", all: []string{"ControlSocket"}, where: onTarget, generic: true},
	{diag: "aborted", all: []string{"aborted: "}, generic: true},
	{diag: "interrupted", all: []string{"^C"}, generic: true},
}

// A hint places a line with no step line in a phase by its content. All
// its needles must occur in the line.
type hint struct {
	phase steps.PhaseID
	all   []string
	// prefix: the first needle must start the line (tar's listing of the
	// kexec tarball: "kexec/", "kexec/initrd").
	prefix bool
	// first: only before anything else placed the stream (nix's output of
	// the local build looks like the closure copy of the install phase).
	first bool
	mask  hitSet
}

// hints place lines by what they show. The commands nixos-anywhere runs
// place a line as well as their output does: it copies the disko script's
// closure before it prints the disko step, and its --debug trace names
// disko, nixos-install and kexec before they print anything.
var hints = []hint{
	{phase: build, all: []string{"copying path '"}, first: true},
	{phase: build, all: []string{"building '/nix/store/"}, first: true},
	{phase: build, all: []string{"will be built:"}, first: true},
	{phase: build, all: []string{"will be fetched"}, first: true},
	{phase: build, all: []string{"evaluating derivation"}, first: true},
	{phase: build, all: []string{"warning: Git tree"}, first: true},
	{phase: connect, all: []string{"ssh-copy-id"}},
	{phase: connect, all: []string{"Number of key(s) added"}},
	{phase: connect, all: []string{"Now try logging into the machine"}},
	{phase: connect, all: []string{"All keys were skipped"}},
	{phase: kexec, all: []string{"Downloading kexec tarball"}},
	{phase: kexec, all: []string{"machine will boot into nixos"}},
	{phase: kexec, all: []string{"kexec/"}, prefix: true},
	{phase: kexec, all: []string{"/kexec/run"}},
	{phase: kexec, all: []string{"--kexec-syscall"}},
	{phase: kexec, all: []string{"kexec --load"}},
	{phase: kexec, all: []string{"kexec -l "}},
	{phase: kexec, all: []string{"nixos-anywhere-kexec.sh"}},
	{phase: kexec, all: []string{"kexec-installer"}},
	{phase: disko, all: []string{"nix copy", "-disko"}},
	{phase: disko, all: []string{"nix-copy-closure", "-disko"}},
	{phase: disko, all: []string{"sgdisk"}},
	{phase: disko, all: []string{"mkfs."}},
	{phase: disko, all: []string{"mke2fs"}},
	{phase: disko, all: []string{"partprobe"}},
	{phase: disko, all: []string{"disko-format"}},
	{phase: disko, all: []string{"disko-mount"}},
	{phase: disko, all: []string{"disk-deactivate"}},
	{phase: disko, all: []string{"wipefs"}},
	{phase: disko, all: []string{"-disko: line"}},
	{phase: disko, all: []string{"Creating new GPT entries"}},
	{phase: disko, all: []string{"Creating fresh partition table"}},
	{phase: disko, all: []string{"btrfs subvolume create"}},
	{phase: disko, all: []string{"zpool create"}},
	{phase: disko, all: []string{"cryptsetup"}},
	{phase: disko, all: []string{"parted "}},
	{phase: disko, all: []string{"+ disko "}},
	{phase: install, all: []string{"nixos-install --"}},
	{phase: install, all: []string{"+ nixos-install"}},
	{phase: install, all: []string{"installing the boot loader"}},
	{phase: install, all: []string{"setting up /etc"}},
	{phase: install, all: []string{"installation finished!"}},
	{phase: install, all: []string{"Installation finished. No error reported"}},
	{phase: install, all: []string{"kernel boot files installed"}},
	{phase: install, all: []string{"generational bootloader installed"}},
	{phase: install, all: []string{"switch-to-configuration"}},
	{phase: install, all: []string{"updating GRUB 2 menu"}},
	{phase: install, all: []string{"remote-store=local"}},
	{phase: keys, all: []string{"rsync "}},
	{phase: keys, all: []string{"tar -C /mnt -xf-"}},
	{phase: keys, all: []string{"--no-same-owner"}},
}

// Needles that only set a note or a fact, and noise that does not end the
// quiet stretch after a step line.
const (
	nAllKeysSkipped  = "All keys were skipped"
	nInstallFinished = "installation finished!"
	nMachineBoots    = "machine will boot into nixos"
	nRsync           = "rsync"
	nSSHConnect      = "ssh: connect to host"
	nCopying         = "copying path '"
	nCopyTo          = "' to '"
	nNoisePerm       = "Warning: Permanently added"
	nNoisePTY        = "Pseudo-terminal will not be allocated"
	nNoiseIdentity   = "Warning: Identity file"
	nAutoGC          = "running auto-GC"
	nNoisePTYLine    = "Pseudo-terminal will not be allocated because stdin is not a terminal."
)

// A fact is something the transcript shows about the machine that a
// diagnosis weighs, wherever in the transcript it appears.
type fact int

const (
	factSecureBootOn fact = iota
	factSecureBootOff
	factOldKernel
	factAutoGC
	factControlMaster
	numFacts
)

// factNeedles say which needles establish each fact.
var factNeedles = [numFacts][]string{
	factSecureBootOn:  {"Secure boot enabled", "SecureBoot enabled", "secure boot is enabled", "Lockdown: ", "kernel is locked down", "lockdown=integrity", "lockdown=confidentiality"},
	factSecureBootOff: {"Secure boot disabled", "SecureBoot disabled", "secure boot is disabled", "Secure boot could not be determined", "EFI variables are not supported"},
	factOldKernel:     {"Linux version 2.", "Linux version 3.", ".el7.", ".el6.", "CentOS Linux 7", "CentOS Linux release 7", "CentOS release 6"},
	factAutoGC:        {nAutoGC},
	factControlMaster: {"mux_client_", "ControlSocket", "ControlPath", "ControlMaster", "control socket"},
}

var factWhy = [numFacts]string{
	factSecureBootOn:  "the target runs with Secure Boot or kernel lockdown",
	factSecureBootOff: "the target runs without Secure Boot",
	factOldKernel:     "the target runs an old kernel",
	factAutoGC:        "Nix ran out of room in the store (on the installer that store is RAM)",
	factControlMaster: "ssh connection sharing (ControlMaster) is in use",
}

// errorNeedles are the words of an error-looking line: whatever the tool,
// a run that stops on one of these failed, even when no rule knows it.
// Weak ones only count when nothing stronger is near.
var errorNeedles = []struct {
	needle string
	weak   bool
	why    string
}{
	{"error:", false, "an error message"},
	{"Error:", false, "an error message"},
	{"ERROR:", false, "an error message"},
	{"error (ignored)", true, ""},
	{"fatal:", false, "a fatal error"},
	{"FATAL", false, "a fatal error"},
	{": line ", false, "a shell script error"},
	{"unbound variable", false, "a shell script error (unbound variable)"},
	{"command not found", false, "a missing command"},
	{"Permission denied", false, "a refused permission"},
	{"Operation not permitted", false, "a refused operation"},
	{"Read-only file system", false, "a read-only file system"},
	{"No such file or directory", false, "a missing file"},
	{"No space left on device", false, "a full disk"},
	{"Cannot allocate memory", false, "memory exhausted"},
	{"Input/output error", false, "an I/O error"},
	{"Traceback (most recent call last)", false, "a Python traceback"},
	{"Killed", false, "a process killed (often by the out-of-memory killer)"},
	{"Segmentation fault", false, "a crashed program"},
	{"core dumped", false, "a crashed program"},
	{"lacks a signature by a trusted key", false, "a store path refused by Nix"},
	{"returned non-zero exit status", false, "a command that failed"},
	{"non-zero exit", false, "a command that failed"},
	{"exited with", true, "a command that failed"},
	{"exit code", true, "a command that failed"},
	{"exit status", true, "a command that failed"},
	{"failed", true, "a failure"},
	{"Failed", true, "a failure"},
	{"FAILED", true, "a failure"},
	{"+ exit ", true, "the script exits with an error"},
	{"aborted: ", false, "nixos-anywhere aborted"},
	{"Aborting", true, "a failure"},
	{"Error is not recoverable", false, "an error message"},
	{"cannot ", true, "something that could not be done"},
	{"Cannot ", true, "something that could not be done"},
	{"unable to", true, "something that could not be done"},
	{"Unable to", true, "something that could not be done"},
	{"not found", true, "something missing"},
	{"nvalid ", true, "something invalid"},
}

// compiled is the catalogue compiled into one matcher.
type compiled struct {
	m     *matcher
	rules []rule
	hints []hint
	index map[string]int
	// ruleBy and hintBy say which rules and hints a needle can set off,
	// so a line only looks at the few its hits concern.
	ruleBy [maxNeedles]hitSet
	hintBy [maxNeedles]uint64
	// Needles that set notes.
	allKeysSkipped, installFinished, machineBoots, rsync, sshConnect int
	copying, copyTo, noisePerm, noisePTY                             int
	// active are the needles that can do more than place a line: rules,
	// notes, facts and error words.
	active  hitSet
	noise   hitSet
	facts   [numFacts]hitSet
	anyFact hitSet
	// errs are the error-looking needles, weakErr the weak ones among
	// them, ignoredErr the needle that takes a line out (nix's "error
	// (ignored)"), and errWhy says why each counts.
	errs, weakErr hitSet
	ignoredErr    int
	errWhy        [maxNeedles]string
}

var cat = compile()

func compile() *compiled {
	c := &compiled{index: map[string]int{}}
	var needles []string
	id := func(s string) int {
		if i, ok := c.index[s]; ok {
			return i
		}
		c.index[s] = len(needles)
		needles = append(needles, s)
		return len(needles) - 1
	}
	if len(rules) > maxNeedles || len(hints) > 64 {
		panic("transcript: catalogue too large for its bit sets")
	}
	c.rules = append([]rule(nil), rules...)
	for i := range c.rules {
		for _, n := range c.rules[i].all {
			c.rules[i].mask.add(id(n))
		}
		c.ruleBy[id(c.rules[i].all[0])].add(i)
	}
	c.hints = append([]hint(nil), hints...)
	for i := range c.hints {
		h := &c.hints[i]
		for _, n := range h.all {
			h.mask.add(id(n))
		}
		c.hintBy[id(h.all[0])] |= 1 << uint(i)
	}
	c.allKeysSkipped = id(nAllKeysSkipped)
	c.installFinished = id(nInstallFinished)
	c.machineBoots = id(nMachineBoots)
	c.rsync = id(nRsync)
	c.sshConnect = id(nSSHConnect)
	c.copying = id(nCopying)
	c.copyTo = id(nCopyTo)
	c.noisePerm = id(nNoisePerm)
	c.noisePTY = id(nNoisePTY)
	for _, n := range []string{nNoisePerm, nNoisePTY, nNoiseIdentity} {
		c.noise.add(id(n))
	}
	for f, ns := range factNeedles {
		for _, n := range ns {
			c.facts[f].add(id(n))
			c.anyFact.add(id(n))
		}
	}
	for _, e := range errorNeedles {
		i := id(e.needle)
		c.errs.add(i)
		if e.weak {
			c.weakErr.add(i)
		}
		c.errWhy[i] = e.why
	}
	c.ignoredErr = id("error (ignored)")
	for i := range c.rules {
		c.active.union(c.rules[i].mask)
	}
	c.active.union(c.anyFact)
	c.active.union(c.errs)
	for _, i := range []int{c.allKeysSkipped, c.installFinished, c.machineBoots, c.rsync, c.sshConnect} {
		c.active.add(i)
	}
	if len(needles) > maxNeedles {
		panic("transcript: too many needles")
	}
	c.m = newMatcher(needles)
	return c
}

// candidates returns the rules and hints that the hit needles can set off.
func (c *compiled) candidates(hits hitSet) (rs hitSet, hs uint64) {
	for w := range hits {
		for x := hits[w]; x != 0; x &= x - 1 {
			i := w*64 + bits.TrailingZeros64(x)
			rs.union(c.ruleBy[i])
			hs |= c.hintBy[i]
		}
	}
	return rs, hs
}

// whyError says why a line with these hits looks like an error, and
// whether only weak words make it look so; "" when it does not.
func (c *compiled) whyError(hits hitSet) (why string, weak bool) {
	e := hits.and(c.errs)
	if e.empty() || hits.has(c.ignoredErr) {
		return "", false
	}
	weak = true
	for w := range e {
		for x := e[w]; x != 0; x &= x - 1 {
			i := w*64 + bits.TrailingZeros64(x)
			if c.weakErr.has(i) {
				if why == "" {
					why = c.errWhy[i]
				}
				continue
			}
			return c.errWhy[i], false
		}
	}
	return why, weak
}

// isBashError reports whether text holds a bash error location
// ("<script>: line <n>: …"), not just the words ": line ".
func isBashError(text string) bool {
	i := strings.Index(text, ": line ")
	if i < 0 {
		return false
	}
	j := i + len(": line ")
	k := j
	for k < len(text) && text[k] >= '0' && text[k] <= '9' {
		k++
	}
	return k > j && k < len(text) && text[k] == ':'
}
