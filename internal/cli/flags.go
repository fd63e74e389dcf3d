package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

// TargetFlags binds the flags of the commands that log in to the target:
// where it is, how to reach it, the flake and the extra files. Each
// command binds what it uses, so that its --help lists only that.
func TargetFlags(cmd *cobra.Command, cfg *steps.Config) {
	d := steps.DefaultConfig()
	f := cmd.Flags()
	f.StringVar(&cfg.Host, "host", "", "target host name or IP address, or user@host[:port]")
	f.StringVar(&cfg.User, "user", d.User, "login user on the target before kexec")
	f.IntVar(&cfg.Port, "port", d.Port, "SSH port of the target")
	f.StringVarP(&cfg.Identity, "identity", "i", "", "SSH private key file to log in with (mode 0600)")
	f.StringVar(&cfg.KnownHosts, "known-hosts", "", "known_hosts file (default ~/.ssh/known_hosts)")
	f.BoolVar(&cfg.AcceptNewHostKey, "accept-new-host-key", false, "trust an unknown host key without asking")
	f.StringArrayVar(&cfg.SSHOptions, "ssh-option", nil, "extra ssh option, KEY=VALUE, for nixos-anywhere's ssh and bigbang's own connections (repeatable)")
	f.StringVar(&cfg.Output, "output", "", "output style: tui, plain or json (default tui on a terminal, plain otherwise)")
	FlakeFlags(cmd, cfg)
}

// FlakeFlags binds --flake and --extra-files.
func FlakeFlags(cmd *cobra.Command, cfg *steps.Config) {
	d := steps.DefaultConfig()
	cmd.Flags().StringVar(&cfg.Flake, "flake", d.Flake, "flake reference with the nixosConfigurations attribute")
	cmd.Flags().StringVar(&cfg.ExtraFiles, "extra-files", d.ExtraFiles, "folder copied into / of the new system (host keys)")
}

// InstallConfigFlags binds the flags of the commands that install.
func InstallConfigFlags(cmd *cobra.Command, cfg *steps.Config) {
	d := steps.DefaultConfig()
	f := cmd.Flags()
	f.StringVar(&cfg.RAM, "ram", "", "target RAM with a unit, e.g. 24G or 512M (a bare number means GiB; overrides detection)")
	f.StringVar(&cfg.BuildOn, "build-on", d.BuildOn, "where the system is built: auto, local or remote")
	f.StringVar(&cfg.NixosAnywhere, "nixos-anywhere", d.NixosAnywhere, "command that runs nixos-anywhere")
	f.StringVar(&cfg.Log, "log", "", "transcript file (default $XDG_STATE_HOME/bigbang/logs/<host>-<time>.log)")
	f.StringVar(&cfg.YesWipe, "yes-wipe", "", "confirm the disk wipe for scripts: must equal the target host")
	f.StringVar(&cfg.Phases, "phases", "", "run only these phases, e.g. disko,install,reboot (resume)")
}

// RunFlags binds the flags of every command that runs nixos-anywhere:
// the time limits, the ports after kexec and after the reboot, and the
// nixos-anywhere options bigbang checks and plans.
func RunFlags(cmd *cobra.Command, cfg *steps.Config, rebootTimeout, stall *time.Duration) {
	fl := cmd.Flags()
	fl.DurationVar(rebootTimeout, "reboot-timeout", sshexec.DefaultRebootTimeout,
		"how long the machine may take to go down after nixos-anywhere's Rebooting step, and then to come back as the new system (then look at the provider's serial console)")
	fl.DurationVar(stall, "stall", 0, "warn when a phase makes no progress for this long (default: per phase, 2m to 20m for builds)")
	fl.IntVar(&cfg.PostKexecPort, "post-kexec-ssh-port", 0, "SSH port of the NixOS installer after kexec (nixos-anywhere's default: 22)")
	fl.IntVar(&cfg.RebootPort, "reboot-port", 0, "SSH port of the installed system (default: the flake's services.openssh.ports)")
	fl.BoolVar(&cfg.Debug, "debug", false, "pass --debug to nixos-anywhere: it traces every command it runs")
	fl.StringVar(&cfg.Kexec, "kexec", "", "another kexec image for the installer (URL or file), e.g. when the default one panics")
	fl.StringVar(&cfg.HardwareConfig, "generate-hardware-config", "", "nixos-facter or nixos-generate-config: write the machine's hardware config into the flake first (with --hardware-config-path)")
	fl.StringVar(&cfg.HardwareConfigPath, "hardware-config-path", "", "the file --generate-hardware-config writes, e.g. ./facter.json")
	fl.StringArrayVar(&cfg.DiskKeys, "disk-encryption-keys", nil, "REMOTE=LOCAL: upload a disk encryption key for disko (repeatable)")
	fl.BoolVarP(&cfg.PrintBuildLogs, "print-build-logs", "L", false, "pass --print-build-logs: nix prints every build's log")
	fl.BoolVar(&cfg.NoSubstituteOnDestination, "no-substitute-on-destination", false, "the target fetches nothing from binary caches")
}

// OnlyAfterDash takes arguments only after `--`: they are passed through
// to nixos-anywhere, unchecked.
func OnlyAfterDash(cmd *cobra.Command, args []string) error {
	if len(args) > 0 && cmd.ArgsLenAtDash() != 0 {
		return UsageErr(fmt.Errorf("unexpected argument %q: bigbang takes flags; pass options for nixos-anywhere itself after --", args[0]))
	}
	return nil
}

// ArchiveFlags adds the reinstall's flags for its backup archive: who it
// is encrypted to, the identity that opens it, a plaintext archive, and a
// restore into another directory than the archive's.
func ArchiveFlags(cmd *cobra.Command, o *engine.ReinstallOptions) {
	f := cmd.Flags()
	f.StringArrayVar(&o.Recipients, "backup-recipient", nil, "age recipient (age1…) or file of them the backup is encrypted to (repeatable; default: the age recipients of the flake's .sops.yaml)")
	f.StringVar(&o.Identity, "backup-identity", "", "age identity file that opens the backup for the restore (default: $SOPS_AGE_KEY_FILE, then ~/.config/sops/age/keys.txt, as sops)")
	f.BoolVar(&o.Plaintext, "plaintext-backup", false, "write the backup NOT encrypted (it holds the host key and every secret)")
	f.BoolVar(&o.RestoreElsewhere, "restore-elsewhere", false, "with --restore and --source: restore into another directory than the archive's, after typing the host (or --yes-wipe HOST)")
}

// CheckArchiveFlags refuses flags of the archive that contradict each
// other, before anything runs.
func CheckArchiveFlags(cmd *cobra.Command, o engine.ReinstallOptions, restore bool) error {
	fl := cmd.Flags()
	switch {
	case o.Plaintext && len(o.Recipients) > 0:
		return fmt.Errorf("--plaintext-backup and --backup-recipient contradict each other: leave out one of them")
	case restore && (o.Plaintext || fl.Changed("backup-recipient")):
		return fmt.Errorf("--restore writes no backup: leave out --plaintext-backup and --backup-recipient (the archive says how it is encrypted; --backup-identity opens it)")
	case !restore && o.RestoreElsewhere:
		return fmt.Errorf("--restore-elsewhere goes only with --restore ARCHIVE --source DIR")
	}
	// Checked now rather than after the preflight: a mistyped recipient
	// or identity file is a usage error.
	if _, err := reinstall.ParseRecipients(o.Recipients); err != nil {
		return err
	}
	if o.Identity != "" {
		if _, err := reinstall.LoadIdentities(o.Identity); err != nil {
			return fmt.Errorf("--backup-identity: %w", err)
		}
	}
	if o.Plaintext {
		fmt.Fprintln(cmd.ErrOrStderr(), "bigbang: "+engine.PlaintextWarning)
	}
	return nil
}
