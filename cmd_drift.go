package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

func init() { subcommands = append(subcommands, newDriftCmd) }

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
			return runDrift(cmd, cfg, timeout)
		},
	}
	addConnectTimeout(cmd, &timeout)
	return cmd
}

// liveLayout reads the target's disks through the facts script, the one
// round trip `bigbang check` makes too: lsblk in bytes with partition
// labels, types and tables, completed by blkid -p as root (or through
// passwordless sudo), the mount points and the /dev/disk/by-id links.
func liveLayout(ctx context.Context, c *sshexec.Client) (remote.Facts, error) {
	f, err := c.Facts(ctx)
	if err != nil {
		return f, fmt.Errorf("%w: %w", reinstall.ErrLayoutRead, err)
	}
	if !f.HasTool("lsblk") {
		return f, fmt.Errorf("%w: the target has no lsblk: install util-linux on it", reinstall.ErrLayoutRead)
	}
	return f, nil
}

// flakeLayout returns the disko layout of the evaluated flake.
func flakeLayout(info *flake.Info, err error, ref string) ([]reinstall.FlakeDisk, error) {
	if err != nil {
		return nil, fmt.Errorf("evaluating %s: %w", ref, err)
	}
	disks := reinstall.FromDisko(info.Config.Disko)
	if len(disks) == 0 {
		return nil, fmt.Errorf("%s has no disko layout (disko.devices.disk): drift compares disko layouts only", ref)
	}
	return disks, nil
}

// driftFor reads the live layout of a connected target while the flake's
// evaluation (started with flake.Start before connecting) finishes, and
// compares them. It returns the flake's layout and evaluation too; the
// evaluation is nil when it failed.
func driftFor(ctx context.Context, c *sshexec.Client, ev *flake.Pending, ref string) (reinstall.Report, []reinstall.FlakeDisk, *flake.Info, error) {
	live, lerr := liveLayout(ctx, c)
	info, err := ev.Wait(ctx)
	layout, ferr := flakeLayout(info, err, ref)
	if err != nil {
		info = nil
	}
	if err := errors.Join(ferr, lerr); err != nil {
		return reinstall.Report{}, layout, info, err
	}
	return reinstall.Compare(layout, live), layout, info, nil
}

func runDrift(cmd *cobra.Command, cfg *steps.Config, timeout time.Duration) error {
	if err := validateTarget(cfg); err != nil {
		return usageErr(err)
	}
	if _, _, err := steps.SplitFlake(cfg.Flake); err != nil {
		return usageErr(err)
	}
	ctx, cancel := commandContext(cmd)
	defer cancel()
	ev := flake.Start(ctx, cfg.Flake)
	c, err := connectTarget(ctx, cmd, cfg, timeout)
	if err != nil {
		return failErr(err)
	}
	defer c.Close()
	rep, _, _, err := driftFor(ctx, c, ev, cfg.Flake)
	if err != nil {
		return failErr(fmt.Errorf("drift: %w", err))
	}
	if err := writeReport(cmd, cfg, rep, func(w io.Writer) { printDrift(w, cfg.Host, rep) }); err != nil {
		return err
	}
	if rep.Verdict == reinstall.VerdictReinstall {
		return silentFailure(cmd)
	}
	return nil
}

// printDrift writes the report for a person.
func printDrift(w io.Writer, host string, rep reinstall.Report) {
	fmt.Fprintf(w, "Disk layout of %s against the flake:\n", host)
	for _, u := range rep.Unchanged {
		fmt.Fprintf(w, "  = %s: unchanged\n", u)
	}
	for _, c := range rep.Changes {
		switch c.Kind {
		case reinstall.KindAdded:
			fmt.Fprintf(w, "  + %s: added (%s)\n", c.What, c.Flake)
		case reinstall.KindRemoved:
			fmt.Fprintf(w, "  - %s: removed (%s)\n", c.What, c.Live)
		default:
			fmt.Fprintf(w, "  ~ %s: %s → %s\n", c.What, c.Live, c.Flake)
		}
	}
	fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(rep.Summary()))
}
