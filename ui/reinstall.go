package ui

import (
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
