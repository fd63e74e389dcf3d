package linear

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

func yesNo(b *bool, yes, no, unknown string) string {
	switch {
	case b == nil:
		return unknown
	case *b:
		return yes
	}
	return no
}

// Status writes the report for a person, one line per fact, with the
// glyphs of `bigbang check`.
func Status(w io.Writer, st engine.Status) {
	line := func(s steps.Status, format string, args ...any) {
		fmt.Fprintf(w, "%s %s\n", textout.StatusGlyph(s, "–"), fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(w, "Status of %s\n", st.Host)
	if !st.Reachable {
		line(steps.StatusFail, "not reachable: %s", st.Error)
		return
	}
	k := st.HostKey
	keyStatus := steps.StatusOK
	if k.MatchesReceipt != nil && !*k.MatchesReceipt {
		keyStatus = steps.StatusFail
	}
	line(keyStatus, "reachable; host key %s (%s in known_hosts; %s; %s)", k.Fingerprint, k.Pinned,
		yesNo(k.MatchesReceipt, "the key of the install receipt", "NOT the key of the install receipt", "no install receipt"),
		yesNo(k.MatchesExtraKey, "the key in the extra-files tree", "not the key in the extra-files tree", "no key in the extra-files tree"))
	if st.NixOS == "" {
		line(steps.StatusWarn, "not NixOS (no nixos-version): install the flake with bigbang install")
	} else {
		gen := "generation unknown"
		if st.Generation > 0 {
			gen = fmt.Sprintf("generation %d", st.Generation)
		}
		s := steps.StatusOK
		if st.State != "running" {
			s = steps.StatusWarn
		}
		line(s, "NixOS %s, %s, system %s", st.NixOS, gen, textout.OrUnknown(st.State))
	}
	switch {
	case st.Revision.Same == nil:
		line(steps.StatusSkip, "flake revision: running %s, local %s", textout.OrUnknown(st.Revision.Running), textout.OrUnknown(st.Revision.Local))
	case *st.Revision.Same:
		line(steps.StatusOK, "runs the local flake revision %s", st.Revision.Local)
	default:
		line(steps.StatusWarn, "runs flake revision %s, the local flake is at %s: deploy with nh os switch / nixos-rebuild", st.Revision.Running, st.Revision.Local)
	}
	if len(st.FailedUnits) == 0 {
		line(steps.StatusOK, "no failed units")
	} else {
		line(steps.StatusFail, "failed units: %s (journalctl -u <unit> on the machine says why)", strings.Join(st.FailedUnits, ", "))
	}
	switch {
	case st.Drift == nil:
	case st.Drift.Error != "":
		line(steps.StatusSkip, "disk drift not known: %s", st.Drift.Error)
	case st.Drift.Verdict == reinstall.VerdictReinstall:
		line(steps.StatusWarn, "disk drift: %s", st.Drift.Summary)
	default:
		line(steps.StatusOK, "disk drift: %s", st.Drift.Summary)
	}
	if len(st.Handoff) > 0 {
		fmt.Fprintln(w, "The hand-off (the machine updates itself from the flake's repository):")
		for _, it := range st.Handoff {
			line(it.Status, "%s", it.Summary)
			if it.Fix != "" && (it.Status == steps.StatusWarn || it.Status == steps.StatusFail) {
				fmt.Fprintf(w, "    fix: %s\n", it.Fix)
			}
		}
	}
	if r := st.Receipt; r != nil {
		what := "Installed"
		switch r.Outcome {
		case steps.OutcomeFailed:
			what = fmt.Sprintf("The last install FAILED in %s", r.FailedPhase.Title())
		case steps.OutcomeAborted:
			what = "The last install was interrupted"
		}
		fmt.Fprintf(w, "%s %s from %s (revision %s); %d backup(s) recorded.\n", what, r.InstalledAt.Local().Format(time.RFC1123), r.Flake, textout.OrUnknown(r.Revision), r.Backups)
	}
}
