package ui

import (
	"context"
	"fmt"
	"io"
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
	// stageMsg is a stage of the reinstall's install (the restore before
	// the first boot, the reboot); transferEndMsg ends the restore.
	stageMsg struct {
		gen  int
		text string
	}
	transferEndMsg struct{ gen int }
)

// progressFeed carries the newest progress of a transfer from the
// backend's goroutine to Update: the backend never blocks on a slow
// screen, and the screen only sees the latest figures.
type progressFeed struct {
	gen int
	ch  chan reinstall.Progress
	// steps are the stages and the end of a transfer, in order.
	steps chan tea.Msg
	end   chan struct{}
}

func newProgressFeed(gen int) *progressFeed {
	return &progressFeed{gen: gen, ch: make(chan reinstall.Progress, 1), steps: make(chan tea.Msg, 16), end: make(chan struct{})}
}

// step queues a stage or the end of the transfer (dropped once the feed
// is closed).
func (f *progressFeed) step(msg tea.Msg) {
	select {
	case f.steps <- msg:
	case <-f.end:
	}
}

// transferFront is the engine's TransferFront of the wizard: the stages
// and the restore's progress of the reinstall's install, through a feed.
type transferFront struct{ feed *progressFeed }

func (t transferFront) Stage(text string) { t.feed.step(stageMsg{gen: t.feed.gen, text: text}) }
func (t transferFront) Progress(p reinstall.Progress, done bool) {
	if done {
		t.feed.step(transferEndMsg{gen: t.feed.gen})
		return
	}
	t.feed.send(p)
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
		case m := <-f.steps:
			return m
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
		if m.screen == screenRestore || r.restore.running {
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
	case stageMsg:
		if r.feed == nil || msg.gen != r.feed.gen {
			return nil, true
		}
		m.now = time.Now()
		r.restore.stages = append(r.restore.stages, msg.text)
		if !r.restore.started && m.screen == screenProgress {
			// The install stopped before its reboot: the restore into
			// the installer runs.
			r.restore.started, r.restore.running, r.restore.start = true, true, m.now
			m.show(screenRestore)
		}
		return r.feed.wait(), true
	case transferEndMsg:
		if r.feed == nil || msg.gen != r.feed.gen {
			return nil, true
		}
		r.restore.running = false
		if m.screen == screenRestore && !m.confirmQuit {
			// The reboot follows, on the install's panes.
			m.show(screenProgress)
		}
		return r.feed.wait(), true
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
		case intentStopUnits:
			// The offer: the units named are stopped for the backup
			// (the engine's Backup stops them) and started again if
			// the reinstall stops before the wipe.
			r.opts.Services = strings.Fields(r.backup.units)
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

// restoreCommand is the exact command that restores the backup into the
// new system after its boot.
func (m *model) restoreCommand() string {
	return engine.RestoreArchiveCommand(m.opts.Command, m.cfg, engine.RebootPort(m.planCfg, m.report.Flake), m.rs.archive().Path, m.rs.opts)
}

// startUnitsAgain starts the units the backup stopped when the wizard ends
// before the wipe, and says so on w.
func startUnitsAgain(ctx context.Context, m *model, w io.Writer) {
	r := m.rs
	if r == nil || len(r.opts.Services) == 0 || r.archive().Path == "" || !engine.Untouched(m.result) {
		return
	}
	words, err := m.engine.StartUnits(ctx, m.cfg, m.dialPolicy(), r.opts.Services)
	if err != nil {
		fmt.Fprintln(w, "bigbang: "+err.Error())
		return
	}
	fmt.Fprintln(w, "bigbang: "+words)
}
