package ui

import (
	"context"
	"errors"
	"flag"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// t0 is the fixed clock of the tests, so timers and spinners are stable.
var t0 = time.Date(2026, 1, 14, 10, 42, 0, 0, time.UTC)

// fakeBackend answers from fixed values; it is never called from Update
// (the commands it would run are not executed by these tests).
type fakeBackend struct{ report engine.Report }

func (f fakeBackend) Preflight(context.Context, steps.Config, engine.DialPolicy, steps.Sink) (engine.Report, error) {
	return f.report, nil
}
func (fakeBackend) SetupSudo(context.Context, steps.Config, engine.DialPolicy, []byte) error {
	return nil
}
func (fakeBackend) LogPath(steps.Config) string { return "/tmp/bigbang/203.0.113.7.log" }
func (fakeBackend) Install(context.Context, engine.InstallRequest, steps.Sink) (engine.InstallResult, error) {
	return engine.InstallResult{}, nil
}
func (fakeBackend) RunInstall(context.Context, engine.Script, engine.Front) (engine.InstallResult, error) {
	return engine.InstallResult{}, errors.New("the fake runs no linear install")
}
func (fakeBackend) Prepare(context.Context, steps.Config, engine.DialPolicy) (engine.Drift, error) {
	return engine.Drift{}, nil
}
func (fakeBackend) Backup(context.Context, steps.Config, engine.DialPolicy, engine.ReinstallOptions, func(reinstall.Progress)) (reinstall.Archive, []string, error) {
	return reinstall.Archive{}, nil, nil
}
func (fakeBackend) ReinstallInstall(context.Context, engine.InstallRequest, reinstall.Archive, engine.ReinstallOptions, engine.TransferFront, steps.Sink) (engine.InstallResult, *engine.Restored, error) {
	return engine.InstallResult{}, nil, nil
}
func (fakeBackend) StartUnits(context.Context, steps.Config, engine.DialPolicy, []string) (string, error) {
	return "", nil
}

func a1Report() engine.Report {
	return engine.Report{
		Checks: []steps.Check{
			{ID: "local.flake", Status: steps.StatusOK, Summary: "flake .#vps-arm evaluates"},
			{ID: "remote.arch", Status: steps.StatusOK, Summary: "aarch64, as the flake expects"},
			{ID: "remote.ram", Status: steps.StatusWarn, Summary: "swap is on", Fix: "swap does not survive kexec"},
		},
		HostKey:      engine.HostKey{Fingerprint: "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", Type: "ssh-ed25519", Status: engine.HostKeyKnown},
		TargetRAM:    24 * steps.GiB,
		TargetSystem: "aarch64-linux",
		LocalSystem:  "x86_64-linux",
		TargetOS:     "Oracle Linux Server 9.4",
		CPUs:         4,
		Disks: []engine.Disk{{Device: "/dev/sda", Model: "BlockVolume", Size: 200_000_000_000, Partitions: []engine.Partition{
			{Name: "sda1", Size: 100 << 20, FSType: "vfat", Mountpoint: "/boot/efi"},
			{Name: "sda3", Size: 190 << 30, FSType: "xfs", Mountpoint: "/"},
		}}},
	}
}

func testModel(t *testing.T, w, h int) *model {
	t.Helper()
	cfg := steps.DefaultConfig()
	cfg.Host = "203.0.113.7"
	cfg.ExtraFiles = ""
	m := newModel(context.Background(), Options{Config: cfg, Engine: fakeBackend{report: a1Report()}, Rehearsal: true,
		Welcome: Welcome{Flake: ".#vps-arm", Found: "flake.nix in this folder"}})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	m.now = t0
	return m
}

func key(s string) tea.KeyPressMsg {
	switch s {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(s)[0]
	return tea.KeyPressMsg{Code: r, Text: s}
}

func view(m *model) string { return ansi.Strip(m.View().Content) }

// continuation is a command's line break as a shell reads it.
var continuation = regexp.MustCompile(` \\\n *`)

// shellJoined joins the lines of wrapped commands the way a shell does
// when they are pasted: " \" at a line's end continues it.
func shellJoined(v string) string { return continuation.ReplaceAllString(v, " ") }

// toPlan drives the model to the plan screen the way the commands would.
func toPlan(t *testing.T, m *model) {
	t.Helper()
	m.cfg = m.target.apply(m.cfg)
	m.startPreflight()
	m.Update(preflightDoneMsg{gen: m.preflightGen, report: a1Report()})
	m.Update(key("enter"))
	if m.screen != screenBuild {
		t.Fatalf("after preflight: screen %v, want RAM and build; view:\n%s", m.screen, view(m))
	}
	m.Update(key("enter"))
	if m.screen != screenPlan {
		t.Fatalf("after build: screen %v, want plan; view:\n%s", m.screen, view(m))
	}
}

// toProgress drives the model to the progress screen with fixed times.
func toProgress(t *testing.T, m *model) {
	t.Helper()
	toPlan(t, m)
	m.Update(key("enter"))
	m.startInstall()
	m.progress = newProgressScreen(m.thePlan.Phases, t0.Add(-3*time.Minute))
	m.now = t0
}

func installEvents() []steps.Event {
	at := func(s int) time.Time { return t0.Add(-3*time.Minute + time.Duration(s)*time.Second) }
	ph := func(s int, id steps.PhaseID, st steps.PhaseState) steps.Event {
		return steps.Event{Time: at(s), Type: steps.EventPhase, Phase: id, State: st}
	}
	ln := func(s int, id steps.PhaseID, text string) steps.Event {
		return steps.Event{Time: at(s), Type: steps.EventLine, Phase: id, Text: text}
	}
	return []steps.Event{
		ph(0, steps.PhaseConnect, steps.StateRunning),
		ln(1, steps.PhaseConnect, "### Uploading install SSH keys ###"),
		ph(12, steps.PhaseConnect, steps.StateDone),
		ph(12, steps.PhaseKexec, steps.StateRunning),
		ln(13, steps.PhaseKexec, "Downloading kexec tarball"),
		ph(75, steps.PhaseKexec, steps.StateDone),
		ph(75, steps.PhaseDisko, steps.StateRunning),
		ln(80, steps.PhaseDisko, "### Formatting hard drive with disko ###"),
		ln(81, steps.PhaseDisko, "+ sgdisk --zap-all /dev/sda"),
		ln(82, steps.PhaseDisko, "progress \x1b[32m10%\x1b[0m\r progress \x1b[32m55%\x1b[0m\r progress 100% done"),
	}
}

func TestWelcomeToTarget(t *testing.T) {
	m := testModel(t, 80, 24)
	v := view(m)
	for _, want := range []string{"REHEARSAL", "Install NixOS onto a fresh VPS", "Disko", ".#vps-arm"} {
		if !strings.Contains(v, want) {
			t.Errorf("welcome lacks %q:\n%s", want, v)
		}
	}
	m.Update(key("enter"))
	if m.screen != screenTarget {
		t.Fatalf("enter on welcome: screen %v", m.screen)
	}
	if v := view(m); !strings.Contains(v, "Host") || !strings.Contains(v, "Flake") {
		t.Errorf("target form not shown:\n%s", v)
	}
	m.Update(key("esc"))
	if m.screen != screenWelcome {
		t.Errorf("esc on target: screen %v, want welcome", m.screen)
	}
}

func TestTargetApply(t *testing.T) {
	tests := []struct {
		name, host, port string
		wantErr          bool
	}{
		{"ip", "203.0.113.7", "22", false},
		{"name", "vps.example.org", "2222", false},
		{"bad ip", "203.0.113.300", "22", true},
		{"bad port", "203.0.113.7", "70000", true},
		{"empty", "", "22", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTargetScreen(steps.DefaultConfig(), false)
			ts.vals.host, ts.vals.port = tc.host, tc.port
			err := ts.validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("validate = %v, want error %v", err, tc.wantErr)
			}
			if err == nil {
				cfg := ts.apply(steps.DefaultConfig())
				if cfg.Host != tc.host || itoa(cfg.Port) != tc.port {
					t.Errorf("apply: %s:%d", cfg.Host, cfg.Port)
				}
			}
		})
	}
}

func TestPreflightLive(t *testing.T) {
	m := testModel(t, 100, 30)
	m.cfg = m.target.apply(m.cfg)
	m.startPreflight()
	gen := m.preflightGen
	for _, c := range []checkMsg{
		{gen: gen, check: steps.Check{ID: "local.flake", Status: steps.StatusOK, Summary: "flake evaluates"}},
		{gen: gen, check: steps.Check{ID: "remote.ram", Status: steps.StatusFail, Summary: "only 1.0 GiB of RAM", Fix: "pick a bigger shape"}},
		{gen: gen - 1, check: steps.Check{ID: "stale", Status: steps.StatusFail, Summary: "from an old run"}},
	} {
		m.Update(c)
	}
	v := view(m)
	for _, want := range []string{glyphOK + " flake evaluates", glyphFail + " only 1.0 GiB of RAM", "pick a bigger shape"} {
		if !strings.Contains(v, want) {
			t.Errorf("live checklist lacks %q:\n%s", want, v)
		}
	}
	if strings.Contains(v, "from an old run") {
		t.Errorf("a check of an earlier preflight leaked into this one:\n%s", v)
	}
	m.Update(key("enter"))
	if m.screen != screenPreflight {
		t.Errorf("enter while checks run moved on to %v", m.screen)
	}
}

func TestPreflightHostKey(t *testing.T) {
	tests := []struct {
		name    string
		status  engine.HostKeyStatus
		key     string
		want    string
		wantScr screen
		accept  bool
	}{
		{"new key is offered", engine.HostKeyNew, "y", "is this its host key?", screenPreflight, true},
		{"new key refused goes back", engine.HostKeyNew, "n", "is this its host key?", screenTarget, false},
		{"changed key is refused", engine.HostKeyChanged, "enter", "has CHANGED", screenPreflight, false},
	}
	// approved says that y approved exactly the key shown: the next
	// preflight gets its fingerprint, and no blanket AcceptNewHostKey.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := testModel(t, 100, 30)
			m.cfg = m.target.apply(m.cfg)
			m.startPreflight()
			r := engine.Report{HostKey: engine.HostKey{Fingerprint: "SHA256:xyz", Type: "ssh-ed25519", Status: tc.status}}
			m.Update(preflightDoneMsg{gen: m.preflightGen, report: r})
			v := view(m)
			if !strings.Contains(v, tc.want) || !strings.Contains(v, "SHA256:xyz") {
				t.Fatalf("view lacks %q and the fingerprint:\n%s", tc.want, v)
			}
			rb := &ctxBackend{seen: make(chan string, 1)}
			m.engine = rb
			_, cmd := m.Update(key(tc.key))
			if m.screen != tc.wantScr {
				t.Errorf("after %s: screen %v, want %v", tc.key, m.screen, tc.wantScr)
			}
			if m.cfg.AcceptNewHostKey {
				t.Error("AcceptNewHostKey set: the next connection would trust any key")
			}
			if !tc.accept {
				if m.approvedHostKey != "" {
					t.Errorf("approved %q without a y", m.approvedHostKey)
				}
				return
			}
			runBatch(cmd)
			select {
			case got := <-rb.seen:
				if got != "SHA256:xyz" {
					t.Errorf("the next preflight trusts %q, want the key shown, SHA256:xyz", got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("y did not start the next preflight")
			}
		})
	}
}

// ctxBackend records the key the preflight was told the operator approved.
type ctxBackend struct {
	fakeBackend
	seen chan string
}

func (b *ctxBackend) Preflight(_ context.Context, _ steps.Config, p engine.DialPolicy, _ steps.Sink) (engine.Report, error) {
	b.seen <- p.Approved
	return engine.Report{}, nil
}

// runBatch runs the commands of cmd in the background, as the program
// would; ticks and the like end on their own.
func runBatch(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		msg := cmd()
		if b, ok := msg.(tea.BatchMsg); ok {
			for _, c := range b {
				runBatch(c)
			}
		}
	}()
}

func TestSudoPasswordNeverShown(t *testing.T) {
	m := testModel(t, 100, 30)
	m.cfg = m.target.apply(m.cfg)
	m.startPreflight()
	r := a1Report()
	r.SudoNeedsPassword = true
	r.Checks = append(r.Checks, steps.Check{ID: "remote.privilege", Status: steps.StatusFail, Summary: "sudo asks for a password", Fix: "set up passwordless sudo"})
	m.Update(preflightDoneMsg{gen: m.preflightGen, report: r})
	m.Update(key("s"))
	if !m.preflight.askingPassword {
		t.Fatalf("s did not open the password field:\n%s", view(m))
	}
	for _, r := range "hunter2secret" {
		m.Update(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	if v := view(m); strings.Contains(v, "hunter2secret") || strings.Contains(v, "*****") {
		t.Errorf("the password is echoed:\n%s", v)
	}
	_, cmd := m.Update(key("enter"))
	if cmd == nil || m.preflight.askingPassword || m.preflight.password.Value() != "" {
		t.Errorf("enter did not hand the password over and clear the field")
	}
}

func TestWipeConfirmation(t *testing.T) {
	m := testModel(t, 100, 30)
	toPlan(t, m)
	m.Update(key("enter"))
	if m.screen != screenWipe {
		t.Fatalf("screen %v, want wipe", m.screen)
	}
	v := view(m)
	for _, want := range []string{"EVERYTHING ON THIS DISK WILL BE ERASED", "/dev/sda", "BlockVolume", "sda1", "/boot/efi", "203.0.113.7"} {
		if !strings.Contains(v, want) {
			t.Errorf("wipe warning lacks %q:\n%s", want, v)
		}
	}
	typeText := func(s string) {
		for _, r := range s {
			m.Update(tea.KeyPressMsg{Code: r, Text: string(r)})
		}
	}
	typeText("203.0.113.8")
	m.Update(key("enter"))
	if m.wipe.counting || !strings.Contains(view(m), "that is not the host") {
		t.Fatalf("a wrong host started the countdown:\n%s", view(m))
	}
	m.wipe.input.SetValue("")
	typeText("203.0.113.7")
	m.Update(key("enter"))
	if !m.wipe.counting || !strings.Contains(view(m), "Wiping 203.0.113.7 in 5") {
		t.Fatalf("the right host did not start the countdown:\n%s", view(m))
	}
	m.Update(key("x"))
	if m.wipe.counting {
		t.Fatal("a key did not stop the countdown")
	}
	m.Update(key("enter"))
	gen := m.wipe.gen
	for i := 0; i < wipeCountdown; i++ {
		m.Update(wipeTickMsg{gen: gen})
	}
	if m.screen != screenProgress {
		t.Errorf("after the countdown: screen %v, want progress", m.screen)
	}
	if m.cancelInstall == nil {
		t.Error("the root does not own the install's cancel func")
	}
}

func TestProgressPanes(t *testing.T) {
	m := testModel(t, 100, 30)
	toProgress(t, m)
	m.Update(eventsMsg(installEvents()))
	m.now = t0
	v := view(m)
	for _, want := range []string{glyphOK + " Connect", glyphOK + " Kexec", "Disko", "progress 100% done", "○ Reboot", "12s", "1m03s"} {
		if !strings.Contains(v, want) {
			t.Errorf("progress lacks %q:\n%s", want, v)
		}
	}
	for _, bad := range []string{"Uploading install SSH keys", "progress 10%"} {
		if strings.Contains(v, bad) {
			t.Errorf("progress shows %q (a finished pane must collapse; CR must redraw):\n%s", bad, v)
		}
	}
	// A stall shows in its pane with the keys.
	m.Update(eventsMsg{{Time: t0, Type: steps.EventStall, Phase: steps.PhaseDisko, Stall: 130 * time.Second}})
	m.now = t0
	v = view(m)
	if !strings.Contains(v, "no output for 2m10s") || !strings.Contains(v, "[w] keep waiting") {
		t.Errorf("stall not shown:\n%s", v)
	}
	m.Update(key("w"))
	if strings.Contains(view(m), "no output for") {
		t.Error("w did not dismiss the stall warning")
	}
	// Ctrl+C asks first, then cancels.
	cancelled := false
	m.cancelInstall = func() { cancelled = true }
	m.Update(key("ctrl+c"))
	if !m.confirmQuit || cancelled || !strings.Contains(view(m), "Stop the install?") {
		t.Fatalf("ctrl+c did not ask first:\n%s", view(m))
	}
	m.Update(key("y"))
	if !cancelled || !m.stopping {
		t.Error("y did not cancel the install")
	}
	m.Update(installDoneMsg{result: engine.InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseDisko}})
	if m.screen != screenResult || m.result.Outcome != steps.OutcomeAborted {
		t.Errorf("after the cancel: screen %v outcome %s, want result/aborted", m.screen, m.result.Outcome)
	}
}

func TestResultFailure(t *testing.T) {
	m := testModel(t, 120, 40)
	toProgress(t, m)
	m.Update(eventsMsg(installEvents()))
	d := &steps.Diagnosis{ID: "disko.partition", Summary: "the disk layout does not fit /dev/sda", Remedy: "check the disk size in disko.nix"}
	res := engine.InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseDisko, Diagnosis: d, Log: "/tmp/x.log"}
	cfg := m.cfg
	cfg.Log = res.Log
	// The engine writes the resume command; the screen shows it whole.
	res.Resume = engine.ResumeCommand("bigbang", cfg, m.thePlan, res.FailedPhase, engine.ResumeStyle{})
	m.Update(installDoneMsg{result: res})
	v := shellJoined(view(m))
	for _, want := range []string{"failed in Disko", "does not fit /dev/sda", "check the disk size", "/tmp/x.log", "--log /tmp/x.log --phases", "disko,install,reboot", "progress 100% done"} {
		if !strings.Contains(v, want) {
			t.Errorf("failure screen lacks %q:\n%s", want, v)
		}
	}
}

// TestResultUnverified: a new system that could not be verified is no
// success, and the screen offers no install to run again.
func TestResultUnverified(t *testing.T) {
	m := testModel(t, 120, 40)
	toProgress(t, m)
	m.Update(eventsMsg(installEvents()))
	d := &steps.Diagnosis{ID: engine.DiagnosisRebootUnverified, Summary: "the new system's host key was NOT verified and NOT pinned", Remedy: "do not run the install again; ssh-keygen -R 203.0.113.7"}
	m.Update(installDoneMsg{result: engine.InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseReboot, Diagnosis: d, Log: "/tmp/x.log"}})
	v := view(m)
	for _, want := range []string{"failed in Reboot", "NOT verified and NOT pinned", "ssh-keygen -R 203.0.113.7"} {
		if !strings.Contains(v, want) {
			t.Errorf("result screen lacks %q:\n%s", want, v)
		}
	}
	for _, bad := range []string{"Resume", "answered with the expected host key"} {
		if strings.Contains(v, bad) {
			t.Errorf("result screen shows %q:\n%s", bad, v)
		}
	}
}

func TestRenderTail(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []string
	}{
		{"carriage return redraws", []string{"a", "10%\r55%\r100%"}, []string{"a", "100%"}},
		{"queries are dropped", []string{"x\x1b[6ny\x1b]11;?\x07z"}, []string{"xyz"}},
		{"last rows only", []string{"1", "2", "3", "4"}, []string{"3", "4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows := len(tc.want)
			got := renderTail(tc.lines[max(0, len(tc.lines)-rows):], 40, rows)
			for i := range got {
				got[i] = strings.TrimSpace(ansi.Strip(got[i]))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestColourSurvivesTail(t *testing.T) {
	got := renderTail([]string{"ok \x1b[32mgreen\x1b[0m"}, 40, 1)
	if len(got) != 1 || !strings.Contains(got[0], "\x1b[") || ansi.Strip(got[0]) != "ok green" {
		t.Errorf("colour lost: %q", got)
	}
}

// TestSmallTerminal checks that every screen fits 60×20 without a line
// longer than the window.
func TestSmallTerminal(t *testing.T) {
	for _, size := range [][2]int{{60, 20}, {80, 24}, {120, 40}} {
		m := testModel(t, size[0], size[1])
		check := func(name string) {
			v := m.View().Content
			lines := strings.Split(v, "\n")
			if len(lines) != size[1] {
				t.Errorf("%dx%d %s: %d lines", size[0], size[1], name, len(lines))
			}
			for i, l := range lines {
				if w := ansi.StringWidth(l); w > size[0] {
					t.Errorf("%dx%d %s: line %d is %d wide: %q", size[0], size[1], name, i, w, ansi.Strip(l))
				}
			}
		}
		check("welcome")
		toPlan(t, m)
		check("plan")
		m.Update(key("c"))
		check("plan with command")
		m.Update(key("enter"))
		check("wipe")
		toProgress(t, m)
		m.Update(eventsMsg(installEvents()))
		check("progress")
		m.Update(installDoneMsg{result: engine.InstallResult{Outcome: steps.OutcomeSuccess, HostKeyFingerprint: "SHA256:abc", SSHCommand: "ssh root@203.0.113.7"}})
		check("result")
		m.Update(key("?"))
		check("help")
	}
}

// TestGolden compares the main screens with testdata/*.golden (go test
// ./ui -run Golden -update rewrites them).
func TestGolden(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {120, 40}} {
		m := testModel(t, size[0], size[1])
		snap := func(name string) {
			t.Helper()
			m.now = t0
			file := filepath.Join("testdata", name+"-"+itoa(size[0])+"x"+itoa(size[1])+".golden")
			checkGolden(t, file, view(m))
		}
		snap("welcome")
		toPlan(t, m)
		m.Update(key("c"))
		snap("plan")
		m.Update(key("enter"))
		snap("wipe")
		toProgress(t, m)
		m.Update(eventsMsg(installEvents()))
		snap("progress")
		m.Update(installDoneMsg{result: engine.InstallResult{Outcome: steps.OutcomeSuccess, HostKeyFingerprint: "SHA256:abc", SSHCommand: "ssh root@203.0.113.7", Log: "/tmp/bigbang/203.0.113.7.log"}})
		snap("result")
	}
}

func TestForgetHostKeyCommand(t *testing.T) {
	tests := []struct {
		name       string
		host       string
		port       int
		knownHosts string
		want       string
	}{
		{"port 22", "203.0.113.7", 22, "", "ssh-keygen -R 203.0.113.7"},
		{"no port given", "vps.example.org", 0, "", "ssh-keygen -R vps.example.org"},
		{"another port", "203.0.113.7", 2222, "", "ssh-keygen -R '[203.0.113.7]:2222'"},
		{"IPv6 on another port", "[2001:db8::1]", 2222, "", "ssh-keygen -R '[2001:db8::1]:2222'"},
		{"IPv6 on port 22", "2001:db8::1", 22, "", "ssh-keygen -R 2001:db8::1"},
		{"own known_hosts", "203.0.113.7", 2222, "/home/op/my hosts", "ssh-keygen -R '[203.0.113.7]:2222' -f '/home/op/my hosts'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := steps.DefaultConfig()
			cfg.Host, cfg.Port, cfg.KnownHosts = tc.host, tc.port, tc.knownHosts
			if got := engine.ForgetHostKeyCommand(cfg); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestChangedHostKeyHint: the hint on the preflight screen names the
// known_hosts entry as OpenSSH writes it for a port other than 22.
func TestChangedHostKeyHint(t *testing.T) {
	for _, tc := range []struct {
		port int
		want string
	}{
		{22, "ssh-keygen -R 203.0.113.7"},
		{2222, "ssh-keygen -R '[203.0.113.7]:2222'"},
	} {
		t.Run(itoa(tc.port), func(t *testing.T) {
			m := testModel(t, 120, 30)
			m.cfg = m.target.apply(m.cfg)
			m.cfg.Port = tc.port
			m.startPreflight()
			r := engine.Report{HostKey: engine.HostKey{Fingerprint: "SHA256:xyz", Type: "ssh-ed25519", Status: engine.HostKeyChanged}}
			m.Update(preflightDoneMsg{gen: m.preflightGen, report: r})
			if v := strings.Join(strings.Fields(view(m)), " "); !strings.Contains(v, tc.want+" ") && !strings.HasSuffix(v, tc.want) {
				t.Errorf("the changed-key screen lacks %q:\n%s", tc.want, view(m))
			}
		})
	}
}

// TestResultNotes: what the operator must know besides the outcome (a
// transcript that is incomplete) and the receipt are on the result screen,
// after a success and after a failure.
func TestResultNotes(t *testing.T) {
	for _, outcome := range []steps.Outcome{steps.OutcomeSuccess, steps.OutcomeFailed} {
		t.Run(string(outcome), func(t *testing.T) {
			m := testModel(t, 120, 40)
			toProgress(t, m)
			m.Update(eventsMsg(installEvents()))
			res := engine.InstallResult{Outcome: outcome, Log: "/tmp/x.log", Receipt: "/state/bigbang/hosts/203.0.113.7.json",
				Notes: []string{"the transcript is incomplete: write /tmp/x.log: no space left on device"}}
			if outcome != steps.OutcomeSuccess {
				res.FailedPhase = steps.PhaseDisko
			}
			m.Update(installDoneMsg{result: res})
			v := view(m)
			want := []string{glyphWarn + " the transcript is incomplete: write /tmp/x.log: no space left on device"}
			if outcome == steps.OutcomeSuccess {
				want = append(want, "Receipt   /state/bigbang/hosts/203.0.113.7.json")
			}
			for _, w := range want {
				if !strings.Contains(v, w) {
					t.Errorf("the result screen lacks %q:\n%s", w, v)
				}
			}
		})
	}
}

// TestGlyphsAreDesigns: the state glyphs are DESIGN.md's.
func TestGlyphsAreDesigns(t *testing.T) {
	m := testModel(t, 120, 40)
	toProgress(t, m)
	m.Update(eventsMsg(installEvents()))
	v := view(m)
	for _, want := range []string{"✔ Connect", "✔ Kexec"} {
		if !strings.Contains(v, want) {
			t.Errorf("progress lacks %q:\n%s", want, v)
		}
	}
	m.Update(installDoneMsg{result: engine.InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseDisko}})
	if v := view(m); !strings.Contains(v, "✘ The install failed in Disko") {
		t.Errorf("failure screen lacks ✘:\n%s", v)
	}
}
