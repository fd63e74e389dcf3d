package textout

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/bigbang-nix/bigbang/steps/transcript"
)

// WriteExplanation prints the report as one JSON object (asJSON) or as
// Explanation's text.
func WriteExplanation(w io.Writer, name string, rep transcript.Report, asJSON bool) error {
	if !asJSON {
		Explanation(w, name, rep)
		return nil
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(rep)
}

// Explanation prints the report for a person: the phase timeline, the
// outcome and, when the run did not succeed, the diagnosis and its remedy.
func Explanation(w io.Writer, name string, rep transcript.Report) {
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
		evidence(w, rep.Evidence)
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
	evidence(w, rep.Evidence)
}

// evidence lists the lines behind the verdict, so that the operator
// can check it against the log.
func evidence(w io.Writer, ev []transcript.Evidence) {
	if len(ev) == 0 {
		return
	}
	fmt.Fprintln(w, "\nEvidence:")
	for _, e := range ev {
		fmt.Fprintf(w, "  line %d: %s\n", e.Line, strings.TrimSpace(e.Text))
		fmt.Fprintf(w, "           (%s)\n", e.Why)
	}
}
