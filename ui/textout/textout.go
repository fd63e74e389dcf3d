// Package textout renders the event stream of an install as plain text or
// as JSON lines, for `--output plain` and `--output json`. It consumes the
// same events as the TUI and has no terminal UI dependencies.
//
// Both renderers buffer their output: a flood of child output must not
// cost a write system call per line. What is buffered is written when a
// phase changes state, on a stall warning, on the result, and at the latest
// FlushEvery after it was buffered, so that a person watching the output
// never waits long for a line.
package textout

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
)

// FlushEvery is the longest time a rendered line stays in the buffer.
const FlushEvery = 100 * time.Millisecond

// bufSize is large enough that a flood of lines is written in few large
// writes.
const bufSize = 64 << 10

// writer is the buffered, lock-protected output shared by both renderers:
// the sink is called from the runner's goroutine and the delayed flush runs
// on a timer goroutine.
type writer struct {
	mu    sync.Mutex
	bw    *bufio.Writer
	timer *time.Timer
	armed bool
}

func newWriter(w io.Writer) *writer {
	x := &writer{bw: bufio.NewWriterSize(w, bufSize)}
	x.timer = time.AfterFunc(time.Hour, x.timedFlush)
	x.timer.Stop()
	return x
}

func (x *writer) timedFlush() {
	x.mu.Lock()
	x.armed = false
	_ = x.bw.Flush()
	x.mu.Unlock()
}

// done is called with the lock held after something was written: flush now
// when asked, or make sure a flush happens within FlushEvery.
func (x *writer) done(now bool) {
	if now {
		if x.armed {
			x.timer.Stop()
			x.armed = false
		}
		// A write error (a closed pipe) cannot be reported through a sink;
		// the log file still holds everything.
		_ = x.bw.Flush()
		return
	}
	if !x.armed && x.bw.Buffered() > 0 {
		x.armed = true
		x.timer.Reset(FlushEvery)
	}
}

// ProgressEvery is the least time between two progress lines of a phase
// in the plain output: nix redraws its status line many times a second,
// and a transcript of every state would bury the output. The last state
// before the phase ends is printed whenever it comes.
const ProgressEvery = 5 * time.Second

// Plain returns a sink that writes a readable report: a header when a
// phase starts, the child's output indented under it, the state of nix's
// status line now and then ("    [progress] [3/7 built] …"), the phase's
// time when it ends, stall warnings in the runner's words, and the result
// with the diagnosis and the log path.
//
// Noise lines (ssh's notices of every connection) are printed like any
// other line: the plain output is read as the transcript of the run, and a
// line left out there is one an operator reading it for a failure misses.
func Plain(w io.Writer) steps.Sink {
	sink, _ := PlainFlushing(w)
	return sink
}

// PlainFlushing is Plain with a func that writes out at once what the sink
// buffered, for a front end that writes its own lines to w between the
// events (it calls it first, so that the order stays).
func PlainFlushing(w io.Writer) (steps.Sink, func()) {
	p := &plain{w: newWriter(w), started: map[steps.PhaseID]time.Time{}, ended: map[steps.PhaseID]bool{},
		prog: map[steps.PhaseID]*progLine{}}
	return p.event, p.w.flush
}

// flush writes out what is buffered.
func (x *writer) flush() {
	x.mu.Lock()
	x.done(true)
	x.mu.Unlock()
}

type plain struct {
	w       *writer
	started map[steps.PhaseID]time.Time
	ended   map[steps.PhaseID]bool
	shown   steps.PhaseID // the phase of the last header
	first   time.Time

	// prog is each phase's status line; progOrder the phases in the order
	// their first progress came, so that due lines print in a fixed order.
	prog      map[steps.PhaseID]*progLine
	progOrder []steps.PhaseID
}

// progLine is what the plain output has printed of a phase's status line
// and the state it holds back until ProgressEvery has passed.
type progLine struct {
	at      time.Time // when the last progress line was printed
	printed string
	pending string // a newer state not printed yet, or ""
}

func (p *plain) event(e steps.Event) {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	b := p.w.bw
	if p.first.IsZero() {
		p.first = e.Time
	}
	if e.Type != steps.EventProgress {
		p.dueProgress(b, e.Time)
	}
	switch e.Type {
	case steps.EventProgress:
		p.progress(b, e)
		p.w.done(false)
		return
	case steps.EventLine:
		p.continued(b, e.Phase)
		if e.Text == "" {
			_ = b.WriteByte('\n')
			p.w.done(false)
			return
		}
		_, _ = b.WriteString("    ")
		_, _ = b.WriteString(e.Text)
		_ = b.WriteByte('\n')
		p.w.done(false)
		return
	case steps.EventPhase:
		switch e.State {
		case steps.StatePending:
			// The plan is known; the phases appear when they start.
			return
		case steps.StateRunning:
			p.started[e.Phase] = e.Time
			p.shown = e.Phase
			fmt.Fprintf(b, "==> %s\n", e.Phase.Title())
		case steps.StateDone:
			p.lastProgress(b, e.Phase, e.Time)
			p.ended[e.Phase] = true
			fmt.Fprintf(b, "<== %s done%s\n", e.Phase.Title(), p.took(e))
		case steps.StateFailed:
			p.lastProgress(b, e.Phase, e.Time)
			p.ended[e.Phase] = true
			fmt.Fprintf(b, "<== %s FAILED%s\n", e.Phase.Title(), p.took(e))
		case steps.StateSkipped:
			fmt.Fprintf(b, "--- %s skipped\n", e.Phase.Title())
		}
	case steps.EventStall:
		// The runner's words name the loop or the silence; they may start
		// with the phase's title, which the line already has.
		what := strings.TrimPrefix(e.Text, e.Phase.Title()+": ")
		if what == "" {
			what = "no output for " + FormatDuration(e.Stall)
		}
		fmt.Fprintf(b, "!!! %s: %s; still waiting (Ctrl-C stops the install)\n", e.Phase.Title(), what)
	case steps.EventCheck:
		fmt.Fprintf(b, "[%s] %s: %s\n", e.Check.Status, e.Check.ID, e.Check.Summary)
		if e.Check.Fix != "" && e.Check.Status != steps.StatusOK {
			fmt.Fprintf(b, "       fix: %s\n", e.Check.Fix)
		}
	case steps.EventResult:
		for _, id := range p.progOrder {
			p.lastProgress(b, id, e.Time)
		}
		p.result(b, e)
	}
	p.w.done(true)
}

// continued writes the header of a phase that another ran inside of
// (install around the key copy) when its output goes on, before its lines.
func (p *plain) continued(b *bufio.Writer, id steps.PhaseID) {
	if id != p.shown && !p.started[id].IsZero() && !p.ended[id] {
		p.shown = id
		fmt.Fprintf(b, "==> %s (continued)\n", id.Title())
	}
}

// progress prints a new state of a phase's status line, or holds it back
// when the phase printed one less than ProgressEvery ago.
func (p *plain) progress(b *bufio.Writer, e steps.Event) {
	if e.Text == "" {
		return
	}
	pl := p.prog[e.Phase]
	if pl == nil {
		pl = &progLine{}
		p.prog[e.Phase] = pl
		p.progOrder = append(p.progOrder, e.Phase)
	}
	if e.Text == pl.printed {
		pl.pending = ""
		return
	}
	if !pl.at.IsZero() && e.Time.Sub(pl.at) < ProgressEvery {
		pl.pending = e.Text
		return
	}
	p.printProgress(b, e.Phase, pl, e.Text, e.Time)
}

// dueProgress prints the held-back states whose ProgressEvery has passed
// by now: output of any kind is a moment to catch up.
func (p *plain) dueProgress(b *bufio.Writer, now time.Time) {
	for _, id := range p.progOrder {
		if pl := p.prog[id]; pl.pending != "" && now.Sub(pl.at) >= ProgressEvery {
			p.printProgress(b, id, pl, pl.pending, now)
		}
	}
}

// lastProgress prints the state a phase's status line was left in, when it
// was held back: it is the last word on what the phase did.
func (p *plain) lastProgress(b *bufio.Writer, id steps.PhaseID, now time.Time) {
	if pl := p.prog[id]; pl != nil && pl.pending != "" {
		p.printProgress(b, id, pl, pl.pending, now)
	}
}

func (p *plain) printProgress(b *bufio.Writer, id steps.PhaseID, pl *progLine, text string, at time.Time) {
	p.continued(b, id)
	_, _ = b.WriteString("    [progress] ")
	_, _ = b.WriteString(text)
	_ = b.WriteByte('\n')
	pl.printed, pl.pending, pl.at = text, "", at
}

func (p *plain) took(e steps.Event) string {
	t, ok := p.started[e.Phase]
	if !ok {
		return ""
	}
	return " in " + FormatDuration(e.Time.Sub(t))
}

func (p *plain) result(b *bufio.Writer, e steps.Event) {
	total := FormatDuration(e.Time.Sub(p.first))
	switch e.Outcome {
	case steps.OutcomeSuccess:
		fmt.Fprintf(b, "\nInstall finished in %s.\n", total)
	case steps.OutcomeAborted:
		fmt.Fprintf(b, "\nInstall interrupted after %s", total)
		if e.FailedPhase != "" {
			fmt.Fprintf(b, " in phase %s", e.FailedPhase.Title())
		}
		b.WriteString(".\n")
	default:
		fmt.Fprintf(b, "\nInstall FAILED after %s", total)
		if e.FailedPhase != "" {
			fmt.Fprintf(b, " in phase %s", e.FailedPhase.Title())
		}
		// The exit status explains a failure only when nixos-anywhere
		// failed; after a clean exit the failure is bigbang's check of the
		// new system (or the transcript's), and "exit status 0" would only
		// confuse.
		switch {
		case e.ExitCode != 0:
			fmt.Fprintf(b, " (exit status %d).\n", e.ExitCode)
		case e.Diagnosis != nil && e.Diagnosis.ID == "restore.before-boot":
			// engine.DiagnosisRestoreBeforeBoot: the reboot never ran.
			b.WriteString(": the new system is installed, but the restore before its first boot did not complete, so nothing rebooted.\n")
		case e.FailedPhase == steps.PhaseReboot:
			b.WriteString(": nixos-anywhere finished, but the new system could not be verified.\n")
		default:
			b.WriteString(".\n")
		}
	}
	if d := e.Diagnosis; d != nil && (d.Summary != "" || d.Remedy != "") {
		if d.Summary != "" {
			fmt.Fprintf(b, "  What happened: %s\n", d.Summary)
		}
		if d.Remedy != "" {
			fmt.Fprintf(b, "  What to do:    %s\n", d.Remedy)
		}
	}
	if e.Outcome != steps.OutcomeSuccess {
		// The state the server is left in, as the TUI's exit summary says it.
		for _, f := range MachineFields(e.FailedPhase, e.Resume != "") {
			fmt.Fprintf(b, "  %-15s%s\n", f.Label+":", f.Text)
		}
	}
	if e.Log != "" {
		fmt.Fprintf(b, "  Transcript:    %s\n", e.Log)
	}
	if e.Resume != "" {
		fmt.Fprintf(b, "  Resume with:   %s\n", e.Resume)
	}
}

// FormatDuration prints a duration the way the plain output and the panes
// show timers: whole seconds from ten seconds on, tenths below.
func FormatDuration(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
	case d >= 10*time.Second:
		d = d.Round(time.Second)
	default:
		d = d.Round(100 * time.Millisecond)
	}
	s := d.String()
	// "2m0s" reads better as "2m".
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return s
}

// JSON returns a sink that writes one JSON object per event, one per line,
// in the shape of steps.Event's MarshalJSON (DESIGN.md's `--output json`).
func JSON(w io.Writer) steps.Sink {
	x := newWriter(w)
	return func(e steps.Event) {
		data, err := e.MarshalJSON()
		x.mu.Lock()
		defer x.mu.Unlock()
		if err != nil {
			// Every field of an event marshals; keep the stream
			// parseable even so.
			data, _ = json.Marshal(map[string]string{"type": "error", "error": err.Error()})
		}
		_, _ = x.bw.Write(data)
		_ = x.bw.WriteByte('\n')
		x.done(e.Type != steps.EventLine)
	}
}
