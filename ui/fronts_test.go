package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/engine/enginetest"
	"github.com/bigbang-nix/bigbang/steps/runner"
	"github.com/bigbang-nix/bigbang/ui/linear"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

// TestThreeFrontEndsOneRun runs the same install through the plain, the
// JSON and the accessible front end over the same fake world: the three
// are renderings of one engine run, so the outcome, the failed phase, the
// diagnosis, the resume command and the phases each one shows agree.
func TestThreeFrontEndsOneRun(t *testing.T) {
	type world func(w *enginetest.Fake)
	failDisko := func(w *enginetest.Fake) {
		w.Child.Events = []steps.Event{
			{Type: steps.EventPhase, Phase: steps.PhaseConnect, State: steps.StateRunning},
			{Type: steps.EventPhase, Phase: steps.PhaseConnect, State: steps.StateDone},
			{Type: steps.EventPhase, Phase: steps.PhaseDisko, State: steps.StateRunning},
			{Type: steps.EventLine, Phase: steps.PhaseDisko, Text: "Could not create partition 2"},
			{Type: steps.EventPhase, Phase: steps.PhaseDisko, State: steps.StateFailed},
		}
		w.Child.Result = runner.Result{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseDisko, ExitCode: 1,
			Diagnosis: &steps.Diagnosis{ID: "disko.partition", Summary: "the layout does not fit", Remedy: "check disko.nix"}}
	}
	verified := func(w *enginetest.Fake) {
		w.Reboot = func(sshexec.RebootOptions) (sshexec.RebootReport, error) {
			return sshexec.RebootReport{HostKey: sshexec.HostKeyInfo{Fingerprint: "SHA256:new"}, NixOSVersion: "25.11", SystemState: "running"}, nil
		}
		w.Child.Events = []steps.Event{
			{Type: steps.EventPhase, Phase: steps.PhaseConnect, State: steps.StateRunning},
			{Type: steps.EventPhase, Phase: steps.PhaseConnect, State: steps.StateDone},
			{Type: steps.EventPhase, Phase: steps.PhaseReboot, State: steps.StateRunning},
		}
	}
	countdownTick = time.Millisecond
	t.Cleanup(func() { countdownTick = time.Second })
	for _, tc := range []struct {
		name  string
		world world
	}{{"disko fails", failDisko}, {"success", verified}} {
		t.Run(tc.name, func(t *testing.T) {
			type got struct {
				res    engine.InstallResult
				output string
			}
			runs := map[string]got{}
			dir := t.TempDir()
			for _, front := range []string{"plain", "json", "accessible"} {
				w, cfg := enginetest.A1World(t, dir)
				tc.world(w)
				e := engine.New(w.World())
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				var out bytes.Buffer
				var res engine.InstallResult
				var err error
				switch front {
				case "accessible":
					res, err = RunAccessible(ctx, Options{Config: cfg, Engine: e, Auto: true}, strings.NewReader(""), &out)
				default:
					f := &linear.Front{Out: &out, Err: &bytes.Buffer{}, JSON: front == "json", Confirmed: true}
					res, err = e.RunInstall(ctx, engine.Script{Config: cfg}, f)
				}
				cancel()
				if err != nil {
					t.Fatalf("%s: %v\n%s", front, err, out.String())
				}
				runs[front] = got{res, out.String()}
			}
			p, j, a := runs["plain"], runs["json"], runs["accessible"]
			for name, r := range map[string]got{"json": j, "accessible": a} {
				if r.res.Outcome != p.res.Outcome || r.res.FailedPhase != p.res.FailedPhase || (r.res.Diagnosis == nil) != (p.res.Diagnosis == nil) ||
					r.res.Diagnosis != nil && r.res.Diagnosis.ID != p.res.Diagnosis.ID || r.res.HostKeyFingerprint != p.res.HostKeyFingerprint {
					t.Errorf("%s ended %+v, plain %+v", name, r.res, p.res)
				}
				if stripLog(r.res.Resume) != stripLog(p.res.Resume) {
					t.Errorf("%s resume %q, plain %q", name, r.res.Resume, p.res.Resume)
				}
			}
			// Each rendering shows the resume command the engine made.
			if p.res.Resume != "" {
				var last map[string]any
				lines := strings.Split(strings.TrimSpace(j.output), "\n")
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last["resume"] != j.res.Resume {
					t.Errorf("the JSON result %v does not carry the resume %q", last, j.res.Resume)
				}
				for name, r := range map[string]got{"plain": p, "accessible": a} {
					if !strings.Contains(r.output, "Resume with:   "+r.res.Resume) {
						t.Errorf("%s output lacks the resume %q:\n%s", name, r.res.Resume, r.output)
					}
				}
			}
			// After a failure plain, accessible and the TUI's exit summary
			// say the same of the server's state; after a success none
			// does.
			for _, f := range textout.MachineFields(steps.PhaseDisko, true) {
				for name, out := range map[string]string{"plain": p.output, "accessible": a.output, "exit summary": ExitSummary(p.res, nil)} {
					flat := strings.Join(strings.Fields(out), " ")
					if shown := strings.Contains(flat, f.Label) && strings.Contains(flat, strings.Join(strings.Fields(f.Text), " ")); shown != (p.res.Outcome == steps.OutcomeFailed) {
						t.Errorf("%s, outcome %s: %q (%s) shown %v:\n%s", name, p.res.Outcome, f.Label, f.Text, shown, out)
					}
				}
			}
			// The phases each one shows: plain and accessible use the same
			// renderer; JSON names them in its phase events.
			for _, ph := range []steps.PhaseID{steps.PhaseConnect} {
				if !strings.Contains(j.output, `"phase":"`+string(ph)+`"`) || !strings.Contains(p.output, ph.Title()) || !strings.Contains(a.output, ph.Title()) {
					t.Errorf("phase %s not shown by every front end", ph)
				}
			}
		})
	}
}

// stripLog drops the --log argument: each run has a transcript of its own.
func stripLog(cmd string) string {
	f := strings.Fields(cmd)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "--log" {
			f = append(f[:i], f[i+2:]...)
			break
		}
	}
	return strings.Join(f, " ")
}
