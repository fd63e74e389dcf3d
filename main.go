// Command bigbang installs a NixOS flake onto a fresh VPS by driving
// nixos-anywhere, with a preflight before the wipe, live progress while it
// runs and a verified reboot after it. This file holds the command line and
// the wiring only; the logic lives in steps/, sshexec/ and ui/.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"charm.land/fang/v2"
	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/steps"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func newRoot(cfg *steps.Config) *cobra.Command {
	root := &cobra.Command{
		Use:   "bigbang",
		Short: "Install a NixOS flake onto a fresh VPS, safely and visibly",
		Long: "bigbang drives nixos-anywhere to put a NixOS flake onto a fresh VPS: it checks the\n" +
			"target and the flake before anything is wiped, shows every phase as it happens,\n" +
			"saves the whole transcript, and proves the new system after the reboot.",
	}
	*cfg = steps.DefaultConfig()
	targetFlags(root, cfg)
	installConfigFlags(root, cfg)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cli.UsageErr(err) })
	// The host is parsed once, here: user@host[:port] fills in the user
	// and the port, and nothing further in parses it again.
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if err := cfg.Normalize(); err != nil {
			return cli.UsageErr(err)
		}
		return nil
	}
	root.AddCommand(newInstallCmd(cfg), newCheckCmd(cfg), newExplainCmd(cfg), newDemoCmd(cfg), newReplayCmd(cfg),
		newDriftCmd(cfg), newReinstallCmd(cfg), newKeysCmd(cfg), newStatusCmd(cfg))
	// `bigbang` alone is `bigbang install`: the wizard on a terminal, the
	// non-interactive install with --yes-wipe or without a terminal.
	var inst installFlags
	addInstallFlags(root, cfg, &inst)
	root.Args = cobra.NoArgs
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		return runInstall(cmd, *cfg, inst)
	}
	return root
}

// targetFlags binds the flags of the commands that log in to the target:
// where it is, how to reach it, the flake and the extra files. Each
// command binds what it uses, so that its --help lists only that.
func targetFlags(cmd *cobra.Command, cfg *steps.Config) {
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
	flakeFlags(cmd, cfg)
}

// flakeFlags binds --flake and --extra-files.
func flakeFlags(cmd *cobra.Command, cfg *steps.Config) {
	d := steps.DefaultConfig()
	cmd.Flags().StringVar(&cfg.Flake, "flake", d.Flake, "flake reference with the nixosConfigurations attribute")
	cmd.Flags().StringVar(&cfg.ExtraFiles, "extra-files", d.ExtraFiles, "folder copied into / of the new system (host keys)")
}

// installConfigFlags binds the flags of the commands that install.
func installConfigFlags(cmd *cobra.Command, cfg *steps.Config) {
	d := steps.DefaultConfig()
	f := cmd.Flags()
	f.StringVar(&cfg.RAM, "ram", "", "target RAM with a unit, e.g. 24G or 512M (a bare number means GiB; overrides detection)")
	f.StringVar(&cfg.BuildOn, "build-on", d.BuildOn, "where the system is built: auto, local or remote")
	f.StringVar(&cfg.NixosAnywhere, "nixos-anywhere", d.NixosAnywhere, "command that runs nixos-anywhere")
	f.StringVar(&cfg.Log, "log", "", "transcript file (default $XDG_STATE_HOME/bigbang/logs/<host>-<time>.log)")
	f.StringVar(&cfg.YesWipe, "yes-wipe", "", "confirm the disk wipe for scripts: must equal the target host")
	f.StringVar(&cfg.Phases, "phases", "", "run only these phases, e.g. disko,install,reboot (resume)")
}

func main() {
	os.Exit(run())
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	var cfg steps.Config
	root := newRoot(&cfg)
	err := fang.Execute(ctx, root, fang.WithVersion(version), fang.WithErrorHandler(cli.ErrorHandler))
	return cli.Code(ctx, err)
}
