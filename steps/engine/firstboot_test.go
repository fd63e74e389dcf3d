package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/engine/enginetest"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/steps/runner"
)

// stages records a TransferFront's stages and progress.
type stages struct {
	mu       sync.Mutex
	texts    []string
	progress int
	ends     int
}

func (s *stages) Stage(text string) {
	s.mu.Lock()
	s.texts = append(s.texts, text)
	s.mu.Unlock()
}

func (s *stages) Progress(_ reinstall.Progress, done bool) {
	s.mu.Lock()
	if done {
		s.ends++
	} else {
		s.progress++
	}
	s.mu.Unlock()
}

// reinstallWorld is the A1 world after a verified backup: a receipt that
// lists it, an install run that stops before the reboot, and a run of the
// reboot phase alone.
func reinstallWorld(t *testing.T) (*enginetest.Fake, steps.Config, steps.Plan, reinstall.Archive) {
	t.Helper()
	w, cfg := enginetest.A1World(t, t.TempDir())
	a := reinstall.Archive{Path: w.Dir + "/203.0.113.7-persistent.tar.zst", Manifest: reinstall.Manifest{Source: "/persistent", Entries: 3, Bytes: 4}}
	if _, err := w.World().Receipts.Write(receipt.Receipt{Host: cfg.Host, Backups: []receipt.Backup{receipt.BackupFromArchive(a)}}); err != nil {
		t.Fatal(err)
	}
	w.Runs = []*enginetest.Child{
		{Lines: []string{"### Installing NixOS ###", "### Done! ###"}, Events: childPhases(steps.PhaseKeys, steps.StateDone),
			Result: runner.Result{Outcome: steps.OutcomeSuccess}},
		{Lines: []string{"### Rebooting ###", "### Done! ###"}, Events: []steps.Event{
			{Type: steps.EventPhase, Phase: steps.PhaseConnect, State: steps.StateRunning},
			{Type: steps.EventLine, Phase: steps.PhaseConnect, Text: "### Uploading install SSH keys ###"},
			{Type: steps.EventPhase, Phase: steps.PhaseConnect, State: steps.StateDone},
			{Type: steps.EventPhase, Phase: steps.PhaseReboot, State: steps.StateRunning},
			{Type: steps.EventLine, Phase: steps.PhaseReboot, Text: "### Rebooting ###"},
		}, Result: runner.Result{Outcome: steps.OutcomeSuccess}},
	}
	w.Reboot = func(o sshexec.RebootOptions) (sshexec.RebootReport, error) {
		return sshexec.RebootReport{HostKey: sshexec.HostKeyInfo{Fingerprint: "SHA256:kept"}, NixOSVersion: "25.11", SystemState: "running"}, nil
	}
	plan, err := steps.NewPlan(cfg, steps.PlanEnv{TargetRAM: 24 * steps.GiB})
	if err != nil {
		t.Fatal(err)
	}
	return w, cfg, plan, a
}

// calledInOrder checks that calls holds each of want (by prefix), in order.
func calledInOrder(t *testing.T, calls, want []string) {
	t.Helper()
	i := 0
	for _, c := range calls {
		if i < len(want) && strings.HasPrefix(c, want[i]) {
			i++
		}
	}
	if i < len(want) {
		t.Fatalf("calls %q\nlack %q (in this order: %q)", calls, want[i], want)
	}
}

// TestReinstallInstallRestoresBeforeTheReboot: the reinstall's install runs
// nixos-anywhere without its reboot, restores into the installer's /mnt as
// root with no services stopped, and only then runs the reboot phase alone
// and verifies the new system; the receipt records the restored backup and
// the reboot, the events are those of one install.
func TestReinstallInstallRestoresBeforeTheReboot(t *testing.T) {
	w, cfg, plan, a := reinstallWorld(t)
	w.Restore = func(_ context.Context, _ reinstall.Archive, o reinstall.RestoreOptions) (reinstall.RestoreResult, error) {
		return reinstall.RestoreResult{Entries: 5, Bytes: 4}, nil
	}
	e := engine.New(w.World())
	var mu sync.Mutex
	var evs []steps.Event
	f := &stages{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	log := w.Dir + "/reinstall.log"
	res, restored, err := e.ReinstallInstall(ctx, engine.InstallRequest{Config: cfg, Plan: plan, Log: log, StateKnown: true},
		a, engine.ReinstallOptions{Services: []string{"app.service"}}, f, func(ev steps.Event) { mu.Lock(); evs = append(evs, ev); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != steps.OutcomeSuccess || restored == nil || restored.Result.Entries != 5 || res.HostKeyFingerprint != "SHA256:kept" {
		t.Fatalf("result %+v, restored %+v", res, restored)
	}
	calls := w.Calls()
	calledInOrder(t, calls, []string{
		"child true --flake .#vps-arm --extra-files",
		"dial root@203.0.113.7",
		"restore root /mnt/persistent another=true services=",
		"child true --flake .#vps-arm --build-on remote --phases reboot root@203.0.113.7",
		"verify root@203.0.113.7",
		"receipt 203.0.113.7",
	})
	if !strings.Contains(calls[1], "--phases kexec,disko,install ") || strings.Contains(calls[1], "reboot") {
		t.Errorf("the install ran with its reboot: %s", calls[1])
	}
	for _, c := range calls {
		if strings.HasPrefix(c, "restore ") && !strings.HasSuffix(c, "services=") {
			t.Errorf("units were stopped in the installer: %s", c)
		}
	}
	rec, ok := w.Receipt(cfg.Host)
	if !ok || rec.Outcome != steps.OutcomeSuccess || len(rec.Backups) != 1 || !rec.Backups[0].Restored || !strings.Contains(strings.Join(rec.Argv, " "), "--phases kexec,disko,install") {
		t.Fatalf("receipt %+v", rec)
	}
	var rebootDone bool
	for _, p := range rec.Phases {
		rebootDone = rebootDone || p.Phase == steps.PhaseReboot && p.State == steps.StateDone
	}
	if !rebootDone {
		t.Errorf("the receipt does not record the verified reboot: %+v", rec.Phases)
	}
	// One install's events: the second run's login is the reboot's, and
	// the result comes once, at the end.
	connects, results := 0, 0
	for _, ev := range evs {
		if ev.Type == steps.EventPhase && ev.Phase == steps.PhaseConnect && ev.State == steps.StateRunning {
			connects++
		}
		if ev.Type == steps.EventResult {
			results++
		}
	}
	if connects != 1 || results != 1 || evs[len(evs)-1].Type != steps.EventResult || evs[len(evs)-1].Outcome != steps.OutcomeSuccess {
		t.Errorf("%d connect starts, %d results, last %+v", connects, results, evs[len(evs)-1])
	}
	if f.progress == 0 || f.ends != 1 || len(f.texts) != 3 || !strings.Contains(f.texts[0], "/mnt/persistent, before the first boot") || !strings.Contains(f.texts[2], "first boot has the restored /persistent") {
		t.Errorf("stages %q, progress %d, ends %d", f.texts, f.progress, f.ends)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	tr := string(b)
	stop, restoredAt, verified := strings.Index(tr, "bigbang: nixos-anywhere stopped before its reboot"), strings.Index(tr, "bigbang: Restored and compared"), strings.Index(tr, "bigbang: reboot verified")
	if stop < 0 || restoredAt < stop || strings.Index(tr, "### Rebooting ###") < restoredAt || verified < restoredAt {
		t.Errorf("transcript out of order:\n%s", tr)
	}
}

// TestReinstallInstallRestoreFails: a restore into the installer that
// fails stops before the reboot; the result says the machine is installed
// and not rebooted, resumes with the reboot phase alone and gives the
// restore after the boot; the receipt says the reboot did not run.
func TestReinstallInstallRestoreFails(t *testing.T) {
	w, cfg, plan, a := reinstallWorld(t)
	w.Reboot = nil
	w.Restore = func(context.Context, reinstall.Archive, reinstall.RestoreOptions) (reinstall.RestoreResult, error) {
		return reinstall.RestoreResult{}, fmt.Errorf("restore: %w: tar: exit status 2", reinstall.ErrRestoreIncomplete)
	}
	e := engine.New(w.World())
	res, restored, err := e.ReinstallInstall(context.Background(), engine.InstallRequest{Config: cfg, Plan: plan, Log: w.Dir + "/r.log", StateKnown: true, Resume: engine.ResumeStyle{Script: true}},
		a, engine.ReinstallOptions{Services: []string{"app.service"}}, &stages{}, func(steps.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if restored != nil || res.Outcome != steps.OutcomeFailed || res.FailedPhase != steps.PhaseReboot || res.Diagnosis == nil || res.Diagnosis.ID != engine.DiagnosisRestoreBeforeBoot {
		t.Fatalf("result %+v", res)
	}
	for _, want := range []string{"not reboot", "still runs the NixOS installer", "tar: exit status 2"} {
		if !strings.Contains(res.Diagnosis.Summary, want) {
			t.Errorf("the diagnosis lacks %q: %s", want, res.Diagnosis.Summary)
		}
	}
	if want := "bigbang reinstall --host 203.0.113.7 --user root --service app.service --restore " + a.Path; !strings.Contains(res.Diagnosis.Remedy, want) {
		t.Errorf("the remedy lacks %q: %s", want, res.Diagnosis.Remedy)
	}
	if !strings.Contains(res.Resume, "--phases reboot") || !strings.Contains(res.Resume, "--skip-preflight") {
		t.Errorf("resume %q", res.Resume)
	}
	for _, c := range w.Calls() {
		if strings.Contains(c, "--phases reboot") || strings.HasPrefix(c, "verify") {
			t.Errorf("rebooted after a failed restore: %s", c)
		}
	}
	rec, _ := w.Receipt(cfg.Host)
	if rec.Outcome != steps.OutcomeFailed || rec.FailedPhase != steps.PhaseReboot || rec.Backups[0].Restored {
		t.Errorf("receipt %+v", rec)
	}
	if got := res.Words(true); !strings.Contains(got, "not rebooted") {
		t.Errorf("words %q", got)
	}
}

// TestBackupStopsUnits: the named units are stopped before the backup and
// started again when it is interrupted; a verified backup leaves them
// stopped and says so.
func TestBackupStopsUnits(t *testing.T) {
	for _, interrupted := range []bool{true, false} {
		t.Run(fmt.Sprint("interrupted=", interrupted), func(t *testing.T) {
			w, cfg := enginetest.A1World(t, t.TempDir())
			var cmds []string
			w.Remote = func(cmd string, _ io.Writer) error {
				cmds = append(cmds, cmd)
				return nil
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w.Backup = func(ctx context.Context, o reinstall.BackupOptions) (reinstall.Archive, error) {
				if interrupted {
					cancel()
					return reinstall.Archive{}, fmt.Errorf("backup: interrupted: %w", ctx.Err())
				}
				return reinstall.Archive{Path: "/b/x.tar.zst"}, nil
			}
			e := engine.New(w.World())
			_, notes, err := e.Backup(ctx, cfg, engine.DialPolicy{}, engine.ReinstallOptions{Services: []string{"app.service", "my db.service"}, BackupDir: w.Dir}, nil)
			want := []string{"sudo -n systemctl stop -- app.service 'my db.service'"}
			if interrupted {
				want = append(want, "sudo -n systemctl start -- app.service 'my db.service'")
				if err == nil || !strings.Contains(err.Error(), "Started app.service, my db.service again") || !errors.Is(err, context.Canceled) {
					t.Errorf("error %v", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if strings.Join(cmds, "\n") != strings.Join(want, "\n") {
				t.Errorf("remote commands %q, want %q", cmds, want)
			}
			if len(notes) == 0 || !strings.Contains(notes[0], "Stopped app.service, my db.service") {
				t.Errorf("notes %q", notes)
			}
			calledInOrder(t, w.Calls(), []string{"dial opc@", "run sudo -n systemctl stop", "backup "})
		})
	}
}

// offerFront answers the offer of a backup that saw writes.
type offerFront struct {
	stages
	units []string
	asked []engine.UnitsQuestion
}

func (o *offerFront) StopUnits(_ context.Context, q engine.UnitsQuestion) ([]string, error) {
	o.asked = append(o.asked, q)
	return o.units, nil
}

// TestBackupOffering: a backup whose source changed while it was read
// offers to stop units; the units named are stopped and the backup taken
// again (they stay stopped); none named keeps the refusal, with the advice
// of --service; units given with --service are not asked about.
func TestBackupOffering(t *testing.T) {
	for _, tc := range []struct {
		name     string
		given    []string // --service
		answer   []string
		wantAsk  bool
		wantErr  string
		wantCmds []string
		want     []string // the units stopped for the verified backup
	}{
		{name: "the units named are stopped, the backup taken again", answer: []string{"app.service"}, wantAsk: true,
			wantCmds: []string{"sudo -n systemctl stop -- app.service"}, want: []string{"app.service"}},
		{name: "none named: refused with the advice", wantAsk: true, wantErr: "--service UNIT"},
		{name: "--service: stopped first, nothing asked", given: []string{"app.service"},
			wantCmds: []string{"sudo -n systemctl stop -- app.service"}, want: []string{"app.service"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, cfg := enginetest.A1World(t, t.TempDir())
			var cmds []string
			w.Remote = func(cmd string, _ io.Writer) error {
				cmds = append(cmds, cmd)
				return nil
			}
			w.Backup = func(ctx context.Context, o reinstall.BackupOptions) (reinstall.Archive, error) {
				// The source changes under the backup while nothing is
				// stopped.
				if len(cmds) == 0 {
					return reinstall.Archive{}, &reinstall.IncompleteError{Path: "/b/x.incomplete", Err: fmt.Errorf("%w: stop the services writing to them", reinstall.ErrChanging)}
				}
				return reinstall.Archive{Path: "/b/x.tar.zst"}, nil
			}
			f := &offerFront{units: tc.answer}
			e := engine.New(w.World())
			a, _, units, err := e.BackupOffering(context.Background(), cfg, engine.DialPolicy{}, engine.ReinstallOptions{Services: tc.given, BackupDir: w.Dir}, f)
			if (len(f.asked) > 0) != tc.wantAsk {
				t.Errorf("asked %+v", f.asked)
			}
			if tc.wantAsk && (f.asked[0].Source != "/persistent" || !errors.Is(f.asked[0].Why, reinstall.ErrChanging)) {
				t.Errorf("question %+v", f.asked[0])
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || a.Path != "" {
					t.Fatalf("error %v, archive %q", err, a.Path)
				}
				return
			}
			if err != nil || a.Path != "/b/x.tar.zst" {
				t.Fatalf("error %v, archive %q", err, a.Path)
			}
			if strings.Join(cmds, "\n") != strings.Join(tc.wantCmds, "\n") || strings.Join(units, ",") != strings.Join(tc.want, ",") {
				t.Errorf("remote commands %q, stopped %q", cmds, units)
			}
		})
	}
}
