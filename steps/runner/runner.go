// Package runner runs nixos-anywhere (or any argv) under a pseudo-terminal,
// saves every byte it prints to the transcript file before anything else
// sees it, turns the output into lines and the lines into phase, line,
// progress, stall and result events, and stops the child's whole process
// group when the run is cancelled or the reboot does not happen in time.
package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/transcript"
)

// Defaults of Options.
const (
	// DefaultStall is the progress limit of a phase DefaultStallFor does
	// not know.
	DefaultStall     = 2 * time.Minute
	DefaultGrace     = 5 * time.Second // SIGINT → SIGTERM
	DefaultTermGrace = 5 * time.Second // SIGTERM → SIGKILL
	// DefaultRebootDeadline is how long after the Rebooting step the
	// machine may stay up before the run is stopped and failed.
	DefaultRebootDeadline = 5 * time.Minute
)

// DefaultStallFor is how long phase p may go without progress before it
// counts as stalled, when Options say nothing else: what the phase can
// plausibly take between two signs of progress. Builds and closure copies
// keep nix's status line moving but a single large derivation can sit on
// one line for many minutes; the kexec tarball downloads silently; the
// rest answers within seconds when all is well.
func DefaultStallFor(p steps.PhaseID) time.Duration {
	switch p {
	case steps.PhaseBuild, steps.PhaseInstall:
		return 20 * time.Minute
	case steps.PhaseKexec, steps.PhaseDisko:
		return 5 * time.Minute
	case steps.PhaseConnect, steps.PhaseKeys, steps.PhaseReboot:
		return 2 * time.Minute
	}
	return DefaultStall
}

// DiagnosisRebootNever is the diagnosis ID of a run stopped because the
// machine did not go down for the reboot within Options.RebootDeadline.
const DiagnosisRebootNever = "reboot.never"

// ErrStart is wrapped when the command could not be started.
var ErrStart = errors.New("cannot start the install command")

// Size is the window size of the pseudo-terminal.
type Size struct {
	Rows, Cols uint16
}

// Classifier places lines in phases and judges the run at its end;
// transcript.Classifier is the one bigbang uses.
type Classifier interface {
	Line(text string) (steps.PhaseID, []transcript.Change)
	Finish(exitCode int) ([]transcript.Change, transcript.Report)
}

// Options say what to run and how to watch it.
type Options struct {
	Argv []string // the command; Argv[0] is looked up in PATH
	Dir  string   // working folder; empty: the current one
	Env  []string // environment; nil: this process's

	// The transcript: Log when the caller opened it (it stays open), else
	// LogPath, opened with OpenLog before the child starts.
	Log     *os.File
	LogPath string

	// Phases are the phases the plan will run, in order: each gets a
	// pending event at the start, and those that never ran are skipped at
	// the end of a successful run.
	Phases []steps.PhaseID

	// Stall is how long a phase may go without progress before a stall
	// event is sent (and sent again after each further such period).
	// Progress is a new step, or a line that is neither a known loop's
	// chatter (ssh's notices, ssh-copy-id's retries, failing connections)
	// nor a repeat of a recent line, or a new state of nix's status line:
	// nixos-anywhere's endless loops print on every turn, so silence alone
	// would never be noticed. DefaultStall applies where Stall has no
	// entry; when it is zero too, DefaultStallFor.
	Stall        map[steps.PhaseID]time.Duration
	DefaultStall time.Duration

	// RebootDeadline is how long after the Rebooting step the machine may
	// stay up (nixos-anywhere's wait for it to go down goes on for ever):
	// then the child is stopped and the run fails in phase reboot with the
	// diagnosis DiagnosisRebootNever. Zero: DefaultRebootDeadline;
	// negative: no deadline.
	RebootDeadline time.Duration

	// Login is the user@host that nixos-anywhere's ssh-copy-id logs in to
	// (root@host when the plan has no kexec); the stall and failure
	// messages name it. Empty: "the target".
	Login string

	// ProgressEvery is how often at most the redrawn line of the running
	// phase goes out as a progress event (zero: DefaultProgressEvery).
	ProgressEvery time.Duration

	// Grace is how long the child has after SIGINT before SIGTERM, and
	// TermGrace after SIGTERM before SIGKILL (zero: the package defaults).
	Grace, TermGrace time.Duration

	// Stdin, when not nil, is copied to the terminal's input. Whatever
	// the child does not read with echo off is echoed into the output
	// (and the transcript), as in any terminal. Nil: the child's terminal
	// gets no input.
	Stdin io.Reader

	// Size is the terminal's size (zero: 40×120); Resize, when not nil,
	// changes it during the run.
	Size   Size
	Resize <-chan Size

	// MaxLine caps the text of one line event (zero: DefaultMaxLine).
	MaxLine int

	// Classifier defaults to transcript.New().
	Classifier Classifier
}

// Result is how a run ended; the same values go out in the result event.
type Result struct {
	Outcome     steps.Outcome
	FailedPhase steps.PhaseID
	Diagnosis   *steps.Diagnosis
	ExitCode    int // the child's exit status; 128+n when a signal n ended it
	Log         string
	Report      transcript.Report
	Elapsed     time.Duration
	// LogErr is set when writing the transcript failed during the run; the
	// run went on (stopping an install half-way is worse) and the events
	// still carried every line.
	LogErr error
	// Phases are the plan's phases in the order they got a state, with
	// their final state and when they started and ended.
	Phases []PhaseTime
}

// PhaseTime is one phase of a run: its final state, and when it started
// and ended (zero when it never did).
type PhaseTime struct {
	Phase      steps.PhaseID
	State      steps.PhaseState
	Start, End time.Time
}

// Run starts opts.Argv under a pseudo-terminal and blocks until it has
// ended and every process of its process group is gone.
//
// Every event goes to sink, one call at a time (never concurrently). Line
// events are sent synchronously from the goroutine that processes the
// child's output, behind a small bounded queue (queueChunks reads): a slow
// sink slows the child down (its writes block on the full terminal) rather
// than losing lines.
//
// When ctx is cancelled the child's process group gets SIGINT, then
// SIGTERM after Grace and SIGKILL after TermGrace; the outcome is aborted
// and the exit status is kept. A non-nil error means nothing ran: the
// transcript could not be opened (ErrLog) or the command not started
// (ErrStart).
func Run(ctx context.Context, opts Options, sink steps.Sink) (Result, error) {
	if len(opts.Argv) == 0 {
		return Result{}, fmt.Errorf("%w: no command given", ErrStart)
	}
	logf := opts.Log
	logPath := opts.LogPath
	if logf == nil {
		f, err := OpenLog(opts.LogPath)
		if err != nil {
			return Result{}, err
		}
		defer f.Close()
		logf = f
	} else if logPath == "" {
		logPath = logf.Name()
	}
	if err := ctx.Err(); err != nil {
		return Result{Outcome: steps.OutcomeAborted, Log: logPath}, fmt.Errorf("%w: %w", ErrStart, err)
	}

	cmd := exec.Command(opts.Argv[0], opts.Argv[1:]...)
	cmd.Dir = opts.Dir
	cmd.Env = opts.Env
	size := opts.Size
	if size.Rows == 0 || size.Cols == 0 {
		size = Size{Rows: 40, Cols: 120}
	}
	// Setsid makes the child the leader of a new session and process
	// group (pgid = its pid) with the terminal as its controlling
	// terminal, so that signals reach the whole group and sudo and ssh
	// -t find a terminal.
	ptmx, err := startPTY(cmd, size)
	if err != nil {
		return Result{Log: logPath}, fmt.Errorf("%w: %s: %v; check the --nixos-anywhere command", ErrStart, opts.Argv[0], err)
	}
	start := time.Now()
	pgid := cmd.Process.Pid

	r := newRun(opts, sink, start)
	r.pgid = pgid
	r.pending()

	exited := make(chan struct{})
	if opts.Stdin != nil {
		// This goroutine ends when the terminal is closed (a write
		// fails) or the reader ends.
		go func() { _, _ = io.Copy(ptmx, opts.Stdin) }()
	}
	if opts.Resize != nil {
		go func() {
			for {
				select {
				case s := <-opts.Resize:
					_ = pty.Setsize(ptmx, &pty.Winsize{Rows: s.Rows, Cols: s.Cols})
				case <-exited:
					return
				}
			}
		}()
	}

	// Cancel: stop the group, then let the main path find the exit. The
	// state decides between a cancel, the reboot deadline and the child's
	// own end when they come at once: whichever claims it first wins, so a
	// run that had already ended is never reported aborted, nor its reaped
	// group signalled.
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-exited:
			return
		}
		r.stop(stateCancelled)
	}()

	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		r.read(ptmx, logf)
	}()
	watchdogDone := make(chan struct{})
	go func() {
		defer close(watchdogDone)
		r.watch(readerDone)
	}()

	waitErr := cmd.Wait()
	r.state.CompareAndSwap(stateRunning, stateEnded)
	close(exited)
	<-stopped
	// A process left in the group after the child's end (a grandchild it
	// did not wait for) would hold the terminal open and outlive bigbang:
	// stop it too, with short grace periods.
	if groupAlive(pgid) {
		stopGroup(pgid, time.Second, time.Second)
	}
	// The reader ends at the terminal's end of file, once the last
	// process holding it has gone. A process that left the group (a
	// daemon) may still hold it; do not wait for it forever.
	select {
	case <-readerDone:
	case <-time.After(2 * time.Second):
		ptmx.Close()
		<-readerDone
	}
	ptmx.Close()
	<-watchdogDone
	// No fsync: the transcript is complete in the page cache, and forcing
	// a large one to disk would hold the operator for seconds.

	code := exitStatus(cmd.ProcessState, waitErr)
	end := r.state.Load()
	if end == stateDeadline {
		r.note(logf, r.deadlineNote())
	}
	res := r.finish(code, end)
	res.Log = logPath
	res.Elapsed = time.Since(start)
	if e := r.logErr.Load(); e != nil {
		res.LogErr = *e
	}
	r.emit(steps.Event{
		Time: time.Now(), Type: steps.EventResult,
		Outcome: res.Outcome, FailedPhase: res.FailedPhase, Diagnosis: res.Diagnosis,
		Log: res.Log, ExitCode: res.ExitCode,
	})
	return res, nil
}

func dur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// exitStatus is the child's exit status as a shell reports it: 128+n when
// signal n ended it.
func exitStatus(ps *os.ProcessState, err error) int {
	if ps == nil {
		if err != nil {
			return -1
		}
		return 0
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// The states of a run's end; the first to be claimed wins.
const (
	stateRunning int32 = iota
	stateCancelled
	stateDeadline // stopped: the machine did not go down for the reboot
	stateEnded
)

// run holds the state of one run that the reader, the watchdog and the
// end share.
type run struct {
	opts  Options
	sink  steps.Sink
	cls   Classifier
	start time.Time
	pgid  int
	state atomic.Int32

	mu      sync.Mutex // serialises sink calls and guards the fields below
	states  map[steps.PhaseID]steps.PhaseState
	order   []steps.PhaseID // phases in the order they got a state
	running steps.PhaseID   // the phase that started last and has not ended
	current steps.PhaseID   // the phase of the last line
	// started is a phase the runner itself set running because output
	// came for it before any step (a local build has no step line); it is
	// done when the classifier starts another phase.
	started  steps.PhaseID
	loop     loopState // chatter since the last progress
	rebootAt time.Time // when the reboot phase started; zero before
	// rebootOver: the reboot phase ended (the machine went down).
	rebootOver bool
	// startedAt and endedAt are when each phase started and ended, for
	// the result's phase times.
	startedAt map[steps.PhaseID]time.Time
	endedAt   map[steps.PhaseID]time.Time

	lastProgress atomic.Int64 // UnixNano of the last progress
	logErr       atomic.Pointer[error]
	lastByte     byte // the last byte written to the transcript (reader only)

	// Used only by the goroutine that processes the output.
	scratch  []byte
	recent   recent
	progText string    // the last redrawn line seen
	progSent string    // the last one sent
	progAt   time.Time // when the last progress event went out
	progWait time.Duration
}

func newRun(opts Options, sink steps.Sink, start time.Time) *run {
	cls := opts.Classifier
	if cls == nil {
		cls = transcript.New()
	}
	r := &run{opts: opts, sink: sink, cls: cls, start: start, states: map[steps.PhaseID]steps.PhaseState{},
		startedAt: map[steps.PhaseID]time.Time{}, endedAt: map[steps.PhaseID]time.Time{}}
	r.lastProgress.Store(start.UnixNano())
	if len(opts.Phases) > 0 {
		r.current = opts.Phases[0]
	}
	return r
}

// stop claims the end of the run for why (a cancel or the reboot deadline)
// and stops the child's process group, unless the run already ended.
func (r *run) stop(why int32) {
	if r.state.CompareAndSwap(stateRunning, why) {
		stopGroup(r.pgid, dur(r.opts.Grace, DefaultGrace), dur(r.opts.TermGrace, DefaultTermGrace))
	}
}

// emit hands one event to the sink. Every caller holds r.mu (or is the
// only goroutine left), which keeps sink calls one at a time.
func (r *run) emit(e steps.Event) {
	if r.sink != nil {
		r.sink(e)
	}
}

func (r *run) pending() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.opts.Phases {
		r.setState(p, steps.StatePending, r.start)
	}
}

// setState records a phase's state and sends a phase event when it
// changed. r.mu is held.
func (r *run) setState(p steps.PhaseID, s steps.PhaseState, now time.Time) {
	if p == "" {
		return
	}
	old, seen := r.states[p]
	if seen && old == s {
		return
	}
	if !seen {
		r.order = append(r.order, p)
	}
	r.states[p] = s
	switch {
	case s == steps.StateRunning:
		r.running = p
	case r.running == p:
		r.running = ""
	}
	switch s {
	case steps.StateRunning:
		if r.startedAt[p].IsZero() {
			r.startedAt[p] = now
		}
	case steps.StateDone, steps.StateFailed:
		r.endedAt[p] = now
	}
	if p == steps.PhaseReboot {
		if s == steps.StateRunning && r.rebootAt.IsZero() {
			r.rebootAt = now
		} else if s != steps.StateRunning && !r.rebootAt.IsZero() {
			r.rebootOver = true
		}
	}
	r.emit(steps.Event{Time: now, Type: steps.EventPhase, Phase: p, State: s})
}

func (r *run) apply(changes []transcript.Change, now time.Time) {
	for _, c := range changes {
		if c.State == steps.StateRunning && r.started != "" && r.started != c.Phase {
			// The phase the runner started on its own output ends where
			// the classifier's next phase begins.
			if r.states[r.started] == steps.StateRunning {
				r.setState(r.started, steps.StateDone, now)
			}
			r.started = ""
		}
		r.setState(c.Phase, c.State, now)
	}
}

// startOnOutput sets a planned phase running that a redrawn status line
// came for while it was still pending: a local build has no step line, and
// under a terminal nix may print nothing but its status line, which the
// classifier never sees. (Lines are the classifier's to place.) r.mu is
// held.
func (r *run) startOnOutput(p steps.PhaseID, now time.Time) {
	if p == "" || r.states[p] != steps.StatePending || r.running != "" {
		return
	}
	r.started = p
	r.setState(p, steps.StateRunning, now)
}

// progressed notes progress: the watchdog starts counting again.
func (r *run) progressed(now time.Time) {
	r.lastProgress.Store(now.UnixNano())
	r.loop = loopState{}
}

// queueChunks bounds how much read output waits for the line processing:
// reading (and writing the transcript) overlaps with classifying and
// rendering, and a slow sink still holds the child back instead of losing
// output.
const queueChunks = 8

type chunk struct {
	b  []byte
	at time.Time
}

// read copies the terminal's output to the transcript as it is read (one
// large write per read) and queues it for the line processing, until the
// terminal's end of file.
func (r *run) read(ptmx *os.File, logf *os.File) {
	free := make(chan []byte, queueChunks)
	for range queueChunks {
		free <- make([]byte, 64<<10)
	}
	full := make(chan chunk, queueChunks)
	processed := make(chan struct{})
	go func() {
		defer close(processed)
		r.process(full, free)
	}()
	for {
		buf := <-free
		n, err := ptmx.Read(buf[:cap(buf)])
		if n > 0 {
			now := time.Now()
			if _, werr := logf.Write(buf[:n]); werr != nil && r.logErr.Load() == nil {
				e := fmt.Errorf("%w: %v", ErrLog, werr)
				r.logErr.Store(&e)
			}
			r.lastByte = buf[:n][n-1]
			full <- chunk{buf[:n], now}
		} else {
			free <- buf
		}
		if err != nil {
			// EIO: every process holding the terminal has closed it.
			break
		}
	}
	close(full)
	<-processed
}

// process splits the queued output into lines and sends their events.
func (r *run) process(full <-chan chunk, free chan<- []byte) {
	maxLine := r.opts.MaxLine
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	var now time.Time
	every := dur(r.opts.ProgressEvery, DefaultProgressEvery)
	sp := &splitter{max: maxLine, emit: func(line []byte) { r.line(line, now) },
		ended: func(states []byte) { r.redrawEnded(states, now, every) }}
	warned := false
	// A redrawn line that came within every of the last progress event
	// goes out when the timer fires, if it is still the current one.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		var c chunk
		var ok bool
		select {
		case c, ok = <-full:
		case now = <-timer.C:
			armed = false
			r.redraw(nil, nil, now, every)
			continue
		}
		if !ok {
			break
		}
		now = c.at
		if !warned && r.logErr.Load() != nil {
			warned = true
			r.mu.Lock()
			r.emit(steps.Event{Time: now, Type: steps.EventLine, Phase: r.current,
				Text: "bigbang: writing the transcript failed: " + (*r.logErr.Load()).Error() + " (the install goes on; free some space or pass --log next time)"})
			r.mu.Unlock()
		}
		sp.write(c.b)
		free <- c.b
		cur, prev := sp.redraw()
		wait := r.redraw(cur, prev, now, every)
		if r.progWait > 0 && (wait == 0 || r.progWait < wait) {
			wait = r.progWait
		}
		r.progWait = 0
		if wait > 0 && !armed {
			armed = true
			timer.Reset(wait)
		}
	}
	timer.Stop()
	now = time.Now()
	sp.close()
	r.sendProgress(now, 0, true)
}

// redraw handles the current state of a redrawn line (raw may be nil): a
// new state is progress, and goes out as a progress event unless one went
// out less than every ago; then redraw returns how long to wait before
// trying again.
func (r *run) redraw(raw, prev []byte, now time.Time, every time.Duration) time.Duration {
	text := r.redrawText(raw)
	if text == "" {
		// An empty state is nix clearing its line before it prints
		// another, or exits: the state before it is the last one.
		text = r.redrawText(prev)
	}
	if text != "" {
		if text != r.progText {
			r.progText = text
			if !r.recent.seen(text) {
				r.mu.Lock()
				r.progressed(now)
				r.mu.Unlock()
			}
		}
	}
	return r.sendProgress(now, every, false)
}

// redrawEnded takes the states of a redrawn line that has just ended
// (separated by '\r', the latest last): its latest state that is not empty
// is the status line's last, which a chunk read at once may never have
// shown as a line that had not ended.
func (r *run) redrawEnded(states []byte, now time.Time, every time.Duration) {
	for len(states) > 0 {
		seg := states
		if i := bytes.LastIndexByte(states, '\r'); i >= 0 {
			seg, states = states[i+1:], states[:i]
		} else {
			states = nil
		}
		if text := r.redrawText(seg); text != "" {
			if wait := r.redraw(seg, nil, now, every); wait > 0 {
				r.progWait = wait
			}
			return
		}
	}
}

// redrawText is a redrawn line's state as text.
func (r *run) redrawText(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	clean := cleanText(raw, r.scratch)
	if len(clean) > 0 && &clean[0] != &raw[0] {
		r.scratch = clean[:0]
	}
	return strings.TrimSpace(string(clean))
}

// sendProgress sends the redrawn line's state when it has not gone out yet
// and, unless force, when the last progress event is every old; else it
// returns how long to wait.
func (r *run) sendProgress(now time.Time, every time.Duration, force bool) time.Duration {
	if r.progText == "" || r.progText == r.progSent {
		return 0
	}
	if wait := every - now.Sub(r.progAt); wait > 0 && !force {
		return wait
	}
	r.progSent, r.progAt = r.progText, now
	r.mu.Lock()
	p := r.current
	if r.running != "" {
		p = r.running
	}
	r.startOnOutput(p, now)
	if r.running != "" {
		p = r.running
	}
	r.emit(steps.Event{Time: now, Type: steps.EventProgress, Phase: p, Text: r.progText, Progress: parseProgress(r.progText)})
	r.mu.Unlock()
	return 0
}

// line classifies one line and sends its events.
func (r *run) line(raw []byte, now time.Time) {
	clean := cleanText(raw, r.scratch)
	if len(clean) > 0 && &clean[0] != &raw[0] {
		r.scratch = clean[:0]
	}
	text := string(clean)
	phase, changes := r.cls.Line(text)
	if len(changes) > 0 {
		// The last state of a phase's status line goes out before the
		// phase ends.
		r.sendProgress(now, 0, true)
	}
	sign := signOf(text)
	// A repeat is remembered only for lines that could be progress, so
	// that the loops' chatter does not crowd them out.
	repeat := sign.kind == chatNone && r.recent.seen(text)
	r.mu.Lock()
	r.apply(changes, now)
	if phase == "" {
		phase = r.current
	}
	r.current = phase
	switch {
	case len(changes) > 0 || sign.kind == chatNone && !repeat:
		r.progressed(now)
	default:
		r.loop.note(sign, text)
	}
	r.emit(steps.Event{Time: now, Type: steps.EventLine, Phase: phase, Text: text, Noise: sign.noise})
	r.mu.Unlock()
}

// stallFor is how long phase p may go without progress.
func (r *run) stallFor(p steps.PhaseID) time.Duration {
	if d, ok := r.opts.Stall[p]; ok && d > 0 {
		return d
	}
	if r.opts.DefaultStall > 0 {
		return r.opts.DefaultStall
	}
	return DefaultStallFor(p)
}

// rebootDeadline is Options.RebootDeadline with its default; zero means
// none.
func (r *run) rebootDeadline() time.Duration {
	switch d := r.opts.RebootDeadline; {
	case d < 0:
		return 0
	case d == 0:
		return DefaultRebootDeadline
	default:
		return d
	}
}

// watchTick is how often the watchdog looks: a twentieth of the shortest
// limit, between 10 ms and 100 ms, so that a stall is noticed at most
// 100 ms late; ten wake-ups a second cost nothing.
func (r *run) watchTick() time.Duration {
	shortest := r.stallFor("")
	for _, p := range steps.PhaseOrder {
		shortest = min(shortest, r.stallFor(p))
	}
	for _, d := range r.opts.Stall {
		if d > 0 {
			shortest = min(shortest, d)
		}
	}
	if d := r.rebootDeadline(); d > 0 {
		shortest = min(shortest, d)
	}
	return min(max(shortest/20, 10*time.Millisecond), 100*time.Millisecond)
}

// watch sends a stall event when the running phase has made no progress
// for its limit, naming the loop it is in, and again after each further
// such period, until done is closed. A stall never stops the child: the
// operator decides. Only the reboot deadline does: nixos-anywhere's wait
// for the reboot never ends on its own, and there is nothing left to lose
// by stopping it.
func (r *run) watch(done <-chan struct{}) {
	t := time.NewTicker(r.watchTick())
	defer t.Stop()
	deadline := r.rebootDeadline()
	var warnedFor int64 // lastProgress value the warnings so far are about
	warned := 0
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			last := r.lastProgress.Load()
			if last != warnedFor {
				warnedFor, warned = last, 0
			}
			r.mu.Lock()
			if deadline > 0 && !r.rebootAt.IsZero() && !r.rebootOver && now.Sub(r.rebootAt) >= deadline {
				if r.state.Load() == stateRunning {
					r.emit(steps.Event{Time: now, Type: steps.EventStall, Phase: steps.PhaseReboot, Stall: now.Sub(r.rebootAt).Truncate(time.Second / 10),
						Loop: steps.LoopRebootWait, Text: r.deadlineText() + "; stopping nixos-anywhere"})
				}
				r.mu.Unlock()
				r.stop(stateDeadline)
				continue
			}
			p := r.running
			if p == "" {
				p = r.current
			}
			d := r.stallFor(p)
			idle := now.Sub(time.Unix(0, last))
			if idle >= d*time.Duration(warned+1) {
				warned++
				loop, text := r.loop.stallWords(p, idle, r.opts.Login)
				r.emit(steps.Event{Time: now, Type: steps.EventStall, Phase: p, Stall: idle.Truncate(time.Second / 10), Loop: loop, Text: text})
			}
			r.mu.Unlock()
		}
	}
}

// deadlineText says that the reboot did not happen. r.mu is held.
func (r *run) deadlineText() string {
	return "the machine has not gone down for the reboot within " + fmtDur(r.rebootDeadline()) + " of the Rebooting step"
}

// deadlineNote is bigbang's line for the transcript when it stopped the
// run at the reboot deadline.
func (r *run) deadlineNote() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return "bigbang: stopped nixos-anywhere: " + r.deadlineText() + " (" + DiagnosisRebootNever + ")"
}

// note writes one of bigbang's own lines to the transcript, on a line of
// its own, and sends it as a line event. It is called after the output
// has been read to its end, so it cannot land inside a line of the child.
func (r *run) note(logf *os.File, text string) {
	b := make([]byte, 0, len(text)+2)
	if r.lastByte != 0 && r.lastByte != '\n' {
		b = append(b, '\n')
	}
	b = append(b, text...)
	b = append(b, '\n')
	if _, err := logf.Write(b); err != nil && r.logErr.Load() == nil {
		e := fmt.Errorf("%w: %v", ErrLog, err)
		r.logErr.Store(&e)
	}
	r.lastByte = '\n'
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.running
	if p == "" {
		p = r.current
	}
	r.emit(steps.Event{Time: time.Now(), Type: steps.EventLine, Phase: p, Text: text})
}

// rebootNever is the diagnosis of a run stopped at the reboot deadline.
// r.mu is held.
func (r *run) rebootNever() *steps.Diagnosis {
	login := "root@<host>"
	if r.opts.Login != "" {
		login = r.opts.Login
		if i := strings.LastIndexByte(login, '@'); i >= 0 {
			login = "root@" + login[i+1:]
		}
	}
	return &steps.Diagnosis{
		ID: DiagnosisRebootNever,
		Summary: r.deadlineText() + ": NixOS is installed on the disk, but the machine still runs the NixOS installer " +
			"in memory, so bigbang stopped nixos-anywhere (whose wait for the reboot never ends)",
		Remedy: "reboot the machine from the provider's console (Oracle OCI: the instance's page, Reboot, or its Console " +
			"connection to watch it boot), or from the installer itself with: ssh " + login + " reboot; then check the new " +
			"system with bigbang status. Do not run the install again: the disk already holds the new system",
	}
}

// finish turns the classifier's verdict, the exit status and how the run
// ended (end: one of the state* values) into the result, and sends the
// last phase events.
func (r *run) finish(code int, end int32) (res Result) {
	changes, rep := r.cls.Finish(code)
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() {
		for _, p := range r.order {
			res.Phases = append(res.Phases, PhaseTime{Phase: p, State: r.states[p], Start: r.startedAt[p], End: r.endedAt[p]})
		}
	}()
	now := time.Now()
	r.apply(changes, now)
	res = Result{ExitCode: code, Report: rep}
	lastRunning := r.running
	switch {
	case end == stateCancelled:
		res.Outcome = steps.OutcomeAborted
	case end == stateDeadline:
		res.Outcome = steps.OutcomeFailed
		res.FailedPhase = steps.PhaseReboot
		res.Diagnosis = r.rebootNever()
		if r.states[steps.PhaseReboot] != steps.StateRunning {
			r.setState(steps.PhaseReboot, steps.StateRunning, now)
		}
		for _, p := range r.order {
			if r.states[p] == steps.StateRunning {
				r.setState(p, steps.StateFailed, now)
			}
		}
		return res
	case code == 0 && string(rep.Outcome) != string(steps.OutcomeFailed):
		res.Outcome = steps.OutcomeSuccess
	default:
		res.Outcome = steps.OutcomeFailed
	}
	if res.Outcome == steps.OutcomeSuccess {
		// Phases of the plan that never started were not needed (the
		// installer was already up, nothing to copy, …).
		for _, p := range r.order {
			switch r.states[p] {
			case steps.StatePending:
				r.setState(p, steps.StateSkipped, now)
			case steps.StateRunning:
				r.setState(p, steps.StateDone, now)
			}
		}
		return res
	}
	res.FailedPhase = rep.FailedPhase
	if res.FailedPhase == "" {
		res.FailedPhase = lastRunning
	}
	if res.FailedPhase == "" {
		res.FailedPhase = r.current
	}
	// A phase cut short did not succeed.
	for _, p := range r.order {
		if r.states[p] == steps.StateRunning {
			r.setState(p, steps.StateFailed, now)
		}
	}
	if res.Outcome == steps.OutcomeFailed {
		if rep.Diagnosis.ID != "" || rep.Diagnosis.Summary != "" {
			d := rep.Diagnosis
			res.Diagnosis = &d
		} else {
			res.Diagnosis = &steps.Diagnosis{
				ID:      "unknown",
				Summary: fmt.Sprintf("nixos-anywhere stopped with exit status %d in phase %s, with no failure bigbang recognises", code, res.FailedPhase.Title()),
				Remedy:  "read the last lines of the transcript (bigbang explain <log> shows the timeline), fix the cause, then resume with --phases",
			}
		}
	}
	return res
}

// startPTY starts cmd on a new terminal and returns the terminal's master
// side. Output post-processing (OPOST: "\n" to "\r\n" and friends) is
// turned off: the child still sees a terminal, the transcript keeps the
// child's own bytes, and a flood of output costs a third of what the
// kernel's per-byte processing costs otherwise. Input settings are left as
// a terminal has them, so that sudo and ssh -t behave as usual.
func startPTY(cmd *exec.Cmd, size Size) (*os.File, error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, err
	}
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: size.Rows, Cols: size.Cols}); err != nil {
		ptmx.Close()
		return nil, err
	}
	if tio, err := unix.IoctlGetTermios(int(tty.Fd()), ioctlGetTermios); err == nil {
		tio.Oflag &^= unix.OPOST
		_ = unix.IoctlSetTermios(int(tty.Fd()), ioctlSetTermios, tio)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		ptmx.Close()
		return nil, err
	}
	return ptmx, nil
}
