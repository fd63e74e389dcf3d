package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"
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

type checkFlags struct {
	hashKnownHosts bool
	timeout        time.Duration
}

func newCheckCmd(cfg *steps.Config) *cobra.Command {
	var f checkFlags
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
	cmd.Flags().DurationVar(&f.timeout, "connect-timeout", sshexec.DefaultTimeout, "limit for connecting, the SSH handshake and logging in")
	return cmd
}

func validateCheck(cfg *steps.Config) error {
	if err := steps.ValidateHost(cfg.Host); err != nil {
		return err
	}
	if err := steps.ValidateUser(cfg.User); err != nil {
		return err
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return fmt.Errorf("%w: port %d is out of range: give a port from 1 to 65535, usually 22", steps.ErrInvalidConfig, cfg.Port)
	}
	switch cfg.Output {
	case "", "tui", "plain", "json":
	default:
		return fmt.Errorf("%w: --output %q: use tui, plain or json", steps.ErrInvalidConfig, cfg.Output)
	}
	if cfg.Identity != "" {
		// A passphrase is asked on a terminal, so only the other key file
		// problems are usage errors here.
		if err := steps.CheckKeyFile(cfg.Identity); err != nil && !errors.Is(err, steps.ErrKeyEncrypted) {
			return err
		}
	}
	return nil
}

type localResult struct {
	checks []steps.Check
	exp    steps.TargetExpect
	flake  any
}

func runCheck(cmd *cobra.Command, cfg *steps.Config, f checkFlags) error {
	if err := validateCheck(cfg); err != nil {
		return usageErr(err)
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	jsonOut := cfg.Output == "json"
	interactive := !jsonOut && term.IsTerminal(os.Stdin.Fd())

	local := make(chan localResult, 1)
	if localChecks != nil {
		go func() {
			c, e, fl := localChecks(ctx, cfg)
			local <- localResult{c, e, fl}
		}()
	} else {
		local <- localResult{}
	}

	client, dialErr := sshexec.Dial(ctx, dialOptions(ctx, cmd, cfg, f, interactive))
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

	out := cmd.OutOrStdout()
	if jsonOut {
		enc := json.NewEncoder(out)
		if err := enc.Encode(rep); err != nil {
			return failErr(err)
		}
	} else {
		printChecks(out, rep)
	}
	if rep.Blocking > 0 {
		cmd.SilenceErrors = true // the report already said why
		return failErr(errSilentFailure)
	}
	return nil
}

// dialOptions builds the SSH options from the flags. The port and user go
// to ssh only when given (or, for the user, when ~/.ssh/config names none),
// so that a Host block for the target still applies.
func dialOptions(ctx context.Context, cmd *cobra.Command, cfg *steps.Config, f checkFlags, interactive bool) sshexec.Options {
	t := sshexec.Target{Host: cfg.Host, Identity: cfg.Identity}
	if cmd.Flags().Changed("port") {
		t.Port = cfg.Port
	}
	if cmd.Flags().Changed("user") {
		t.User = cfg.User
	} else if r, err := sshexec.Resolve(ctx, t); err == nil {
		if u, err := user.Current(); err != nil || r.User == u.Username {
			t.User = cfg.User // ssh's own fallback: the config named no user
		}
	}
	o := sshexec.Options{
		Target:           t,
		KnownHosts:       cfg.KnownHosts,
		AcceptNewHostKey: cfg.AcceptNewHostKey,
		HashKnownHosts:   f.hashKnownHosts,
		Timeout:          f.timeout,
	}
	if interactive {
		errw := cmd.ErrOrStderr()
		in := bufio.NewReader(os.Stdin)
		o.PromptHostKey = func(_ context.Context, k sshexec.HostKeyInfo) (bool, error) {
			fmt.Fprintf(errw, "The host %s is not in your known_hosts.\nIts %s key fingerprint is %s.\n"+
				"Compare it with the one in your provider's console.\nTrust it and save it? [y/N] ", k.Address, k.Type, k.Fingerprint)
			line, err := in.ReadString('\n')
			if err != nil && line == "" {
				return false, err
			}
			a := strings.ToLower(strings.TrimSpace(line))
			return a == "y" || a == "yes", nil
		}
		o.Passphrase = func(file string, attempt int) ([]byte, error) {
			if attempt > 1 {
				fmt.Fprintln(errw, "Wrong passphrase, try again.")
			}
			fmt.Fprintf(errw, "Passphrase for %s: ", file)
			pp, err := term.ReadPassword(os.Stdin.Fd())
			fmt.Fprintln(errw)
			return pp, err
		}
	}
	return o
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

func glyph(s steps.Status) string {
	switch s {
	case steps.StatusOK:
		return "✔"
	case steps.StatusWarn:
		return "⚠"
	case steps.StatusFail:
		return "✘"
	}
	return "–"
}

func printChecks(w io.Writer, rep checkReport) {
	width := 0
	for _, c := range rep.Checks {
		width = max(width, len(c.ID))
	}
	for _, c := range rep.Checks {
		fmt.Fprintf(w, "%s %-*s  %s\n", glyph(c.Status), width, c.ID, c.Summary)
		if c.Fix != "" && (c.Status == steps.StatusWarn || c.Status == steps.StatusFail) {
			fmt.Fprintf(w, "  %*s  fix: %s\n", width, "", c.Fix)
		}
	}
	switch rep.Blocking {
	case 0:
		fmt.Fprintln(w, "\nNothing blocks the install.")
	case 1:
		fmt.Fprintln(w, "\n1 problem blocks the install: fix it and run bigbang check again.")
	default:
		fmt.Fprintf(w, "\n%d problems block the install: fix them and run bigbang check again.\n", rep.Blocking)
	}
}
