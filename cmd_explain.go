package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/transcript"
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
				return usageErr(errors.New("explain needs exactly one transcript: a file name, or - for standard input"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := explainPath(cmd, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetEscapeHTML(false)
				if err := enc.Encode(rep); err != nil {
					return failErr(fmt.Errorf("explain: write: %w", err))
				}
				return nil
			}
			writeExplanation(out, args[0], rep)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object: outcome, failed_phase, phases, diagnosis, evidence")
	return cmd
}

// explainPath opens the transcript (or standard input for "-") and
// classifies it, turning input problems into errors that say what to do.
func explainPath(cmd *cobra.Command, path string) (transcript.Report, error) {
	var r io.Reader
	name := path
	if path == "-" {
		r, name = cmd.InOrStdin(), "standard input"
	} else {
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return transcript.Report{}, failErr(fmt.Errorf("explain: %s does not exist: give the path of a saved transcript (bigbang prints it after each run), or - to read standard input", path))
			}
			return transcript.Report{}, failErr(fmt.Errorf("explain: open %s: %w: check the path and its permissions", path, err))
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return transcript.Report{}, failErr(fmt.Errorf("explain: %s is a folder: give one transcript file inside it", path))
		}
		r = f
	}
	rep, err := transcript.Explain(r)
	switch {
	case errors.Is(err, transcript.ErrEmpty):
		return rep, failErr(fmt.Errorf("explain: %s is empty: nothing to explain; give the transcript of a run (bigbang's --log file, or nixos-anywhere's output saved with 2>&1 | tee)", name))
	case errors.Is(err, transcript.ErrNotText):
		return rep, failErr(fmt.Errorf("explain: %s is not a text transcript (it holds NUL bytes or is not UTF-8): give the plain log file, decompressed if it was compressed", name))
	case err != nil:
		return rep, failErr(fmt.Errorf("explain: %s: %w", name, err))
	}
	return rep, nil
}

// writeExplanation prints the report for a person: the phase timeline, the
// outcome and, when the run did not succeed, the diagnosis and its remedy.
func writeExplanation(w io.Writer, name string, rep transcript.Report) {
	if name == "-" {
		name = "standard input"
	}
	fmt.Fprintf(w, "Transcript: %s (%d lines)\n\n", name, rep.Lines)
	if len(rep.Phases) == 0 {
		fmt.Fprintln(w, "No phase of nixos-anywhere shows in it.")
	} else {
		fmt.Fprintln(w, "Phases:")
		for _, s := range rep.Phases {
			fmt.Fprintf(w, "  %-8s  %-7s  lines %d-%d\n", s.ID.Title(), s.State, s.FirstLine, s.LastLine)
		}
	}
	fmt.Fprintln(w)
	switch rep.Outcome {
	case transcript.OutcomeSuccess:
		fmt.Fprintln(w, "Outcome: success — nixos-anywhere reached Done! and no failure shows in the output.")
		fmt.Fprintln(w, "Next: wait for the new system to boot, then check it with bigbang status.")
		writeEvidence(w, rep.Evidence)
		return
	case transcript.OutcomeFailed:
		if rep.FailedPhase != "" {
			fmt.Fprintf(w, "Outcome: failed in %s (%s)\n", rep.FailedPhase.Title(), rep.FailedPhase)
		} else {
			fmt.Fprintln(w, "Outcome: failed before any phase started")
		}
	default:
		if rep.FailedPhase != "" {
			fmt.Fprintf(w, "Outcome: incomplete — the transcript stops in %s (%s) without an error and without Done!\n", rep.FailedPhase.Title(), rep.FailedPhase)
		} else {
			fmt.Fprintln(w, "Outcome: incomplete — the transcript stops without an error and without Done!")
		}
	}
	fmt.Fprintf(w, "Diagnosis (%s): %s\n", rep.Diagnosis.ID, rep.Diagnosis.Summary)
	fmt.Fprintf(w, "Remedy: %s\n", rep.Diagnosis.Remedy)
	writeEvidence(w, rep.Evidence)
}

// writeEvidence lists the lines behind the verdict, so that the operator
// can check it against the log.
func writeEvidence(w io.Writer, ev []transcript.Evidence) {
	if len(ev) == 0 {
		return
	}
	fmt.Fprintln(w, "\nEvidence:")
	for _, e := range ev {
		fmt.Fprintf(w, "  line %d: %s\n", e.Line, strings.TrimSpace(e.Text))
		fmt.Fprintf(w, "           (%s)\n", e.Why)
	}
}
