package rehearsal

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/spf13/cobra"
)

// step is one moment of the recorded run: wait, then print.
type step struct {
	wait  time.Duration // before the text, at speed 1
	text  string        // printed as is; "\r" redraws the line
	phase string        // the phase this line belongs to, for FailAt
}

// ReplayOptions shape a replay.
type ReplayOptions struct {
	Speed  float64 // 1 = the recorded pace; 50 = fifty times faster
	Host   string
	User   string
	FailAt string // a phase id: the run fails there as disko would
	// Phases are nixos-anywhere's --phases (nil: all): the steps of the
	// phases left out are not printed, as nixos-anywhere skips them; the
	// login (connect) and Done! always come.
	Phases map[string]bool
}

// runs says whether a replay with phases prints a step of phase.
func runs(phases map[string]bool, phase, text string) bool {
	switch {
	case phases == nil, phase == "connect", text == "### Done! ###":
		return true
	case phase == "keys":
		return phases["install"]
	}
	return phases[phase]
}

const (
	sgrBold  = "\x1b[1m"
	sgrGreen = "\x1b[32m"
	sgrBlue  = "\x1b[34m"
	sgrDim   = "\x1b[2m"
	sgrReset = "\x1b[0m"
)

// timeline is the shape of a real nixos-anywhere 1.13.0 run with
// --build-on remote onto an Oracle A1 VM: the step lines in order, the
// noise every run prints, kexec's tar list, disko's partitioning, a remote
// nix build with carriage-return progress, the extra files, nixos-install
// and the reboot wait. Times are as recorded, rounded.
func timeline(host, user string) []step {
	s := func(wait float64, phase, text string) step {
		return step{wait: time.Duration(wait * float64(time.Second)), text: text, phase: phase}
	}
	target := user + "@" + host
	t := []step{
		s(0.4, "connect", "Warning: Identity file /tmp/tmp.Xq3bS1/nixos-anywhere not accessible: No such file or directory."),
		s(0.3, "connect", "### Uploading install SSH keys ###"),
		s(1.2, "connect", "/nix/store/8k3h…-openssh-9.8p1/bin/ssh-copy-id: INFO: Source of key(s) to be installed: \"/tmp/tmp.Xq3bS1/nixos-anywhere.pub\""),
		s(0.8, "connect", "/nix/store/8k3h…-openssh-9.8p1/bin/ssh-copy-id: INFO: attempting to log in with the new key(s)"),
		s(1.5, "connect", "Number of key(s) added: 1"),
		s(0.2, "connect", "Now try logging into the machine, with: \"ssh -p 22 '"+target+"'\""),
		s(0.6, "connect", "### Gathering machine facts ###"),
		s(1.8, "connect", "Warning: Permanently added '"+host+"' (ED25519) to the list of known hosts."),
		s(0.5, "kexec", "### Switching system into kexec ###"),
		s(0.8, "kexec", "Downloading kexec tarball, this may take a moment..."),
	}
	for i := 0; i <= 100; i += 4 {
		t = append(t, s(0.35, "kexec", fmt.Sprintf("\r%s%3d%%%s %s %d.%dM", sgrDim, i, sgrReset, strings.Repeat("#", i/5)+strings.Repeat(".", 20-i/5), 4+i*4/10, i%10)))
	}
	t = append(t,
		s(0.3, "kexec", "kexec/"),
		s(0.1, "kexec", "kexec/initrd"),
		s(0.1, "kexec", "kexec/kexec"),
		s(0.1, "kexec", "kexec/ip"),
		s(0.1, "kexec", "kexec/bzImage"),
		s(0.1, "kexec", "kexec/run"),
		s(1.5, "kexec", "+ /home/opc/kexec/kexec/kexec --load /home/opc/kexec/kexec/bzImage --kexec-syscall-auto --initrd=/home/opc/kexec/kexec/initrd --no-checks --command-line 'init=/nix/store/ypz2…-nixos-system-nixos-installer-25.11/init loglevel=4'"),
		s(0.6, "kexec", "machine will boot into nixos in 6s..."),
		s(38, "kexec", "ssh: connect to host "+host+" port 22: Connection refused"),
		s(6, "kexec", "### Gathering machine facts ###"),
		s(1.1, "kexec", "Warning: Permanently added '"+host+"' (ED25519) to the list of known hosts."),
		s(0.7, "disko", "### Building disko script ###"),
		s(2.5, "disko", "these 4 derivations will be built:"),
		s(0.1, "disko", "  /nix/store/9fq1…-disko-format-mount.drv"),
		s(6, "disko", "building '/nix/store/9fq1…-disko-format-mount.drv'..."),
		s(0.8, "disko", "### Formatting hard drive with disko ###"),
		s(1.2, "disko", "umount: /mnt: not mounted"),
		s(0.5, "disko", "++ realpath /dev/sda"),
		s(0.4, "disko", "+ sgdisk --zap-all /dev/sda"),
		s(0.9, "disko", "GPT data structures destroyed! You may now partition the disk using fdisk or other utilities."),
		s(0.6, "disko", "+ sgdisk --align-end --new=1:0:+512M --change-name=1:disk-main-ESP --typecode=1:EF00 /dev/sda"),
		s(0.4, "disko", "The operation has completed successfully."),
		s(0.6, "disko", "+ sgdisk --align-end --new=2:0:-0 --change-name=2:disk-main-root --typecode=2:8300 /dev/sda"),
		s(0.4, "disko", "The operation has completed successfully."),
		s(1.0, "disko", "+ mkfs.vfat /dev/disk/by-partlabel/disk-main-ESP"),
		s(0.5, "disko", "mkfs.fat 4.2 (2021-01-31)"),
		s(1.0, "disko", "+ mkfs.btrfs -f /dev/disk/by-partlabel/disk-main-root"),
		s(1.6, "disko", "Label:              (null)"),
		s(0.1, "disko", "Filesystem size:    185.70GiB"),
		s(0.6, "disko", "+ btrfs subvolume create /mnt/persistent /mnt/nix"),
		s(1.2, "disko", "+ mount /dev/disk/by-partlabel/disk-main-root /mnt -o subvol=/root -o compress=zstd"),
		s(0.8, "install", "### Building the system closure ###"),
		s(3.0, "install", "these 612 derivations will be built:"),
		s(0.1, "install", "these 1894 paths will be fetched (612.4 MiB download, 2.6 GiB unpacked):"),
	)
	pkgs := []string{"glibc-2.40-66", "systemd-257.5", "linux-6.12.30", "openssh-9.9p2", "sops-install-secrets-0.0.1", "nix-2.28.3", "perl-5.40.0", "util-linux-2.41", "grub-2.12", "nixos-system-vps-arm-25.11"}
	for i := 1; i <= 60; i++ {
		t = append(t, s(2.4, "install", fmt.Sprintf("\r%s[%d/612 built, %d/1894 copied (%d.%d/612.4 MiB DL)]%s fetching %s from https://cache.nixos.org", sgrBlue, i*10, i*31, i*10, i%10, sgrReset, pkgs[i%len(pkgs)])))
		if i%6 == 0 {
			t = append(t, s(0.2, "install", fmt.Sprintf("building '/nix/store/%04x…-%s.drv'...", i*7919%65536, pkgs[i%len(pkgs)])))
		}
	}
	t = append(t,
		s(0.5, "keys", "### Copying extra files ###"),
		s(1.4, "keys", "persistent/etc/ssh/ssh_host_ed25519_key"),
		s(0.1, "keys", "persistent/etc/ssh/ssh_host_ed25519_key.pub"),
		s(0.6, "install", "### Installing NixOS ###"),
		s(3.0, "install", "copying channel..."),
		s(4.0, "install", "building the configuration in /mnt/etc/nixos/configuration.nix..."),
		s(6.0, "install", "installing the boot loader..."),
		s(2.0, "install", "updating GRUB 2 menu..."),
		s(1.5, "install", "installing the GRUB 2 boot loader into /boot..."),
		s(1.5, "install", "Installing for arm64-efi platform."),
		s(1.0, "install", "Installation finished. No error reported."),
		s(0.8, "install", "setting up /etc..."),
		s(1.0, "install", sgrGreen+sgrBold+"installation finished!"+sgrReset),
		s(0.6, "reboot", "### Rebooting ###"),
		s(0.4, "reboot", "### Waiting for the machine to become unreachable due to reboot ###"),
		// nixos-anywhere prints nothing while the machine goes down: the
		// stall watchdog shows in this pause.
		s(150, "reboot", "ssh: connect to host "+host+" port 22: Connection refused"),
		s(0.5, "reboot", "### Done! ###"),
	)
	return t
}

// failure is how a phase of the recorded run fails: after the line that
// starts with at, these lines, then the exit status.
type failure struct {
	at    string
	lines []string
	code  int
}

// failures are the rehearsed failures of nixos-anywhere's phases, as real
// runs print them.
func failures(host string) map[string]failure {
	return map[string]failure{
		"connect": {at: "### Uploading install SSH keys ###", code: 1, lines: []string{
			"/nix/store/8k3h…-openssh-9.8p1/bin/ssh-copy-id: INFO: attempting to log in with the new key(s)",
			"opc@" + host + ": Permission denied (publickey,gssapi-keyex,gssapi-with-mic).",
		}},
		"kexec": {at: "machine will boot into nixos in 6s...", code: 1, lines: []string{
			"kexec invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0",
			"Killed",
		}},
		"disko": {at: "+ sgdisk --align-end --new=2", code: 1, lines: []string{
			"+ sgdisk --align-end --new=2:0:+512G --change-name=2:disk-main-root --typecode=2:8300 /dev/sda",
			"Could not create partition 2 from 1050624 to 1074792447",
			"Error encountered; not saving changes.",
		}},
		"install": {at: "### Installing NixOS ###", code: 1, lines: []string{
			"installing the boot loader...",
			"Traceback (most recent call last):",
			"  File \"/nix/store/7fd2…-systemd-boot\", line 341, in <module>",
			"subprocess.CalledProcessError: Command '['/nix/store/…/bin/bootctl', 'install']' returned non-zero exit status 1.",
		}},
		"keys": {at: "### Copying extra files ###", code: 2, lines: []string{
			"tar: persistent/etc/ssh/ssh_host_ed25519_key: Cannot open: Permission denied",
			"tar: Exiting with failure status due to previous errors",
		}},
	}
}

// Replay prints the recorded run to w at the given speed and returns the
// exit status nixos-anywhere would have had.
func Replay(ctx context.Context, w io.Writer, o ReplayOptions) int {
	if o.Speed <= 0 {
		o.Speed = 1
	}
	if o.Host == "" {
		o.Host = DemoHost
	}
	if o.User == "" {
		o.User = "opc"
	}
	newline := false
	fail, failing := failures(o.Host)[o.FailAt]
	for _, st := range timeline(o.Host, o.User) {
		if !runs(o.Phases, st.phase, st.text) {
			continue
		}
		if failing && o.FailAt == "disko" && strings.HasPrefix(st.text, fail.at) {
			// The layout does not fit: the partitioning line itself fails.
			for _, l := range fail.lines {
				fmt.Fprint(w, l+"\n")
			}
			return fail.code
		}
		select {
		case <-ctx.Done():
			return 130
		case <-time.After(time.Duration(float64(st.wait) / o.Speed)):
		}
		if strings.HasPrefix(st.text, "\r") {
			// A redraw of the same line, as nix and curl do.
			fmt.Fprint(w, st.text)
			newline = true
			continue
		}
		if newline {
			fmt.Fprint(w, "\n")
			newline = false
		}
		fmt.Fprint(w, st.text+"\n")
		if failing && st.phase == o.FailAt && strings.HasPrefix(st.text, fail.at) {
			for _, l := range fail.lines {
				fmt.Fprint(w, l+"\n")
			}
			return fail.code
		}
	}
	return 0
}

// ReplayCmd is the hidden subcommand (ReplayCommand) that the rehearsal's
// runner starts under a PTY in place of nixos-anywhere. It takes
// nixos-anywhere's arguments and reads only the target, so the plan's
// exact argv runs unchanged; exit turns a replay's exit status into the
// command's error.
func ReplayCmd(exit func(code int) error) *cobra.Command {
	var o ReplayOptions
	cmd := &cobra.Command{
		Use:    ReplayCommand,
		Hidden: true,
		Args:   cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				t, _ := steps.ParseTarget(args[len(args)-1])
				o.User, o.Host = t.User, t.Host
			}
			if i := slices.Index(args, "--phases"); i >= 0 && i+1 < len(args) {
				o.Phases = map[string]bool{}
				for _, p := range strings.Split(args[i+1], ",") {
					o.Phases[p] = true
				}
				if !o.Phases["kexec"] {
					// Without kexec nixos-anywhere logs in as root.
					o.User = "root"
				}
			}
			if code := Replay(cmd.Context(), cmd.OutOrStdout(), o); code != 0 {
				return exit(code)
			}
			return nil
		},
	}
	cmd.Flags().Float64Var(&o.Speed, "speed", 1, "")
	cmd.Flags().StringVar(&o.FailAt, "fail-at", "", "")
	return cmd
}
