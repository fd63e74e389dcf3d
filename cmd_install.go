package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/ui"
)

// installFlags are the flags of `bigbang install` alone; rebootTimeout
// zero (the root command without the flag) is sshexec's default.
type installFlags struct {
	skipPreflight        bool
	rebootTimeout, stall time.Duration
}

// addInstallFlags binds the flags of the install alone to cmd. The root
// command, which is `bigbang install` without the word, binds them too.
func addInstallFlags(cmd *cobra.Command, cfg *steps.Config, f *installFlags) {
	cmd.Flags().BoolVar(&f.skipPreflight, "skip-preflight", false,
		"do not check the target and the flake before the wipe (the reboot is still verified)")
	cli.RunFlags(cmd, cfg, &f.rebootTimeout, &f.stall)
}

func newInstallCmd(cfg *steps.Config) *cobra.Command {
	var f installFlags
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the flake onto the target (non-interactive with --yes-wipe HOST)",
		Long: "install checks the target and the flake first (the same preflight as the wizard and\n" +
			"bigbang check) and refuses when something blocks; then it runs nixos-anywhere with the\n" +
			"plan made from the flags and what the preflight learned, shows every phase as it\n" +
			"happens (--output plain or json), saves the whole transcript, and after the reboot waits\n" +
			"for the new system and pins its pre-generated host key. It wipes the target's disks,\n" +
			"so it runs only with --yes-wipe set to the target host.",
		Example: "  bigbang install --host 203.0.113.7 --yes-wipe 203.0.113.7 -i ~/.ssh/id_ed25519\n" +
			"  bigbang install --host opc@203.0.113.7 --yes-wipe 203.0.113.7 --output json > events.jsonl\n" +
			"  bigbang install --host 203.0.113.7 --yes-wipe 203.0.113.7 -- --copy-host-keys   # passed through, not checked",
		Args: cli.OnlyAfterDash,
		RunE: func(cmd *cobra.Command, extra []string) error { cfg.Extra = extra; return runInstall(cmd, *cfg, f) },
	}
	addInstallFlags(cmd, cfg, &f)
	cli.TargetFlags(cmd, cfg)
	cli.InstallConfigFlags(cmd, cfg)
	return cmd
}

// runInstall is `bigbang install`: the wizard on a terminal, else the
// engine's linear install, for --yes-wipe or when there is no terminal.
func runInstall(cmd *cobra.Command, cfg steps.Config, flags installFlags) error {
	ctx, cancel := commandContext(cmd)
	defer cancel()
	if flags.rebootTimeout < 0 || flags.rebootTimeout == 0 && cmd.Flags().Changed("reboot-timeout") {
		return cli.UsageErr(fmt.Errorf("--reboot-timeout %s: give a time to wait, e.g. 10m or 30m", flags.rebootTimeout))
	}
	if wantsWizard(cmd, cfg) {
		return runWizard(ctx, cmd, &cfg, flags.rebootTimeout, flags.stall, nil)
	}
	if err := cfg.Validate(); err != nil {
		return cli.UsageErr(err)
	}
	if err := engine.CheckYesWipe(cfg); err != nil {
		return cli.UsageErr(err)
	}
	if cfg.Output == "" {
		cfg.Output = "plain"
	}
	e := engine.New(engine.Real(ctx, cfg.Flake))
	e.RebootTimeout, e.Stall = flags.rebootTimeout, flags.stall
	s := engine.Script{Config: cfg, SkipPreflight: flags.skipPreflight,
		Resume: engine.ResumeStyle{Script: true, SkipPreflight: flags.skipPreflight, RebootTimeout: flags.rebootTimeout}}
	res, err := e.RunInstall(ctx, s, front(cmd, cfg, false))
	if err != nil {
		return engineErr(ctx, "install", err)
	}
	front(cmd, cfg, false).End(cfg, res, "install")
	return resultErr(res)
}

// wantsWizard says whether the install is the interactive wizard: asked
// for with --output tui, or by default on a terminal when the wipe is not
// confirmed beforehand with --yes-wipe (which is how scripts install).
func wantsWizard(cmd *cobra.Command, cfg steps.Config) bool {
	switch cfg.Output {
	case "tui":
		return true
	case "":
		out, ok := cmd.OutOrStdout().(*os.File)
		return ok && cfg.YesWipe == "" && term.IsTerminal(os.Stdin.Fd()) && term.IsTerminal(out.Fd())
	}
	return false
}

// runWizard runs the wizard over the real engine, with the flake
// evaluation started now, so that it runs while the operator reads the
// welcome screen and fills in the form; re, when not nil, makes it a
// reinstall.
func runWizard(ctx context.Context, cmd *cobra.Command, cfg *steps.Config, rebootTimeout, stall time.Duration, re *engine.ReinstallOptions) error {
	c := *cfg
	e, notes := newEngine(ctx, cmd, &c, needs{receipt: true, flake: true})
	e.RebootTimeout, e.Stall = rebootTimeout, stall
	opts := ui.Options{Config: c, Engine: e, Welcome: ui.WelcomeHere(c.Flake), TargetNotes: notes, Reinstall: re}
	if re == nil && ui.Accessible() {
		res, err := ui.RunAccessible(ctx, opts, os.Stdin, os.Stdout)
		return tuiExit(res, err)
	}
	res, err := ui.Run(ctx, opts)
	// The alternate screen is gone: what to do next stays on the terminal.
	fmt.Fprint(os.Stderr, ui.ExitSummary(res, err))
	if res.Log != "" {
		// The alternate screen is gone with the wizard: the transcript's
		// path stays in the terminal's scrollback.
		fmt.Fprintf(os.Stderr, "bigbang: %s; the transcript is in %s\n", res.Words(re != nil), res.Log)
	}
	if errors.Is(err, engine.ErrNothingToReinstall) {
		fmt.Fprintf(os.Stderr, "bigbang: %v.\n", err)
		return nil
	}
	return tuiExit(res, err)
}

// tuiExit maps the wizard's end to the exit codes of the contract.
func tuiExit(res engine.InstallResult, err error) error {
	switch {
	case errors.Is(err, ui.ErrQuit):
		return nil
	case errors.Is(err, ui.ErrAborted):
		// Left before anything changed: nothing to report, no error box.
		return &cli.ExitError{Code: cli.Interrupted, Err: cli.ErrSilent}
	case err != nil:
		return cli.FailErr(err)
	case res.Outcome == steps.OutcomeAborted:
		return &cli.ExitError{Code: cli.Interrupted, Err: cli.ErrSilent}
	case res.Outcome != steps.OutcomeSuccess:
		return cli.ErrSilent
	}
	return nil
}
