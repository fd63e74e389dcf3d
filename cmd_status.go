package main

import (
	"errors"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/ui/linear"
)

// errStatusProblem ends status with exit code 1 after the report.
var errStatusProblem = errors.New("status: problems found")

func newStatusCmd(cfg *steps.Config) *cobra.Command {
	var timeout time.Duration
	var req engine.StatusRequest
	cmd := &cobra.Command{
		Use:   "status",
		Short: "After the install: reachable, host key pinned, NixOS version, the GitOps hand-off, drift",
		Long: "status logs in to an installed machine and reports: whether it is reachable with the\n" +
			"pinned host key (and whether that is the key of the install receipt and the extra-files\n" +
			"tree), the NixOS version and system generation, failed units, the disk drift, and the\n" +
			"hand-off: the flake revision it runs against the pushed main of the local clone (as last\n" +
			"fetched), the update timers scheduled and the deploy/webhook units up (units named like\n" +
			"upgrade, update, flake, deploy or webhook, and any --unit), the ports the flake opens\n" +
			"listening there and answering a connect from here. It only reads (nothing is fetched).\n" +
			"Exit status 0: reachable, host key as pinned, no failed unit or hand-off item; 1 otherwise.",
		Example:      "  bigbang status --host 203.0.113.7 --user admin\n  bigbang status --host 203.0.113.7 --output json --unit deploy-webhook.service",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel, e, err := readOnly(cmd, cfg, needs{receipt: true, flake: true})
			if err != nil {
				return err
			}
			defer cancel()
			req.Config, req.Dial = *cfg, dialPolicy(cmd, cfg, timeout, false)
			st, err := e.Status(ctx, req)
			if err != nil {
				return err
			}
			report := struct {
				Status engine.Status `json:"status"`
			}{st}
			if err := writeReport(cmd, cfg, report, func(w io.Writer) { linear.Status(w, st) }); err != nil {
				return err
			}
			if st.Problems() {
				cmd.SilenceErrors = true // the report said why
				return cli.FailErr(errStatusProblem)
			}
			return nil
		},
	}
	addConnectTimeout(cmd, &timeout)
	cli.TargetFlags(cmd, cfg)
	cmd.Flags().StringArrayVar(&req.Units, "unit", nil, "a systemd unit of the deployment to report on (repeatable)")
	cmd.Flags().BoolVar(&req.NoDrift, "no-drift", false, "skip the disk drift (the live layout read)")
	cmd.Flags().DurationVar(&req.Timeout, "read-timeout", engine.DefaultStatusTimeout, "limit for reading the system state, so that a wedged command on the target cannot hang status")
	return cmd
}
