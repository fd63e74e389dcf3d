package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/transcript"
	"github.com/bigbang-nix/bigbang/ui/linear"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

func newExplainCmd(_ *steps.Config) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "explain [--json] FILE|-",
		Short: "Classify a saved nixos-anywhere transcript: phases, outcome, failure diagnosis",
		Long: "explain reads a transcript of a nixos-anywhere run (bigbang's log, or output saved by\n" +
			"hand; - reads standard input) and says which phases ran, how the run ended and, if it\n" +
			"failed, why and what to do. It finds failures that nixos-anywhere prints before\n" +
			"'### Done! ###' too. Exit status 0 when the transcript was explained (even a failed\n" +
			"run), 1 when it cannot be read, 2 on a usage error.",
		Example: "  bigbang explain ~/.local/state/bigbang/logs/203.0.113.10-20260101-120000.log\n" +
			"  nixos-anywhere … 2>&1 | tee run.log; bigbang explain --json run.log",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cli.UsageErr(errors.New("explain needs exactly one transcript: a file name, or - for standard input"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			linear.StdinHint(args[0], cmd.InOrStdin(), cmd.ErrOrStderr())
			rep, err := transcript.ExplainFileContext(cmd.Context(), args[0], cmd.InOrStdin())
			if err != nil && cmd.Context().Err() != nil {
				return err
			} else if err != nil {
				return cli.FailErr(fmt.Errorf("explain: %w", err))
			}
			if err := textout.WriteExplanation(cmd.OutOrStdout(), args[0], rep, asJSON); err != nil {
				return cli.FailErr(fmt.Errorf("explain: write: %w", err))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object: outcome, failed_phase, phases, diagnosis, evidence")
	return cmd
}
