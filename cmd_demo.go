package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/rehearsal"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/ui"
)

func newDemoCmd(_ *steps.Config) *cobra.Command {
	var o rehearsal.Options
	var yes bool
	var fails strings.Builder
	for _, c := range rehearsal.FailAtChoices {
		fmt.Fprintf(&fails, "\n  %-8s %s", c[0], c[1])
	}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Rehearse the whole wizard against a simulated VPS; touches nothing real",
		Long: "demo runs the full wizard against an in-process SSH server that plays an Oracle Cloud\n" +
			"Ampere A1 VM (aarch64, 4 OCPU, 24 GiB, Oracle Linux 9, /dev/sda 200 GB, user opc), and\n" +
			"replays a recorded nixos-anywhere 1.13.0 run through the same engine, runner and panes as\n" +
			"a real install; the installed system comes back with the shipped host key, as a real one\n" +
			"does. Without a terminal it runs the plain output, unattended. Everything it writes goes\n" +
			"to a temporary folder that is removed at the end. --fail-at rehearses a failure:" + fails.String(),
		Example: "  bigbang demo\n  bigbang demo --speed 1          # the recorded pace (about 7 minutes)\n" +
			"  bigbang demo --fail-at disko    # what a failure and its resume look like\n" +
			"  bigbang demo --yes --speed 50   # unattended: every screen, default answers\n" +
			"  bigbang demo --reinstall        # the reinstall: drift, backup, install, restore",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case o.Speed <= 0:
				return cli.UsageErr(errors.New("--speed must be more than 0, e.g. --speed 10"))
			case !rehearsal.ValidFailAt(o.FailAt):
				return cli.UsageErr(fmt.Errorf("--fail-at %q: use one of%s", o.FailAt, fails.String()))
			case o.Reinstall && ui.Accessible():
				return cli.UsageErr(errors.New("demo --reinstall needs the full-screen wizard: unset ACCESSIBLE, or run bigbang demo without --reinstall"))
			}
			b, err := rehearsal.New(o)
			if err != nil {
				return cli.FailErr(err)
			}
			defer b.Close()
			if out, ok := cmd.OutOrStdout().(*os.File); !ok || !term.IsTerminal(out.Fd()) || !term.IsTerminal(os.Stdin.Fd()) {
				return demoPlain(cmd, b, o)
			}
			opts := ui.Options{
				Config: b.Config(), Engine: b.Engine(), Rehearsal: true, Auto: yes, AutoPause: ui.AutoPause(o.Speed), Command: "bigbang",
				Welcome: ui.Welcome{Flake: ".#vps-arm", Found: "the rehearsal's built-in flake (nixosConfigurations.vps-arm, aarch64-linux)"},
			}
			if yes {
				opts.ExitAfter = 3 * time.Second
			}
			var res engine.InstallResult
			switch {
			case o.Reinstall:
				opts.Reinstall = &engine.ReinstallOptions{Services: rehearsal.ReinstallServices}
				res, err = ui.Run(cmd.Context(), opts)
			case ui.Accessible():
				res, err = ui.RunAccessible(cmd.Context(), opts, cmd.InOrStdin(), cmd.OutOrStdout())
			default:
				res, err = ui.Run(cmd.Context(), opts)
			}
			if !ui.Accessible() {
				fmt.Fprint(os.Stderr, ui.ExitSummary(res, err))
			}
			if err == nil && res.Outcome == steps.OutcomeSuccess && !ui.Accessible() {
				what := "every phase done"
				if o.Reinstall {
					what = "reinstalled and restored"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Rehearsal finished: %s. Nothing real was touched.\n", what)
			}
			return tuiExit(res, err)
		},
	}
	cmd.Flags().Float64Var(&o.Speed, "speed", 5, "play the recorded run N times faster (1: the recorded pace)")
	cmd.Flags().StringVar(&o.FailAt, "fail-at", "", "rehearse a failure (see above)")
	cmd.Flags().BoolVar(&yes, "yes", false, "answer every question with its default and type the confirmation (unattended)")
	cmd.Flags().BoolVar(&o.Reinstall, "reinstall", false, "rehearse a reinstall after a disk layout change: drift, backup of /persistent, install, restore")
	return cmd
}

// demoPlain is the demo without a terminal: the engine's linear install
// over the rehearsal, in plain text, every question answered.
func demoPlain(cmd *cobra.Command, b *rehearsal.Rehearsal, o rehearsal.Options) error {
	cfg := b.Config()
	cfg.AcceptNewHostKey, cfg.YesWipe, cfg.Output = true, cfg.Host, "plain"
	fmt.Fprintln(cmd.OutOrStdout(), "REHEARSAL: a simulated VPS and a recorded nixos-anywhere run; nothing real is touched.")
	f := front(cmd, cfg, false)
	if o.Reinstall {
		out, err := b.Engine().RunReinstall(cmd.Context(), engine.Script{Config: cfg, Reinstall: &engine.ReinstallOptions{Services: rehearsal.ReinstallServices}}, f)
		if err != nil {
			return engineErr(cmd.Context(), "demo", err)
		}
		f.EndReinstall(cfg, out)
		return resultErr(out.Install)
	}
	res, err := b.Engine().RunInstall(cmd.Context(), engine.Script{Config: cfg}, f)
	if err != nil {
		return engineErr(cmd.Context(), "demo", err)
	}
	f.End(cfg, res, "rehearsed install")
	return resultErr(res)
}

// newReplayCmd is the hidden command the rehearsal's runner starts in place
// of nixos-anywhere.
func newReplayCmd(_ *steps.Config) *cobra.Command {
	return rehearsal.ReplayCmd(func(code int) error { return &cli.ExitError{Code: code, Err: cli.ErrSilent} })
}
