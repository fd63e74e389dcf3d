package ui

import (
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

// spinnerInterval is the clock of timers and spinners.
const spinnerInterval = 125 * time.Millisecond

// spinnerFrames pulse a dot: glyphs every terminal font and the
// screenshot font have.
var spinnerFrames = []string{"·", "•", "●", "•"}

func spinnerFrame(now time.Time) string {
	return spinnerFrames[int(now.UnixMilli()/int64(spinnerInterval/time.Millisecond))%len(spinnerFrames)]
}

// maxTailRows is the most output lines a running pane shows.
const maxTailRows = 12

// progressScreen is one pane per phase, in run order.
type progressScreen struct {
	panes   []*pane
	byID    map[steps.PhaseID]*pane
	started time.Time
	ended   time.Time
	lines   int
	// stopping is set once the operator confirmed a stop, until the
	// install ends.
	stopping bool
	tr       *tailRenderer // shared by the panes; a pointer, so copies of the screen share it
}

func newProgressScreen(phases []steps.PhaseID, now time.Time) progressScreen {
	s := progressScreen{byID: map[steps.PhaseID]*pane{}, started: now, tr: &tailRenderer{}}
	for _, id := range phases {
		p := &pane{id: id, state: steps.StatePending}
		s.panes = append(s.panes, p)
		s.byID[id] = p
	}
	return s
}

// paneFor finds the pane of an event; output without a phase goes to the
// pane that is running (or the first one, before anything runs).
func (s *progressScreen) paneFor(id steps.PhaseID) *pane {
	if p, ok := s.byID[id]; ok {
		return p
	}
	if p := s.current(); p != nil {
		return p
	}
	if len(s.panes) > 0 {
		return s.panes[0]
	}
	return nil
}

// apply folds one event into the panes.
func (s *progressScreen) apply(e steps.Event) {
	at := e.Time
	if at.IsZero() {
		at = time.Now()
	}
	switch e.Type {
	case steps.EventPhase:
		p, ok := s.byID[e.Phase]
		if !ok {
			return
		}
		switch e.State {
		case steps.StateRunning:
			if p.start.IsZero() {
				p.start = at
			}
			p.end = time.Time{}
			p.lastLine = at
		case steps.StateDone, steps.StateFailed, steps.StateSkipped:
			if p.start.IsZero() {
				p.start = at
			}
			p.end = at
			p.stall = false
		}
		p.state = e.State
	case steps.EventLine:
		s.lines++
		if p := s.paneFor(e.Phase); p != nil {
			if e.Noise {
				p.addNoise()
			} else {
				p.addLine(e.Text, at)
			}
		}
	case steps.EventProgress:
		p := s.paneFor(e.Phase)
		if p == nil {
			return
		}
		if p.state == steps.StatePending && p.id == e.Phase {
			// A phase that only redraws its status line (a local build
			// under nix) is running, though no line and no phase event
			// said so. Progress of a phase the plan does not have starts
			// no other pane.
			p.state = steps.StateRunning
			if p.start.IsZero() {
				p.start = at
			}
			p.lastLine = at
		}
		p.addProgress(e.Text, e.Progress, at)
	case steps.EventStall:
		if p := s.paneFor(e.Phase); p != nil && p.state == steps.StateRunning {
			p.stall = true
			p.stallAck = false
			p.stallWhy = e.Text
			if !p.lastLine.IsZero() && at.Sub(p.lastLine) < e.Stall {
				p.lastLine = at.Add(-e.Stall)
			}
		}
	case steps.EventResult:
		s.finish(engine.InstallResult{Outcome: e.Outcome, FailedPhase: e.FailedPhase}, at)
	}
}

// finish settles the panes when the install has ended.
func (s *progressScreen) finish(r engine.InstallResult, at time.Time) {
	if s.ended.IsZero() {
		s.ended = at
	}
	for _, p := range s.panes {
		if p.state != steps.StateRunning {
			continue
		}
		p.end = at
		p.stall = false
		if r.Outcome == steps.OutcomeSuccess {
			p.state = steps.StateDone
		} else {
			p.state = steps.StateFailed
		}
	}
	if r.FailedPhase != "" {
		if p, ok := s.byID[r.FailedPhase]; ok && p.state != steps.StateDone {
			p.state = steps.StateFailed
			if p.end.IsZero() {
				p.end = at
			}
		}
	}
}

// current is the most recently started running pane.
func (s *progressScreen) current() *pane {
	var cur *pane
	for _, p := range s.panes {
		if p.state == steps.StateRunning && (cur == nil || !p.start.Before(cur.start)) {
			cur = p
		}
	}
	return cur
}

func (s *progressScreen) stalled() bool {
	for _, p := range s.panes {
		if p.stall && !p.stallAck {
			return true
		}
	}
	return false
}

func (s *progressScreen) keepWaiting() {
	for _, p := range s.panes {
		p.stallAck = p.stall
	}
}

func (s *progressScreen) percent() int {
	if len(s.panes) == 0 {
		return 0
	}
	done := 0
	for _, p := range s.panes {
		if p.state == steps.StateDone || p.state == steps.StateSkipped {
			done++
		}
	}
	return done * 100 / len(s.panes)
}

func paneGlyph(st styles, p *pane, now time.Time) string {
	switch p.state {
	case steps.StateRunning:
		if p.stall && !p.stallAck {
			return st.Warn.Render(glyphWarn)
		}
		return st.Accent.Render(spinnerFrame(now))
	case steps.StateDone:
		return st.OK.Render(glyphOK)
	case steps.StateFailed:
		return st.Fail.Render(glyphFail)
	case steps.StateSkipped:
		return st.Dim.Render(glyphSkip)
	}
	return st.Dim.Render(glyphPending)
}

// view lays the panes out in h lines: every pane has its title line; the
// running pane and a failed one get the rest for their output.
func (s *progressScreen) view(st styles, now time.Time, w, h int) string {
	end := now
	if !s.ended.IsZero() {
		end = s.ended
	}
	done := 0
	for _, p := range s.panes {
		if p.state == steps.StateDone {
			done++
		}
	}
	title := st.Header.Render("Installing")
	if s.stopping && s.ended.IsZero() {
		// After a confirmed stop the panes may move for a few seconds
		// while nixos-anywhere ends: say so.
		title = st.Warn.Bold(true).Render("Stopping… waiting for nixos-anywhere to end")
	}
	head := title + st.Dim.Render(" · "+itoa(done)+"/"+itoa(len(s.panes))+" phases · "+formatDuration(end.Sub(s.started))+" · "+itoa(s.lines)+" lines")
	out := []string{"", " " + head, ""}

	// Which panes open, and how many rows their output gets.
	var open []*pane
	if c := s.current(); c != nil {
		open = append(open, c)
	}
	for _, p := range s.panes {
		if p.state == steps.StateFailed {
			open = append(open, p)
		}
	}
	fixed := len(out) + len(s.panes)
	for _, p := range open {
		if p.stall && !p.stallAck {
			fixed += 2
		}
	}
	rows := 0
	if len(open) > 0 {
		rows = min(maxTailRows, (h-fixed)/len(open))
	}
	innerW := max(w-6, 10)
	for _, p := range s.panes {
		out = append(out, paneTitle(st, p, now, w))
		isOpen := false
		for _, q := range open {
			isOpen = isOpen || q == p
		}
		if !isOpen {
			continue
		}
		// The status line the child keeps redrawing is the pane's last
		// row while the phase runs, as it is on the child's terminal.
		prog := ""
		if p.state == steps.StateRunning && p.prog != "" && rows > 0 {
			prog = ansi.Truncate(ansi.Strip(sanitize(lastCR(p.prog))), innerW, "…")
		}
		tailRows := rows
		if prog != "" {
			tailRows--
		}
		for _, l := range p.tail(s.tr, innerW, tailRows) {
			out = append(out, "   "+st.PaneRule.Render("│")+" "+l+ansi.ResetStyle)
		}
		if prog != "" {
			out = append(out, "   "+st.PaneRule.Render("│")+" "+st.Accent.Render(prog))
		}
		if p.stall && !p.stallAck {
			why := "no output for " + formatDuration(now.Sub(p.lastLine)) + " — " + stallText(p.id)
			if p.stallWhy != "" {
				why = p.stallWhy
			}
			msg := why + "; [w] keep waiting, [l] log, [c] cancel. If stopped now: " + textout.Machine(p.id).State
			for _, l := range strings.Split(wrap(msg, w-6), "\n") {
				out = append(out, "   "+st.Warn.Render(l))
			}
		}
	}
	return strings.Join(out, "\n")
}

func paneTitle(st styles, p *pane, now time.Time, w int) string {
	var left string
	if p.state == steps.StatePending {
		left = " " + paneGlyph(st, p, now) + " " + st.Dim.Render(p.id.Title())
	} else {
		left = " " + paneGlyph(st, p, now) + " " + st.Bold.Render(p.id.Title())
	}
	right := ""
	if !p.start.IsZero() {
		right = formatDuration(p.elapsed(now))
		if p.end.IsZero() {
			right = st.Accent.Render(right)
		} else {
			right = st.Dim.Render(right)
		}
	}
	if f := progressFigure(p.fig); f != "" && (p.state == steps.StateRunning || p.state == steps.StateFailed) {
		right = st.Dim.Render(f+"  ") + right
	}
	if n := p.total(); p.state == steps.StateDone && n > 0 {
		unit := " lines  "
		if n == 1 {
			unit = " line  "
		}
		right = st.Dim.Render(itoa(n)+unit) + right
	}
	gap := w - 1 - ansi.StringWidth(left) - ansi.StringWidth(right)
	if gap < 1 {
		gap = 1
	}
	return left + strings.Repeat(" ", gap) + right
}
