package ui

import (
	"errors"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

// exitWidth is the width ExitSummary lays its text out for: the normal
// screen's width is not known once the wizard has ended, and 80 columns
// fit every terminal the wizard runs in.
const exitWidth = 80

// ExitSummary is what stays on the normal screen when the wizard has
// ended after a failure or a stop: the outcome, the diagnosis and its
// remedy, the state the server is in, the resume command and the
// transcript with the explain line that reads it. The alternate screen
// takes the result screen with it, so the operator would otherwise be
// left without the way to recover. It is "" after a success and when the
// install never started (err is ErrAborted, or any error with no
// outcome); the caller prints it to stderr as it is. Commands are wrapped
// only at spaces, with " \" continuations, so they copy whole.
func ExitSummary(res engine.InstallResult, err error) string {
	if res.Outcome == "" || res.Outcome == steps.OutcomeSuccess || errors.Is(err, ErrAborted) {
		return ""
	}
	var b strings.Builder
	head := "bigbang: the install failed"
	if res.Outcome == steps.OutcomeAborted {
		head = "bigbang: the install was stopped"
	}
	if res.FailedPhase != "" {
		head += " in " + res.FailedPhase.Title()
	}
	if d := res.Diagnosis; d != nil && d.ID == "restore" {
		head = "bigbang: NixOS is reinstalled, but the restore did not complete"
	}
	beforeBoot := res.Diagnosis != nil && res.Diagnosis.ID == engine.DiagnosisRestoreBeforeBoot
	if beforeBoot {
		head = "bigbang: NixOS is installed but not rebooted: the restore before the first boot did not complete"
	}
	b.WriteString(head + ".\n")
	const label = 18
	field := func(name, text string) {
		if text == "" {
			return
		}
		pad := strings.Repeat(" ", label)
		// Broken at spaces only: a path wider than the column stays
		// whole, so it copies as one word.
		body := strings.ReplaceAll(textout.WrapWords(text, exitWidth-label), "\n", "\n"+pad)
		b.WriteString("  " + padRight(name, label-2) + body + "\n")
	}
	if d := res.Diagnosis; d != nil {
		field("What went wrong", d.Summary)
		field("What to do", d.Remedy)
	}
	switch d := res.Diagnosis; {
	case beforeBoot:
		field("The server", "The new system is on the disk and the NixOS installer still runs in RAM: nothing rebooted yet.")
		field("Safe now", "Resuming: it reboots into the new system and verifies it (a reboot from the provider's console also boots the new system). The backup is kept.")
	case d == nil || d.ID != "restore":
		// After a failed restore NixOS is installed and verified: the
		// install's phases say nothing of the server, as on the result
		// screen.
		for _, f := range textout.MachineFields(res.FailedPhase, res.Resume != "") {
			field(f.Label, f.Text)
		}
	}
	if res.Resume != "" {
		// On lines of its own, so that it copies as one block.
		b.WriteString("  Resume with:\n")
		for _, l := range textout.CommandLines(res.Resume, exitWidth-4) {
			b.WriteString("    " + l + "\n")
		}
	}
	for _, n := range res.Notes {
		field("Note", n)
	}
	if res.Log != "" {
		field("Transcript", res.Log)
		field("Explain", "bigbang explain "+steps.ShellQuote(res.Log))
	}
	return b.String()
}
