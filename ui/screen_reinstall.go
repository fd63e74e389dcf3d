package ui

import (
	"context"
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

// reinstallState is what the reinstall screens (drift, backup, restore)
// know; the install screens in between are the install's.
type reinstallState struct {
	opts engine.ReinstallOptions

	driftRunning bool
	drift        engine.Drift
	driftErr     error
	// driftGen tells the answer of the latest drift from one of a drift
	// left with esc.
	driftGen int

	backup  transfer
	archive reinstall.Archive // Path == "" until a backup is verified
	// notes are what the backup could not record (the receipt).
	notes []string

	restore  transfer
	restored *engine.Restored

	feed *progressFeed
	gen  int
}

// askHostKey reports a host known_hosts does not know: the host key step
// waits for the operator to trust its key.
func (r *reinstallState) askHostKey() bool {
	return !r.driftRunning && r.driftErr == nil && r.drift.NewHostKey.Fingerprint != ""
}

// proceed reports whether the drift screen lets the operator go on to the
// preflight and the backup: the layout changed, or --force.
func (r *reinstallState) proceed() bool {
	return !r.driftRunning && r.driftErr == nil && !r.askHostKey() &&
		(r.drift.Report.Verdict == reinstall.VerdictReinstall || r.opts.Force)
}

// nothingToDo reports a drift that found no reason to reinstall.
func (r *reinstallState) nothingToDo() bool {
	return !r.driftRunning && r.driftErr == nil && !r.askHostKey() && !r.proceed()
}

// startDrift runs the host key step and the drift in a command: the first
// steps of a reinstall, before the preflight, as in `bigbang reinstall`.
// After the operator's y the connection trusts the key shown and no other.
func (m *model) startDrift() tea.Cmd {
	if m.cancelPreflight != nil {
		m.cancelPreflight()
	}
	r := m.rs
	r.driftRunning, r.driftErr, r.drift = true, nil, engine.Drift{}
	r.driftGen++
	m.screen = screenDrift
	m.showHelp = false
	ctx, cancel := context.WithCancel(m.ctx)
	m.cancelPreflight = cancel
	b, cfg, gen, p := m.engine, m.cfg, r.driftGen, m.dialPolicy()
	run := func() tea.Msg {
		d, err := b.Prepare(ctx, cfg, p)
		return driftDoneMsg{gen: gen, drift: d, err: err}
	}
	return tea.Batch(run, m.startTicking(), m.autoCmd())
}

// startBackup runs the backup in a command; its progress comes back
// through a feed.
func (m *model) startBackup() tea.Cmd {
	r := m.rs
	r.archive = reinstall.Archive{}
	b, cfg, p, o := m.engine, m.cfg, m.dialPolicy(), r.opts
	return m.startTransfer(screenBackup, &r.backup, func(ctx context.Context, send func(reinstall.Progress)) tea.Msg {
		a, notes, err := b.Backup(ctx, cfg, p, o, send)
		return backupDoneMsg{archive: a, notes: notes, err: err}
	})
}

// startRestore runs the restore onto the new system in a command.
func (m *model) startRestore() tea.Cmd {
	r := m.rs
	b, cfg, a, o := m.engine, m.cfg, r.archive, r.opts
	return m.startTransfer(screenRestore, &r.restore, func(ctx context.Context, send func(reinstall.Progress)) tea.Msg {
		res, err := b.Restore(ctx, cfg, a, o, send)
		return restoreDoneMsg{restored: res, err: err}
	})
}

// startTransfer shows scr and runs a backup or a restore (run) in a
// command: tr starts now, a new feed carries run's progress (a feed of an
// earlier transfer is told apart by its generation), and the install's
// cancel func stops it.
func (m *model) startTransfer(scr screen, tr *transfer, run func(ctx context.Context, send func(reinstall.Progress)) tea.Msg) tea.Cmd {
	r := m.rs
	r.gen++
	r.feed = newProgressFeed(r.gen)
	m.now = time.Now()
	*tr = transfer{start: m.now, running: true}
	m.screen = scr
	m.showHelp = false
	ctx, cancel := context.WithCancel(m.ctx)
	m.cancelInstall = cancel
	feed := r.feed
	return tea.Batch(func() tea.Msg { return run(ctx, feed.send) }, feed.wait(), m.startTicking())
}

// updateReinstall handles the messages of the reinstall steps; handled
// reports that msg was one of them.
func (m *model) updateReinstall(msg tea.Msg) (tea.Cmd, bool) {
	r := m.rs
	if r == nil {
		return nil, false
	}
	switch msg := msg.(type) {
	case driftDoneMsg:
		if msg.gen != r.driftGen || !r.driftRunning {
			return nil, true
		}
		m.cancelPreflight = nil
		r.driftRunning, r.drift, r.driftErr = false, msg.drift, msg.err
		return m.autoCmd(), true
	case transferMsg:
		if r.feed == nil || msg.gen != r.feed.gen {
			return nil, true
		}
		m.now = time.Now()
		if m.screen == screenRestore {
			r.restore.p = msg.p
		} else {
			r.backup.p = msg.p
		}
		return r.feed.wait(), true
	case backupDoneMsg:
		m.cancelInstall = nil
		r.feed.close()
		r.backup.running = false
		if msg.err != nil {
			r.backup.err = msg.err
			return nil, true
		}
		r.archive, r.notes = msg.archive, msg.notes
		r.backup.p.Bytes = msg.archive.Manifest.Bytes
		r.backup.p.Total = max(r.backup.p.Total, msg.archive.Manifest.Bytes)
		return m.autoCmd(), true
	case restoreDoneMsg:
		m.cancelInstall = nil
		m.confirmQuit = false
		r.feed.close()
		r.restore.running = false
		if msg.err != nil {
			r.restore.err = msg.err
			m.result.Outcome = steps.OutcomeFailed
			if m.stopping {
				m.result.Outcome = steps.OutcomeAborted
			}
			m.result.Diagnosis = &steps.Diagnosis{ID: "restore", Summary: msg.err.Error(),
				Remedy: "the new system runs; the backup is safe: restore it with the command below"}
		} else {
			res := msg.restored
			r.restored = &res
			r.restore.p.Bytes = res.Result.Bytes
			r.restore.p.Total = max(r.restore.p.Total, res.Result.Bytes)
			if res.Receipt != "" {
				m.result.Receipt = res.Receipt
			}
			m.result.Notes = append(m.result.Notes, res.Notes...)
		}
		return m.showResult(), true
	}
	switch m.screen {
	case screenDrift:
		if k, ok := msg.(tea.KeyPressMsg); ok {
			switch k.String() {
			case "y":
				if r.askHostKey() {
					m.approvedHostKey = r.drift.NewHostKey.Fingerprint
					return m.startDrift(), true
				}
			case "n":
				if r.askHostKey() {
					m.approvedHostKey = ""
					return m.goTo(screenTarget), true
				}
			case "enter", "space":
				if r.proceed() {
					return m.startPreflight(), true
				}
				if r.nothingToDo() {
					m.stopErr = engine.ErrNothingToReinstall
					return tea.Quit, true
				}
			case "r":
				if !r.driftRunning {
					return m.startDrift(), true
				}
			case "esc":
				if m.cancelPreflight != nil {
					m.cancelPreflight()
					m.cancelPreflight = nil
				}
				r.driftRunning = false
				m.approvedHostKey = ""
				return m.goTo(screenTarget), true
			case "q":
				m.stopErr = r.driftErr
				if r.nothingToDo() {
					m.stopErr = engine.ErrNothingToReinstall
				}
				return tea.Quit, true
			}
		}
		return nil, true
	case screenBackup:
		if k, ok := msg.(tea.KeyPressMsg); ok && !r.backup.running {
			switch k.String() {
			case "enter", "space":
				if r.archive.Path != "" {
					m.build = newBuildScreen(m.cfg, m.report)
					return m.goTo(screenBuild), true
				}
			case "r":
				if r.backup.err != nil {
					r.backup.err = nil
					return m.startBackup(), true
				}
			case "q":
				m.stopErr = r.backup.err
				return tea.Quit, true
			}
		}
		return nil, true
	case screenRestore:
		return nil, true
	}
	return nil, false
}

// restoreCommand is the exact command that restores the backup later.
func (m *model) restoreCommand() string {
	argv := []string{"reinstall", "--host", m.cfg.Host}
	d := steps.DefaultConfig()
	if m.cfg.User != "" && m.cfg.User != d.User {
		argv = append(argv, "--user", m.cfg.User)
	}
	if m.cfg.Port != 0 && m.cfg.Port != d.Port {
		argv = append(argv, "--port", itoa(m.cfg.Port))
	}
	if m.cfg.Identity != "" {
		argv = append(argv, "-i", m.cfg.Identity)
	}
	if m.rs.opts.Source != "" && m.rs.opts.Source != reinstall.DefaultSource {
		argv = append(argv, "--source", m.rs.opts.Source)
	}
	for _, s := range m.rs.opts.Services {
		argv = append(argv, "--service", s)
	}
	argv = append(argv, "--restore", m.rs.archive.Path)
	return m.opts.Command + " " + steps.ShellJoin(argv)
}

func (r *reinstallState) source() string {
	if r.opts.Source == "" {
		return reinstall.DefaultSource
	}
	return r.opts.Source
}

// driftView is the drift screen: the host key step, every change, and
// the verdict.
func (m *model) driftView(w, h int) string {
	r := m.rs
	st := m.st
	tw := max(min(w-4, 100), 20)
	var b strings.Builder
	b.WriteString("\n" + indent(st.Header.Render("Disk layout of "+m.cfg.Host+" against "+m.cfg.Flake), 1) + "\n\n")
	if r.driftRunning {
		b.WriteString(indent(spinnerFrame(m.now)+" checking the host key and reading the live disks…", 1) + "\n")
		return b.String()
	}
	if r.askHostKey() {
		b.WriteString(hostKeyQuestion(st, m.cfg.Host, r.drift.NewHostKey, w, tw))
		return b.String()
	}
	if r.drift.HostKey != "" {
		b.WriteString(indent(st.OK.Render(glyphOK)+" "+hang(wrap(r.drift.HostKey, tw-4), 2), 1) + "\n\n")
	}
	if r.driftErr != nil {
		b.WriteString(indent(st.Fail.Render(glyphFail)+" "+hang(wrap(r.driftErr.Error(), tw-4), 2), 1) + "\n\n")
		b.WriteString(indent(st.Dim.Render("Nothing was changed. r tries again, q stops."), 1) + "\n")
		return b.String()
	}
	rep := r.drift.Report
	for _, u := range rep.Unchanged {
		b.WriteString(indent(st.Dim.Render("= "+u+": unchanged"), 2) + "\n")
	}
	for _, c := range rep.Changes {
		switch c.Kind {
		case reinstall.KindAdded:
			b.WriteString(indent(st.Warn.Render("+ ")+c.What+": added ("+c.Flake+")", 2) + "\n")
		case reinstall.KindRemoved:
			b.WriteString(indent(st.Warn.Render("- ")+c.What+": removed ("+c.Live+")", 2) + "\n")
		default:
			b.WriteString(indent(st.Warn.Render("~ ")+c.What+": "+c.Live+" → "+c.Flake, 2) + "\n")
		}
	}
	b.WriteString("\n")
	verdict := st.Warn.Bold(true).Render("Reinstall required")
	if rep.Verdict == reinstall.VerdictNone {
		verdict = st.OK.Bold(true).Render("No reinstall needed")
	}
	b.WriteString(indent(verdict, 1) + "\n")
	b.WriteString(indent(wrap(strings.TrimSpace(rep.Summary()), tw-2), 1) + "\n\n")
	switch {
	case r.nothingToDo():
		b.WriteString(indent(st.Bold.Render("Deploy with nh os switch or nixos-rebuild switch; nothing to reinstall.")+st.Dim.Render(" (--force reinstalls anyway.)"), 1) + "\n")
	case rep.Verdict == reinstall.VerdictNone:
		b.WriteString(indent(st.Warn.Render(glyphWarn+" --force: reinstalling although the layout did not change."), 1) + "\n")
	default:
		b.WriteString(indent(wrap("Next: the preflight, a backup of "+r.source()+", then the install; nothing is wiped before you type the host.", tw-2), 1) + "\n")
	}
	return b.String()
}

// backupView is the backup pane: the progress bar, then the verification
// and the warning that the archive holds secrets.
func (m *model) backupView(w, h int) string {
	r := m.rs
	st := m.st
	tw := max(min(w-4, 100), 20)
	var b strings.Builder
	b.WriteString("\n" + indent(st.Header.Render("Backup of "+m.cfg.Host+":"+r.source()), 1) + "\n\n")
	b.WriteString(r.backup.view(st, m.now, w))
	b.WriteString("\n")
	switch {
	case r.backup.running:
		b.WriteString(indent(st.Dim.Render(wrap("A tar stream over SSH with numeric owners, its SHA-256 computed on the way; then counted against the machine.", tw-2)), 1) + "\n")
	case r.backup.err != nil:
		b.WriteString(indent(st.Fail.Render(glyphFail+" ")+hang(wrap(r.backup.err.Error(), tw-4), 2), 1) + "\n\n")
		b.WriteString(indent(st.Bold.Render("Nothing was wiped.")+" r takes the backup again, q stops.", 1) + "\n")
	case r.archive.Path != "":
		mf := r.archive.Manifest
		b.WriteString(indent(st.OK.Render(glyphOK)+" Backup verified: "+st.Code.Render(wrap(r.archive.Path, tw-20)), 1) + "\n")
		b.WriteString(indent(fmt.Sprintf("%d entries, %s of files, %s compressed", mf.Entries, steps.FormatBytes(mf.Bytes), steps.FormatBytes(mf.ArchiveBytes)), 3) + "\n")
		b.WriteString(indent(st.Dim.Render("sha256 "+mf.SHA256), 3) + "\n\n")
		b.WriteString(indent(st.Warn.Render(glyphWarn+" ")+hang(wrap("It holds the machine's secrets: keep it as safe as the host key.", tw-4), 2), 1) + "\n")
	}
	return b.String()
}

// restoreView is the restore pane.
func (m *model) restoreView(w, h int) string {
	r := m.rs
	st := m.st
	tw := max(min(w-4, 100), 20)
	var b strings.Builder
	b.WriteString("\n" + indent(st.Header.Render("Restore of the backup into "+m.cfg.Host+":"+r.source()), 1) + "\n")
	b.WriteString(indent(st.Dim.Render(wrap(r.archive.Path, tw-2)), 1) + "\n\n")
	b.WriteString(r.restore.view(st, m.now, w))
	b.WriteString("\n" + indent(wrap(servicesLine(r.opts.Services), tw-2), 1) + "\n")
	return b.String()
}

// servicesLine says what happens to the services during the restore.
func servicesLine(units []string) string {
	if len(units) == 0 {
		return "No services named (--service): the restore writes into the tree while the system runs."
	}
	return "Stops " + strings.Join(units, ", ") + " during the restore and starts them again after."
}

// restoreSummary is the result screen's line about the restore.
func (r *reinstallState) restoreSummary() string {
	if r.restored == nil {
		return ""
	}
	res := r.restored.Result
	s := fmt.Sprintf("%s holds %d entries, %s of files: compared with the archive", r.source(), res.Entries, steps.FormatBytes(res.Bytes))
	if len(r.opts.Services) > 0 {
		s += "; " + strings.Join(r.opts.Services, ", ") + " stopped and started again"
	}
	return s
}

// hang indents the lines of a wrapped text after the first by n columns,
// so that it hangs under its glyph.
func hang(s string, n int) string {
	return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n))
}
