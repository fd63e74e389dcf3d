package ui

import (
	"context"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
)

// goldenProfile is the colour profile of the colour goldens. Lip Gloss
// writes every colour as given (24-bit for our hex colours) and Bubble
// Tea's renderer downsamples to the profile it detected from the terminal
// and the environment (TERM, COLORTERM, NO_COLOR…); the goldens fix the
// profile instead, so that they are the same on every machine, and use
// 256 colours, what most terminals bigbang meets can show.
const goldenProfile = colorprofile.ANSI256

// goldenBackground is the terminal background the colour goldens answer
// the wizard's background query with: a dark one, the theme most
// terminals use.
var goldenBackground = color.RGBA{R: 0x0d, G: 0x11, B: 0x17, A: 0xff}

// checkGolden compares got with the file, or rewrites the file with -update.
func checkGolden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./ui -run Golden -update)", err)
	}
	want := string(b)
	if want == got {
		return
	}
	// The first line that differs, quoted so that the escape codes show:
	// a colour change leaves the text alone.
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(gl), len(wl)); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Errorf("%s differs from the golden file (go test ./ui -run Golden -update rewrites it), first at line %d:\n got  %q\n want %q\n--- got\n%s\n--- want\n%s",
				file, i+1, g, w, ansi.Strip(got), ansi.Strip(want))
			return
		}
	}
}

// colourView is the view as a terminal of goldenProfile gets it: the
// escape codes kept, the colours brought down to the profile.
func colourView(t *testing.T, m *model) string {
	t.Helper()
	var b strings.Builder
	w := &colorprofile.Writer{Forward: &b, Profile: goldenProfile}
	if _, err := w.Write([]byte(m.View().Content)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// realModel is testModel for the real wizard (no REHEARSAL badge) on a
// terminal with a dark background.
func realModel(t *testing.T, w, h int) *model {
	t.Helper()
	cfg := steps.DefaultConfig()
	cfg.Host = "203.0.113.7"
	cfg.ExtraFiles = ""
	m := newModel(context.Background(), Options{Config: cfg, Engine: fakeBackend{report: a1Report()},
		Welcome: Welcome{Flake: ".#vps-arm", Found: "flake.nix in this folder"}})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	m.Update(tea.BackgroundColorMsg{Color: goldenBackground})
	if !m.st.dark {
		t.Fatal("the golden background did not give the dark theme")
	}
	m.now = t0
	return m
}

// TestColourGolden compares the main screens of the real wizard, with
// their colours and styles, with testdata/*.ansi.golden (go test ./ui -run
// Golden -update rewrites them; cat shows them in colour). The plain
// goldens of TestGolden pin the text; these pin the styling, which the
// plain ones strip.
func TestColourGolden(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {120, 40}} {
		t.Run(itoa(size[0])+"x"+itoa(size[1]), func(t *testing.T) {
			snap := func(m *model, name string) {
				t.Helper()
				m.now = t0
				file := filepath.Join("testdata", name+"-"+itoa(size[0])+"x"+itoa(size[1])+".ansi.golden")
				got := colourView(t, m)
				if !strings.Contains(got, "\x1b[") {
					t.Fatalf("%s: the view has no escape codes: the colours are lost", name)
				}
				if strings.Contains(got, "REHEARSAL") {
					t.Fatalf("%s: the real wizard shows the REHEARSAL badge", name)
				}
				checkGolden(t, file, got)
			}
			m := realModel(t, size[0], size[1])
			m.cfg = m.target.apply(m.cfg)
			m.startPreflight()
			m.Update(preflightDoneMsg{gen: m.preflightGen, report: a1Report()})
			snap(m, "preflight")

			toPlan(t, m)
			m.Update(key("c"))
			snap(m, "plan")
			m.Update(key("enter"))
			snap(m, "wipe")

			toProgress(t, m)
			m.Update(eventsMsg(installEvents()))
			snap(m, "progress")

			m.Update(eventsMsg(finishEvents()))
			m.now = t0
			m.Update(installDoneMsg{result: engine.InstallResult{Outcome: steps.OutcomeSuccess, HostKeyFingerprint: "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
				SSHCommand: "ssh root@203.0.113.7", Log: "/tmp/bigbang/203.0.113.7.log", Receipt: "/state/bigbang/hosts/203.0.113.7.json"}})
			snap(m, "result-success")

			m = realModel(t, size[0], size[1])
			toProgress(t, m)
			m.Update(eventsMsg(installEvents()))
			// The failed phase's time runs to the clock of the model,
			// which events set to the wall clock.
			m.now = t0
			d := &steps.Diagnosis{ID: "disko.partition", Summary: "the disk layout does not fit /dev/sda", Remedy: "check the disk size in disko.nix"}
			res := engine.InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseDisko, Diagnosis: d, Log: "/tmp/bigbang/203.0.113.7.log"}
			rc := m.cfg
			rc.Log = res.Log
			res.Resume = engine.ResumeCommand("bigbang", rc, m.thePlan, res.FailedPhase, engine.ResumeStyle{})
			m.Update(installDoneMsg{result: res})
			snap(m, "result-failure")
		})
	}
}

// TestColourGoldenIgnoresEnvironment: the colour goldens do not depend on
// the environment the tests run in (NO_COLOR, TERM), which Bubble Tea's
// own profile detection reads.
func TestColourGoldenIgnoresEnvironment(t *testing.T) {
	render := func() string {
		m := realModel(t, 80, 24)
		toPlan(t, m)
		m.Update(key("enter"))
		return colourView(t, m)
	}
	want := render()
	for _, env := range [][2]string{{"NO_COLOR", "1"}, {"TERM", "dumb"}, {"COLORTERM", "truecolor"}} {
		t.Run(env[0], func(t *testing.T) {
			t.Setenv(env[0], env[1])
			if got := render(); got != want {
				t.Errorf("with %s=%s the wipe warning renders otherwise:\n%q\n%q", env[0], env[1], got, want)
			}
		})
	}
}

// finishEvents end the install of installEvents: the remaining phases run
// and are done by t0.
func finishEvents() []steps.Event {
	at := func(s int) time.Time { return t0.Add(time.Duration(s-180) * time.Second) }
	ph := func(s int, id steps.PhaseID, st steps.PhaseState) steps.Event {
		return steps.Event{Time: at(s), Type: steps.EventPhase, Phase: id, State: st}
	}
	return []steps.Event{
		ph(100, steps.PhaseDisko, steps.StateDone),
		ph(100, steps.PhaseInstall, steps.StateRunning),
		{Time: at(101), Type: steps.EventLine, Phase: steps.PhaseInstall, Text: "installing the boot loader..."},
		ph(160, steps.PhaseInstall, steps.StateDone),
		ph(160, steps.PhaseReboot, steps.StateRunning),
		ph(180, steps.PhaseReboot, steps.StateDone),
	}
}
