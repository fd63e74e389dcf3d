package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

// ReinstallBackend is what a reinstall needs besides an install: the host
// key continuity and the drift, the backup, and the restore onto the new
// system. The root model calls it only from commands, never from Update.
type ReinstallBackend interface {
	// Prepare makes sure the extra-files tree holds the machine's current
	// host key (copied in when missing, refused when different), then
	// compares the flake's disko layout with the live disks. It is the
	// first step of a reinstall, before the preflight, whose checks of the
	// secrets need that key. A host known_hosts does not know is reported
	// in Drift.NewHostKey; the next call's ctx carries the key the operator
	// then approved (ApprovedHostKey).
	Prepare(ctx context.Context, cfg steps.Config) (Drift, error)
	// Backup takes a verified local backup of the source, calling progress
	// as the bytes arrive (progress must not block).
	Backup(ctx context.Context, cfg steps.Config, progress func(reinstall.Progress)) (reinstall.Archive, error)
	// Restore waits for the new system with the pinned host key, restores
	// the archive into the source with the services stopped and started
	// again, compares the tree with the archive and records the restore in
	// the receipt.
	Restore(ctx context.Context, cfg steps.Config, a reinstall.Archive, progress func(reinstall.Progress)) (Restored, error)
}

// ReinstallOptions turn the wizard into a reinstall: drift, backup, the
// install, restore.
type ReinstallOptions struct {
	Backend  ReinstallBackend
	Source   string   // the directory backed up and restored, e.g. /persistent
	Services []string // units stopped during the restore
	// Force goes on when the layout did not change.
	Force bool
}

// Drift is what the drift screen shows.
type Drift struct {
	Report reinstall.Report
	// HostKey says what the host key step found or did, in words.
	HostKey            string
	HostKeyFingerprint string
	// NewHostKey is set (Status HostKeyNew) when known_hosts does not know
	// the machine: nothing else ran, and the drift screen asks the
	// operator to compare the key first, as the install's preflight does.
	NewHostKey HostKey
}

// Restored is how the restore ended.
type Restored struct {
	Result reinstall.RestoreResult
	// Receipt is the receipt that now records the restore ("" when it
	// could not be written; Notes say why).
	Receipt string
	Notes   []string
}

// ErrNothingToReinstall is returned when the layout did not change and the
// operator did not force a reinstall: a switch deploys the flake.
var ErrNothingToReinstall = errors.New("no layout change: deploy with nh os switch / nixos-rebuild, no reinstall")

// Messages of the reinstall steps.
type (
	driftDoneMsg struct {
		gen   int
		drift Drift
		err   error
	}
	transferMsg struct {
		gen int
		p   reinstall.Progress
	}
	backupDoneMsg struct {
		archive reinstall.Archive
		err     error
	}
	restoreDoneMsg struct {
		restored Restored
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
