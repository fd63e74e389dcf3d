package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// localChecks runs the checks of the local side (flake, keys, secrets) and
// returns what the flake expects of the target, plus a description of the
// flake for the JSON report. nil: no local checks. It may be slow (nix
// eval), so it runs while the SSH connection is being made.
var localChecks func(ctx context.Context, cfg *steps.Config) (checks []steps.Check, exp steps.TargetExpect, flake any)

func init() { subcommands = append(subcommands, newCheckCmd) }

// checkReport is the one object `bigbang check --output json` prints.
type checkReport struct {
	Checks   []steps.Check `json:"checks"`
	Facts    *remote.Facts `json:"facts"`
	Blocking int           `json:"blocking"`
	Flake    any           `json:"flake,omitempty"`
}

func newCheckCmd(cfg *steps.Config) *cobra.Command {
	var f connectFlags
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Preflight only: check the target and the flake; changes nothing",
		Long: "check connects to the target over one SSH connection, gathers its facts in one\n" +
			"round trip and checks them (and the local flake) against what the install needs.\n" +
			"It only reads. Exit status 0: nothing blocks the install; 1: something does.",
		Args:         cobra.NoArgs,
		SilenceUsage: true, // stdout carries the report (JSON); errors say what to do
		RunE:         func(cmd *cobra.Command, _ []string) error { return runCheck(cmd, cfg, f) },
	}
	cmd.Flags().BoolVar(&f.hashKnownHosts, "hash-known-hosts", false, "hash the host name of a newly accepted host key in known_hosts")
	addConnectTimeout(cmd, &f.timeout)
	return cmd
}

type localResult struct {
	checks []steps.Check
	exp    steps.TargetExpect
	flake  any
}

func runCheck(cmd *cobra.Command, cfg *steps.Config, f connectFlags) error {
	if err := validateTarget(cfg); err != nil {
		return usageErr(err)
	}
	ctx, cancel := commandContext(cmd)
	defer cancel()

	local := make(chan localResult, 1)
	if localChecks != nil {
		go func() {
			c, e, fl := localChecks(ctx, cfg)
			local <- localResult{c, e, fl}
		}()
	} else {
		local <- localResult{}
	}

	client, dialErr := dialTarget(ctx, cmd, cfg, f)
	if dialErr != nil && ctx.Err() != nil {
		return dialErr
	}
	var rep checkReport
	var remoteChecks []steps.Check
	var lr localResult
	if dialErr != nil {
		lr = <-local
		remoteChecks = unreachedChecks(dialErr)
	} else {
		defer client.Close()
		facts, factsErr := client.Facts(ctx)
		lr = <-local
		if factsErr != nil {
			if ctx.Err() != nil {
				return factsErr
			}
			remoteChecks = remote.Unreached(remote.IDOS, "gathering the target's facts failed: "+factsErr.Error(),
				"run again; if it persists, check that the login user's shell can run /bin/sh")
			connected := remote.Checks(remote.Facts{}, steps.TargetExpect{}, client.CheckOptions())
			remoteChecks[0], remoteChecks[1] = connected[0], connected[1]
		} else {
			remoteChecks = remote.Checks(facts, lr.exp, client.CheckOptions())
			rep.Facts = &facts
		}
	}
	rep.Checks = append(append([]steps.Check{}, lr.checks...), remoteChecks...)
	rep.Blocking = steps.CountBlocking(rep.Checks)
	rep.Flake = lr.flake

	if err := writeReport(cmd, cfg, rep, func(w io.Writer) { printChecks(w, rep) }); err != nil {
		return err
	}
	if rep.Blocking > 0 {
		return silentFailure(cmd)
	}
	return nil
}

// unreachedChecks turns a failed dial into the remote checks: a host key
// problem fails remote.hostkey, anything else (network, handshake, login)
// fails remote.auth.
func unreachedChecks(err error) []steps.Check {
	summary, fix := err.Error(), ""
	var e *sshexec.Error
	if errors.As(err, &e) {
		summary, fix = e.Summary, e.Fix
	}
	if fix == "" {
		fix = "check the host, port and key, then run again"
	}
	id := remote.IDAuth
	if errors.Is(err, sshexec.ErrHostKeyMismatch) || errors.Is(err, sshexec.ErrHostKeyUnknown) {
		id = remote.IDHostKey
	}
	return remote.Unreached(id, summary, fix)
}

// printChecks prints the report for a person: the checks, then whether
// anything blocks the install.
func printChecks(w io.Writer, rep checkReport) {
	writeChecks(w, rep.Checks)
	switch rep.Blocking {
	case 0:
		fmt.Fprintln(w, "\nNothing blocks the install.")
	case 1:
		fmt.Fprintln(w, "\n1 problem blocks the install: fix it and run bigbang check again.")
	default:
		fmt.Fprintf(w, "\n%d problems block the install: fix them and run bigbang check again.\n", rep.Blocking)
	}
}
