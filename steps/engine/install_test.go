package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/engine/enginetest"
	"github.com/bigbang-nix/bigbang/steps/runner"
	"github.com/bigbang-nix/bigbang/ui/linear"
)

// scenario is one way an install goes, in the fake world.
type scenario struct {
	name string
	// set changes the world and the configuration from the A1 default.
	set func(w *enginetest.Fake, cfg *steps.Config)
	// cancel stops the run once the child has started.
	cancel bool

	wantErr     error // errors.Is on RunInstall's error (nil: none)
	wantOutcome steps.Outcome
	wantPhase   steps.PhaseID
	wantDiag    string
	wantResume  string   // in the resume command ("" none expected)
	wantCalls   []string // port calls but the local checks (run alongside the dial), in order, by prefix
	wantLog     []string // bigbang's own lines at the end of the transcript
}

// childPhases are the events of a run whose phases up to last finish and
// last ends in state.
func childPhases(last steps.PhaseID, state steps.PhaseState) []steps.Event {
	var evs []steps.Event
	for _, p := range []steps.PhaseID{steps.PhaseConnect, steps.PhaseKexec, steps.PhaseDisko, steps.PhaseInstall, steps.PhaseKeys, steps.PhaseReboot} {
		evs = append(evs, steps.Event{Type: steps.EventPhase, Phase: p, State: steps.StateRunning},
			steps.Event{Type: steps.EventLine, Phase: p, Text: "### " + p.Title() + " ###"})
		if p == last {
			if state != steps.StateDone || p != steps.PhaseReboot {
				evs = append(evs, steps.Event{Type: steps.EventPhase, Phase: p, State: state})
			}
			return evs
		}
		evs = append(evs, steps.Event{Type: steps.EventPhase, Phase: p, State: steps.StateDone})
	}
	return evs
}

func scenarios() []scenario {
	verified := func(w *enginetest.Fake, cfg *steps.Config) {
		w.Reboot = func(o sshexec.RebootOptions) (sshexec.RebootReport, error) {
			return sshexec.RebootReport{HostKey: sshexec.HostKeyInfo{Fingerprint: "SHA256:new"}, NixOSVersion: "25.11", SystemState: "running"}, nil
		}
	}
	return []scenario{
		{name: "success: verified reboot", set: verified, wantOutcome: steps.OutcomeSuccess,
			wantCalls: []string{"dial opc@203.0.113.7", "child ", "verify root@203.0.113.7", "receipt 203.0.113.7"},
			wantLog:   []string{"bigbang: exit status 0", "bigbang: reboot verified: host key SHA256:new"}},
		{name: "disko fails", set: func(w *enginetest.Fake, cfg *steps.Config) {
			w.Child.Events = childPhases(steps.PhaseDisko, steps.StateFailed)
			w.Child.Result = runner.Result{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseDisko, ExitCode: 1,
				Diagnosis: &steps.Diagnosis{ID: "disko.partition", Summary: "the layout does not fit", Remedy: "check disko.nix"}}
		}, wantOutcome: steps.OutcomeFailed, wantPhase: steps.PhaseDisko, wantDiag: "disko.partition",
			wantResume: "--phases disko,install,keys,reboot --skip-preflight",
			wantCalls:  []string{"dial", "child ", "receipt"}, wantLog: []string{"bigbang: exit status 1"}},
		{name: "reboot not verified", set: func(w *enginetest.Fake, cfg *steps.Config) {
			w.Reboot = func(sshexec.RebootOptions) (sshexec.RebootReport, error) {
				return sshexec.RebootReport{}, &sshexec.Error{Kind: sshexec.ErrRebootTimeout, Summary: "did not come back within 10m0s", Fix: "open the serial console"}
			}
		}, wantOutcome: steps.OutcomeFailed, wantPhase: steps.PhaseReboot, wantDiag: "reboot.verify", wantResume: "--phases reboot",
			wantCalls: []string{"dial", "child ", "verify", "receipt"},
			wantLog:   []string{"bigbang: exit status 0", "bigbang: reboot failed: reboot.verify: did not come back within 10m0s"}},
		{name: "no shipped host key: unverifiable", set: func(w *enginetest.Fake, cfg *steps.Config) {
			cfg.ExtraFiles = w.Dir
		}, wantOutcome: steps.OutcomeFailed, wantPhase: steps.PhaseReboot, wantDiag: engine.DiagnosisRebootUnverified,
			wantCalls: []string{"dial", "child ", "receipt"}},
		{name: "interrupted", cancel: true, set: func(w *enginetest.Fake, cfg *steps.Config) {
			w.Child.Events = childPhases(steps.PhaseInstall, steps.StateRunning)
			w.Child.Block = true
			w.Child.Result = runner.Result{FailedPhase: steps.PhaseInstall, ExitCode: 130}
		}, wantOutcome: steps.OutcomeAborted, wantPhase: steps.PhaseInstall, wantResume: "--phases install,keys,reboot",
			wantCalls: []string{"dial", "child ", "receipt"}, wantLog: []string{"bigbang: interrupted by the operator"}},
		{name: "a command that prints no step is not an install", set: func(w *enginetest.Fake, cfg *steps.Config) {
			w.Child.Events = nil
		}, wantOutcome: steps.OutcomeFailed, wantPhase: steps.PhaseConnect, wantDiag: "no-steps",
			wantCalls: []string{"dial", "child ", "receipt"}, wantLog: []string{"bigbang: exit status 0"}},
		{name: "refused: too little RAM", set: func(w *enginetest.Fake, cfg *steps.Config) {
			w.Facts.MemTotalBytes, w.Facts.MemAvailableBytes = steps.GiB/2, steps.GiB/4
			w.Child = nil
		}, wantErr: &engine.Refusal{}, wantCalls: []string{"dial"}},
		{name: "refused: unknown host key", set: func(w *enginetest.Fake, cfg *steps.Config) {
			w.Known = false
			w.Child = nil
		}, wantErr: &engine.Refusal{}, wantCalls: []string{"dial"}},
	}
}

// world is the A1 VPS with a known host key and a successful child.
func world(t *testing.T, sc scenario) (*enginetest.Fake, steps.Config) {
	w, cfg := enginetest.A1World(t, t.TempDir())
	w.Child.Events = childPhases(steps.PhaseReboot, steps.StateDone)
	cfg.YesWipe = cfg.Host
	if sc.set != nil {
		sc.set(w, &cfg)
	}
	return w, cfg
}

// run drives the scenario through RunInstall with front.
func run(t *testing.T, sc scenario, front func(w *enginetest.Fake) engine.Front) (*enginetest.Fake, engine.InstallResult, error) {
	w, cfg := world(t, sc)
	e := engine.New(w.World())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if sc.cancel {
		go func() {
			for !strings.Contains(strings.Join(w.Calls(), "\n"), "child ") {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
		}()
	}
	res, err := e.RunInstall(ctx, engine.Script{Config: cfg, Resume: engine.ResumeStyle{Script: true}}, front(w))
	return w, res, err
}

// TestRunInstall is every outcome of the linear install over the fake
// world: what the result says, which ports were called in which order, and
// how the transcript ends.
func TestRunInstall(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			w, res, err := run(t, sc, func(*enginetest.Fake) engine.Front {
				return &linear.Front{Out: &out, Err: &errb, Confirmed: true}
			})
			var refusal *engine.Refusal
			switch {
			case sc.wantErr != nil:
				if !errors.As(err, &refusal) {
					t.Fatalf("error %v, want a refusal", err)
				}
			case err != nil:
				t.Fatalf("RunInstall: %v", err)
			}
			calls := w.Calls()
			if !strings.Contains(strings.Join(calls, "\n"), "local") {
				t.Errorf("the local checks did not run: %q", calls)
			}
			i := 0
			for _, c := range calls {
				if i < len(sc.wantCalls) && strings.HasPrefix(c, sc.wantCalls[i]) {
					i++
				}
			}
			if i != len(sc.wantCalls) || len(calls) < len(sc.wantCalls) {
				t.Errorf("calls %q, want in order %q", calls, sc.wantCalls)
			}
			if sc.wantErr != nil {
				if strings.Contains(strings.Join(calls, "\n"), "child ") {
					t.Error("a refused install ran nixos-anywhere")
				}
				return
			}
			if res.Outcome != sc.wantOutcome || res.FailedPhase != sc.wantPhase {
				t.Errorf("outcome %s/%s, want %s/%s", res.Outcome, res.FailedPhase, sc.wantOutcome, sc.wantPhase)
			}
			if sc.wantDiag != "" && (res.Diagnosis == nil || res.Diagnosis.ID != sc.wantDiag) {
				t.Errorf("diagnosis %+v, want %s", res.Diagnosis, sc.wantDiag)
			}
			if !strings.Contains(res.Resume, sc.wantResume) || (sc.wantResume == "") != (res.Resume == "") && sc.wantOutcome != steps.OutcomeFailed {
				t.Errorf("resume %q, want one with %q", res.Resume, sc.wantResume)
			}
			if sc.wantDiag == engine.DiagnosisRebootUnverified && res.Resume != "" {
				t.Errorf("an unverifiable install offers a resume: %q", res.Resume)
			}
			rec, ok := w.Receipt("203.0.113.7")
			if !ok {
				t.Fatal("no receipt written after nixos-anywhere ran")
			}
			// The receipt says how the run ended, and who reaches the new
			// system only once it was verified.
			if rec.Outcome != res.Outcome || rec.FailedPhase != res.FailedPhase ||
				(rec.Login != nil) != (res.Outcome == steps.OutcomeSuccess) || rec.Login != nil && (rec.Login.User != "root" || rec.Login.Port != 22) {
				t.Errorf("receipt outcome %s/%s login %+v for a run that ended %s/%s", rec.Outcome, rec.FailedPhase, rec.Login, res.Outcome, res.FailedPhase)
			}
			log, _ := os.ReadFile(res.Log)
			for _, l := range sc.wantLog {
				if !strings.Contains(string(log), l+"\n") {
					t.Errorf("transcript lacks %q:\n%s", l, log)
				}
			}
		})
	}
}

// TestRunInstallResultAfterVerification: the result event comes last,
// after the reboot's verification lines; the held "reboot done" comes
// only with the proof.
func TestRunInstallResultAfterVerification(t *testing.T) {
	var out bytes.Buffer
	sc := scenarios()[0]
	_, res, err := run(t, sc, func(*enginetest.Fake) engine.Front {
		return &linear.Front{Out: &out, Err: &bytes.Buffer{}, JSON: true, Confirmed: true}
	})
	if err != nil || res.Outcome != steps.OutcomeSuccess {
		t.Fatalf("%v %+v", err, res)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var types []string
	for _, l := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		s := e["type"].(string)
		if s == "phase" && e["phase"] == "reboot" {
			s = "phase:reboot:" + e["state"].(string)
		}
		if s == "line" && strings.Contains(e["text"].(string), "reboot verified") {
			s = "verified"
		}
		types = append(types, s)
	}
	joined := strings.Join(types, " ")
	if !strings.HasSuffix(joined, "verified line phase:reboot:done result") {
		t.Errorf("event order %s: want the verification, then the reboot done, then the result", joined)
	}
	if strings.Count(joined, "result") != 1 || strings.Count(joined, "phase:reboot:done") != 1 {
		t.Errorf("result or reboot done sent more than once: %s", joined)
	}
}

// TestProxyRefusedBeforeAnything: a target behind a ProxyJump is refused
// before anything runs, also with --skip-preflight: bigbang's own
// connections (the reboot check) could not follow it after the wipe.
func TestProxyRefusedBeforeAnything(t *testing.T) {
	w, cfg := world(t, scenario{})
	w.Child = nil
	cfg.SSHOptions = []string{"ProxyJump=bastion.example.org"}
	world := w.World()
	world.Resolve = sshexec.Resolve
	e := engine.New(world)
	var out, errb bytes.Buffer
	_, err := e.RunInstall(context.Background(), engine.Script{Config: cfg, SkipPreflight: true}, &linear.Front{Out: &out, Err: &errb, Confirmed: true})
	if !errors.Is(err, sshexec.ErrUnsupportedOption) || !strings.Contains(err.Error(), "nothing was started") {
		t.Fatalf("err %v, want the proxy refused before anything started", err)
	}
	if calls := w.Calls(); len(calls) != 0 {
		t.Errorf("something ran: %q", calls)
	}
}

// TestInstallResumeProbes: a resume started by a front end that runs the
// engine's steps itself (the wizard) is matched to the machine too: against
// the installed system, disko is never run again.
func TestInstallResumeProbes(t *testing.T) {
	w, cfg := world(t, scenario{})
	w.Child = nil // nixos-anywhere must not run
	cfg.Phases = "disko,install,reboot"
	e := engine.New(w.World())
	plan, err := steps.NewPlan(cfg, steps.PlanEnv{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Install(context.Background(), engine.InstallRequest{Config: cfg, Plan: plan, Log: filepath.Join(w.Dir, "run.log")}, func(steps.Event) {})
	if !errors.Is(err, engine.ErrResumeRefused) || !strings.Contains(err.Error(), "already runs the installed system") {
		t.Fatalf("err %v, want the resume refused against the installed system", err)
	}
}
