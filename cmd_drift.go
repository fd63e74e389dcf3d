package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

func newDriftCmd(cfg *steps.Config) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "drift",
		Short: "Compare the flake's disk layout with the live disks: is a reinstall needed?",
		Long: "drift evaluates the flake's disko layout and reads the live one from the target (lsblk in\n" +
			"bytes, partition labels, filesystems, mountpoints) and names every difference: per disk,\n" +
			"partition, filesystem and mountpoint, unchanged, changed, added or removed. It only reads.\n" +
			"Exit status 0: no reinstall needed (deploy with nh os switch / nixos-rebuild);\n" +
			"1: a reinstall is required, or the comparison could not be made.",
		Example:      "  bigbang drift --host 203.0.113.7 --user admin\n  bigbang drift --host 203.0.113.7 --output json",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, _, err := steps.SplitFlake(cfg.Flake); err != nil {
				return cli.UsageErr(err)
			}
			ctx, cancel, e, err := readOnly(cmd, cfg, needs{receipt: true, flake: true})
			if err != nil {
				return err
			}
			defer cancel()
			c, err := e.Connect(ctx, *cfg, dialPolicy(cmd, cfg, timeout, false))
			if err != nil {
				return cli.FailErr(err)
			}
			defer c.Close()
			rep, _, err := e.DriftOver(ctx, c, *cfg)
			if err != nil {
				return cli.FailErr(fmt.Errorf("drift: %w", err))
			}
			if err := writeReport(cmd, cfg, rep, func(w io.Writer) { textout.Drift(w, cfg.Host, rep) }); err != nil {
				return err
			}
			if rep.Verdict == reinstall.VerdictReinstall {
				return silentFailure(cmd)
			}
			return nil
		},
	}
	addConnectTimeout(cmd, &timeout)
	cli.TargetFlags(cmd, cfg)
	return cmd
}
