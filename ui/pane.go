package ui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/vt"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

// paneRing is how many lines a pane keeps: enough for any tail the screen
// can show. The log file has every byte; the pane only needs the end.
const paneRing = 64

// tailEmulatorWidth is the emulator's width: wider than any pane.
const tailEmulatorWidth = 256

// pane is one phase on the progress screen.
type pane struct {
	id       steps.PhaseID
	state    steps.PhaseState
	start    time.Time
	end      time.Time
	lastLine time.Time
	lines    [paneRing]string
	n        int // lines kept in the ring, in total
	// hidden counts the noise lines (ssh's notices of every connection):
	// they are not kept, so that a loop's chatter never pushes the lines
	// that matter out of the tail; the log file and its view have them.
	hidden   int
	stall    bool
	stallAck bool
	// stallWhy is what the runner says is stuck (a named loop, or a
	// silent phase); "" when it said nothing, and the pane words it.
	stallWhy string

	// prog is the line the child keeps redrawing with '\r' (nix's status
	// line), as the last progress event had it; fig is its figures, from
	// the last progress event that had any.
	prog string
	fig  *steps.Progress

	// The rendered tail, cached until a line arrives or the size changes.
	dirty     bool
	cache     []string
	cacheW    int
	cacheRows int
}

// addLine keeps a line of output. A new line ends a stall warning; a line
// the pane already holds does not, because a loop that goes round (the
// ssh-copy-id retry printing the same error every 3 s) is what the warning
// is about.
func (p *pane) addLine(s string, at time.Time) {
	if !p.stall || !p.holds(s) {
		p.lastLine = at
		p.stall = false
		p.stallAck = false
	}
	p.lines[p.n%paneRing] = s
	p.n++
	p.dirty = true
}

// holds reports whether s is one of the lines in the ring.
func (p *pane) holds(s string) bool {
	for i := 0; i < min(p.n, paneRing); i++ {
		if p.lines[i] == s {
			return true
		}
	}
	return false
}

// addNoise counts a noise line. It is not progress: the stall warning and
// the time since the last line stay.
func (p *pane) addNoise() { p.hidden++ }

// addProgress takes the redrawn line's new state. A new state is a sign of
// life, as a line is; the same state again is not.
func (p *pane) addProgress(text string, fig *steps.Progress, at time.Time) {
	if fig != nil {
		p.fig = fig
	}
	if text == "" || text == p.prog {
		return
	}
	p.prog = text
	p.lastLine = at
	p.stall = false
	p.stallAck = false
}

// total is how many lines the pane's phase printed, noise included.
func (p *pane) total() int { return p.n + p.hidden }

// tailLines returns the last k raw lines, oldest first.
func (p *pane) tailLines(k int) []string {
	k = min(k, p.n, paneRing)
	out := make([]string, 0, k)
	for i := p.n - k; i < p.n; i++ {
		out = append(out, p.lines[i%paneRing])
	}
	return out
}

// tail renders the last rows lines at width w through a terminal emulator,
// so carriage-return progress bars show their final state and colours
// survive. The result is cached until the pane changes.
func (p *pane) tail(tr *tailRenderer, w, rows int) []string {
	if rows <= 0 || w <= 0 {
		return nil
	}
	if !p.dirty && p.cacheW == w && p.cacheRows == rows && p.cache != nil {
		return p.cache
	}
	if tr == nil {
		tr = &tailRenderer{}
	}
	p.cache = tr.render(p.tailLines(rows), w, rows)
	p.cacheW, p.cacheRows, p.dirty = w, rows, false
	return p.cache
}

// tailRenderer turns the last lines of output into screen rows through a
// terminal emulator it keeps: making an emulator allocates megabytes (its
// parser's data buffer), far too much to do for every frame. The progress
// screen has one for all its panes.
type tailRenderer struct {
	em *vt.Emulator
}

// renderTail renders lines once, with an emulator of its own.
func renderTail(lines []string, w, rows int) []string {
	var tr tailRenderer
	return tr.render(lines, w, rows)
}

// render feeds lines into the emulator, sized to rows rows, and reads the
// screen back, one string per row, trailing blank rows removed.
func (tr *tailRenderer) render(lines []string, w, rows int) []string {
	if len(lines) == 0 {
		return nil
	}
	// A wide screen keeps long lines on one row; they are cut to the
	// pane's width afterwards, so that a tail shows lines, not fragments.
	ew := max(w, tailEmulatorWidth)
	switch {
	case tr.em == nil:
		tr.em = vt.NewEmulator(ew, rows)
		// Nothing scrolls (see below); the scrollback is only kept small
		// in case a line moves the cursor after all.
		tr.em.SetScrollbackSize(1)
	case tr.em.Width() != ew || tr.em.Height() != rows:
		tr.em.Resize(ew, rows)
	}
	em := tr.em
	// Back to a blank screen with the cursor home and no style (erase
	// below the cursor: erasing the whole screen would copy it into the
	// scrollback). No more than rows lines are written, so nothing scrolls.
	_, _ = em.WriteString(ansi.ResetStyle + "\x1b[H\x1b[J")
	for i, l := range lines {
		if i > 0 {
			_, _ = em.WriteString("\r\n")
		}
		_, _ = em.WriteString(sanitize(l))
		// Each line starts clean, as it did on the child's terminal.
		_, _ = em.WriteString(ansi.ResetStyle)
	}
	out := strings.Split(em.Render(), "\n")
	for i := range out {
		out[i] = strings.TrimRight(out[i], " \r")
		if ansi.StringWidth(out[i]) > w {
			out[i] = ansi.Truncate(out[i], w-1, "…")
		}
	}
	for len(out) > 0 && strings.TrimSpace(ansi.Strip(out[len(out)-1])) == "" {
		out = out[:len(out)-1]
	}
	if len(out) > rows {
		out = out[len(out)-rows:]
	}
	return out
}

// hasControl reports whether s holds a byte that starts a sequence or is a
// control sanitize drops; bytes, not runes: C1 controls are single bytes.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 0x1b, 0x07, 0x08, 0x00, 0x0e, 0x0f, 0x9b, 0x9d:
			return true
		}
	}
	return false
}

// sanitize keeps text, tabs, carriage returns and the escape sequences that
// only style or move within a line (SGR, erase in line, cursor column). Any
// other sequence, queries above all, is dropped: a query would make the
// emulator answer into a pipe nobody reads.
func sanitize(s string) string {
	if !hasControl(s) {
		return s
	}
	var b strings.Builder
	var state byte
	for len(s) > 0 {
		seq, width, n, newState := ansi.DecodeSequence(s, state, nil)
		state = newState
		switch {
		case width > 0 || seq == "\r" || seq == "\t":
			b.WriteString(seq)
		case strings.HasPrefix(seq, "\x1b[") && len(seq) > 2:
			switch seq[len(seq)-1] {
			case 'm', 'K', 'G', 'C', 'D':
				b.WriteString(seq)
			}
		}
		s = s[n:]
	}
	return b.String()
}

// elapsed is the pane's timer: frozen at the end.
func (p *pane) elapsed(now time.Time) time.Duration {
	if p.start.IsZero() {
		return 0
	}
	if !p.end.IsZero() {
		return p.end.Sub(p.start)
	}
	return now.Sub(p.start)
}

// stallText says what a silent phase is usually waiting for.
func stallText(id steps.PhaseID) string { return textout.Machine(id).Stall }

// progressFigure is nix's status line in words for a pane's title:
// "3/7 built, 12 copied (40.1/120.0 MiB)"; "" when there are no figures.
func progressFigure(f *steps.Progress) string {
	if f == nil {
		return ""
	}
	of := func(done, total int, what string) string {
		if total > 0 {
			return itoa(done) + "/" + itoa(total) + " " + what
		}
		return itoa(done) + " " + what
	}
	var parts []string
	if f.HasBuilds {
		parts = append(parts, of(f.Built, f.Builds, "built"))
	}
	if f.HasCopies {
		parts = append(parts, of(f.Copied, f.Copies, "copied"))
	}
	s := strings.Join(parts, ", ")
	if f.HasMiB {
		mib := fmt.Sprintf("%.1f MiB", f.MiB)
		if f.MiBTotal > 0 {
			mib = fmt.Sprintf("%.1f/%.1f MiB", f.MiB, f.MiBTotal)
		}
		if s == "" {
			return mib
		}
		s += " (" + mib + ")"
	}
	return s
}
