package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
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
	cmd.Flags().DurationVar(&timeout, "connect-timeout", sshexec.DefaultTimeout, "limit for connecting, the SSH handshake and logging in")
	return cmd
}

// flakeResult is the flake's evaluation, made while SSH connects.
type flakeResult struct {
	info *flake.Info
	err  error
}

func evaluateFlake(ctx context.Context, ref string) <-chan flakeResult {
	ch := make(chan flakeResult, 1)
	go func() {
		info, err := flake.Evaluate(ctx, ref)
		ch <- flakeResult{info, err}
	}()
	return ch
}

// connectTarget dials the target as `check` does, asking about an unknown
// host key on a terminal.
func connectTarget(ctx context.Context, cmd *cobra.Command, cfg *steps.Config, timeout time.Duration) (*sshexec.Client, error) {
	interactive := cfg.Output != "json" && term.IsTerminal(os.Stdin.Fd())
	c, err := sshexec.Dial(ctx, dialOptions(ctx, cmd, cfg, checkFlags{timeout: timeout}, interactive))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Host, err)
	}
	return c, nil
}

// needsSudo says whether remote commands that need root go through sudo.
func needsSudo(c *sshexec.Client) bool { return c.Resolved.User != "root" }

// readLiveLayout reads the target's disks with reinstall.LayoutCommand, as
// root where it can (blkid -p reads the devices themselves), else as the
// login user (lsblk alone: partitions are then matched by order).
func readLiveLayout(ctx context.Context, c *sshexec.Client) ([]reinstall.LiveDisk, error) {
	cmdline := "sh -c " + steps.ShellQuote(reinstall.LayoutCommand())
	if needsSudo(c) {
		var out bytes.Buffer
		if err := c.Run(ctx, "sudo -n "+cmdline, nil, &out, io.Discard); err == nil {
			return reinstall.ParseLayout(out.Bytes())
		}
	}
	var out, errb bytes.Buffer
	if err := c.Run(ctx, cmdline, nil, &out, &errb); err != nil {
		return nil, fmt.Errorf("%w: %v: check that util-linux (lsblk) is installed on the target", reinstall.ErrLayoutRead, err)
	}
	return reinstall.ParseLayout(out.Bytes())
}

// flakeLayout returns the disko layout of the evaluated flake.
func flakeLayout(r flakeResult, ref string) ([]reinstall.FlakeDisk, error) {
	if r.err != nil {
		return nil, fmt.Errorf("evaluating %s: %w", ref, r.err)
	}
	disks := reinstall.FromDisko(r.info.Config.Disko)
	if len(disks) == 0 {
		return nil, fmt.Errorf("%s has no disko layout (disko.devices.disk): drift compares disko layouts only", ref)
	}
	return disks, nil
}

// driftFor reads the live layout of a connected target while the flake's
// evaluation finishes, and compares them. It returns the evaluation too.
func driftFor(ctx context.Context, c *sshexec.Client, fr <-chan flakeResult, ref string) (reinstall.Report, flakeResult, error) {
	live, lerr := readLiveLayout(ctx, c)
	res := <-fr
	layout, ferr := flakeLayout(res, ref)
	if err := errors.Join(ferr, lerr); err != nil {
		return reinstall.Report{}, res, err
	}
	return reinstall.Compare(layout, live), res, nil
}

func runDrift(cmd *cobra.Command, cfg *steps.Config, timeout time.Duration) error {
	if err := validateCheck(cfg); err != nil {
		return usageErr(err)
	}
	if _, _, err := steps.SplitFlake(cfg.Flake); err != nil {
		return usageErr(err)
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	fr := evaluateFlake(ctx, cfg.Flake)
	c, err := connectTarget(ctx, cmd, cfg, timeout)
	if err != nil {
		return failErr(err)
	}
	defer c.Close()
	rep, _, err := driftFor(ctx, c, fr, cfg.Flake)
	if err != nil {
		return failErr(fmt.Errorf("drift: %w", err))
	}
	out := cmd.OutOrStdout()
	if cfg.Output == "json" {
		if err := json.NewEncoder(out).Encode(rep); err != nil {
			return failErr(err)
		}
	} else {
		printDrift(out, cfg.Host, rep)
	}
	if rep.Verdict == reinstall.VerdictReinstall {
		cmd.SilenceErrors = true // the report said why
		return failErr(errSilentFailure)
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
