// Package ui is the wizard: one Bubble Tea root model with a child per
// screen. The root's Update handles global keys, the window size, errors and
// cancellation, and hands everything else to the active screen; side effects
// run in commands that copy what they need first.
package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
)

// screen is one step of the wizard. The order here is the order of the
// wizard; this enum is the one place screens are listed.
type screen int

const (
	screenWelcome screen = iota
	screenTarget
	// A reinstall makes sure of the host key and reads the drift before
	// the preflight, as `bigbang reinstall` does: the host key step copies
	// in the key that the preflight's secrets checks need.
	screenDrift // reinstall only
	screenPreflight
	screenBackup // reinstall only
	screenBuild
	screenPlan
	screenWipe
	screenProgress
	screenRestore // reinstall only
	screenResult
)

func (s screen) title() string {
	return [...]string{"Welcome", "Target", "Disk layout", "Preflight", "Backup", "RAM and build", "Plan", "Wipe warning", "Install", "Restore", "Result"}[s]
}

// Welcome is what the welcome screen says about the folder bigbang runs in.
type Welcome struct {
	Flake  string // the flake reference, e.g. .#vps-arm
	Found  string // what was found, e.g. "flake.nix with nixosConfigurations.vps-arm"
	Folder string
}

// WelcomeHere is the welcome of a wizard started in the current folder
// for the flake reference ref: whether the folder holds a flake.nix.
func WelcomeHere(ref string) Welcome {
	wd, _ := os.Getwd()
	found := "no flake.nix in this folder: give --flake with the path of yours"
	if _, err := os.Stat(filepath.Join(wd, "flake.nix")); err == nil {
		found = "flake.nix in this folder"
	}
	return Welcome{Flake: ref, Found: found, Folder: wd}
}

// AutoPause is how long the demo's --yes shows each screen: long enough to read at
// the recorded pace, short when the run is sped up for tests.
func AutoPause(speed float64) time.Duration {
	if speed <= 10 {
		return 1500 * time.Millisecond
	}
	return max(time.Duration(float64(1500*time.Millisecond)*10/speed), 400*time.Millisecond)
}

// Options configure a wizard run.
type Options struct {
	Config steps.Config
	// Engine runs the steps; its world is the real one or the demo's.
	Engine  Engine
	Welcome Welcome
	// TargetNotes say where the target form's defaults came from (the last
	// install of the host, the ssh configuration).
	TargetNotes []string
	// Rehearsal marks every screen REHEARSAL (bigbang demo).
	Rehearsal bool
	// Auto answers every question with its default and types the wipe
	// confirmation, pausing AutoPause on each screen (demo --yes).
	Auto      bool
	AutoPause time.Duration
	// ExitAfter quits this long after the result screen appears (0: wait
	// for q).
	ExitAfter time.Duration
	// Command is how the operator runs bigbang, for the resume line
	// (default "bigbang").
	Command string
	Input   io.Reader
	Output  io.Writer
	// ProgramOptions are added to the Bubble Tea program (tests, bench).
	ProgramOptions []tea.ProgramOption
	// Notes gets what the wizard says after its screen is gone (default
	// standard error).
	Notes io.Writer
	// Reinstall, when set, makes the wizard a reinstall: after the
	// preflight the drift and the backup, after the install the restore.
	Reinstall *engine.ReinstallOptions
}

// ErrAborted is returned, with a zero InstallResult, when the operator
// leaves the wizard before the install starts: nothing on the server
// changed and nothing failed, so it is not an error to report and callers
// print nothing (ExitSummary is "" for it). Ctrl+C is an interruption
// (exit 130); q or esc is ErrQuit, which wraps it (exit 0).
var ErrAborted = errors.New("stopped before anything was changed")

// ErrQuit is ErrAborted for an operator who left with q or esc rather than
// Ctrl+C: a choice, not an interruption (the command exits 0).
var ErrQuit = fmt.Errorf("%w: left with q", ErrAborted)

// Run shows the wizard until the operator quits; it returns how the
// install ended (zero Outcome when it never started).
func Run(ctx context.Context, opts Options) (engine.InstallResult, error) {
	m := newModel(ctx, opts)
	popts := []tea.ProgramOption{tea.WithContext(ctx)}
	if opts.Input != nil {
		popts = append(popts, tea.WithInput(opts.Input))
	}
	if opts.Output != nil {
		popts = append(popts, tea.WithOutput(opts.Output))
	}
	popts = append(popts, opts.ProgramOptions...)
	p := tea.NewProgram(m, popts...)
	final, err := p.Run()
	m.queue.close()
	fm, _ := final.(*model)
	if fm == nil {
		fm = m
	}
	if fm.cancelInstall != nil {
		fm.cancelInstall()
	}
	if fm.cancelPreflight != nil {
		fm.cancelPreflight()
	}
	// Units stopped for the backup run again when the wizard ends before
	// the wipe.
	notes := opts.Notes
	if notes == nil {
		notes = os.Stderr
	}
	startUnitsAgain(ctx, fm, notes)
	if err != nil && !errors.Is(err, tea.ErrProgramKilled) {
		return fm.result, err
	}
	if ctx.Err() != nil && fm.result.Outcome == "" {
		return fm.result, ctx.Err()
	}
	if fm.stopErr != nil && fm.result.Outcome == "" {
		return fm.result, fm.stopErr
	}
	if fm.result.Outcome == "" && !fm.interrupted {
		return fm.result, ErrQuit
	}
	if fm.result.Outcome == "" {
		return fm.result, ErrAborted
	}
	return fm.result, nil
}

// Messages from commands.
type (
	preflightDoneMsg struct {
		gen    int
		report engine.Report
		err    error
	}
	sudoDoneMsg    struct{ err error }
	installDoneMsg struct {
		result engine.InstallResult
		// restored is what a reinstall's restore before the first boot
		// verified (nil when it did not).
		restored *engine.Restored
		err      error
	}
	tickMsg struct{ gen int }
	// autoMsg is --yes answering the screen at, shown as the shows-th
	// screen change: an answer meant for an earlier showing of the same
	// screen (a drift started again) is stale.
	autoMsg struct {
		at    screen
		shown int
	}
	exitMsg    struct{}
	logLoadMsg struct {
		lines []string
		err   error
	}
)

// model is the root model.
type model struct {
	ctx    context.Context
	opts   Options
	engine Engine
	cfg    steps.Config
	queue  *eventQueue

	width, height int
	st            styles
	screen        screen
	showHelp      bool
	confirmQuit   bool // Ctrl+C during the install: asking first
	stopping      bool
	interrupted   bool // left with Ctrl+C before anything ran
	shown         int  // how many times show changed the screen
	tickGen       int
	ticking       bool
	now           time.Time

	target    targetScreen
	preflight preflightScreen
	build     buildScreen
	plan      planScreen
	wipe      wipeScreen
	progress  progressScreen
	resultS   resultScreen
	logv      *logView

	report  engine.Report
	thePlan steps.Plan
	// planCfg is the config thePlan was made from: m.cfg with the RAM
	// and build choices of the RAM screen. The install, the resume and
	// the result use it.
	planCfg         steps.Config
	logPath         string
	result          engine.InstallResult
	cancelInstall   context.CancelFunc
	cancelPreflight context.CancelFunc
	preflightGen    int
	// approvedHostKey is the fingerprint the operator said y to on the
	// preflight screen: the next preflight trusts that key and no other.
	approvedHostKey string

	// changed says what the wizard already changed on the target before
	// the install ("" when nothing), for the help.
	changed string

	// rs is the reinstall's state; nil for an install.
	rs *reinstallState
	// stopErr is why the operator left a reinstall before the install
	// (nothing to reinstall, a refused host key, a failed backup).
	stopErr error
}

func newModel(ctx context.Context, opts Options) *model {
	if opts.Command == "" {
		opts.Command = "bigbang"
	}
	if opts.AutoPause == 0 {
		opts.AutoPause = 1500 * time.Millisecond
	}
	m := &model{
		ctx:    ctx,
		opts:   opts,
		engine: opts.Engine,
		cfg:    opts.Config,
		queue:  newEventQueue(),
		width:  80,
		height: 24,
		st:     newStyles(true),
		now:    time.Now(),
	}
	if opts.Reinstall != nil {
		m.rs = &reinstallState{opts: *opts.Reinstall}
	}
	m.target = newTargetScreen(m.cfg, opts.Auto)
	m.target.notes = opts.TargetNotes
	return m
}

// Init asks for the terminal's background (for the theme) and starts the
// event pump.
func (m *model) Init() tea.Cmd {
	return tea.Batch(tea.RequestBackgroundColor, m.queue.waitCmd(), m.autoCmd())
}

// Update handles what concerns every screen, then hands the message on.
func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		return m, m.target.resize(msg)
	case tea.BackgroundColorMsg:
		m.st = newStyles(msg.IsDark())
		m.target.setTheme(msg)
		return m, nil
	case tea.KeyPressMsg:
		if cmd, done := m.globalKey(msg); done {
			return m, cmd
		}
	case eventsMsg:
		m.now = time.Now()
		m.applyEvents(msg)
		return m, m.queue.waitCmd()
	case tickMsg:
		if msg.gen != m.tickGen {
			return m, nil
		}
		m.now = time.Now()
		return m, m.tickCmd()
	case exitMsg:
		return m, tea.Quit
	case logLoadMsg:
		if m.logv != nil {
			m.logv.setLines(msg.lines, msg.err)
		}
		return m, nil
	}
	return m, m.updateScreen(msg)
}

// globalKey handles Ctrl+C, help and the log viewer; done reports that the
// key was used up.
func (m *model) globalKey(k tea.KeyPressMsg) (tea.Cmd, bool) {
	key := k.String()
	if m.confirmQuit {
		switch key {
		case "y", "Y":
			m.confirmQuit = false
			m.stopping = true
			m.progress.stopping = true
			if m.cancelInstall != nil {
				m.cancelInstall()
			}
		case "n", "N", "esc", "ctrl+c":
			m.confirmQuit = false
		}
		return nil, true
	}
	if key == "ctrl+c" {
		if (m.screen == screenProgress || m.screen == screenRestore) && !m.stopping {
			m.confirmQuit = true
			return nil, true
		}
		if m.screen == screenProgress || m.screen == screenRestore {
			return nil, true // already stopping; the result follows
		}
		if m.cancelPreflight != nil {
			m.cancelPreflight()
		}
		if m.cancelInstall != nil {
			// A backup stops; its partial file is named incomplete.
			m.cancelInstall()
		}
		m.interrupted = true
		return tea.Quit, true
	}
	if m.logv != nil {
		if m.logv.update(k) {
			m.logv = nil
		}
		return nil, true
	}
	if m.showHelp {
		m.showHelp = false
		return nil, true
	}
	if m.textFocused() {
		if key == "f1" {
			m.showHelp = true
			return nil, true
		}
		return nil, false
	}
	switch key {
	case "?", "f1":
		m.showHelp = true
		return nil, true
	case "l":
		if m.logPath != "" && (m.screen == screenProgress || m.screen == screenRestore || m.screen == screenResult) {
			m.logv = newLogView()
			return loadLogCmd(m.logPath), true
		}
	case "d":
		if lines := m.details(); lines != nil {
			m.logv = newTextView(m.screen.title()+" in full", lines)
			return nil, true
		}
	}
	return nil, false
}

// textFocused reports whether a text field has the keys, so that letters
// such as ? and l are typed rather than taken as commands.
func (m *model) textFocused() bool {
	switch m.screen {
	case screenTarget:
		return true
	case screenWipe:
		return !m.wipe.counting
	case screenBuild:
		return m.build.editing
	case screenPreflight:
		return m.preflight.askingPassword
	case screenBackup:
		return m.rs.backup.typing
	}
	return false
}

// updateScreen hands msg to the active screen and turns its intent into
// effects.
func (m *model) updateScreen(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case checkMsg:
		if msg.gen != m.preflightGen {
			return nil
		}
		m.preflight.add(msg.check)
		return waitCheck(msg.gen, msg.feed)
	case preflightDoneMsg:
		if msg.gen != m.preflightGen {
			return nil
		}
		m.cancelPreflight = nil
		m.report = msg.report
		m.preflight.done(msg.report, msg.err)
		return m.autoCmd()
	case sudoDoneMsg:
		if msg.err != nil {
			m.preflight.sudoErr = msg.err
			return nil
		}
		m.changed = "The sudoers line for " + m.cfg.User + " was added on the target (/etc/sudoers.d/90-nixos-anywhere)."
		return m.startPreflight()
	case installDoneMsg:
		m.cancelInstall = nil
		m.confirmQuit = false
		m.result = msg.result
		if msg.err != nil && m.result.Outcome == "" {
			m.result.Outcome = steps.OutcomeFailed
			m.result.Diagnosis = &steps.Diagnosis{ID: "internal", Summary: msg.err.Error(), Remedy: "read the log for details"}
		}
		if m.stopping && m.result.Outcome != steps.OutcomeSuccess {
			m.result.Outcome = steps.OutcomeAborted
		}
		if m.result.Log == "" {
			m.result.Log = m.logPath
		}
		m.progress.finish(m.result, m.now)
		if r := m.rs; r != nil {
			if r.feed != nil {
				r.feed.close()
			}
			var err error
			if d := m.result.Diagnosis; d != nil && d.ID == engine.DiagnosisRestoreBeforeBoot {
				err = errors.New(d.Summary)
			}
			r.restore.done(msg.restored, err)
			if msg.restored != nil {
				if msg.restored.Receipt != "" && m.result.Receipt == "" {
					m.result.Receipt = msg.restored.Receipt
				}
				m.result.Notes = append(m.result.Notes, msg.restored.Notes...)
			}
		}
		return m.showResult()
	case autoMsg:
		if msg.at != m.screen || msg.shown != m.shown {
			return nil
		}
		return m.autoAdvance()
	}

	if cmd, ok := m.updateReinstall(msg); ok {
		return cmd
	}

	switch m.screen {
	case screenWelcome:
		if k, ok := msg.(tea.KeyPressMsg); ok {
			switch k.String() {
			case "enter", "space":
				return m.goTo(screenTarget)
			case "q", "esc":
				return tea.Quit
			}
		}
	case screenTarget:
		cmd, it := m.target.update(msg)
		switch it {
		case intentNext:
			m.cfg = m.target.apply(m.cfg)
			m.approvedHostKey = ""
			return tea.Batch(cmd, m.afterTarget())
		case intentBack:
			return m.goTo(screenWelcome)
		}
		return cmd
	case screenPreflight:
		it, pw := m.preflight.update(msg)
		switch it {
		case intentNext:
			return m.afterPreflight()
		case intentBack:
			if m.cancelPreflight != nil {
				m.cancelPreflight()
			}
			m.approvedHostKey = ""
			return m.goTo(screenTarget)
		case intentAccept:
			m.approvedHostKey = m.report.HostKey.Fingerprint
			return m.startPreflight()
		case intentRetry:
			return m.startPreflight()
		case intentSudo:
			return m.sudoCmd(pw)
		}
	case screenBuild:
		it := m.build.update(msg)
		switch it {
		case intentNext:
			// The plan is made fresh from what the screen shows; m.cfg,
			// the operator's target, is never changed by it.
			p, cfg, err := m.build.makePlan(m.planEnv())
			if err != nil {
				m.build.err = err
				return nil
			}
			m.build.err = nil
			// The local.build check follows the choice, on the preflight
			// screen too; one the screen let through as a risk (a
			// build on a VPS short of RAM) keeps the preflight's word.
			judged := cfg
			judged.BuildOn = m.build.buildOn()
			if c := m.report.BuildCheck(judged); !c.Blocking() {
				m.report = m.report.WithBuild(judged)
				m.preflight.add(c)
			}
			m.planCfg, m.thePlan = cfg, p
			m.logPath = m.engine.LogPath(cfg)
			shown := p
			if m.rs != nil {
				// A reinstall runs the install without its reboot, then
				// the reboot: the plan shows both.
				if shown, _, err = engine.SplitReboot(cfg, p); err != nil {
					m.build.err = err
					return nil
				}
			}
			m.plan = newPlanScreen(shown, m.report, m.logPath)
			return m.goTo(screenPlan)
		case intentBack:
			if m.rs != nil {
				return m.goTo(screenBackup)
			}
			return m.goTo(screenPreflight)
		}
	case screenPlan:
		switch m.plan.update(msg) {
		case intentNext:
			m.wipe = newWipeScreen(m.cfg.Host, m.report.Disks, m.opts.Auto)
			if m.rs != nil {
				m.wipe.backup = m.rs.archive().Path
			}
			return m.goTo(screenWipe)
		case intentBack:
			return m.goTo(screenBuild)
		}
	case screenWipe:
		cmd, it := m.wipe.update(msg)
		switch it {
		case intentNext:
			return m.startInstall()
		case intentBack:
			return m.goTo(screenPlan)
		}
		return cmd
	case screenProgress:
		if k, ok := msg.(tea.KeyPressMsg); ok {
			switch k.String() {
			case "w":
				m.progress.keepWaiting()
			case "c":
				if !m.stopping {
					m.confirmQuit = true
				}
			}
		}
	case screenResult:
		if k, ok := msg.(tea.KeyPressMsg); ok {
			switch k.String() {
			case "q", "esc", "enter":
				return tea.Quit
			}
		}
	}
	return nil
}

// showResult ends the wizard on the result screen.
func (m *model) showResult() tea.Cmd {
	m.resultS = newResultScreen(m.result, m.planCfg, m.thePlan, &m.progress, m.opts.Command)
	if r := m.rs; r != nil {
		m.resultS.res.Notes = append(m.resultS.res.Notes, r.backup.notes...)
		m.resultS.backup = r.archive().Path
		m.resultS.restore = r.restore.summary()
		if m.result.Outcome != steps.OutcomeSuccess && r.archive().Path != "" && r.restore.restored == nil {
			// The machine's state is not in the new system yet: the
			// backup goes back after its boot.
			m.resultS.restoreLater = m.restoreCommand()
		}
	}
	m.show(screenResult)
	var cmds []tea.Cmd
	if m.opts.ExitAfter > 0 {
		cmds = append(cmds, tea.Tick(m.opts.ExitAfter, func(time.Time) tea.Msg { return exitMsg{} }))
	}
	return tea.Batch(cmds...)
}

// show makes s the active screen. It is the one place the screen changes:
// the help of the screen before closes with it.
func (m *model) show(s screen) {
	m.screen = s
	m.shown++
	m.showHelp = false
}

// goTo switches screens and starts what the new screen needs.
func (m *model) goTo(s screen) tea.Cmd {
	m.show(s)
	var cmds []tea.Cmd
	if s == screenTarget {
		cmds = append(cmds, m.target.focus())
	}
	if s == screenWipe {
		cmds = append(cmds, m.wipe.init())
	}
	cmds = append(cmds, m.autoCmd())
	return tea.Batch(cmds...)
}

func (m *model) planEnv() steps.PlanEnv {
	return steps.PlanEnv{
		LocalSystem:       m.report.LocalSystem,
		TargetSystem:      m.report.TargetSystem,
		TargetRAM:         m.report.TargetRAM,
		TargetIsInstaller: m.report.TargetIsInstaller,
	}
}

// afterTarget starts what follows the target form: the preflight of an
// install; for a reinstall the host key step and the drift first, in the
// order of `bigbang reinstall`.
func (m *model) afterTarget() tea.Cmd {
	if m.rs != nil {
		return m.startDrift()
	}
	return m.startPreflight()
}

// afterPreflight goes on from a preflight that nothing blocks: to the RAM
// and build screen; for a reinstall (whose drift came first) to the backup.
func (m *model) afterPreflight() tea.Cmd {
	if m.rs != nil {
		return m.startBackup()
	}
	m.build = newBuildScreen(m.cfg, m.report)
	return m.goTo(screenBuild)
}

// startPreflight runs the backend's preflight in a command. The config is
// copied first: the closure must not read the model.
func (m *model) startPreflight() tea.Cmd {
	if m.cancelPreflight != nil {
		m.cancelPreflight()
	}
	m.preflightGen++
	m.preflight = newPreflightScreen(m.cfg)
	m.show(screenPreflight)
	ctx, cancel := context.WithCancel(m.ctx)
	m.cancelPreflight = cancel
	cfg, b, gen, p := m.cfg, m.engine, m.preflightGen, m.dialPolicy()
	feed := make(chan steps.Check, 64)
	run := func() tea.Msg {
		r, err := b.Preflight(ctx, cfg, p, func(e steps.Event) {
			select {
			case feed <- e.Check:
			case <-ctx.Done():
			}
		})
		close(feed)
		return preflightDoneMsg{gen: gen, report: r, err: err}
	}
	return tea.Batch(run, waitCheck(gen, feed), m.startTicking())
}

// checkMsg is one check of the preflight numbered gen, as soon as it is
// known.
type checkMsg struct {
	gen   int
	check steps.Check
	feed  <-chan steps.Check
}

// waitCheck waits for the next check of a preflight.
func waitCheck(gen int, feed <-chan steps.Check) tea.Cmd {
	return func() tea.Msg {
		c, ok := <-feed
		if !ok {
			return nil
		}
		return checkMsg{gen: gen, check: c, feed: feed}
	}
}

// dialPolicy is how the wizard's dials treat the operator: an unknown host
// key is refused and noted, and the one approved on the preflight screen is
// trusted on the next dial (and no other).
func (m *model) dialPolicy() engine.DialPolicy {
	return engine.DialPolicy{Approved: m.approvedHostKey}
}

func (m *model) sudoCmd(pw []byte) tea.Cmd {
	cfg, b, ctx, p := m.cfg, m.engine, m.ctx, m.dialPolicy()
	return func() tea.Msg {
		return sudoDoneMsg{err: b.SetupSudo(ctx, cfg, p, pw)}
	}
}

// startInstall runs the plan. The root owns the cancel func, so Ctrl+C
// (after asking) stops the child through the context.
func (m *model) startInstall() tea.Cmd {
	ctx, cancel := context.WithCancel(m.ctx)
	m.cancelInstall = cancel
	m.show(screenProgress)
	m.now = time.Now()
	m.progress = newProgressScreen(m.thePlan.Phases, m.now)
	req := engine.InstallRequest{Config: m.planCfg, Plan: m.thePlan, Log: m.logPath, Disks: append([]engine.Disk(nil), m.report.Disks...), Flake: m.report.Flake}
	b, q := m.engine, m.queue
	sink := func(e steps.Event) { q.push(e) }
	if r := m.rs; r != nil {
		// The reinstall's install: the engine stops it before the reboot,
		// restores the backup into the installer (the restore screen
		// shows it), then reboots (the panes again).
		req.Layout = r.drift.res.Layout
		r.gen++
		r.feed = newProgressFeed(r.gen)
		r.restore = newRestoreScreen(m.cfg, r.opts, r.archive().Path)
		a, o, tf := r.archive(), r.opts, transferFront{feed: r.feed}
		run := func() tea.Msg {
			res, restored, err := b.ReinstallInstall(ctx, req, a, o, tf, sink)
			q.settle()
			return installDoneMsg{result: res, restored: restored, err: err}
		}
		return tea.Batch(run, r.feed.wait(), m.startTicking())
	}
	run := func() tea.Msg {
		res, err := b.Install(ctx, req, sink)
		// The result screen is built from the panes: every event must be
		// in them before the end is reported.
		q.settle()
		return installDoneMsg{result: res, err: err}
	}
	return tea.Batch(run, m.startTicking())
}

// applyEvents hands the install's queued events to the progress screen.
func (m *model) applyEvents(evs []steps.Event) {
	for _, e := range evs {
		m.progress.apply(e)
	}
}

// startTicking starts the clock that moves timers and spinners, once.
func (m *model) startTicking() tea.Cmd {
	if m.ticking {
		return nil
	}
	m.ticking = true
	m.tickGen++
	return m.tickCmd()
}

func (m *model) tickCmd() tea.Cmd {
	gen := m.tickGen
	return tea.Tick(spinnerInterval, func(time.Time) tea.Msg { return tickMsg{gen: gen} })
}

// autoCmd schedules the default answer of the current screen in --yes mode.
func (m *model) autoCmd() tea.Cmd {
	if !m.opts.Auto {
		return nil
	}
	at, shown := m.screen, m.shown
	return tea.Tick(m.opts.AutoPause, func(time.Time) tea.Msg { return autoMsg{at: at, shown: shown} })
}

// autoAdvance answers the current screen with its default.
func (m *model) autoAdvance() tea.Cmd {
	switch m.screen {
	case screenWelcome:
		return m.goTo(screenTarget)
	case screenTarget:
		if err := m.target.validate(); err != nil {
			return nil
		}
		m.cfg = m.target.apply(m.cfg)
		m.approvedHostKey = ""
		return m.afterTarget()
	case screenPreflight:
		if m.preflight.running {
			return nil // preflightDoneMsg schedules the next try
		}
		switch {
		case m.preflight.askHostKey:
			m.approvedHostKey = m.report.HostKey.Fingerprint
			return m.startPreflight()
		case m.report.Blocking() == 0 && m.preflight.err == nil:
			return m.afterPreflight()
		}
	case screenDrift:
		switch d := &m.rs.drift; {
		case d.askHostKey():
			m.approvedHostKey = d.res.NewHostKey.Fingerprint
			return m.startDrift()
		case d.proceed():
			return m.startPreflight()
		}
	case screenBackup:
		if m.rs.archive().Path != "" {
			return m.updateScreen(tea.KeyPressMsg{Code: tea.KeyEnter})
		}
	case screenBuild:
		return m.updateScreen(tea.KeyPressMsg{Code: tea.KeyEnter})
	case screenPlan:
		if !m.plan.showCommand {
			// Show the exact command first, as an operator would.
			m.plan.showCommand = true
			return m.autoCmd()
		}
		return m.updateScreen(tea.KeyPressMsg{Code: tea.KeyEnter})
	case screenWipe:
		return m.wipe.autoType()
	}
	return nil
}

// View draws the header, the active screen and the key line, clipped to
// the window so that no line ever wraps.
func (m *model) View() tea.View {
	w, h := max(m.width, 20), max(m.height, 5)
	header := m.headerView(w)
	footer := m.footerView(w)
	bodyH := h - 2
	var body string
	switch {
	case m.logv != nil:
		body = m.logv.view(m.st, w, bodyH)
	case m.showHelp:
		body = helpView(m.st, m.screen, m.changed, w, bodyH)
	default:
		body = m.screenView(w, bodyH)
	}
	if m.confirmQuit {
		body = confirmQuitView(m.st, m.runningPhase(), m.screen == screenRestore, w, bodyH)
	}
	content := header + "\n" + clip(body, w, bodyH, true) + "\n" + footer
	v := tea.NewView(content)
	v.AltScreen = true
	v.WindowTitle = m.windowTitle()
	v.ProgressBar = m.progressBar()
	return v
}

// details is the whole text of a screen that may have had to cut it,
// wrapped to the window, for the details view (nil: the screen has none).
func (m *model) details() []string {
	w := max(m.width, 20)
	switch m.screen {
	case screenPreflight:
		if m.preflight.running || len(m.preflight.checks) == 0 {
			return nil
		}
		return m.preflight.detailLines(m.st, w)
	case screenResult:
		return strings.Split(m.resultS.view(m.st, w, 1<<16), "\n")
	}
	return nil
}

// runningPhase is the phase the install is in ("" before it starts).
func (m *model) runningPhase() steps.PhaseID {
	if p := m.progress.current(); p != nil {
		return p.id
	}
	return ""
}

func (m *model) screenView(w, h int) string {
	switch m.screen {
	case screenWelcome:
		return welcomeView(m.st, m.opts.Welcome, m.opts.Rehearsal, w, h)
	case screenTarget:
		return m.target.view(m.st, w, h)
	case screenPreflight:
		return m.preflight.view(m.st, m.now, w, h)
	case screenBuild:
		return m.build.view(m.st, w, h)
	case screenPlan:
		return m.plan.view(m.st, w, h)
	case screenWipe:
		return m.wipe.view(m.st, w, h)
	case screenProgress:
		return m.progress.view(m.st, m.now, w, h)
	case screenDrift:
		return m.rs.drift.view(m.st, m.now, w, h)
	case screenBackup:
		return m.rs.backup.view(m.st, m.now, w, h)
	case screenRestore:
		return m.rs.restore.view(m.st, m.now, w, h)
	case screenResult:
		return m.resultS.view(m.st, w, h)
	}
	return ""
}

func (m *model) headerView(w int) string {
	left := m.st.Title.Render("bigbang") + m.st.Dim.Render(" · ") + m.st.Header.Render(m.screen.title())
	if m.cfg.Host != "" && m.screen > screenTarget {
		left += m.st.Dim.Render(" · " + m.cfg.User + "@" + m.cfg.Host)
	}
	right := ""
	if m.opts.Rehearsal {
		right = m.st.Badge.Render("REHEARSAL")
	}
	// One column stays free on the right: a badge's padding in the last
	// column is lost by terminals that trim trailing blanks.
	gap := w - 1 - ansi.StringWidth(left) - ansi.StringWidth(right)
	if gap < 1 {
		return ansi.Truncate(left, w-ansi.StringWidth(right)-1, "…") + " " + right
	}
	return left + strings.Repeat(" ", gap) + right
}

func (m *model) footerView(w int) string {
	var keys [][2]string
	switch {
	case m.confirmQuit:
		keys = [][2]string{{"y", "stop the install"}, {"n", "keep going"}}
	case m.logv != nil:
		keys = m.logv.keys()
	case m.showHelp:
		keys = [][2]string{{"any key", "close help"}}
	default:
		keys = screenKeys(m)
	}
	return clip(keyLine(m.st, keys), w, 1, false)
}

func (m *model) windowTitle() string {
	t := "bigbang"
	if m.opts.Rehearsal {
		t += " (rehearsal)"
	}
	switch m.screen {
	case screenProgress:
		if p := m.progress.current(); p != nil {
			return t + " · " + p.id.Title()
		}
	case screenResult:
		return t + " · " + string(m.result.Outcome)
	}
	return t + " · " + m.screen.title()
}

// progressBar drives the terminal's own progress indicator (OSC 9;4).
func (m *model) progressBar() *tea.ProgressBar {
	switch m.screen {
	case screenProgress:
		state := tea.ProgressBarDefault
		if m.progress.stalled() {
			state = tea.ProgressBarWarning
		}
		return tea.NewProgressBar(state, m.progress.percent())
	case screenBackup, screenRestore:
		t := &m.rs.backup.transfer
		if m.screen == screenRestore {
			t = &m.rs.restore.transfer
		}
		if t.p.Total > 0 {
			return tea.NewProgressBar(tea.ProgressBarDefault, int(100*min(t.p.Bytes, t.p.Total)/t.p.Total))
		}
		return tea.NewProgressBar(tea.ProgressBarIndeterminate, 0)
	case screenResult:
		if m.result.Outcome != steps.OutcomeSuccess {
			return tea.NewProgressBar(tea.ProgressBarError, m.progress.percent())
		}
	}
	return nil
}

// clip cuts s to w columns and h lines, padding to h lines when pad is
// set, so the screen never scrolls or wraps, whatever the window size.
func clip(s string, w, h int, pad bool) string {
	lines := strings.Split(s, "\n")
	if len(lines) > h {
		lines = lines[:h]
	}
	for i, l := range lines {
		if ansi.StringWidth(l) > w {
			lines[i] = ansi.Truncate(l, w, "…")
		}
	}
	for pad && len(lines) < h {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// intent is what a screen asks the root to do.
type intent int

const (
	intentNone intent = iota
	intentNext
	intentBack
	intentAccept
	intentRetry
	intentSudo
	intentQuit
	intentStopUnits
)
