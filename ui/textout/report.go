package textout

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

// The state glyphs of DESIGN.md. Common terminal fonts have them; the
// screenshots are rendered with DejaVu Sans Mono, which has them too
// (scripts/screenshots.sh).
const (
	GlyphOK   = "✔"
	GlyphWarn = "⚠"
	GlyphFail = "✘"
)

// StatusGlyph is the mark of a check's status: ✔ ok, ⚠ warn, ✘ fail, and
// skip for a skipped check. The caller names the skip mark: the screens
// and the text output mark a skipped check differently.
func StatusGlyph(s steps.Status, skip string) string {
	switch s {
	case steps.StatusOK:
		return GlyphOK
	case steps.StatusWarn:
		return GlyphWarn
	case steps.StatusFail:
		return GlyphFail
	}
	return skip
}

func glyph(s steps.Status) string { return StatusGlyph(s, "–") }

// IsYes reads an answer to a [y/N] question.
func IsYes(line string) bool {
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}

// OrUnknown shows an empty value as "unknown".
func OrUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Checks prints checks as a list, one line each with its glyph, ID and
// summary, the IDs aligned, and the fix below every warning and failure.
func Checks(w io.Writer, checks []steps.Check) {
	width := 0
	for _, c := range checks {
		width = max(width, len(c.ID))
	}
	for _, c := range checks {
		fmt.Fprintf(w, "%s %-*s  %s\n", glyph(c.Status), width, c.ID, c.Summary)
		if c.Fix != "" && (c.Status == steps.StatusWarn || c.Status == steps.StatusFail) {
			fmt.Fprintf(w, "  %*s  fix: %s\n", width, "", c.Fix)
		}
	}
}

// CheckSummary prints the checks, then whether anything blocks the install.
func CheckSummary(w io.Writer, checks []steps.Check) {
	Checks(w, checks)
	switch n := steps.CountBlocking(checks); n {
	case 0:
		fmt.Fprintln(w, "\nNothing blocks the install.")
	case 1:
		fmt.Fprintln(w, "\n1 problem blocks the install: fix it and run bigbang check again.")
	default:
		fmt.Fprintf(w, "\n%d problems block the install: fix them and run bigbang check again.\n", n)
	}
}

// Drift writes a layout comparison for a person.
func Drift(w io.Writer, host string, rep reinstall.Report) {
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

// Plan tells a plain reader what is about to happen and why.
func Plan(w io.Writer, cfg steps.Config, plan steps.Plan) {
	fmt.Fprintf(w, "\nInstalling %s onto %s\n", cfg.Flake, plan.Target)
	for _, d := range plan.Decisions {
		fmt.Fprintf(w, "  - %s: %s\n", d.What, d.Why)
	}
	fmt.Fprintf(w, "  $ %s\n\n", plan.Command())
}

// Progress returns a printer of a backup's or restore's progress: one
// redrawn line on a terminal, a line every ten seconds elsewhere (a log, a
// pipe); done ends a redrawn line.
func Progress(w io.Writer) func(p reinstall.Progress, done bool) {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(f.Fd())
	}
	var last time.Duration = -1
	drawn := false
	return func(p reinstall.Progress, done bool) {
		if done {
			if tty && drawn {
				fmt.Fprintln(w)
			}
			drawn, last = false, -1
			return
		}
		if !tty {
			if last >= 0 && p.Elapsed-last < 10*time.Second {
				return
			}
			last = p.Elapsed
		}
		pct := ""
		if p.Total > 0 {
			pct = fmt.Sprintf(" %3.0f%%", 100*float64(p.Bytes)/float64(p.Total))
		}
		eta := ""
		if p.ETA > 0 {
			eta = " ETA " + p.ETA.Round(time.Second).String()
		}
		line := fmt.Sprintf("  %s of %s%s  %s/s%s", steps.FormatBytes(p.Bytes), steps.FormatBytes(p.Total), pct, steps.FormatBytes(int64(p.Rate)), eta)
		if tty {
			fmt.Fprintf(w, "\r%s   ", line)
			drawn = true
		} else {
			fmt.Fprintln(w, line)
		}
	}
}
