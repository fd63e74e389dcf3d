package ui

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
)

// at is a time of the test install: s seconds after it started, three
// minutes before t0 (as installEvents has it).
func at(s int) time.Time { return t0.Add(-3*time.Minute + time.Duration(s)*time.Second) }

// apply hands events to the model as the queue would and sets the clock
// back to t0.
func apply(m *model, evs ...steps.Event) {
	m.Update(eventsMsg(evs))
	m.now = t0
}

// paneOf is the line of view v that holds phase id's pane title.
func paneOf(t *testing.T, v string, id steps.PhaseID) string {
	t.Helper()
	for _, l := range strings.Split(v, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[1] == id.Title() {
			return l
		}
	}
	t.Fatalf("no %s pane:\n%s", id.Title(), v)
	return ""
}

// TestProgressSegmentAndFigure: a phase that only redraws nix's status
// line is running; the line's latest state is the pane's last row and its
// figures are in the pane's title; when the phase ends the row goes.
func TestProgressSegmentAndFigure(t *testing.T) {
	m := testModel(t, 100, 30)
	toProgress(t, m)
	apply(m, installEvents()...)
	apply(m, steps.Event{Time: at(100), Type: steps.EventPhase, Phase: steps.PhaseDisko, State: steps.StateDone})
	if v := view(m); !strings.Contains(paneOf(t, v, steps.PhaseInstall), glyphPending) {
		t.Fatalf("the install pane is not pending before its progress:\n%s", v)
	}

	prog := func(s int, text string, p *steps.Progress) steps.Event {
		return steps.Event{Time: at(s), Type: steps.EventProgress, Phase: steps.PhaseInstall, Text: text, Progress: p}
	}
	apply(m, prog(101, "[1/7 built, 2 copied (10.0/120.0 MiB)] building /nix/store/aaaa-old",
		&steps.Progress{Built: 1, Builds: 7, Copied: 2, MiB: 10, MiBTotal: 120, HasBuilds: true, HasCopies: true, HasMiB: true}))
	apply(m, prog(103, "[3/7 built, 12 copied (40.1/120.0 MiB)] building /nix/store/bbbb-linux",
		&steps.Progress{Built: 3, Builds: 7, Copied: 12, MiB: 40.1, MiBTotal: 120, HasBuilds: true, HasCopies: true, HasMiB: true}))
	if p := m.progress.byID[steps.PhaseInstall]; p.state != steps.StateRunning || !p.start.Equal(at(101)) {
		t.Fatalf("a phase with only progress: state %s, start %v; want running since its first progress", p.state, p.start)
	}
	v := view(m)
	title := paneOf(t, v, steps.PhaseInstall)
	if !strings.Contains(title, "3/7 built, 12 copied (40.1/120.0 MiB)") {
		t.Errorf("the install pane's title lacks the progress figure: %q\n%s", title, v)
	}
	if !strings.Contains(v, "│ [3/7 built, 12 copied (40.1/120.0 MiB)] building /nix/store/bbbb-linux") {
		t.Errorf("the running pane does not show the status line's latest state:\n%s", v)
	}
	if strings.Contains(v, "aaaa-old") {
		t.Errorf("the pane shows a status line nix has redrawn:\n%s", v)
	}
	if m.windowTitle() != "bigbang (rehearsal) · Install" {
		t.Errorf("window title %q: the phase with progress is not the current one", m.windowTitle())
	}

	// Lines still come above the status line, which stays last.
	apply(m, steps.Event{Time: at(104), Type: steps.EventLine, Phase: steps.PhaseInstall, Text: "building '/nix/store/cccc-etc.drv'..."})
	v = view(m)
	li, pi := strings.Index(v, "cccc-etc.drv"), strings.Index(v, "bbbb-linux")
	if li < 0 || pi < 0 || li > pi {
		t.Errorf("the status line is not the pane's last row (line at %d, status at %d):\n%s", li, pi, v)
	}

	apply(m, steps.Event{Time: at(160), Type: steps.EventPhase, Phase: steps.PhaseInstall, State: steps.StateDone})
	v = view(m)
	if strings.Contains(v, "bbbb-linux") || strings.Contains(v, "3/7 built") {
		t.Errorf("a finished pane still shows its status line:\n%s", v)
	}
}

func TestProgressFigure(t *testing.T) {
	for _, tc := range []struct {
		p    *steps.Progress
		want string
	}{
		{nil, ""},
		{&steps.Progress{Built: 3, Builds: 7, Copied: 12, MiB: 40.1, MiBTotal: 120, HasBuilds: true, HasCopies: true, HasMiB: true}, "3/7 built, 12 copied (40.1/120.0 MiB)"},
		{&steps.Progress{Built: 2, HasBuilds: true}, "2 built"},
		{&steps.Progress{Copied: 4, Copies: 9, HasCopies: true}, "4/9 copied"},
		{&steps.Progress{MiB: 5, HasMiB: true}, "5.0 MiB"},
		{&steps.Progress{Copied: 1, MiB: 0.5, MiBTotal: 2, HasCopies: true, HasMiB: true}, "1 copied (0.5/2.0 MiB)"},
	} {
		if got := progressFigure(tc.p); got != tc.want {
			t.Errorf("progressFigure(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

// TestNoiseHiddenFromTail: ssh's notices are not in the pane's tail nor in
// the result's last lines (so that a loop's chatter cannot push the lines
// that matter out), but they count as lines and the full log shows them.
func TestNoiseHiddenFromTail(t *testing.T) {
	const noise = "Warning: Permanently added '203.0.113.7' (ED25519) to the list of known hosts."
	log := "### Formatting hard drive with disko ###\r\n" + noise + "\r\n+ sgdisk --zap-all /dev/sda\r\n"
	path := filepath.Join(t.TempDir(), "install.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	m := testModel(t, 100, 30)
	toProgress(t, m)
	m.logPath = path
	apply(m, installEvents()...)
	var evs []steps.Event
	for i := 0; i < 2*paneRing; i++ {
		evs = append(evs, steps.Event{Time: at(90), Type: steps.EventLine, Phase: steps.PhaseDisko, Text: noise, Noise: true})
	}
	apply(m, evs...)
	v := view(m)
	if strings.Contains(v, "Permanently added") {
		t.Errorf("the pane's tail shows ssh's noise:\n%s", v)
	}
	if !strings.Contains(v, "+ sgdisk --zap-all /dev/sda") {
		t.Errorf("the noise pushed the disko lines out of the tail:\n%s", v)
	}
	if p := m.progress.byID[steps.PhaseDisko]; p.total() != 3+2*paneRing {
		t.Errorf("the disko pane counts %d lines, want %d with the noise", p.total(), 3+2*paneRing)
	}

	// The full log is the transcript: the noise is there.
	_, cmd := m.Update(key("l"))
	if m.logv == nil || cmd == nil {
		t.Fatal("l did not open the log viewer")
	}
	m.Update(cmd())
	if v := view(m); !strings.Contains(v, "Permanently added") || !strings.Contains(v, "sgdisk") {
		t.Errorf("the full log lacks the noise or the lines:\n%s", v)
	}
	m.Update(key("q"))
	if m.logv != nil {
		t.Fatal("q did not close the log viewer")
	}

	m.Update(installDoneMsg{result: engine.InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseDisko, Log: path}})
	v = view(m)
	if !strings.Contains(v, "Last lines") || !strings.Contains(v, "+ sgdisk --zap-all /dev/sda") {
		t.Errorf("the result's last lines lack the disko lines:\n%s", v)
	}
	if strings.Contains(v, "Permanently added") {
		t.Errorf("the result's last lines show ssh's noise:\n%s", v)
	}
}

// TestStallText: a stall the runner words shows its words with the advice;
// the loop's chatter (noise, the same line again) does not end the
// warning, a new line does.
func TestStallText(t *testing.T) {
	m := testModel(t, 100, 30)
	toProgress(t, m)
	apply(m, installEvents()...)
	const loopErr = "/usr/bin/ssh-copy-id: ERROR: ssh: connect to host 203.0.113.7 port 22: Connection refused"
	apply(m, steps.Event{Time: at(90), Type: steps.EventLine, Phase: steps.PhaseDisko, Text: loopErr})
	const why = "ssh-copy-id cannot log in to root@203.0.113.7 after 2m0s (ssh: connect to host 203.0.113.7 port 22: Connection refused); nixos-anywhere retries every 3 s for ever"
	apply(m, steps.Event{Time: at(170), Type: steps.EventStall, Phase: steps.PhaseDisko, Stall: 2 * time.Minute, Loop: steps.LoopSSHCopyID, Text: why})
	flat := func() string { return strings.Join(strings.Fields(view(m)), " ") }
	for _, want := range []string{why, "[w] keep waiting, [l] log, [c] cancel"} {
		if !strings.Contains(flat(), want) {
			t.Errorf("the stall warning lacks %q:\n%s", want, view(m))
		}
	}
	if strings.Contains(flat(), "disko may be waiting") {
		t.Errorf("the stall warning words it itself although the runner said what is stuck:\n%s", view(m))
	}
	if !m.progress.stalled() || m.View().ProgressBar.State != tea.ProgressBarWarning {
		t.Error("the stall does not show in the terminal's progress bar")
	}

	apply(m, steps.Event{Time: at(171), Type: steps.EventLine, Phase: steps.PhaseDisko, Noise: true,
		Text: "Warning: Permanently added '203.0.113.7' (ED25519) to the list of known hosts."})
	apply(m, steps.Event{Time: at(172), Type: steps.EventLine, Phase: steps.PhaseDisko, Text: loopErr})
	if !strings.Contains(flat(), why) {
		t.Errorf("the loop's own chatter ended the stall warning:\n%s", view(m))
	}
	apply(m, steps.Event{Time: at(173), Type: steps.EventLine, Phase: steps.PhaseDisko, Text: "+ mkfs.vfat /dev/sda1"})
	if strings.Contains(flat(), why) || m.progress.stalled() {
		t.Errorf("a new line did not end the stall warning:\n%s", view(m))
	}
}

// TestProgressEndsStall: a new state of the status line is progress and
// ends a stall warning; the same state again is not.
func TestProgressEndsStall(t *testing.T) {
	m := testModel(t, 100, 30)
	toProgress(t, m)
	apply(m, installEvents()...)
	prog := func(s int, text string) steps.Event {
		return steps.Event{Time: at(s), Type: steps.EventProgress, Phase: steps.PhaseDisko, Text: text}
	}
	apply(m, prog(90, "[0/1 built] building disko"))
	apply(m, steps.Event{Time: at(170), Type: steps.EventStall, Phase: steps.PhaseDisko, Stall: 80 * time.Second})
	if !m.progress.stalled() {
		t.Fatal("the stall did not take")
	}
	if v := view(m); !strings.Contains(v, "no output for") || !strings.Contains(v, "[w] keep waiting") {
		t.Errorf("a stall without words lacks the pane's own wording:\n%s", v)
	}
	apply(m, prog(171, "[0/1 built] building disko"))
	if !m.progress.stalled() {
		t.Error("the same status line again ended the stall")
	}
	apply(m, prog(172, "[1/1 built] building disko"))
	if m.progress.stalled() {
		t.Error("a new state of the status line did not end the stall")
	}
}

// TestProgressOfAnotherPhase: progress of a phase the plan does not have
// starts no pane of its own accord.
func TestProgressOfAnotherPhase(t *testing.T) {
	s := newProgressScreen([]steps.PhaseID{steps.PhaseConnect, steps.PhaseInstall}, t0)
	s.apply(steps.Event{Time: t0, Type: steps.EventProgress, Phase: steps.PhaseBuild, Text: "[1/2 built]"})
	for _, p := range s.panes {
		if p.state != steps.StatePending {
			t.Errorf("progress of the build started the %s pane", p.id)
		}
	}
	s.apply(steps.Event{Time: t0, Type: steps.EventProgress, Phase: steps.PhaseInstall, Text: "[1/2 built]"})
	if p := s.byID[steps.PhaseInstall]; p.state != steps.StateRunning {
		t.Errorf("progress of the install left its pane %s", p.state)
	}
}

// TestResultKeepsResumeOnSmallTerminal: on a small terminal the failure
// screen gives the last lines only the rows the diagnosis and the resume
// command leave; on a large one it shows them.
func TestResultKeepsResumeOnSmallTerminal(t *testing.T) {
	for _, tc := range []struct {
		w, h     int
		wantLast bool
	}{{60, 20, false}, {120, 40, true}} {
		t.Run(itoa(tc.w)+"x"+itoa(tc.h), func(t *testing.T) {
			m := testModel(t, tc.w, tc.h)
			toProgress(t, m)
			apply(m, installEvents()...)
			for i := 0; i < 8; i++ {
				apply(m, steps.Event{Time: at(90), Type: steps.EventLine, Phase: steps.PhaseDisko, Text: "disko output " + itoa(i)})
			}
			d := &steps.Diagnosis{ID: "disko.partition", Summary: "disko could not partition the disk: the layout does not fit it, or the device named in disko.nix does not exist on this machine.",
				Remedy: "Compare the device and sizes in disko.nix with lsblk on the target (bigbang check shows them); use a stable device path and a layout that fits, then resume with --phases disko,install,reboot."}
			res := engine.InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseDisko, Diagnosis: d, Log: "/tmp/x.log"}
			rc := m.cfg
			rc.Log = res.Log
			res.Resume = engine.ResumeCommand("bigbang", rc, m.thePlan, res.FailedPhase, engine.ResumeStyle{})
			m.Update(installDoneMsg{result: res})
			v := view(m)
			flat := strings.Join(strings.Fields(v), " ")
			if !strings.Contains(flat, "Resume") || !strings.Contains(flat, "--phases disko,") {
				t.Errorf("the resume command is cut off:\n%s", v)
			}
			if got := strings.Contains(v, "disko output 7"); got != tc.wantLast {
				t.Errorf("the last line shown: %v, want %v:\n%s", got, tc.wantLast, v)
			}
		})
	}
}
