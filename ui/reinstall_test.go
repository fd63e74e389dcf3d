package ui

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

const testArchive = "/home/op/.local/state/bigbang/backups/203.0.113.7-20260114T104200Z.tar.zst"

func reinstallModel(t *testing.T, force bool) *model {
	t.Helper()
	cfg := steps.DefaultConfig()
	cfg.Host = "203.0.113.7"
	cfg.ExtraFiles = ""
	m := newModel(context.Background(), Options{Config: cfg, Engine: fakeBackend{report: a1Report()},
		Reinstall: &engine.ReinstallOptions{Source: "/persistent", Services: []string{"postgresql.service"}, Force: force}})
	m.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
	m.now = t0
	m.cfg = m.target.apply(m.cfg)
	m.afterTarget()
	if m.screen != screenDrift || !m.rs.drift.running {
		t.Fatalf("after the target: screen %v, want the drift running; view:\n%s", m.screen, view(m))
	}
	if m.preflightGen != 0 {
		t.Fatal("the preflight started before the host key step")
	}
	return m
}

// driftDone answers the running drift.
func driftDone(m *model, d engine.Drift, err error) {
	m.Update(driftDoneMsg{gen: m.rs.drift.gen, drift: d, err: err})
}

var (
	driftChanged = reinstall.Report{Verdict: reinstall.VerdictReinstall,
		Changes:   []reinstall.Change{{Kind: reinstall.KindChanged, What: "partition disk-main-ESP", Live: "32M vfat", Flake: "64M vfat"}},
		Unchanged: []string{"disk main"}}
	driftNone = reinstall.Report{Verdict: reinstall.VerdictNone, Unchanged: []string{"disk main", "partition disk-main-ESP"}}
)

func TestDriftScreen(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rep       reinstall.Report
		err       error
		force     bool
		want      []string
		next      screen // after enter
		quitErr   error  // after q
		wantsQuit bool
	}{
		{name: "layout changed", rep: driftChanged,
			want: []string{"~ partition disk-main-ESP: 32M vfat → 64M vfat", "= disk main: unchanged", "Reinstall required", "reinstall required because partition disk-main-ESP changes from 32M vfat to 64M vfat", "Host key SHA256:kept"},
			next: screenPreflight},
		{name: "no change", rep: driftNone,
			want: []string{"No reinstall needed", "nh os switch", "nixos-rebuild", "--force reinstalls anyway"},
			next: screenDrift, quitErr: engine.ErrNothingToReinstall, wantsQuit: true},
		{name: "no change, forced", rep: driftNone, force: true,
			want: []string{"No reinstall needed", "--force: reinstalling although"},
			next: screenPreflight},
		{name: "host key refused", err: errors.New("reinstall: the host key in keys/ssh_host_ed25519_key.pub (SHA256:other) is not the one 203.0.113.7 serves"),
			want: []string{"is not the one 203.0.113.7 serves", "Nothing was changed"},
			next: screenDrift},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := reinstallModel(t, tc.force)
			if v := view(m); !strings.Contains(v, "reading the live disks") {
				t.Errorf("the running drift says nothing:\n%s", v)
			}
			d := engine.Drift{Report: tc.rep}
			if tc.err == nil {
				d.HostKey = "Host key SHA256:kept: the extra-files tree holds the machine's host key"
			}
			driftDone(m, d, tc.err)
			v := view(m)
			for _, w := range tc.want {
				if !strings.Contains(strings.Join(strings.Fields(v), " "), strings.Join(strings.Fields(w), " ")) {
					t.Errorf("the drift screen lacks %q:\n%s", w, v)
				}
			}
			_, cmd := m.Update(key("enter"))
			if tc.wantsQuit {
				if cmd == nil || m.stopErr != tc.quitErr {
					t.Errorf("enter on no change: stopErr %v, want %v and a quit", m.stopErr, tc.quitErr)
				}
				return
			}
			if m.screen != tc.next {
				t.Fatalf("after enter: screen %v, want %v:\n%s", m.screen, tc.next, view(m))
			}
			if tc.next == screenDrift && tc.err != nil {
				m.Update(key("q"))
				if !errors.Is(m.stopErr, tc.err) {
					t.Errorf("q after a refused key: stopErr %v, want the refusal", m.stopErr)
				}
			}
		})
	}
}

// toBackup drives a reinstall to the running backup.
func toBackup(t *testing.T) *model {
	t.Helper()
	m := reinstallModel(t, false)
	driftDone(m, engine.Drift{Report: driftChanged}, nil)
	m.Update(key("enter"))
	if m.screen != screenPreflight || !m.preflight.running {
		t.Fatalf("after the drift: screen %v, want the preflight running", m.screen)
	}
	m.Update(preflightDoneMsg{gen: m.preflightGen, report: a1Report()})
	m.Update(key("enter"))
	if m.screen != screenBackup || !m.rs.backup.running || m.cancelInstall == nil {
		t.Fatalf("screen %v, running %v", m.screen, m.rs.backup.running)
	}
	m.rs.backup.start = t0.Add(-3 * time.Second)
	m.now = t0
	return m
}

func TestBackupProgress(t *testing.T) {
	m := toBackup(t)
	p := reinstall.Progress{Bytes: 12 << 20, Total: 48 << 20, Rate: 4 << 20, ETA: 9 * time.Second}
	_, cmd := m.Update(transferMsg{gen: m.rs.feed.gen, p: p})
	if cmd == nil {
		t.Error("the progress feed is not read again")
	}
	m.now = t0
	v := view(m)
	for _, w := range []string{"Backup of 203.0.113.7:/persistent", "12.0 MiB of 48.0 MiB", "25%", "4.0 MiB/s", "ETA 9s", "███████████████░░░"} {
		if !strings.Contains(v, w) {
			t.Errorf("the backup pane lacks %q:\n%s", w, v)
		}
	}
	if pb := m.View().ProgressBar; pb == nil || pb.Value != 25 {
		t.Errorf("terminal progress %+v, want 25%%", pb)
	}
	// A stale feed's figures are dropped.
	m.Update(transferMsg{gen: m.rs.feed.gen - 1, p: reinstall.Progress{Bytes: 1, Total: 2}})
	if m.rs.backup.p.Bytes != p.Bytes {
		t.Error("a stale progress message changed the figures")
	}
	m.Update(key("enter"))
	if m.screen != screenBackup {
		t.Fatal("enter left a running backup")
	}

	a := reinstall.Archive{Path: testArchive, Manifest: reinstall.Manifest{Entries: 1234, Bytes: 48 << 20, ArchiveBytes: 20 << 20, SHA256: "ab12cd"}}
	m.Update(backupDoneMsg{archive: a})
	v = view(m)
	for _, w := range []string{"Backup verified", testArchive, "1234 entries, 48.0 MiB of files, 20.0 MiB compressed", "sha256 ab12cd", "It holds the machine's secrets"} {
		if !strings.Contains(strings.Join(strings.Fields(v), " "), w) && !strings.Contains(strings.Join(strings.Fields(v), ""), strings.ReplaceAll(w, " ", "")) {
			t.Errorf("the verified backup lacks %q:\n%s", w, v)
		}
	}
	m.Update(key("enter"))
	if m.screen != screenBuild {
		t.Fatalf("after the backup: screen %v, want RAM and build", m.screen)
	}
}

func TestBackupFailureStops(t *testing.T) {
	m := toBackup(t)
	err := &reinstall.IncompleteError{Path: testArchive + reinstall.IncompleteSuffix, Err: errors.New("connection lost")}
	m.Update(backupDoneMsg{err: err})
	v := strings.Join(strings.Fields(view(m)), " ")
	for _, w := range []string{"backup incomplete", "is not a backup", "Nothing was wiped"} {
		if !strings.Contains(v, w) {
			t.Errorf("the failed backup lacks %q:\n%s", w, v)
		}
	}
	m.Update(key("enter"))
	if m.screen != screenBackup {
		t.Fatalf("went on after a failed backup: screen %v", m.screen)
	}
	m.Update(key("q"))
	if !errors.Is(m.stopErr, reinstall.ErrIncomplete) {
		t.Errorf("stopErr %v, want the incomplete backup", m.stopErr)
	}
}

// TestBackupOffersToStopUnits: a backup that saw its source change while
// no unit was named offers to stop units: s, the units typed, enter takes
// the backup again with them stopped (the engine's Backup stops them).
func TestBackupOffersToStopUnits(t *testing.T) {
	m := toBackup(t)
	m.rs.opts.Services, m.rs.backup.services = nil, nil
	err := &reinstall.IncompleteError{Path: testArchive + reinstall.IncompleteSuffix, Err: fmt.Errorf("%w: stop the services writing to them", reinstall.ErrChanging)}
	m.Update(backupDoneMsg{err: err})
	v := strings.Join(strings.Fields(view(m)), " ")
	for _, w := range []string{"files changed while they were read", "--service UNIT", "s names the units that write into /persistent"} {
		if !strings.Contains(v, w) {
			t.Errorf("the failed backup lacks %q:\n%s", w, view(m))
		}
	}
	gen := m.rs.gen
	m.Update(key("s"))
	for _, r := range "app.service db.service" {
		m.Update(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	if v := view(m); !strings.Contains(v, "> app.service db.service") {
		t.Errorf("the units typed are not shown:\n%s", v)
	}
	m.Update(key("enter"))
	if m.rs.gen == gen || !m.rs.backup.running || strings.Join(m.rs.opts.Services, ",") != "app.service,db.service" {
		t.Fatalf("no backup with the units stopped: running %v, services %q", m.rs.backup.running, m.rs.opts.Services)
	}
	if v := strings.Join(strings.Fields(view(m)), " "); !strings.Contains(v, "Stops app.service, db.service before the backup") {
		t.Errorf("the backup does not say it stops the units:\n%s", view(m))
	}
}

func TestReinstallWipeNamesBackupThenRestore(t *testing.T) {
	m := toBackup(t)
	a := reinstall.Archive{Path: testArchive, Manifest: reinstall.Manifest{Entries: 3, Bytes: 4}}
	m.Update(backupDoneMsg{archive: a})
	m.Update(key("enter")) // build
	m.Update(key("enter")) // plan
	m.Update(key("enter")) // wipe
	if m.screen != screenWipe {
		t.Fatalf("screen %v, want the wipe warning", m.screen)
	}
	v := strings.Join(strings.Fields(view(m)), "")
	for _, w := range []string{"Typethehost203.0.113.7towipeitandrestore" + testArchive, "Thedatacomesbackfromthebackup", "┃" + testArchive + "┃"} {
		if !strings.Contains(v, w) {
			t.Errorf("the wipe warning lacks %q:\n%s", w, view(m))
		}
	}
	for _, r := range "203.0.113.7" {
		m.Update(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	m.Update(key("enter"))
	for i := 0; i < wipeCountdown; i++ {
		m.Update(wipeTickMsg{gen: m.wipe.gen})
	}
	if m.screen != screenProgress {
		t.Fatalf("screen %v, want the install", m.screen)
	}
	// The engine stops the install before its reboot and restores into
	// the installer: the restore screen shows it, then the panes again for
	// the reboot.
	m.Update(stageMsg{gen: m.rs.feed.gen, text: "Restore of " + testArchive + " into 203.0.113.7:/mnt/persistent, before the first boot"})
	if m.screen != screenRestore || !m.rs.restore.running {
		t.Fatalf("after the install's first part: screen %v, want the restore running", m.screen)
	}
	m.rs.restore.start = t0
	m.now = t0
	m.Update(transferMsg{gen: m.rs.feed.gen, p: reinstall.Progress{Bytes: 2, Total: 4}})
	v = view(m)
	for _, w := range []string{"Restore of the backup into 203.0.113.7:/mnt/persistent, before the first boot", "2 B of 4 B", "50%", "stopped before its reboot", "The reboot follows"} {
		if !strings.Contains(strings.Join(strings.Fields(v), " "), w) {
			t.Errorf("the restore pane lacks %q:\n%s", w, v)
		}
	}
	m.Update(transferEndMsg{gen: m.rs.feed.gen})
	if m.screen != screenProgress || m.rs.restore.running {
		t.Fatalf("after the restore: screen %v, want the install's panes for the reboot", m.screen)
	}
	m.Update(installDoneMsg{result: engine.InstallResult{Outcome: steps.OutcomeSuccess, HostKeyFingerprint: "SHA256:kept", Receipt: "/state/hosts/203.0.113.7.json"},
		restored: &engine.Restored{Result: reinstall.RestoreResult{Entries: 3, Bytes: 4}, Receipt: "/state/hosts/203.0.113.7.json"}})
	if m.screen != screenResult {
		t.Fatalf("screen %v, want the result", m.screen)
	}
	v = strings.Join(strings.Fields(view(m)), " ")
	for _, w := range []string{"reinstalled on 203.0.113.7", "Backup " + testArchive, "/persistent holds 3 entries, 4 B of files: restored before the first boot and compared with the archive", "Receipt /state/hosts/203.0.113.7.json"} {
		if !strings.Contains(v, w) {
			t.Errorf("the result lacks %q:\n%s", w, view(m))
		}
	}
	if strings.Contains(v, "Restore bigbang reinstall") {
		t.Errorf("a restored reinstall offers the restore again:\n%s", view(m))
	}
}

// TestRestoreBeforeBootFailureResult: a restore into the installer that
// failed leaves the machine installed and not rebooted; the result says
// so, resumes the reboot, and gives the restore after the boot.
func TestRestoreBeforeBootFailureResult(t *testing.T) {
	m := toBackup(t)
	m.Update(backupDoneMsg{archive: reinstall.Archive{Path: testArchive}})
	m.startInstall()
	m.Update(stageMsg{gen: m.rs.feed.gen, text: "Restore of " + testArchive})
	m.Update(transferEndMsg{gen: m.rs.feed.gen})
	m.Update(installDoneMsg{result: engine.InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseReboot,
		Diagnosis: &steps.Diagnosis{ID: engine.DiagnosisRestoreBeforeBoot, Summary: "the restore into the installer's /mnt/persistent did not complete, so bigbang did not reboot: tar: exit status 2", Remedy: "finish the install with the resume command"},
		Resume:    "bigbang install --host 203.0.113.7 --phases reboot --skip-preflight --yes-wipe 203.0.113.7"}})
	v := strings.Join(strings.Fields(shellJoined(view(m))), " ")
	for _, w := range []string{"not rebooted", "tar: exit status 2", "--phases reboot", "bigbang reinstall --host 203.0.113.7 --user root --service postgresql.service --restore " + testArchive} {
		if !strings.Contains(v, w) {
			t.Errorf("the failed restore lacks %q:\n%s", w, view(m))
		}
	}
	if strings.Contains(v, "rebooting into it") {
		t.Errorf("the result says the server reboots:\n%s", view(m))
	}
	if m.result.Outcome != steps.OutcomeFailed {
		t.Errorf("outcome %q, want failed", m.result.Outcome)
	}
}

// orderBackend records the steps the wizard starts, in order, with the
// host key each connection was told the operator approved.
type orderBackend struct {
	fakeBackend
	calls chan string
}

func (b orderBackend) Preflight(_ context.Context, _ steps.Config, p engine.DialPolicy, _ steps.Sink) (engine.Report, error) {
	b.calls <- "preflight:" + p.Approved
	return a1Report(), nil
}
func (b orderBackend) Prepare(_ context.Context, _ steps.Config, p engine.DialPolicy) (engine.Drift, error) {
	b.calls <- "prepare:" + p.Approved
	return engine.Drift{}, nil
}
func (b orderBackend) Backup(context.Context, steps.Config, engine.DialPolicy, engine.ReinstallOptions, func(reinstall.Progress)) (reinstall.Archive, []string, error) {
	b.calls <- "backup"
	return reinstall.Archive{}, nil, nil
}

// next waits for the next step the wizard started.
func (b orderBackend) next(t *testing.T) string {
	t.Helper()
	select {
	case c := <-b.calls:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no step started")
	}
	return ""
}

// TestReinstallHostKeyStepFirst: the reinstall wizard runs its steps in
// the order of `bigbang reinstall`: the host key step (with the drift),
// then the preflight, whose secrets checks need the key that step copies
// in, then the backup. A host new to known_hosts is asked about on the
// drift screen, and the key approved there is the one the preflight
// trusts.
func TestReinstallHostKeyStepFirst(t *testing.T) {
	b := orderBackend{calls: make(chan string, 8)}
	cfg := steps.DefaultConfig()
	cfg.Host, cfg.ExtraFiles = "203.0.113.7", ""
	m := newModel(context.Background(), Options{Config: cfg, Engine: b, Reinstall: &engine.ReinstallOptions{}})
	m.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
	m.now = t0
	m.goTo(screenTarget)
	m.cfg = m.target.apply(m.cfg)

	runBatch(m.afterTarget()) // what the target's last enter does
	if got := b.next(t); got != "prepare:" {
		t.Fatalf("first step %q, want the host key step with no key approved", got)
	}
	if m.screen != screenDrift || m.preflightGen != 0 {
		t.Fatalf("screen %v, preflights %d: the preflight ran before the host key step", m.screen, m.preflightGen)
	}

	newKey := engine.HostKey{Fingerprint: "SHA256:newkey", Type: "ssh-ed25519", Status: engine.HostKeyNew}
	driftDone(m, engine.Drift{NewHostKey: newKey}, nil)
	v := strings.Join(strings.Fields(view(m)), " ")
	for _, w := range []string{"First connection to 203.0.113.7: is this its host key?", "ssh-ed25519 SHA256:newkey", "y trust this key"} {
		if !strings.Contains(v, w) {
			t.Errorf("the host key question lacks %q:\n%s", w, view(m))
		}
	}
	m.Update(key("enter"))
	if m.screen != screenDrift || m.preflightGen != 0 {
		t.Fatalf("enter went on past an unanswered host key: screen %v", m.screen)
	}
	_, cmd := m.Update(key("y"))
	runBatch(cmd)
	if got := b.next(t); got != "prepare:SHA256:newkey" {
		t.Fatalf("after y: %q, want the host key step again, trusting the key shown", got)
	}

	driftDone(m, engine.Drift{Report: driftChanged, HostKey: "Host key SHA256:newkey: Copied the machine's host key into keys/etc/ssh/ssh_host_ed25519_key (0600)"}, nil)
	if v := view(m); !strings.Contains(v, "Next: the preflight") {
		t.Errorf("the drift screen does not name the preflight as the next step:\n%s", v)
	}
	_, cmd = m.Update(key("enter"))
	runBatch(cmd)
	if got := b.next(t); got != "preflight:SHA256:newkey" {
		t.Fatalf("after the drift: %q, want the preflight, trusting the approved key", got)
	}
	if m.screen != screenPreflight {
		t.Fatalf("screen %v, want the preflight", m.screen)
	}

	m.Update(preflightDoneMsg{gen: m.preflightGen, report: a1Report()})
	_, cmd = m.Update(key("enter"))
	runBatch(cmd)
	if got := b.next(t); got != "backup" {
		t.Fatalf("after the preflight: %q, want the backup", got)
	}
	if m.screen != screenBackup {
		t.Fatalf("screen %v, want the backup", m.screen)
	}
}

func TestDriftHostKeyRefusedAndStale(t *testing.T) {
	t.Run("n goes back to the target", func(t *testing.T) {
		m := reinstallModel(t, true)
		driftDone(m, engine.Drift{NewHostKey: engine.HostKey{Fingerprint: "SHA256:newkey", Type: "ssh-ed25519", Status: engine.HostKeyNew}}, nil)
		if m.rs.drift.proceed() {
			t.Fatal("--force went on past an unanswered host key")
		}
		m.Update(key("n"))
		if m.screen != screenTarget || m.approvedHostKey != "" {
			t.Errorf("after n: screen %v, approved %q", m.screen, m.approvedHostKey)
		}
	})
	t.Run("a drift left with esc is dropped", func(t *testing.T) {
		m := reinstallModel(t, false)
		old := m.rs.drift.gen
		m.Update(key("esc"))
		if m.screen != screenTarget {
			t.Fatalf("esc on the running drift: screen %v, want the target", m.screen)
		}
		m.afterTarget()
		m.Update(driftDoneMsg{gen: old, drift: engine.Drift{Report: driftChanged}})
		if !m.rs.drift.running {
			t.Error("the answer of the drift left with esc was taken for the new one")
		}
		driftDone(m, engine.Drift{Report: driftNone}, nil)
		if m.rs.drift.running || m.rs.drift.res.Report.Verdict != reinstall.VerdictNone {
			t.Error("the answer of the new drift was dropped")
		}
	})
}

// TestDriftScreenIntents: the drift screen answers each key with the
// intent its state allows, and nothing else.
func TestDriftScreenIntents(t *testing.T) {
	newKey := engine.Drift{NewHostKey: engine.HostKey{Fingerprint: "SHA256:newkey"}}
	for _, tc := range []struct {
		name  string
		d     driftScreen
		key   string
		want  intent
		quitE error
	}{
		{"y trusts a new key", driftScreen{res: newKey}, "y", intentAccept, nil},
		{"y without a question", driftScreen{res: engine.Drift{Report: driftChanged}}, "y", intentNone, nil},
		{"n refuses a new key", driftScreen{res: newKey}, "n", intentBack, nil},
		{"enter past an unanswered key", driftScreen{res: newKey}, "enter", intentNone, nil},
		{"enter on a change", driftScreen{res: engine.Drift{Report: driftChanged}}, "enter", intentNext, nil},
		{"enter on no change", driftScreen{res: engine.Drift{Report: driftNone}}, "enter", intentQuit, engine.ErrNothingToReinstall},
		{"enter on no change, forced", driftScreen{res: engine.Drift{Report: driftNone}, force: true}, "enter", intentNext, nil},
		{"r while running", driftScreen{running: true}, "r", intentNone, nil},
		{"r after an error", driftScreen{err: errors.New("refused")}, "r", intentRetry, nil},
		{"esc while running", driftScreen{running: true}, "esc", intentBack, nil},
		{"q after an error", driftScreen{err: reinstall.ErrIncomplete}, "q", intentQuit, reinstall.ErrIncomplete},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.d
			if got := d.update(key(tc.key)); got != tc.want {
				t.Fatalf("%s: intent %v, want %v", tc.key, got, tc.want)
			}
			if tc.want == intentQuit && !errors.Is(d.quitErr(), tc.quitE) {
				t.Errorf("quitErr %v, want %v", d.quitErr(), tc.quitE)
			}
			if tc.key == "esc" && d.running {
				t.Error("esc left the drift running")
			}
		})
	}
}

// TestScreenChangesInOnePlace: only model.show assigns the active screen,
// so that what goes with a change of screen (the help closing) cannot be
// forgotten by a path that sets it itself.
func TestScreenChangesInOnePlace(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var where []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				as, ok := n.(*ast.AssignStmt)
				if !ok {
					return true
				}
				for _, l := range as.Lhs {
					if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "screen" {
						where = append(where, fset.Position(as.Pos()).String()+" in "+fn.Name.Name)
					}
				}
				return true
			})
		}
	}
	if len(where) != 1 || !strings.HasSuffix(where[0], " in show") {
		t.Errorf("the screen is assigned at %v, want only in model.show", where)
	}
}

// TestExitSummaryRestoreBeforeBoot: after the wizard, a restore into the
// installer that failed is said as such: installed, not rebooted, the
// resume reboots; not the reboot phase's "rebooting into it".
func TestExitSummaryRestoreBeforeBoot(t *testing.T) {
	res := engine.InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseReboot, Log: "/tmp/x.log",
		Resume:    "bigbang --host 203.0.113.7 --phases reboot",
		Diagnosis: &steps.Diagnosis{ID: engine.DiagnosisRestoreBeforeBoot, Summary: "the restore did not complete", Remedy: "finish the install with the resume command"}}
	s := strings.Join(strings.Fields(ExitSummary(res, nil)), " ")
	for _, w := range []string{"installed but not rebooted", "the NixOS installer still runs in RAM", "nothing rebooted yet", "--phases reboot", "The backup is kept"} {
		if !strings.Contains(s, w) {
			t.Errorf("the exit summary lacks %q:\n%s", w, s)
		}
	}
	if strings.Contains(s, "rebooting into it") {
		t.Errorf("the exit summary says the server reboots:\n%s", s)
	}
}
