package ui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/local"
)

// nativeReport is a target this machine can build for: both choices of
// the RAM screen work.
func nativeReport() engine.Report {
	r := a1Report()
	r.LocalSystem = "aarch64-linux"
	r.LocalCanBuild = true
	r.LocalBuildNote = "this machine is aarch64-linux too"
	return r
}

// toBuild drives the model to the RAM and build screen with report r.
func toBuild(t *testing.T, m *model, r engine.Report) {
	t.Helper()
	m.cfg = m.target.apply(m.cfg)
	m.startPreflight()
	m.Update(preflightDoneMsg{gen: m.preflightGen, report: r})
	m.Update(key("enter"))
	if m.screen != screenBuild {
		t.Fatalf("after preflight: screen %v, want RAM and build; view:\n%s", m.screen, view(m))
	}
}

func typeText(m *model, s string) {
	for _, r := range s {
		m.Update(key(string(r)))
	}
}

func argvHas(p steps.Plan, flag, val string) bool {
	for i, a := range p.Argv {
		if a == flag && (val == "" || (i+1 < len(p.Argv) && p.Argv[i+1] == val)) {
			return true
		}
	}
	return false
}

// TestBuildBackAndChangeFollowsPlan: the exact keys — RAM/build →
// Tab (local) → Enter → esc → Tab (remote) → Enter — give a plan, a
// command and an install request that build on the VPS.
func TestBuildBackAndChangeFollowsPlan(t *testing.T) {
	m := testModel(t, 100, 30)
	toBuild(t, m, nativeReport())
	m.Update(key("tab"))
	m.Update(key("enter"))
	if m.screen != screenPlan || m.thePlan.BuildOn != "local" || !argvHas(m.thePlan, "--build-on", "local") {
		t.Fatalf("tab then enter: screen %v, plan builds %q, argv %v", m.screen, m.thePlan.BuildOn, m.thePlan.Argv)
	}
	m.Update(key("esc"))
	if m.screen != screenBuild {
		t.Fatalf("esc on the plan: screen %v", m.screen)
	}
	m.Update(key("tab"))
	if v := view(m); !strings.Contains(v, "(•) on the VPS") {
		t.Fatalf("the screen does not show the VPS chosen:\n%s", v)
	}
	m.Update(key("enter"))
	if m.screen != screenPlan {
		t.Fatalf("enter: screen %v, build error %v", m.screen, m.build.err)
	}
	if m.thePlan.BuildOn != "remote" || !argvHas(m.thePlan, "--build-on", "remote") || argvHas(m.thePlan, "--build-on", "local") {
		t.Errorf("the plan does not follow the screen: builds %q, argv %v", m.thePlan.BuildOn, m.thePlan.Argv)
	}
	m.plan.showCommand = true
	if flat := strings.Join(strings.Fields(view(m)), " "); !strings.Contains(flat, "--build-on remote") {
		t.Errorf("the exact command on the plan screen does not say --build-on remote:\n%s", view(m))
	}
	if m.planCfg.BuildOn == "local" || m.cfg.BuildOn == "local" {
		t.Errorf("a config still says local: plan %q, target %q", m.planCfg.BuildOn, m.cfg.BuildOn)
	}
}

// TestBuildRAMOverrideFollowsPlan: an edited RAM goes into the plan with
// --no-disko-deps, and taking the edit back takes both out; the build
// location shown stays the one that runs.
func TestBuildRAMOverrideFollowsPlan(t *testing.T) {
	m := testModel(t, 100, 30)
	toBuild(t, m, nativeReport())
	m.Update(key("e"))
	for range 4 {
		m.Update(key("backspace"))
	}
	m.build.ram.SetValue("")
	typeText(m, "1G")
	m.Update(key("enter"))
	v := view(m)
	if strings.Contains(v, "detected on the target") || !strings.Contains(v, "edited (was 24G)") {
		t.Errorf("after an edit the RAM screen still says detected:\n%s", v)
	}
	if !strings.Contains(v, "Way forward") {
		t.Errorf("at 1 GB the RAM screen offers no way forward:\n%s", v)
	}
	shown := m.build.buildOn()
	m.Update(key("enter"))
	if m.screen != screenPlan {
		t.Fatalf("enter: screen %v, err %v", m.screen, m.build.err)
	}
	if !argvHas(m.thePlan, "--no-disko-deps", "") || m.planCfg.RAM != "1G" {
		t.Errorf("1G: argv %v, RAM %q; want --no-disko-deps and RAM 1G", m.thePlan.Argv, m.planCfg.RAM)
	}
	if m.thePlan.BuildOn != shown {
		t.Errorf("the screen showed %s, the plan builds %s", shown, m.thePlan.BuildOn)
	}

	m.Update(key("esc"))
	m.Update(key("e"))
	m.build.ram.SetValue("24G")
	m.Update(key("enter"))
	m.Update(key("enter"))
	if m.screen != screenPlan {
		t.Fatalf("enter: screen %v, err %v", m.screen, m.build.err)
	}
	if argvHas(m.thePlan, "--no-disko-deps", "") || m.planCfg.RAM != "" || m.thePlan.BuildOn != m.build.buildOn() {
		t.Errorf("back at 24G: argv %v, RAM %q, screen %s; the old override stuck", m.thePlan.Argv, m.planCfg.RAM, m.build.buildOn())
	}
}

// TestBuildRefusesImpossibleLocal: a local build the screen says cannot
// work is refused with the reason, and the plan is not made.
func TestBuildRefusesImpossibleLocal(t *testing.T) {
	m := testModel(t, 100, 30)
	r := a1Report()
	r.LocalBuildNote = "no binfmt emulation for aarch64 is registered (/proc/sys/fs/binfmt_misc)"
	toBuild(t, m, r)
	if !m.build.remote {
		t.Fatal("the screen proposes a build this machine cannot do")
	}
	m.Update(key("tab"))
	m.Update(key("enter"))
	if m.screen != screenBuild {
		t.Fatalf("an impossible local build went on to screen %v", m.screen)
	}
	flat := strings.Join(strings.Fields(view(m)), " ")
	if !strings.Contains(flat, "cannot build here") || !strings.Contains(flat, "no binfmt emulation for aarch64") {
		t.Errorf("the refusal lacks its reason:\n%s", view(m))
	}
	m.Update(key("tab"))
	m.Update(key("enter"))
	if m.screen != screenPlan || m.thePlan.BuildOn != "remote" {
		t.Errorf("back on the VPS: screen %v, plan %q", m.screen, m.thePlan.BuildOn)
	}
}

// TestStopDialogSaysMachineState: the stop dialog names the phase and the
// state the server is left in, different in kexec (disk untouched, a
// console reboot brings the old system back) and disko (wiped, installer
// as root); after y the screen says it is stopping until the end.
func TestStopDialogSaysMachineState(t *testing.T) {
	for _, tc := range []struct {
		upTo steps.PhaseID
		want []string
	}{
		{steps.PhaseKexec, []string{"Kexec phase", "disk is untouched", "Console connection"}},
		{steps.PhaseDisko, []string{"Disko phase", "wiped", "as root", "Do not reboot"}},
	} {
		t.Run(string(tc.upTo), func(t *testing.T) {
			m := testModel(t, 100, 30)
			toProgress(t, m)
			for _, e := range installEvents() {
				apply(m, e)
				if e.Type == steps.EventPhase && e.Phase == tc.upTo && e.State == steps.StateRunning {
					break
				}
			}
			m.cancelInstall = func() {}
			m.Update(key("ctrl+c"))
			flat := strings.Join(strings.Fields(view(m)), " ")
			for _, w := range tc.want {
				if !strings.Contains(flat, w) {
					t.Errorf("the stop dialog lacks %q:\n%s", w, view(m))
				}
			}
			m.Update(key("y"))
			if v := view(m); !strings.Contains(v, "Stopping…") || !strings.Contains(v, "stopping…") {
				t.Errorf("after y the screen does not say it is stopping:\n%s", v)
			}
			m.Update(installDoneMsg{result: engine.InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: tc.upTo}})
			if v := view(m); strings.Contains(v, "Stopping…") || m.screen != screenResult {
				t.Errorf("after the end: screen %v, view:\n%s", m.screen, v)
			}
		})
	}
}

// TestStopDialogKeepsAnswerOnSmallScreen: the y/n stays visible at 60×20.
func TestStopDialogKeepsAnswerOnSmallScreen(t *testing.T) {
	m := testModel(t, 60, 20)
	toProgress(t, m)
	apply(m, installEvents()...)
	m.Update(key("ctrl+c"))
	body := strings.Split(view(m), "\n")
	if !strings.Contains(strings.Join(body[:len(body)-1], "\n"), "y stop   n keep going") {
		t.Errorf("the answer is cut off at 60×20:\n%s", view(m))
	}
}

// TestStallAdvises: a stall in the reboot says it waits for the server to
// go down and where its boot can be watched; any stall says what state
// the server is in if stopped.
func TestStallAdvises(t *testing.T) {
	m := testModel(t, 100, 40)
	toProgress(t, m)
	apply(m, installEvents()...)
	apply(m, steps.Event{Time: at(100), Type: steps.EventPhase, Phase: steps.PhaseDisko, State: steps.StateDone},
		steps.Event{Time: at(100), Type: steps.EventPhase, Phase: steps.PhaseInstall, State: steps.StateDone},
		steps.Event{Time: at(101), Type: steps.EventPhase, Phase: steps.PhaseReboot, State: steps.StateRunning},
		steps.Event{Time: at(170), Type: steps.EventStall, Phase: steps.PhaseReboot, Stall: time.Minute})
	flat := strings.Join(strings.Fields(view(m)), " ")
	for _, w := range []string{"go down", "serial console", "If stopped now: The new system is on the disk"} {
		if !strings.Contains(flat, w) {
			t.Errorf("the reboot stall lacks %q:\n%s", w, view(m))
		}
	}
	if strings.Contains(flat, "come back") && !strings.Contains(flat, "go down") {
		t.Errorf("the reboot stall still says it waits for the machine to come back:\n%s", view(m))
	}
}

// TestResultSaysServerStateAndExplain: the failure screen says what state
// the server is in and how to explain the log.
func TestResultSaysServerStateAndExplain(t *testing.T) {
	m := testModel(t, 120, 40)
	toProgress(t, m)
	apply(m, installEvents()...)
	m.Update(installDoneMsg{result: engine.InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseKexec, Log: "/tmp/a b.log"}})
	flat := strings.Join(strings.Fields(view(m)), " ")
	for _, w := range []string{"The server The disk is untouched", "bigbang explain '/tmp/a b.log'"} {
		if !strings.Contains(flat, w) {
			t.Errorf("the failure screen lacks %q:\n%s", w, view(m))
		}
	}
}

// TestExitSummary: what stays on the normal screen after a failure or a
// stop, and nothing after a success or a quit before anything changed.
func TestExitSummary(t *testing.T) {
	resume := "bigbang --host 203.0.113.7 --build-on remote --extra-files ./secrets-init/keys --log /home/operator/.local/state/bigbang/203.0.113.7.log --phases disko,install,reboot"
	res := engine.InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseDisko, Log: "/tmp/x.log", Resume: resume,
		Diagnosis: &steps.Diagnosis{ID: "disko.partition", Summary: "the disk layout does not fit /dev/sda", Remedy: "check the disk size in disko.nix"}}
	s := ExitSummary(res, nil)
	flat := strings.Join(strings.Fields(s), " ")
	for _, w := range []string{"failed in Disko", "does not fit /dev/sda", "check the disk size", "wiped", "Do not reboot", "bigbang explain /tmp/x.log", "/tmp/x.log"} {
		if !strings.Contains(flat, w) {
			t.Errorf("the exit summary lacks %q:\n%s", w, s)
		}
	}
	if !strings.Contains(shellJoined(s), resume) {
		t.Errorf("the resume command is not whole:\n%s", s)
	}
	for _, l := range strings.Split(s, "\n") {
		if len([]rune(l)) > exitWidth {
			t.Errorf("line wider than %d: %q", exitWidth, l)
		}
	}
	// A transcript path wider than the column (and with hyphens, where a
	// word wrapper would break it) stands whole on its line.
	long := "/home/some-operator/.local/state/bigbang/logs/203.0.113.7-2026-12-02T18-31-01.log"
	res.Log = long
	if s := ExitSummary(res, nil); !strings.Contains(s, "\n"+strings.Repeat(" ", 18)+long+"\n") && !strings.Contains(s, "Transcript      "+long+"\n") {
		t.Errorf("the long transcript path is not whole on a line:\n%s", s)
	}
	restore := ExitSummary(engine.InstallResult{Outcome: steps.OutcomeFailed, Log: "/tmp/x.log", Resume: "bigbang reinstall --host 203.0.113.7 --restore /tmp/a.tar",
		Diagnosis: &steps.Diagnosis{ID: "restore", Summary: "the restore stopped", Remedy: "run the restore again"}}, nil)
	if !strings.Contains(restore, "NixOS is reinstalled, but the restore did not complete") || strings.Contains(restore, "The server") {
		t.Errorf("after a failed restore the summary speaks of the install's phases:\n%s", restore)
	}
	stopped := ExitSummary(engine.InstallResult{Outcome: steps.OutcomeAborted, FailedPhase: steps.PhaseKexec, Log: "/tmp/x.log"}, nil)
	if !strings.Contains(stopped, "was stopped in Kexec") || !strings.Contains(stopped, "disk is untouched") {
		t.Errorf("the stop's summary lacks the phase or the state:\n%s", stopped)
	}
	for name, s := range map[string]string{
		"success": ExitSummary(engine.InstallResult{Outcome: steps.OutcomeSuccess, Log: "/tmp/x.log"}, nil),
		"quit":    ExitSummary(engine.InstallResult{}, ErrAborted),
	} {
		if s != "" {
			t.Errorf("%s: the exit summary is not empty: %q", name, s)
		}
	}
}

// TestDetailsViewShowsCutText: d on the preflight opens every check with
// its fix whole, which the small window cut; esc closes it.
func TestDetailsViewShowsCutText(t *testing.T) {
	m := testModel(t, 60, 20)
	m.cfg = m.target.apply(m.cfg)
	m.startPreflight()
	r := a1Report()
	long := "the last sentence of this fix is what the operator must read: ENDOFFIX"
	for i := range 8 {
		r.Checks = append(r.Checks, steps.Check{ID: "remote.x" + itoa(i), Status: steps.StatusWarn, Summary: "warning " + itoa(i), Fix: strings.Repeat("words that fill the line ", 4) + long})
	}
	m.Update(preflightDoneMsg{gen: m.preflightGen, report: r})
	if strings.Contains(view(m), "ENDOFFIX") && strings.Contains(view(m), "warning 7") {
		t.Fatal("the test's checks fit the window: it tests nothing")
	}
	m.Update(key("d"))
	if m.logv == nil {
		t.Fatalf("d opened no details view:\n%s", view(m))
	}
	if first := view(m); strings.Contains(first, "warning 7") && strings.Contains(first, "ENDOFFIX") {
		t.Logf("the first page already shows everything:\n%s", first)
	}
	var seen strings.Builder
	for range 20 {
		seen.WriteString(view(m))
		m.Update(tea.KeyPressMsg{Code: tea.KeyPgDown})
	}
	if got := seen.String(); !strings.Contains(got, "warning 7") || !strings.Contains(got, "ENDOFFIX") {
		t.Errorf("the details view does not show every check whole:\n%s", got)
	}
	m.Update(key("esc"))
	if m.logv != nil || m.screen != screenPreflight {
		t.Error("esc did not close the details view")
	}
}

// TestTargetUserAtHost: user@host:port typed in the Host field fills in
// the user and port, and the form shows them when the operator comes
// back; a bad host's error points at the User field.
func TestTargetUserAtHost(t *testing.T) {
	m := testModel(t, 100, 40)
	m.Update(key("enter"))
	if m.screen != screenTarget {
		t.Fatalf("screen %v, want target", m.screen)
	}
	m.target.vals.host = ""
	m.target.form = m.target.newForm()
	m.target.form.Init()
	typeText(m, "root@198.51.100.4:2222")
	for range 6 {
		_, c := m.Update(key("enter"))
		feedForm(m, c, 0)
		if m.screen != screenTarget {
			break
		}
	}
	if m.screen == screenTarget {
		t.Fatalf("the form did not complete with user@host:port:\n%s", view(m))
	}
	if m.cfg.Host != "198.51.100.4" || m.cfg.User != "root" || m.cfg.Port != 2222 {
		t.Errorf("cfg host %q user %q port %d, want 198.51.100.4 root 2222", m.cfg.Host, m.cfg.User, m.cfg.Port)
	}
	if v := m.target.vals; v.user != "root" || v.port != "2222" || v.host != "198.51.100.4" {
		t.Errorf("the form's fields do not show the split target: %+v", *v)
	}
	for _, tc := range []struct{ in, want string }{
		{"opc@203.0.113.300", "User field"},
		{"my host", "User field"},
	} {
		err := validateHostField(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("validateHostField(%q) = %v, want a hint at the %s", tc.in, err, tc.want)
		}
	}
}

// feedForm runs the commands of an embedded huh form and hands their
// messages back, as the program would (huh moves between fields with
// messages); commands of anything else, and ones that wait, are dropped.
func feedForm(m *model, cmd tea.Cmd, depth int) {
	if cmd == nil || depth > 4 {
		return
	}
	got := make(chan tea.Msg, 1)
	go func() { got <- cmd() }()
	var msg tea.Msg
	select {
	case msg = <-got:
	case <-time.After(20 * time.Millisecond):
		return
	}
	if b, ok := msg.(tea.BatchMsg); ok {
		for _, c := range b {
			feedForm(m, c, depth+1)
		}
		return
	}
	if msg != nil && strings.Contains(fmt.Sprintf("%T", msg), "huh.") {
		_, c := m.Update(msg)
		feedForm(m, c, depth+1)
	}
}

// TestTargetFormScrollsToFocus: at 80×24 the six fields do not fit; the
// form scrolls so that the focused field is always on screen, never
// edited below the fold.
func TestTargetFormScrollsToFocus(t *testing.T) {
	m := testModel(t, 80, 24)
	m.target.notes = []string{"defaults from the last install of 203.0.113.7"}
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	m.Update(key("enter"))
	m.target.form.Init()
	if v := view(m); !strings.Contains(v, "Host") {
		t.Fatalf("the first field is not shown:\n%s", v)
	}
	for _, title := range []string{"User", "Port", "SSH key", "Flake", "Extra files"} {
		_, c := m.Update(tea.KeyPressMsg{Code: tea.KeyTab})
		feedForm(m, c, 0)
		body := strings.Split(view(m), "\n")
		body = body[:len(body)-1] // the key line
		found := false
		for _, l := range body {
			found = found || strings.Contains(l, "┃ "+title) || strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(l), "┃")) == title
		}
		if !found {
			t.Errorf("focused field %q is not on screen at 80×24:\n%s", title, view(m))
		}
	}
}

// TestWipeKeepsPromptSmall: down to 60×20 the typed-host prompt and the
// countdown stay on screen with the host and the disk; the placeholder
// never shows the host as if typed.
func TestWipeKeepsPromptSmall(t *testing.T) {
	for _, sz := range [][2]int{{60, 20}, {80, 24}, {120, 40}} {
		t.Run(itoa(sz[0])+"x"+itoa(sz[1]), func(t *testing.T) {
			m := testModel(t, sz[0], sz[1])
			r := a1Report()
			r.Disks = append(r.Disks, engine.Disk{Device: "/dev/sdb", Model: "BlockVolume", Size: 50_000_000_000,
				Partitions: []engine.Partition{{Name: "sdb1", Size: 20 << 30, FSType: "ext4"}, {Name: "sdb2", Size: 20 << 30, FSType: "ext4"}, {Name: "sdb3", Size: 5 << 30, FSType: "swap"}}})
			toBuild(t, m, r)
			m.Update(key("enter"))
			m.Update(key("enter"))
			if m.screen != screenWipe {
				t.Fatalf("screen %v, want wipe", m.screen)
			}
			v := view(m)
			for _, w := range []string{"Type the host", "> ", "/dev/sda", "/dev/sdb", "EVERYTHING ON THIS DISK"} {
				if !strings.Contains(v, w) {
					t.Errorf("the wipe screen lacks %q:\n%s", w, v)
				}
			}
			if strings.Contains(v, "> 203.0.113.7") {
				t.Errorf("the empty input shows the host as if typed:\n%s", v)
			}
			typeText(m, "203.0.113.7")
			m.Update(key("enter"))
			if v := view(m); !strings.Contains(v, "Wiping 203.0.113.7 in 5") {
				t.Errorf("the countdown is not on screen:\n%s", v)
			}
		})
	}
}

// TestHelpKnowsWhatChanged: the help promises an untouched server only
// where nothing has changed yet: not after the sudo setup, not during
// the install.
func TestHelpKnowsWhatChanged(t *testing.T) {
	const promise = "Nothing on the target changes before"
	m := testModel(t, 100, 30)
	m.cfg = m.target.apply(m.cfg)
	m.startPreflight()
	m.Update(preflightDoneMsg{gen: m.preflightGen, report: a1Report()})
	m.Update(key("?"))
	if v := view(m); !strings.Contains(v, promise) {
		t.Errorf("the preflight's help before any change lacks the promise:\n%s", v)
	}
	m.Update(key("?"))
	m.Update(sudoDoneMsg{})
	m.Update(preflightDoneMsg{gen: m.preflightGen, report: a1Report()})
	m.Update(key("?"))
	if v := view(m); strings.Contains(v, promise) || !strings.Contains(strings.Join(strings.Fields(v), " "), "sudoers line for opc was added") {
		t.Errorf("after the sudo setup the help still promises nothing changed:\n%s", v)
	}
	m2 := testModel(t, 100, 30)
	toProgress(t, m2)
	m2.Update(key("?"))
	if v := view(m2); strings.Contains(v, promise) || !strings.Contains(v, "has started") {
		t.Errorf("the install's help promises nothing changed:\n%s", v)
	}
}

// TestWelcomeShowsAttribute: the real welcome names the configuration.
func TestWelcomeShowsAttribute(t *testing.T) {
	m := testModel(t, 100, 30)
	m.opts.Welcome = WelcomeHere(".#vps-arm")
	if v := view(m); !strings.Contains(v, "nixosConfigurations.vps-arm") {
		t.Errorf("the welcome does not name the flake attribute:\n%s", v)
	}
}

// TestQuitBeforeChangeIsAborted: q on the welcome and Ctrl+C on the target
// quit with no outcome, which Run reports as ErrAborted and ExitSummary
// leaves silent.
func TestQuitBeforeChangeIsAborted(t *testing.T) {
	for _, k := range []string{"q", "ctrl+c"} {
		m := testModel(t, 100, 30)
		if k == "ctrl+c" {
			m.Update(key("enter"))
		}
		_, cmd := m.Update(key(k))
		if cmd == nil {
			t.Fatalf("%s: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%s does not quit", k)
		}
		if m.result.Outcome != "" || m.stopErr != nil {
			t.Errorf("%s: outcome %q, stopErr %v: a quit before any change would be reported as an error", k, m.result.Outcome, m.stopErr)
		}
		if s := ExitSummary(m.result, ErrAborted); s != "" {
			t.Errorf("%s: the exit summary of a quit is not empty: %q", k, s)
		}
	}
}

// TestResultLongResumeSmall: at 60×20 the resume is on screen whole
// (packed, and saying so, when copyable lines do not fit), and d shows it
// in lines that copy.
func TestResultLongResumeSmall(t *testing.T) {
	for _, tc := range []struct {
		name   string
		extra  int
		packed bool
	}{{"fits", 0, false}, {"packed", 6, true}} {
		t.Run(tc.name, func(t *testing.T) {
			m := testModel(t, 60, 20)
			toProgress(t, m)
			apply(m, installEvents()...)
			long := "/tmp/a-long-temporary-dir-0123456/001"
			resume := "bigbang --host 127.0.0.1 --user root --port 34053 -i " + long + "/key --flake '" + long + "#machine'"
			for i := range tc.extra {
				resume += " --ssh-option " + long + "/option-" + itoa(i)
			}
			resume += " --log " + long + "/install.log --phases disko,install,reboot"
			m.Update(installDoneMsg{result: engine.InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseDisko, Log: long + "/install.log", Resume: resume,
				Diagnosis: &steps.Diagnosis{ID: "disko.partition", Summary: "the disk layout does not fit /dev/sda", Remedy: "check the disk size in disko.nix"}}})
			v := view(m)
			if flat := strings.Join(strings.Fields(shellJoined(v)), ""); !strings.Contains(flat, strings.ReplaceAll(resume, " ", "")) {
				t.Errorf("the resume is not on screen whole:\n%s", v)
			}
			if got := strings.Contains(v, "d shows it ready to copy"); got != tc.packed {
				t.Errorf("packed notice %v, want %v:\n%s", got, tc.packed, v)
			}
			if !tc.packed && !strings.Contains(shellJoined(v), resume) {
				t.Errorf("the resume that fits is not in copyable lines:\n%s", v)
			}
			m.Update(key("d"))
			if m.logv == nil {
				t.Fatal("d opened no details view")
			}
			if got := ansi.Strip(strings.Join(m.logv.lines, "\n")); !strings.Contains(shellJoined(got), resume) {
				t.Errorf("the details view lacks the resume in copyable lines:\n%s", got)
			}
		})
	}
}

// TestBuildSwitchRejudgesLocalBuild: after a preflight run with
// --build-on remote, whose local.build check only says the VPS builds,
// switching to this machine judges the local build again on the
// preflight's facts: with emulation in nix.conf the plan builds here and
// the preflight's check says this machine builds it; without, the choice
// is refused with the check's reason.
func TestBuildSwitchRejudgesLocalBuild(t *testing.T) {
	remoteCheck := steps.Check{ID: local.IDBuild, Status: steps.StatusOK, Summary: "aarch64-linux is built on the target (it needs 1.5G RAM or more)"}
	for _, tc := range []struct {
		name  string
		extra []string
		goes  bool
		words string
	}{
		{"emulated", []string{"aarch64-linux"}, true, "this x86_64-linux machine builds aarch64-linux"},
		{"not emulated", nil, false, "cannot build here: this machine (x86_64-linux) cannot build aarch64-linux: nix.conf lacks extra-platforms = aarch64-linux"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testModel(t, 100, 30)
			m.cfg.BuildOn = "remote"
			r := a1Report()
			r.Checks = append(r.Checks, remoteCheck)
			r.Build = local.BuildFacts{System: "x86_64-linux", ExtraPlatforms: tc.extra}
			r.LocalCanBuild, r.LocalBuildNote = r.Build.CanBuild(r.TargetSystem)
			toBuild(t, m, r)
			if !m.build.remote {
				t.Fatal("--build-on remote: the screen does not show the VPS chosen")
			}
			m.Update(key("tab"))
			m.Update(key("enter"))
			flat := strings.Join(strings.Fields(view(m)), " ")
			if !tc.goes {
				if m.screen != screenBuild || !strings.Contains(flat, tc.words) {
					t.Fatalf("an impossible local build: screen %v, want the refusal %q:\n%s", m.screen, tc.words, view(m))
				}
				return
			}
			if m.screen != screenPlan || m.thePlan.BuildOn != "local" {
				t.Fatalf("a local build this machine can make: screen %v, plan %q, err %v", m.screen, m.thePlan.BuildOn, m.build.err)
			}
			var got []string
			for _, cs := range [][]steps.Check{m.report.Checks, m.preflight.checks} {
				for _, c := range cs {
					if c.ID == local.IDBuild {
						got = append(got, c.Summary)
					}
				}
			}
			if len(got) != 2 || !strings.Contains(got[0], tc.words) || got[0] != got[1] {
				t.Errorf("local.build after the switch (report, preflight screen) = %q; want both %q", got, tc.words)
			}
		})
	}
}

// TestPlanWideTokenSmall: at 60×20 the exact command with a flake path
// wider than the command's block keeps the layout (every line within the
// window, the keys at the bottom, the reasons folded to make room), shows
// the path unbroken on a line of its own, and its lines joined at the
// " \" continuations are the plan's command.
func TestPlanWideTokenSmall(t *testing.T) {
	const path = "/home/operator/src/infra/hosts/oracle-a1-arm64#vps-arm"
	m := testModel(t, 60, 20)
	m.cfg.Flake = path
	m.target = newTargetScreen(m.cfg, false)
	toPlan(t, m)
	m.Update(key("c"))
	v := view(m)
	lines := strings.Split(v, "\n")
	if len(lines) != 20 || !strings.Contains(lines[19], "enter") {
		t.Errorf("the window is not 20 lines with the keys at the bottom (%d lines):\n%s", len(lines), v)
	}
	whole := false
	for _, l := range lines {
		if ansi.StringWidth(l) > 60 || strings.Contains(l, "…") {
			t.Errorf("a line is wider than the window or cut: %q", l)
		}
		if strings.Contains(l, "'"+path+"'") {
			whole = true
		}
	}
	if !whole {
		t.Errorf("the flake path is broken across lines:\n%s", v)
	}
	if !strings.Contains(shellJoined(v), m.thePlan.Command()) {
		t.Errorf("the lines do not join into the plan's command %q:\n%s", m.thePlan.Command(), v)
	}
	if !strings.Contains(v, "c hides the command for the reasons") {
		t.Errorf("the folded reasons do not say how to read them:\n%s", v)
	}
}
