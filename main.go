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
	cli.TargetFlags(root, cfg)
	cli.InstallConfigFlags(root, cfg)
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
	root.Args = cli.OnlyAfterDash
	root.RunE = func(cmd *cobra.Command, extra []string) error {
		cfg.Extra = extra
		return runInstall(cmd, *cfg, inst)
	}
	return root
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
