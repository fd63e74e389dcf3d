package ui

import (
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

// resultScreen is the end: what happened and what to do now.
type resultScreen struct {
	res    engine.InstallResult
	cfg    steps.Config
	plan   steps.Plan
	panes  []*pane
	resume string
	last   []string
	// A reinstall's backup file and what the restore verified ("" for an
	// install); restoreLater is the command that restores the backup
	// when the install did not get there.
	backup, restore, restoreLater string
}

func newResultScreen(r engine.InstallResult, cfg steps.Config, plan steps.Plan, ps *progressScreen, command string) resultScreen {
	s := resultScreen{res: r, cfg: cfg, plan: plan, panes: ps.panes}
	if r.Outcome != steps.OutcomeSuccess {
		if r.Log != "" {
			cfg.Log = r.Log
		}
		// Running the install again cannot verify a system that has no
		// pre-generated key to compare with; the diagnosis says what to do.
		if r.Diagnosis == nil || r.Diagnosis.ID != engine.DiagnosisRebootUnverified {
			s.resume = r.Resume
		}
		src := ps.byID[r.FailedPhase]
		if src == nil {
			src = ps.current()
		}
		if src == nil && len(ps.panes) > 0 {
			for _, p := range ps.panes {
				if p.n > 0 {
					src = p
				}
			}
		}
		if src != nil {
			for _, l := range src.tailLines(8) {
				s.last = append(s.last, lastCR(ansi.Strip(sanitize(l))))
			}
		}
	}
	return s
}

// lastCR keeps what a terminal would show of a line with carriage returns.
func lastCR(s string) string {
	if i := strings.LastIndexByte(strings.TrimRight(s, "\r"), '\r'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func (s *resultScreen) view(st styles, w, h int) string {
	tw := max(min(w-4, 100), 20)
	var b strings.Builder
	b.WriteString("\n")
	if s.res.Outcome == steps.OutcomeSuccess {
		if s.restore != "" {
			b.WriteString(indent(st.OK.Bold(true).Render(glyphOK+" NixOS is reinstalled on "+s.cfg.Host+": same host key, data restored before its first boot."), 1) + "\n\n")
		} else {
			b.WriteString(indent(st.OK.Bold(true).Render(glyphOK+" NixOS is installed on "+s.cfg.Host+" and answered with the expected host key."), 1) + "\n\n")
		}
		b.WriteString(s.times(st))
		b.WriteString("\n")
		if s.res.HostKeyFingerprint != "" {
			b.WriteString(indent(st.Header.Render("Host key ")+" "+st.Code.Render(s.res.HostKeyFingerprint)+st.Dim.Render("  (pinned in known_hosts)"), 1) + "\n")
		}
		ssh := s.res.SSHCommand
		if ssh == "" {
			ssh = "ssh root@" + s.cfg.Host
		}
		b.WriteString(indent(st.Header.Render("Log in   ")+" "+st.Code.Render(ssh), 1) + "\n")
		if s.res.Log != "" {
			b.WriteString(indent(st.Header.Render("Log      ")+" "+st.Dim.Render(s.res.Log), 1) + "\n")
		}
		if s.backup != "" {
			p := strings.ReplaceAll(wrap(s.backup, tw-10), "\n", "\n"+strings.Repeat(" ", 10))
			b.WriteString(indent(st.Header.Render("Backup   ")+" "+st.Dim.Render(p), 1) + "\n")
		}
		if s.restore != "" {
			b.WriteString(indent(st.Header.Render("Restore  ")+" "+wrap(s.restore, tw-10), 1) + "\n")
		}
		if s.res.Receipt != "" {
			// A path is never cut: it wraps under itself.
			p := strings.ReplaceAll(wrap(s.res.Receipt, tw-10), "\n", "\n"+strings.Repeat(" ", 10))
			b.WriteString(indent(st.Header.Render("Receipt  ")+" "+st.Dim.Render(p), 1) + "\n")
		}
		b.WriteString(s.notes(st, tw))
		b.WriteString("\n" + indent(st.Header.Render("What happens next"), 1) + "\n")
		next := []string{
			"The system now runs your flake; its secrets are decrypted with the host key you shipped.",
			"Push changes to the flake's repository: the GitOps flow of your deployment builds and switches the VPS from there.",
			textout.StatusNext(s.cfg.Host),
		}
		for _, n := range next {
			b.WriteString("  • " + strings.ReplaceAll(wrap(n, tw-4), "\n", "\n    ") + "\n")
		}
		return b.String()
	}
	title := glyphFail + " The install failed"
	if s.res.Outcome == steps.OutcomeAborted {
		title = glyphFail + " The install was stopped"
	}
	if s.res.FailedPhase != "" {
		title += " in " + s.res.FailedPhase.Title()
	}
	if d := s.res.Diagnosis; d != nil && d.ID == "restore" {
		title = glyphFail + " NixOS is reinstalled, but the restore did not complete"
	}
	if d := s.res.Diagnosis; d != nil && d.ID == engine.DiagnosisRestoreBeforeBoot {
		title = glyphFail + " NixOS is installed but not rebooted: the restore before the first boot did not complete"
	}
	head := "\n" + indent(st.Fail.Bold(true).Render(title), 1) + "\n\n"
	b.Reset()
	field := func(name, text string) {
		b.WriteString(indent(st.Header.Render(padRight(name, 17))+hanging(wrap(text, tw-18), 17), 1) + "\n")
	}
	if d := s.res.Diagnosis; d != nil {
		field("What went wrong", d.Summary)
		if d.Remedy != "" {
			field("What to do", d.Remedy)
		}
	}
	if d := s.res.Diagnosis; d == nil || (d.ID != "restore" && d.ID != engine.DiagnosisRestoreBeforeBoot) {
		ms := textout.Machine(s.res.FailedPhase)
		field("The server", ms.State+" "+ms.Safe)
	}
	b.WriteString("\n")
	top := b.String()
	b.Reset()
	// The resume command is on lines of its own across the width, so
	// that it is shown whole (and copies whole) on small terminals too.
	if s.resume != "" {
		cont := 4
		if w < 100 {
			cont = 2
		}
		block := commandBlockRoom(st, s.resume, max(w-2, 20), cont, 0, w-1)
		label := st.Header.Render("Resume")
		if strings.Count(head, "\n")+3+strings.Count(block, "\n") > h {
			// A window too small for the command in copyable lines gets
			// it packed (broken anywhere, but whole); d shows it ready to
			// copy.
			block = st.Code.Render(ansi.Wrap(s.resume, max(w-2, 20), ""))
			label += st.Dim.Render("  (packed to fit: d shows it ready to copy)")
		}
		b.WriteString(indent(label, 1) + "\n")
		b.WriteString(indent(block, 1) + "\n")
	}
	if s.backup != "" {
		b.WriteString(indent(st.Header.Render("Backup  ")+" "+s.backup+st.Dim.Render(" (kept)"), 1) + "\n")
	}
	if s.restoreLater != "" {
		b.WriteString(indent(st.Header.Render("Restore ")+" "+commandBlock(st, s.restoreLater, tw-10, 10), 1) + "\n")
	}
	b.WriteString(s.notes(st, tw))
	recovery := b.String()
	// The log and the explain line wrap when there is room for them, and
	// keep one line each (d shows them whole) when there is not.
	logs := ""
	if s.res.Log != "" {
		logW := max(w-11, 10)
		full := indent(st.Header.Render("Log     ")+" "+hanging(ansi.Hardwrap(s.res.Log, logW, false), 9), 1) + "\n" +
			indent(st.Header.Render("Explain ")+" "+hanging(commandBlock(st, "bigbang explain "+steps.ShellQuote(s.res.Log), logW, 0), 9), 1) + "\n"
		// Tight: the log's path alone, or nothing; the details (d) and
		// what stays on the terminal after the wizard have them whole.
		short := indent(st.Header.Render("Log     ")+" "+s.res.Log, 1) + "\n"
		logs = full
		if strings.Count(head+full+recovery, "\n")+3 > h {
			logs = short
		}
		if strings.Count(head+short+recovery, "\n")+3 > h {
			logs = ""
		}
	}
	recovery = logs + recovery
	// The last lines get the rows the diagnosis and the way to recover
	// leave: on a small terminal the resume command matters more than the
	// output that led to the failure, which the log has.
	last := ""
	if rows := h - strings.Count(head+top, "\n") - strings.Count(recovery, "\n") - 2; len(s.last) > 0 && rows > 0 {
		lines := s.last[max(len(s.last)-rows, 0):]
		last = indent(st.Header.Render("Last lines"), 1) + "\n"
		for _, l := range lines {
			last += "   " + st.PaneRule.Render("│") + " " + st.Dim.Render(l) + "\n"
		}
		last += "\n"
	}
	// The way to recover stays on screen whatever its size: the
	// explanation above it gets the rows it leaves (at least its first
	// line), and d shows it all.
	if room := max(h-1-strings.Count(head, "\n")-strings.Count(recovery, "\n"), 2); strings.Count(top, "\n") > room {
		// Tight: the blank line under the title goes first.
		head = strings.TrimSuffix(head, "\n")
		lines := strings.Split(top, "\n")
		top = strings.Join(lines[:room-1], "\n") + "\n" + indent(st.Dim.Render("… d shows all of it"), 1) + "\n"
	}
	return head + top + last + recovery + "\n" + s.times(st)
}

// notes shows what the operator must know besides the outcome (a
// transcript that is incomplete, a receipt that could not be written).
func (s *resultScreen) notes(st styles, tw int) string {
	var b strings.Builder
	for _, n := range s.res.Notes {
		b.WriteString(indent(st.Warn.Render(glyphWarn+" ")+wrap(n, tw-4), 1) + "\n")
	}
	return b.String()
}

// times lists every phase with the time it took.
func (s *resultScreen) times(st styles) string {
	var b strings.Builder
	for _, p := range s.panes {
		t := ""
		if !p.start.IsZero() {
			t = formatDuration(p.elapsed(p.end))
		}
		b.WriteString("  " + paneGlyph(st, p, p.end) + " " + padRight(p.id.Title(), 9) + st.Dim.Render(padLeft(t, 7)) + "\n")
	}
	return b.String()
}

// commandBlock renders a command in lines of w columns that copy whole
// (broken only at spaces, with " \\" continuations); the lines after
// the first are indented by in.
func commandBlock(st styles, cmd string, w, in int) string {
	return commandBlockRoom(st, cmd, w, 4, in, w)
}

// commandBlockRoom is commandBlock with cont columns of indent for the
// lines that continue the command, for a block that has room
// columns to the window's edge (room >= w). A word wider than the block
// (a long path or flake reference) stands on a line of its own, without
// the continuation's indent, and unbroken as long as it fits in room, so
// it copies whole; only a word wider than the window itself is broken
// there, as the last resort that still shows all of it.
func commandBlockRoom(st styles, cmd string, w, cont, in, room int) string {
	room = max(room, w)
	var out []string
	for _, l := range textout.CommandLinesIndent(cmd, w, cont) {
		if ansi.StringWidth(l) <= w {
			out = append(out, st.Code.Render(l))
			continue
		}
		body, more := strings.CutSuffix(l, " \\")
		body = strings.TrimLeft(body, " ")
		suffix := ""
		if more {
			suffix = " \\"
		}
		if ansi.StringWidth(body+suffix) <= room {
			out = append(out, st.Code.Render(body+suffix))
			continue
		}
		parts := strings.Split(ansi.Hardwrap(body, room-len(suffix), false), "\n")
		parts[len(parts)-1] += suffix
		for _, part := range parts {
			out = append(out, st.Code.Render(part))
		}
	}
	return strings.Join(out, "\n"+strings.Repeat(" ", in))
}

func padLeft(s string, w int) string {
	if n := ansi.StringWidth(s); n < w {
		return strings.Repeat(" ", w-n) + s
	}
	return s
}
