package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/ui/linear"
)

// What the commands share: the engine over the real world, the validation
// of the target flags, the dial policy with its questions on a terminal,
// the JSON-or-text report and the mapping of errors to exit codes.

// commandContext is the command's context (a test calling Execute gives
// none: then a background one), cancelled when the command returns.
func commandContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithCancel(ctx)
}

// needs says what a command's engine prepares: the target's defaults from
// the host's last install (its receipt), and an evaluation of the flake
// started now (nix runs while the command logs in).
type needs struct{ receipt, flake bool }

// newEngine is the engine over the real world, with cfg's target filled in
// from the ssh configuration (and, with n.receipt, the host's last install)
// where the operator gave no flag. It returns the notes saying where the
// defaults came from.
func newEngine(ctx context.Context, cmd *cobra.Command, cfg *steps.Config, n needs) (*engine.Engine, []string) {
	ref := ""
	if n.flake {
		ref = cfg.Flake
	}
	e := engine.New(engine.Real(ctx, ref))
	fl := cmd.Flags()
	notes := e.Defaults(ctx, cfg, engine.Given{User: fl.Changed("user"), Port: fl.Changed("port"), Identity: fl.Changed("identity")}, n.receipt)
	return e, notes
}

// readOnly starts a command that only logs in (check, drift, status, the
// restore alone): the target flags checked, then the engine over the real
// world with the target's defaults filled in. The caller defers cancel.
func readOnly(cmd *cobra.Command, cfg *steps.Config, n needs) (context.Context, context.CancelFunc, *engine.Engine, error) {
	if err := cfg.ValidateTarget(); err != nil {
		return nil, nil, nil, cli.UsageErr(err)
	}
	ctx, cancel := commandContext(cmd)
	e, _ := newEngine(ctx, cmd, cfg, n)
	return ctx, cancel, e, nil
}

// addConnectTimeout adds --connect-timeout.
func addConnectTimeout(cmd *cobra.Command, timeout *time.Duration) {
	cmd.Flags().DurationVar(timeout, "connect-timeout", sshexec.DefaultTimeout, "limit for connecting, the SSH handshake and logging in")
}

// interactive reports whether the operator can be asked: not with JSON
// output, and only when standard input is a terminal.
func interactive(cfg *steps.Config) bool {
	return cfg.Output != "json" && term.IsTerminal(os.Stdin.Fd())
}

// dialPolicy is how the commands' dials treat the operator: on a
// terminal an unknown host key is shown and saved only after a yes, and a
// key file's passphrase is asked for; otherwise an unknown key is refused
// unless --accept-new-host-key was given.
func dialPolicy(cmd *cobra.Command, cfg *steps.Config, timeout time.Duration, hash bool) engine.DialPolicy {
	p := engine.DialPolicy{Timeout: timeout, HashKnownHosts: hash}
	if interactive(cfg) {
		p.Prompt, p.Passphrase = linear.Prompts(cmd.Context(), bufio.NewReader(os.Stdin), os.Stdin.Fd(), cmd.ErrOrStderr())
	}
	return p
}

// front is the plain or JSON front end of a linear run for cmd.
func front(cmd *cobra.Command, cfg steps.Config, ask bool) *linear.Front {
	f := &linear.Front{Out: cmd.OutOrStdout(), Err: cmd.ErrOrStderr(), JSON: cfg.Output == "json", Confirmed: cfg.YesWipe != ""}
	if ask {
		f.In = bufio.NewReader(os.Stdin)
	}
	return f
}

// writeReport prints v as one line of JSON with --output json, and calls
// plain for the text output otherwise.
func writeReport(cmd *cobra.Command, cfg *steps.Config, v any, plain func(io.Writer)) error {
	if err := linear.Report(cmd.OutOrStdout(), cfg.Output == "json", v, plain); err != nil {
		return cli.FailErr(fmt.Errorf("%s: writing the report: %w", cmd.Name(), err))
	}
	return nil
}

// silentFailure ends a command with exit status 1 after a report that has
// already said why.
func silentFailure(cmd *cobra.Command) error {
	cmd.SilenceErrors = true
	return cli.FailErr(cli.ErrSilent)
}

// engineErr maps an error of the engine's linear run to the exit codes.
func engineErr(ctx context.Context, stage string, err error) error {
	switch {
	case ctx.Err() != nil || errors.Is(err, engine.ErrInterrupted):
		return &cli.ExitError{Code: cli.Interrupted, Err: err}
	case errors.Is(err, steps.ErrInvalidConfig) || errors.Is(err, engine.ErrNotConfirmed):
		return cli.UsageErr(fmt.Errorf("%s: %w", stage, err))
	}
	return cli.FailErr(fmt.Errorf("%s: %w", stage, err))
}

// resultErr maps how an install ended to the exit codes, after the result
// was shown.
func resultErr(res engine.InstallResult) error {
	switch res.Outcome {
	case steps.OutcomeSuccess:
		return nil
	case steps.OutcomeAborted:
		return &cli.ExitError{Code: cli.Interrupted, Err: fmt.Errorf("interrupted; the transcript is in %s", res.Log)}
	}
	return cli.ErrSilent
}
