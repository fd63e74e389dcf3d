package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/steps/runner"
)

// DiagnosisRebootUnverified is the diagnosis of an install whose new
// system could not be verified: the extra-files tree held no pre-generated
// host key to compare with. Its key was neither checked nor pinned, and
// running the install again cannot help.
const DiagnosisRebootUnverified = "reboot.unverified"

// Install runs nixos-anywhere under the runner and then proves the new
// system: it waits for it and pins the pre-generated host key. The result
// and the reboot's "done" are held back until then. Whatever the outcome,
// once nixos-anywhere has run, the receipt is written and bigbang's own
// lines (the exit status, the verification) end the transcript, so that
// `bigbang explain` on it agrees with this result. The error is for an
// install that could not start.
func (e *Engine) Install(ctx context.Context, req InstallRequest, sink steps.Sink) (InstallResult, error) {
	if phases, _ := steps.ParsePhases(req.Config.Phases); len(phases) > 0 && !req.StateKnown {
		// A resume fits the machine as it is now, from every front end.
		state := e.Probe(ctx, req.Config, req.Flake)
		verifyOnly, err := resumePlan(state, phases, req.Config.Host)
		switch {
		case err != nil:
			return InstallResult{}, err
		case verifyOnly:
			return e.VerifyOnly(ctx, req, state, sink)
		}
	}
	unlock, err := e.lock(req.Config.Target(), "install")
	if err != nil {
		return InstallResult{}, fmt.Errorf("%w; nothing was started", err)
	}
	defer unlock()
	r, err := e.runChild(ctx, req, sink)
	if err != nil {
		return r.out, err
	}
	return e.finish(ctx, req, r.out, r.phases, r.logErr, r.tr, sink, r.verdict.Result())
}

// childRun is one run of nixos-anywhere, before bigbang's verdict: how it
// ended, its phases, and the held result.
type childRun struct {
	out     InstallResult
	phases  []runner.PhaseTime
	logErr  error
	tr      *transcript
	verdict *runner.Verdict
}

// runChild runs req's plan under the runner, holding the result and the
// reboot's "done" back, and adds the exit status to the transcript. The
// error is for a run that could not start (nothing ran; the held result
// is released).
func (e *Engine) runChild(ctx context.Context, req InstallRequest, sink steps.Sink) (childRun, error) {
	r := childRun{tr: &transcript{path: req.Log}, verdict: runner.HoldVerdict(sink)}
	opts := runner.Options{Argv: req.Plan.Argv, LogPath: req.Log, Phases: req.Plan.Phases, Login: req.Plan.Target,
		RebootDeadline: e.RebootTimeout}
	if opts.RebootDeadline == 0 {
		opts.RebootDeadline = sshexec.DefaultRebootTimeout
	}
	if e.Stall > 0 {
		opts.DefaultStall = e.Stall
	}
	res, err := e.World.Child.Run(ctx, opts, r.verdict.Emit)
	out := InstallResult{Outcome: res.Outcome, FailedPhase: res.FailedPhase, Diagnosis: res.Diagnosis, Log: res.Log, ExitCode: res.ExitCode}
	if out.Log == "" {
		out.Log = req.Log
	}
	r.out, r.phases, r.logErr = out, res.Phases, res.LogErr
	if err != nil {
		// Nothing ran: no receipt either.
		r.verdict.Release()
		return r, err
	}
	if out.Outcome == steps.OutcomeSuccess && lastRan(res.Phases) == "" {
		// A clean exit with none of nixos-anywhere's steps is not an
		// install: nothing says the disk was touched, nor that it was not.
		out.Outcome, out.FailedPhase = steps.OutcomeFailed, steps.PhaseConnect
		out.Diagnosis = &steps.Diagnosis{ID: "no-steps",
			Summary: fmt.Sprintf("%s exited 0 without printing any step of nixos-anywhere: it did not install anything bigbang can see", req.Plan.Argv[0]),
			Remedy:  "check --nixos-anywhere: it must run nixos-anywhere 1.13.0 (or leave it out for the pinned one); then run the install again"}
		if len(req.Plan.Phases) > 0 {
			out.FailedPhase = req.Plan.Phases[0]
		}
	}
	out.Diagnosis = knownTried(out.Diagnosis, req.Plan)
	if res.Outcome == steps.OutcomeAborted {
		r.tr.line("bigbang: interrupted by the operator")
	} else {
		r.tr.line(fmt.Sprintf("bigbang: exit status %d", res.ExitCode))
	}
	r.out = out
	return r, nil
}

// finish proves the new system when the run got to the reboot, writes the
// receipt and bigbang's lines, and sends the held reboot end and result.
func (e *Engine) finish(ctx context.Context, req InstallRequest, out InstallResult, phases []runner.PhaseTime, logErr error,
	tr *transcript, emit steps.Sink, result steps.Event) (InstallResult, error) {
	line := func(s string) {
		tr.line(s)
		emit(steps.Event{Time: time.Now(), Type: steps.EventLine, Phase: steps.PhaseReboot, Text: s})
	}
	var rebootEnd steps.PhaseState // how the reboot phase ends; "" when it did not run
	if out.Outcome == steps.OutcomeSuccess && req.Plan.Runs(steps.PhaseReboot) {
		rebootEnd = e.verify(ctx, req, &out, line)
		phases = endPhase(phases, steps.PhaseReboot, rebootEnd, time.Now())
	}
	if logErr != nil {
		out.Notes = append(out.Notes, "the transcript is incomplete: "+logErr.Error())
	}
	if p := req.Config.HardwareConfigPath; p != "" {
		if _, err := os.Stat(p); err == nil {
			out.Notes = append(out.Notes, "nixos-anywhere wrote the machine's hardware configuration to "+p+" (and git add --intent-to-add): review it and commit it with the flake")
		}
	}
	if tr.err != nil {
		out.Notes = append(out.Notes, "bigbang's own lines could not be added to the transcript: "+tr.err.Error())
	}
	if p, werr := e.World.Receipts.Write(e.installReceipt(req, out, phases)); werr != nil {
		out.Notes = append(out.Notes, "the receipt of this install could not be written: "+werr.Error())
	} else {
		out.Receipt = p
	}
	notePhase := out.FailedPhase
	if notePhase == "" {
		notePhase = lastRan(phases)
	}
	for _, n := range out.Notes {
		emit(steps.Event{Time: time.Now(), Type: steps.EventLine, Phase: notePhase, Text: "bigbang: " + n})
	}
	if rebootEnd != "" {
		emit(steps.Event{Time: time.Now(), Type: steps.EventPhase, Phase: steps.PhaseReboot, State: rebootEnd})
	}
	if out.Outcome != steps.OutcomeSuccess && (out.Diagnosis == nil || out.Diagnosis.ID != DiagnosisRebootUnverified) {
		cfg := req.Config
		// The resumed run appends to this run's transcript, and waits for
		// the new system where this one did (the flake's port, which a
		// resume without the preflight would not know).
		cfg.Log = out.Log
		if p := RebootPort(cfg, req.Flake); p != 22 {
			cfg.RebootPort = p
		}
		out.Resume = ResumeCommand(e.Command, cfg, req.Plan, out.FailedPhase, req.Resume)
	}
	result.Type = steps.EventResult
	result.Time = time.Now()
	result.Outcome, result.FailedPhase, result.Diagnosis, result.Log, result.ExitCode = out.Outcome, out.FailedPhase, out.Diagnosis, out.Log, out.ExitCode
	result.Resume = out.Resume
	emit(result)
	return out, nil
}

// lastRan is the phase that started last.
func lastRan(ps []runner.PhaseTime) steps.PhaseID {
	var last steps.PhaseID
	var at time.Time
	for _, p := range ps {
		if !p.Start.IsZero() && !p.Start.Before(at) {
			last, at = p.Phase, p.Start
		}
	}
	return last
}

// VerifyOnly is the resume of an install whose nixos-anywhere run is done
// and whose machine rebooted (or is rebooting): no nixos-anywhere, no
// reboot, only the wait for the new system and its proof, the receipt and
// the result.
func (e *Engine) VerifyOnly(ctx context.Context, req InstallRequest, state MachineState, sink steps.Sink) (InstallResult, error) {
	unlock, err := e.lock(req.Config.Target(), "verification")
	if err != nil {
		return InstallResult{}, err
	}
	defer unlock()
	if _, err := checkLog(req.Log); err != nil {
		return InstallResult{}, err
	}
	lf, err := runner.OpenLog(req.Log)
	if err != nil {
		return InstallResult{}, err
	}
	lf.Close()
	tr := &transcript{path: req.Log}
	tr.line(fmt.Sprintf("bigbang: resumed: %s %s; verifying the new system only (nixos-anywhere does not run, nothing reboots)", req.Config.Host, state.Words()))
	start := time.Now()
	sink(steps.Event{Time: start, Type: steps.EventPhase, Phase: steps.PhaseReboot, State: steps.StateRunning})
	out := InstallResult{Outcome: steps.OutcomeSuccess, Log: req.Log}
	return e.finish(ctx, req, out, []runner.PhaseTime{{Phase: steps.PhaseReboot, State: steps.StateRunning, Start: start}}, nil, tr, sink, steps.Event{})
}

// knownTried fits a diagnosis to what this run already tried: a remedy
// that names what the plan did is replaced by the next thing to try.
func knownTried(d *steps.Diagnosis, plan steps.Plan) *steps.Diagnosis {
	if d == nil {
		return nil
	}
	out := *d
	switch {
	case d.ID == "cross-build" && plan.BuildOn == "remote":
		out.Summary = "The build needs a builder for the target's system, and it already ran on the target (--build-on remote): the target itself could not build it."
		out.Remedy = "Read the first 'error:' lines above the failure: a target that cannot build its own system usually lacks memory or disk for the build (a bigger shape, or swap on the installer), or the flake's system is not the target's architecture (nixpkgs.hostPlatform)."
	case strings.Contains(d.Remedy, "--debug") && slices.Contains(plan.Argv, "--debug"):
		out.Remedy += " (this run already had --debug: the + trace lines before the failure show the failing command)"
	}
	return &out
}

// endPhase records how phase ended in a run's phase list.
func endPhase(ps []runner.PhaseTime, phase steps.PhaseID, state steps.PhaseState, at time.Time) []runner.PhaseTime {
	out := append([]runner.PhaseTime(nil), ps...)
	for i := range out {
		if out[i].Phase == phase {
			out[i].State, out[i].End = state, at
			return out
		}
	}
	return append(out, runner.PhaseTime{Phase: phase, State: state, End: at})
}

// transcript appends bigbang's own lines to the transcript file after the
// runner has closed it.
type transcript struct {
	path string
	err  error
}

func (t *transcript) line(s string) {
	if t.path == "" || t.err != nil {
		return
	}
	f, err := os.OpenFile(t.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.err = err
		return
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		t.err = err
	}
	if err := f.Close(); err != nil && t.err == nil {
		t.err = err
	}
}

// unverifiedDiagnosis is the reboot's failure when the extra-files tree
// holds no pre-generated host key: nixos-anywhere finished, but nothing
// proves that the machine that comes back is the one installed, and its
// key was neither checked nor pinned.
func unverifiedDiagnosis(cfg steps.Config, port int, keyFile string) *steps.Diagnosis {
	t := cfg.Target().WithPort(port)
	scan := []string{"ssh-keyscan", t.Host}
	if t.Port != 22 && t.Port != 0 {
		scan = []string{"ssh-keyscan", "-p", fmt.Sprint(t.Port), t.Host}
	}
	return &steps.Diagnosis{ID: DiagnosisRebootUnverified,
		Summary: "nixos-anywhere finished, but the new system's host key was NOT verified and NOT pinned: there is no pre-generated host key at " + keyFile + " to compare it with",
		Remedy: "do not run the install again. Compare the new system's fingerprint (" + steps.ShellJoin(scan) +
			" | ssh-keygen -lf -) with the provider's console, remove the installer's old key with: " + ForgetHostKeyCommand(cfg) +
			", then connect with: " + sshCommand(t) + "; next time generate the host key first with: bigbang keys"}
}

// verify waits for the new system after nixos-anywhere's reboot and pins
// its host key, the pre-generated one of the extra-files tree. It updates
// out and returns the reboot phase's final state.
func (e *Engine) verify(ctx context.Context, req InstallRequest, out *InstallResult, line func(string)) steps.PhaseState {
	cfg := req.Config
	keyFile := sshexec.ExpectedHostKeyFile(cfg.ExtraFiles)
	want, kerr := sshexec.ReadExpectedHostKey(keyFile)
	if kerr != nil {
		// Without the shipped key there is nothing to prove the new
		// system against: bigbang does not call that a success, and it
		// does not trust whatever key answers now.
		out.Outcome, out.FailedPhase = steps.OutcomeFailed, steps.PhaseReboot
		out.Diagnosis = unverifiedDiagnosis(cfg, RebootPort(cfg, req.Flake), keyFile)
		line("bigbang: reboot failed: " + out.Diagnosis.ID + ": " + out.Diagnosis.Summary)
		line("bigbang: " + out.Diagnosis.Remedy)
		return steps.StateFailed
	}
	port := RebootPort(cfg, req.Flake)
	line(fmt.Sprintf("bigbang: waiting for %s to come back on port %d with the host key from %s…", cfg.Host, port, keyFile))
	target := SSHTarget(cfg)
	target.User, target.Port = "root", port
	if port == 22 {
		target.Port = 0
	}
	rep, err := e.World.Dialer.VerifyReboot(ctx, sshexec.RebootOptions{
		Target:          target,
		ExpectedHostKey: want,
		KnownHosts:      cfg.KnownHosts,
		Timeout:         e.RebootTimeout,
		AgentSocket:     e.World.AgentSocket,
	})
	switch {
	case err != nil && ctx.Err() != nil:
		// The operator stopped bigbang (Ctrl+C) while it waited: that is
		// an interruption, not a failed machine.
		out.Outcome, out.FailedPhase = steps.OutcomeAborted, steps.PhaseReboot
		out.Diagnosis = &steps.Diagnosis{ID: "reboot.interrupted",
			Summary: "stopped while waiting for the new system; nixos-anywhere had finished and the machine was rebooting",
			Remedy:  "check the new system with: bigbang status --host " + steps.ShellQuote(cfg.Host)}
		line("bigbang: interrupted by the operator while waiting for the new system")
		return steps.StateFailed
	case err != nil:
		out.Outcome, out.FailedPhase = steps.OutcomeFailed, steps.PhaseReboot
		out.Diagnosis = rebootDiagnosis(err, cfg.Host)
		line("bigbang: reboot failed: " + out.Diagnosis.ID + ": " + out.Diagnosis.Summary)
		return steps.StateFailed
	}
	line("bigbang: reboot verified: host key " + rep.HostKey.Fingerprint)
	line(rebootLine(rep))
	out.HostKeyFingerprint = rep.HostKey.Fingerprint
	out.SSHCommand = sshCommand(cfg.Target().WithPort(port))
	return steps.StateDone
}

// rebootDiagnosis turns a failed verification into what happened and what
// to do; sshexec's errors carry both.
func rebootDiagnosis(err error, host string) *steps.Diagnosis {
	status := "bigbang status --host " + steps.ShellQuote(host)
	d := &steps.Diagnosis{ID: "reboot.verify", Summary: err.Error(),
		Remedy: "open the provider's console: check that the machine booted NixOS and has network; then run " + status}
	var se *sshexec.Error
	if errors.As(err, &se) && se.Fix != "" {
		d.Summary, d.Remedy = se.Summary, se.Fix+"; then run "+status
	}
	return d
}

// rebootLine says what the new system showed. nixos-version and
// systemctl may be missing or say nothing; the line then says what is
// known rather than leave blanks.
func rebootLine(rep sshexec.RebootReport) string {
	if rep.NixOSVersion != "" && rep.SystemState != "" {
		return fmt.Sprintf("bigbang: NixOS %s is up (%s); host key %s matches", rep.NixOSVersion, rep.SystemState, rep.HostKey.Fingerprint)
	}
	parts := []string{"bigbang: the new system answered with the expected host key " + rep.HostKey.Fingerprint}
	if rep.NixOSVersion == "" {
		parts = append(parts, "nixos-version is not available")
	} else {
		parts = append(parts, "it runs NixOS "+rep.NixOSVersion)
	}
	if rep.SystemState == "" {
		parts = append(parts, "systemctl is-system-running gave no answer")
	} else {
		parts = append(parts, "systemctl is-system-running says "+rep.SystemState)
	}
	return strings.Join(parts, "; ")
}

// installReceipt is the record of an install: the target, the flake and
// its revision and disko layout (when the preflight evaluated it), the
// verified host key, the phases' times and the transcript. The backups of
// an earlier receipt of the host are kept.
func (e *Engine) installReceipt(req InstallRequest, out InstallResult, phases []runner.PhaseTime) receipt.Receipt {
	cfg := req.Config
	r := receipt.Receipt{
		Host: cfg.Host, User: cfg.User, Port: cfg.Port, Identity: cfg.Identity, InstalledAt: e.now().UTC(),
		Flake: cfg.Flake, ExtraFiles: cfg.ExtraFiles, BuildOn: req.Plan.BuildOn,
		HostKeyFingerprint: out.HostKeyFingerprint, Phases: phaseTimes(phases), Log: out.Log, Disko: req.Layout,
		Outcome: out.Outcome, FailedPhase: out.FailedPhase, Argv: req.Plan.Argv,
	}
	if out.Outcome == steps.OutcomeSuccess && out.HostKeyFingerprint != "" {
		r.Login = &receipt.Login{User: "root", Port: RebootPort(cfg, req.Flake)}
	}
	if info := req.Flake; info != nil {
		r.System = info.Config.System
		if info.Config.Revision != nil {
			r.FlakeRevision = *info.Config.Revision
		}
		if r.Disko == nil {
			r.Disko = reinstall.FromDisko(info.Config.Disko)
		}
	}
	if old, err := e.World.Receipts.Read(cfg.Target()); err == nil && old.Reaches(cfg.Port) {
		r.Backups = old.Backups
	}
	return r
}

// phaseTimes are the receipt's phase times from the runner's.
func phaseTimes(ps []runner.PhaseTime) []receipt.PhaseTime {
	out := []receipt.PhaseTime{}
	for _, p := range ps {
		pt := receipt.PhaseTime{Phase: p.Phase, State: p.State}
		if !p.Start.IsZero() && p.End.After(p.Start) {
			pt.Seconds = p.End.Sub(p.Start).Round(time.Millisecond).Seconds()
		}
		out = append(out, pt)
	}
	return out
}
