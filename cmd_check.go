package main

import (
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/remote"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

// checkReport is the one object `bigbang check --output json` prints.
type checkReport struct {
	Checks   []steps.Check `json:"checks"`
	Facts    *remote.Facts `json:"facts"`
	Blocking int           `json:"blocking"`
	Flake    any           `json:"flake,omitempty"`
}

func newCheckCmd(cfg *steps.Config) *cobra.Command {
	var timeout time.Duration
	var hash bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Preflight only: check the target and the flake; changes nothing",
		Long: "check connects to the target over one SSH connection, gathers its facts in one\n" +
			"round trip and checks them (and the local flake) against what the install needs:\n" +
			"the same preflight as the install. It only reads.\n" +
			"Exit status 0: nothing blocks the install; 1: something does.",
		Args:         cobra.NoArgs,
		SilenceUsage: true, // stdout carries the report (JSON); errors say what to do
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel, e, err := readOnly(cmd, cfg, needs{flake: true})
			if err != nil {
				return err
			}
			defer cancel()
			rep, err := e.Check(ctx, *cfg, dialPolicy(cmd, cfg, timeout, hash))
			if err != nil {
				return err
			}
			out := checkReport{Checks: rep.Checks, Facts: rep.Facts, Blocking: rep.Blocking(), Flake: rep.FlakeSummary}
			if err := writeReport(cmd, cfg, out, func(w io.Writer) { textout.CheckSummary(w, rep.Checks) }); err != nil {
				return err
			}
			if out.Blocking > 0 {
				return silentFailure(cmd)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&hash, "hash-known-hosts", false, "hash the host name of a newly accepted host key in known_hosts")
	addConnectTimeout(cmd, &timeout)
	cli.TargetFlags(cmd, cfg)
	return cmd
}
