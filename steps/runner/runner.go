// Package runner runs nixos-anywhere (or any argv) under a pseudo-terminal,
// saves every byte it prints to the transcript file before anything else
// sees it, turns the output into lines and the lines into phase, line,
// stall and result events, and stops the child's whole process group when
// the run is cancelled.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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
	DefaultStall     = 2 * time.Minute
	DefaultGrace     = 5 * time.Second // SIGINT → SIGTERM
	DefaultTermGrace = 5 * time.Second // SIGTERM → SIGKILL
)

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

	// Stall is the silence per phase after which a stall event is sent
	// (and sent again after each further such period); DefaultStall
	// applies where it has no entry (zero: the package default).
	Stall        map[steps.PhaseID]time.Duration
	DefaultStall time.Duration

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
	// state decides between a cancel and the child's own end when both come
	// at once: whichever claims it first wins, so a run that had already
	// ended is never reported aborted, nor its reaped group signalled.
	const (
		running int32 = iota
		cancelled
		ended
	)
	var state atomic.Int32
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-exited:
			return
		}
		if state.CompareAndSwap(running, cancelled) {
			stopGroup(pgid, dur(opts.Grace, DefaultGrace), dur(opts.TermGrace, DefaultTermGrace))
		}
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
	state.CompareAndSwap(running, ended)
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
	res := r.finish(code, state.Load() == cancelled)
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

// run holds the state of one run that the reader, the watchdog and the
// end share.
type run struct {
	opts  Options
	sink  steps.Sink
	cls   Classifier
	start time.Time

	mu      sync.Mutex // serialises sink calls and guards the fields below
	states  map[steps.PhaseID]steps.PhaseState
	order   []steps.PhaseID // phases in the order they got a state
	running steps.PhaseID   // the phase that started last and has not ended
	started map[steps.PhaseID]time.Time
	ended   map[steps.PhaseID]time.Time
	current steps.PhaseID // the phase of the last line

	lastOutput atomic.Int64 // UnixNano of the last byte read
	logErr     atomic.Pointer[error]
	scratch    []byte
}

func newRun(opts Options, sink steps.Sink, start time.Time) *run {
	cls := opts.Classifier
	if cls == nil {
		cls = transcript.New()
	}
	r := &run{opts: opts, sink: sink, cls: cls, start: start, states: map[steps.PhaseID]steps.PhaseState{},
		started: map[steps.PhaseID]time.Time{}, ended: map[steps.PhaseID]time.Time{}}
	r.lastOutput.Store(start.UnixNano())
	if len(opts.Phases) > 0 {
		r.current = opts.Phases[0]
	}
	return r
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
		if r.started[p].IsZero() {
			r.started[p] = now
		}
	case steps.StateDone, steps.StateFailed:
		r.ended[p] = now
	}
	r.emit(steps.Event{Time: now, Type: steps.EventPhase, Phase: p, State: s})
}

func (r *run) apply(changes []transcript.Change, now time.Time) {
	for _, c := range changes {
		r.setState(c.Phase, c.State, now)
	}
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
			r.lastOutput.Store(now.UnixNano())
			if _, werr := logf.Write(buf[:n]); werr != nil && r.logErr.Load() == nil {
				e := fmt.Errorf("%w: %v", ErrLog, werr)
				r.logErr.Store(&e)
			}
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
	sp := &splitter{max: maxLine, emit: func(line []byte) { r.line(line, now) }}
	warned := false
	for c := range full {
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
	}
	now = time.Now()
	sp.close()
}

// line classifies one line and sends its events.
func (r *run) line(raw []byte, now time.Time) {
	clean := cleanText(raw, r.scratch)
	if len(clean) > 0 && &clean[0] != &raw[0] {
		r.scratch = clean[:0]
	}
	text := string(clean)
	phase, changes := r.cls.Line(text)
	r.mu.Lock()
	r.apply(changes, now)
	if phase == "" {
		phase = r.current
	}
	r.current = phase
	r.emit(steps.Event{Time: now, Type: steps.EventLine, Phase: phase, Text: text})
	r.mu.Unlock()
}

// stallFor is the silence after which phase p counts as stalled.
func (r *run) stallFor(p steps.PhaseID) time.Duration {
	if d, ok := r.opts.Stall[p]; ok && d > 0 {
		return d
	}
	return dur(r.opts.DefaultStall, DefaultStall)
}

// watch sends a stall event when the running phase has printed nothing
// for its stall time, and again after each further such period, until
// done is closed. It never stops the child: the operator decides.
func (r *run) watch(done <-chan struct{}) {
	minStall := dur(r.opts.DefaultStall, DefaultStall)
	for _, d := range r.opts.Stall {
		if d > 0 && d < minStall {
			minStall = d
		}
	}
	tick := min(max(minStall/10, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	var warnedFor int64 // lastOutput value the warnings so far are about
	warned := 0
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			last := r.lastOutput.Load()
			if last != warnedFor {
				warnedFor, warned = last, 0
			}
			r.mu.Lock()
			p := r.running
			if p == "" {
				p = r.current
			}
			d := r.stallFor(p)
			silent := now.Sub(time.Unix(0, last))
			if silent >= d*time.Duration(warned+1) {
				warned++
				r.emit(steps.Event{Time: now, Type: steps.EventStall, Phase: p, Stall: silent.Truncate(time.Second / 10)})
			}
			r.mu.Unlock()
		}
	}
}

// finish turns the classifier's verdict and the exit status into the
// result, and sends the last phase events.
func (r *run) finish(code int, aborted bool) (res Result) {
	changes, rep := r.cls.Finish(code)
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() {
		for _, p := range r.order {
			res.Phases = append(res.Phases, PhaseTime{Phase: p, State: r.states[p], Start: r.started[p], End: r.ended[p]})
		}
	}()
	now := time.Now()
	r.apply(changes, now)
	res = Result{ExitCode: code, Report: rep}
	lastRunning := r.running
	switch {
	case aborted:
		res.Outcome = steps.OutcomeAborted
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
	if tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS); err == nil {
		tio.Oflag &^= unix.OPOST
		_ = unix.IoctlSetTermios(int(tty.Fd()), unix.TCSETS, tio)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		ptmx.Close()
		return nil, err
	}
	return ptmx, nil
}
