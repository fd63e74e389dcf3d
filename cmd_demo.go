package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/rehearsal"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/ui"
)

func newDemoCmd(_ *steps.Config) *cobra.Command {
	var speed float64
	var yes, reinstall bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Rehearse the whole wizard against a simulated VPS; touches nothing real",
		Long: "demo runs the full wizard against an in-process SSH server that plays an Oracle Cloud\n" +
			"Ampere A1 VM (aarch64, 4 OCPU, 24 GiB, Oracle Linux 9, /dev/sda 200 GB, user opc), and\n" +
			"replays a recorded nixos-anywhere 1.13.0 run through the same engine, runner and panes as\n" +
			"a real install. Everything it writes goes to a temporary folder that is removed at the end.",
		Example: "  bigbang demo\n  bigbang demo --speed 10\n  bigbang demo --yes --speed 50   # unattended: every screen, default answers\n" +
			"  bigbang demo --reinstall        # the reinstall: drift, backup, install, restore",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if speed <= 0 {
				return usageErr(errors.New("--speed must be more than 0, e.g. --speed 10"))
			}
			if reinstall && ui.Accessible() {
				return usageErr(errors.New("demo --reinstall needs the full-screen wizard: unset ACCESSIBLE, or run bigbang demo without --reinstall"))
			}
			b, err := rehearsal.New(rehearsal.Options{Speed: speed, FailAt: os.Getenv("BIGBANG_REHEARSAL_FAIL_AT")})
			if err != nil {
				return failErr(err)
			}
			defer b.Close()
			opts := ui.Options{
				Config: b.Config(), Engine: b.Engine(), Rehearsal: true, Auto: yes, AutoPause: ui.AutoPause(speed), Command: "bigbang",
				Welcome: ui.Welcome{Flake: ".#vps-arm", Found: "the rehearsal's built-in flake (nixosConfigurations.vps-arm, aarch64-linux)"},
			}
			if yes {
				opts.ExitAfter = 3 * time.Second
			}
			var res engine.InstallResult
			switch {
			case reinstall:
				opts.Reinstall = &engine.ReinstallOptions{Services: rehearsal.ReinstallServices}
				res, err = ui.Run(cmd.Context(), opts)
			case ui.Accessible():
				res, err = ui.RunAccessible(cmd.Context(), opts, cmd.InOrStdin(), cmd.OutOrStdout())
			default:
				res, err = ui.Run(cmd.Context(), opts)
			}
			if err == nil && res.Outcome == steps.OutcomeSuccess && !ui.Accessible() {
				what := "every phase done"
				if reinstall {
					what = "reinstalled and restored"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Rehearsal finished: %s. Nothing real was touched.\n", what)
			}
			return tuiExit(res, err)
		},
	}
	cmd.Flags().Float64Var(&speed, "speed", 1, "play the recorded run N times faster")
	cmd.Flags().BoolVar(&yes, "yes", false, "answer every question with its default and type the confirmation (unattended)")
	cmd.Flags().BoolVar(&reinstall, "reinstall", false, "rehearse a reinstall after a disk layout change: drift, backup of /persistent, install, restore")
	return cmd
}

// newReplayCmd is the hidden command the rehearsal's runner starts in place
// of nixos-anywhere.
func newReplayCmd(_ *steps.Config) *cobra.Command {
	return rehearsal.ReplayCmd(func(code int) error { return &exitError{code: code, err: errSilentFailure} })
}
