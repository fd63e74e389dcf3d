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

// Messages of the reinstall steps.
type (
	driftDoneMsg struct {
		gen   int
		drift engine.Drift
		err   error
	}
	transferMsg struct {
		gen int
		p   reinstall.Progress
	}
	backupDoneMsg struct {
		archive reinstall.Archive
		notes   []string
		err     error
	}
	restoreDoneMsg struct {
		restored engine.Restored
		err      error
	}
)

// progressFeed carries the newest progress of a transfer from the
// backend's goroutine to Update: the backend never blocks on a slow
// screen, and the screen only sees the latest figures.
type progressFeed struct {
	gen int
	ch  chan reinstall.Progress
	end chan struct{}
}

func newProgressFeed(gen int) *progressFeed {
	return &progressFeed{gen: gen, ch: make(chan reinstall.Progress, 1), end: make(chan struct{})}
}

// send replaces a value not yet read with p.
func (f *progressFeed) send(p reinstall.Progress) {
	for {
		select {
		case f.ch <- p:
			return
		default:
		}
		select {
		case <-f.ch:
		default:
		}
	}
}

func (f *progressFeed) close() { close(f.end) }

func (f *progressFeed) wait() tea.Cmd {
	return func() tea.Msg {
		select {
		case p := <-f.ch:
			return transferMsg{gen: f.gen, p: p}
		case <-f.end:
			return nil
		}
	}
}

// transfer is the state of a backup or restore pane: its figures, how it
// ended, and the time it started.
type transfer struct {
	start   time.Time
	p       reinstall.Progress
	running bool
	err     error
}

// bar draws a w-column progress bar for done of total.
func bar(st styles, done, total int64, w int) string {
	if w < 4 {
		return ""
	}
	fill := 0
	if total > 0 {
		fill = int(float64(w) * float64(min(done, total)) / float64(total))
	}
	return st.Accent.Render(strings.Repeat("█", fill)) + st.Dim.Render(strings.Repeat("░", w-fill))
}

// figures is "12.0 MiB of 48.0 MiB  25%  4.0 MiB/s  ETA 9s".
func figures(p reinstall.Progress) string {
	s := steps.FormatBytes(p.Bytes)
	if p.Total > 0 {
		s += " of " + steps.FormatBytes(p.Total) + fmt.Sprintf("  %3.0f%%", 100*float64(min(p.Bytes, p.Total))/float64(p.Total))
	}
	if p.Rate > 0 {
		s += "  " + steps.FormatBytes(int64(p.Rate)) + "/s"
	}
	if p.ETA > 0 {
		s += "  ETA " + formatDuration(p.ETA.Round(time.Second))
	}
	return s
}

// view draws the transfer's bar and figures.
func (t *transfer) view(st styles, now time.Time, w int) string {
	bw := max(min(w-6, 60), 10)
	var b strings.Builder
	b.WriteString(indent(bar(st, t.p.Bytes, t.p.Total, bw), 2) + "\n")
	line := figures(t.p)
	if t.running {
		line = spinnerFrame(now) + " " + line + st.Dim.Render("  "+formatDuration(now.Sub(t.start)))
	}
	b.WriteString(indent(line, 2) + "\n")
	return b.String()
}

// reinstallState is what a reinstall adds to the wizard: its child screens
// (drift, backup, restore; the install's screens come in between) and the
// feed of the transfer that runs.
type reinstallState struct {
	opts    engine.ReinstallOptions
	drift   driftScreen
	backup  backupScreen
	restore restoreScreen

	feed *progressFeed
	gen  int
}

// archive is the verified backup (Path == "" until there is one).
func (r *reinstallState) archive() reinstall.Archive { return r.backup.archive }

// startDrift runs the host key step and the drift in a command: the first
// steps of a reinstall, before the preflight, as in `bigbang reinstall`.
// After the operator's y the connection trusts the key shown and no other.
func (m *model) startDrift() tea.Cmd {
	if m.cancelPreflight != nil {
		m.cancelPreflight()
	}
	r := m.rs
	r.drift = newDriftScreen(m.cfg, r.opts, r.drift.gen)
	m.show(screenDrift)
	ctx, cancel := context.WithCancel(m.ctx)
	m.cancelPreflight = cancel
	b, cfg, gen, p := m.engine, m.cfg, r.drift.gen, m.dialPolicy()
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
	m.now = time.Now()
	r.backup = newBackupScreen(m.cfg, r.opts, m.now)
	b, cfg, p, o := m.engine, m.cfg, m.dialPolicy(), r.opts
	return m.startTransfer(screenBackup, func(ctx context.Context, send func(reinstall.Progress)) tea.Msg {
		a, notes, err := b.Backup(ctx, cfg, p, o, send)
		return backupDoneMsg{archive: a, notes: notes, err: err}
	})
}

// startRestore runs the restore onto the new system in a command.
func (m *model) startRestore() tea.Cmd {
	r := m.rs
	m.now = time.Now()
	r.restore = newRestoreScreen(m.cfg, r.opts, r.archive().Path, m.now)
	b, cfg, a, o := m.engine, m.cfg, r.archive(), r.opts
	return m.startTransfer(screenRestore, func(ctx context.Context, send func(reinstall.Progress)) tea.Msg {
		res, err := b.Restore(ctx, cfg, a, o, send)
		return restoreDoneMsg{restored: res, err: err}
	})
}

// startTransfer shows scr and runs a backup or a restore (run) in a
// command: a new feed carries run's progress (a feed of an earlier
// transfer is told apart by its generation), and the install's cancel func
// stops it.
func (m *model) startTransfer(scr screen, run func(ctx context.Context, send func(reinstall.Progress)) tea.Msg) tea.Cmd {
	r := m.rs
	r.gen++
	r.feed = newProgressFeed(r.gen)
	m.show(scr)
	ctx, cancel := context.WithCancel(m.ctx)
	m.cancelInstall = cancel
	feed := r.feed
	return tea.Batch(func() tea.Msg { return run(ctx, feed.send) }, feed.wait(), m.startTicking())
}

// updateReinstall routes the answers of the reinstall's commands to the
// screen that owns them and hands keys to the active reinstall screen,
// turning its intent into effects; handled reports that msg was theirs.
func (m *model) updateReinstall(msg tea.Msg) (tea.Cmd, bool) {
	r := m.rs
	if r == nil {
		return nil, false
	}
	switch msg := msg.(type) {
	case driftDoneMsg:
		if r.drift.done(msg.gen, msg.drift, msg.err) {
			m.cancelPreflight = nil
			return m.autoCmd(), true
		}
		return nil, true
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
		r.backup.done(msg)
		if msg.err != nil {
			return nil, true
		}
		return m.autoCmd(), true
	case restoreDoneMsg:
		m.cancelInstall = nil
		m.confirmQuit = false
		r.feed.close()
		r.restore.done(msg)
		if msg.err != nil {
			m.result.Outcome = steps.OutcomeFailed
			if m.stopping {
				m.result.Outcome = steps.OutcomeAborted
			}
			m.result.Diagnosis = &steps.Diagnosis{ID: "restore", Summary: msg.err.Error(),
				Remedy: "the new system runs; the backup is safe: restore it with the command below"}
		} else {
			if msg.restored.Receipt != "" {
				m.result.Receipt = msg.restored.Receipt
			}
			m.result.Notes = append(m.result.Notes, msg.restored.Notes...)
		}
		return m.showResult(), true
	}
	switch m.screen {
	case screenDrift:
		switch r.drift.update(msg) {
		case intentAccept:
			m.approvedHostKey = r.drift.res.NewHostKey.Fingerprint
			return m.startDrift(), true
		case intentBack:
			if m.cancelPreflight != nil {
				m.cancelPreflight()
				m.cancelPreflight = nil
			}
			m.approvedHostKey = ""
			return m.goTo(screenTarget), true
		case intentNext:
			return m.startPreflight(), true
		case intentRetry:
			return m.startDrift(), true
		case intentQuit:
			m.stopErr = r.drift.quitErr()
			return tea.Quit, true
		}
		return nil, true
	case screenBackup:
		switch r.backup.update(msg) {
		case intentNext:
			m.build = newBuildScreen(m.cfg, m.report)
			return m.goTo(screenBuild), true
		case intentRetry:
			return m.startBackup(), true
		case intentQuit:
			m.stopErr = r.backup.quitErr()
			return tea.Quit, true
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
	argv = append(argv, "--restore", m.rs.archive().Path)
	return m.opts.Command + " " + steps.ShellJoin(argv)
}
