package engine

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/steps/runner"
)

// InstallerRoot is where the NixOS installer has the new system's file
// systems mounted after nixos-anywhere's install phase (nixos-install
// --root /mnt).
const InstallerRoot = "/mnt"

// DiagnosisRestoreBeforeBoot is the diagnosis of a reinstall whose restore
// into the installer failed: the new system is installed, the machine
// still runs the installer, nothing rebooted.
const DiagnosisRestoreBeforeBoot = "restore.before-boot"

// TransferFront is what the reinstall's install step tells besides the
// events: its stages and the restore's progress. Every Front is one.
type TransferFront interface {
	Stage(text string)
	Progress(p reinstall.Progress, done bool)
}

// ReinstallInstall is the install step of a reinstall, written once for
// every front end: nixos-anywhere without its reboot phase (--phases
// kexec,disko,install), the restore of the verified backup a into the
// installer's InstallerRoot (the new system's /persistent, numeric
// owners, compared with the archive), then nixos-anywhere's reboot phase
// alone and the verified reboot with the pinned key, and the receipt. The
// new system's first boot so already has its state. req.Plan is the
// whole install's plan; the events of both runs go to sink as one
// install's. A failed restore leaves the machine in the installer with
// the new system installed and not rebooted: the result says so, and its
// resume reboots it (the backup is then restored after the boot with
// `reinstall --restore`). Restored is nil unless the restore verified.
func (e *Engine) ReinstallInstall(ctx context.Context, req InstallRequest, a reinstall.Archive, o ReinstallOptions, f TransferFront, sink steps.Sink) (InstallResult, *Restored, error) {
	if req.Config.Phases != "" {
		return InstallResult{}, nil, errors.New("a reinstall runs every phase: leave --phases out (a failed reinstall prints the command that resumes it)")
	}
	first, reboot, err := SplitReboot(req.Config, req.Plan)
	if err != nil {
		return InstallResult{}, nil, err
	}
	unlock, err := e.lock(req.Config.Target(), "reinstall")
	if err != nil {
		return InstallResult{}, nil, fmt.Errorf("%w; nothing was started", err)
	}
	defer unlock()
	// The receipt and the resume are those of the whole install; the
	// receipt's command is the one that installed.
	whole := req
	whole.Plan.Argv = first.Argv
	r1req := req
	r1req.Plan = first
	r1, err := e.runChild(ctx, r1req, sink)
	if err != nil {
		return r1.out, nil, err
	}
	if r1.out.Outcome != steps.OutcomeSuccess {
		out, err := e.finish(ctx, whole, r1.out, r1.phases, r1.logErr, r1.tr, sink, r1.verdict.Result())
		return out, nil, err
	}
	cfg := req.Config
	source := orDefault(o.Source, a.Manifest.Source)
	into := path.Join(InstallerRoot, source)
	// bigbang's own lines in the transcript; the front ends show the
	// stages.
	line := r1.tr.line
	f.Stage(fmt.Sprintf("Restore of %s into %s:%s, before the first boot (the installer has the new system at %s; it becomes %s)",
		a.Path, cfg.Host, into, InstallerRoot, source))
	line(fmt.Sprintf("bigbang: nixos-anywhere stopped before its reboot; restoring %s into root@%s:%s before the first boot", a.Path, cfg.Host, into))
	restored, rerr := e.restoreInstaller(ctx, cfg, a, o, func(p reinstall.Progress) { f.Progress(p, false) })
	f.Progress(reinstall.Progress{}, true)
	if rerr != nil {
		out := r1.out
		out.Outcome, out.FailedPhase = steps.OutcomeFailed, steps.PhaseReboot
		if ctx.Err() != nil {
			out.Outcome = steps.OutcomeAborted
		}
		out.Diagnosis = &steps.Diagnosis{ID: DiagnosisRestoreBeforeBoot,
			Summary: fmt.Sprintf("the restore into the installer's %s did not complete, so bigbang did not reboot: %s has the new system installed and still runs the NixOS installer: %v", into, cfg.Host, rerr),
			Remedy: fmt.Sprintf("the backup is safe in %s. Finish the install with the resume command (nixos-anywhere's reboot phase alone, then the verified reboot), then restore the backup into the running system with: %s",
				a.Path, RestoreArchiveCommand(e.Command, cfg, RebootPort(cfg, req.Flake), a.Path, o))}
		line("bigbang: restore before the first boot failed: " + out.Diagnosis.Summary)
		out, err := e.finish(ctx, whole, out, r1.phases, r1.logErr, r1.tr, sink, r1.verdict.Result())
		return out, nil, err
	}
	line("bigbang: " + restored.Words(into) + " The new system boots with it.")
	f.Stage(restored.Words(cfg.Host + ":" + into))
	f.Stage(fmt.Sprintf("Reboot of %s into the new system: its first boot has the restored %s", cfg.Host, source))
	r2req := req
	r2req.Plan = reboot
	rebootStart := time.Now()
	sink(steps.Event{Time: rebootStart, Type: steps.EventPhase, Phase: steps.PhaseReboot, State: steps.StateRunning})
	r2, err := e.runChild(ctx, r2req, rebootOnly(dropRebootStart(sink)))
	phases := append(slices.Clone(r1.phases), runner.PhaseTime{Phase: steps.PhaseReboot, State: steps.StateRunning, Start: rebootStart})
	if err != nil {
		out := r1.out
		out.Outcome, out.FailedPhase = steps.OutcomeFailed, steps.PhaseReboot
		out.Diagnosis = &steps.Diagnosis{ID: "reboot.start", Summary: "nixos-anywhere's reboot phase could not start: " + err.Error(),
			Remedy: "the new system is installed and its state restored; the machine still runs the installer: fix the cause, then run the resume command"}
		out, ferr := e.finish(ctx, whole, out, phases, r1.logErr, r1.tr, sink, r1.verdict.Result())
		return out, &restored, ferr
	}
	for _, p := range r2.phases {
		if p.Phase == steps.PhaseReboot {
			phases[len(phases)-1] = runner.PhaseTime{Phase: p.Phase, State: p.State, Start: rebootStart, End: p.End}
		}
	}
	out := r2.out
	out, err = e.finish(ctx, whole, out, phases, errors.Join(r1.logErr, r2.logErr), r2.tr, sink, r2.verdict.Result())
	return out, &restored, err
}

// rebootOnly passes the events of the run of the reboot phase alone on
// as the reboot's: that run logs in again first (nixos-anywhere's
// ssh-copy-id and facts, bigbang's connect phase), which belongs to the
// reboot of this install, not to a second connect.
func rebootOnly(sink steps.Sink) steps.Sink {
	return func(e steps.Event) {
		if e.Phase != steps.PhaseConnect {
			sink(e)
			return
		}
		if e.Type == steps.EventPhase {
			return
		}
		e.Phase = steps.PhaseReboot
		sink(e)
	}
}

// dropRebootStart drops the reboot's start from the run of the reboot
// phase: ReinstallInstall sent it when that run began.
func dropRebootStart(sink steps.Sink) steps.Sink {
	return func(e steps.Event) {
		if e.Type == steps.EventPhase && e.Phase == steps.PhaseReboot && e.State == steps.StateRunning {
			return
		}
		sink(e)
	}
}

// SplitReboot splits the plan of a whole install into the run without
// the reboot (--phases kexec,disko,install) and the run of the reboot
// alone (--phases reboot, as root on the installer's port), the two runs
// of a reinstall. The first names the second in its decisions, for the
// plan a front end shows.
func SplitReboot(cfg steps.Config, plan steps.Plan) (first, reboot steps.Plan, err error) {
	if !plan.Runs(steps.PhaseReboot) || !slices.Contains(plan.NAPhases, "install") {
		return first, reboot, fmt.Errorf("the reinstall's plan must install and reboot (it runs %s)", strings.Join(plan.NAPhases, ","))
	}
	first = plan
	first.Phases = slices.DeleteFunc(slices.Clone(plan.Phases), func(p steps.PhaseID) bool { return p == steps.PhaseReboot })
	first.NAPhases = slices.DeleteFunc(slices.Clone(plan.NAPhases), func(p string) bool { return p == "reboot" })
	argv := slices.Clone(plan.Argv[:len(plan.Argv)-1])
	if i := slices.Index(argv, "--phases"); i >= 0 && i+1 < len(argv) {
		argv = slices.Delete(argv, i, i+2)
	}
	first.Argv = append(argv, "--phases", strings.Join(first.NAPhases, ","), plan.Argv[len(plan.Argv)-1])
	first.Decisions = append(slices.Clone(plan.Decisions), steps.Decision{What: "Stop before the reboot (--phases " + strings.Join(first.NAPhases, ",") + ")",
		Why: "the backup is restored into the installer's " + InstallerRoot + " first, so that the new system's first boot has its state; then nixos-anywhere runs its reboot phase alone"})
	rc := cfg
	rc.Phases, rc.BuildOn = "reboot", plan.BuildOn
	// The reboot runs on the installer, which nixos-anywhere reaches as
	// root on the port after kexec.
	rc.Port, rc.PostKexecPort = cfg.AfterKexecPort(), 0
	rc.HardwareConfig, rc.HardwareConfigPath, rc.DiskKeys, rc.Kexec = "", "", nil, ""
	if reboot, err = steps.NewPlan(rc, steps.PlanEnv{}); err != nil {
		return first, reboot, err
	}
	first.Decisions = append(first.Decisions, steps.Decision{What: "Then reboot with: " + reboot.Command(),
		Why: "the reboot phase alone, once the backup is restored; bigbang then waits for the new system and verifies its host key"})
	return first, reboot, nil
}

// restoreInstaller restores a into the installer's InstallerRoot: it logs
// in as root on the port after kexec with a key this machine already
// trusts for the host (known_hosts, as the probe of a resume does, or the
// machine's own key that the extra-files tree ships, which the installer
// serves when kexec kept it); the installer's key is never pinned. No
// services are stopped: none run in the installer.
func (e *Engine) restoreInstaller(ctx context.Context, cfg steps.Config, a reinstall.Archive, o ReinstallOptions, progress func(reinstall.Progress)) (Restored, error) {
	pub, err := sshexec.ReadExpectedHostKey(sshexec.ExpectedHostKeyFile(cfg.ExtraFiles))
	if err != nil {
		return Restored{}, err
	}
	shipped, err := pubFingerprint(pub)
	if err != nil {
		return Restored{}, err
	}
	t := SSHTarget(cfg)
	t.User, t.Port = "root", cfg.AfterKexecPort()
	if t.Port == 22 {
		t.Port = 0
	}
	opts := e.dialOptions(cfg, DialPolicy{Timeout: 30 * time.Second})
	opts.Target, opts.AcceptNewHostKey = t, false
	c, err := e.World.Dialer.Dial(ctx, opts)
	if errors.Is(err, sshexec.ErrHostKeyUnknown) || errors.Is(err, sshexec.ErrHostKeyMismatch) {
		opts.KnownHosts, opts.ExpectedHostKey = "", pub
		c, err = e.World.Dialer.Dial(ctx, opts)
	}
	if err != nil {
		return Restored{}, fmt.Errorf("connecting to the installer as root@%s (port %d): %w", cfg.Host, cfg.AfterKexecPort(), err)
	}
	defer c.Close()
	o.Services = nil
	// The archive is checked against the key the new system boots with.
	return e.restoreOver(ctx, c, cfg, a, o, InstallerRoot, shipped, progress)
}

// RestoreArchiveCommand is the exact `reinstall --restore` command that
// restores the archive at archive into the new system of cfg's host, which
// is reached as root on port.
func RestoreArchiveCommand(command string, cfg steps.Config, port int, archive string, o ReinstallOptions) string {
	if command == "" {
		command = "bigbang"
	}
	argv := []string{"reinstall", "--host", cfg.Host, "--user", "root"}
	if port != 0 && port != 22 {
		argv = append(argv, "--port", fmt.Sprint(port))
	}
	if cfg.Identity != "" {
		argv = append(argv, "-i", cfg.Identity)
	}
	if cfg.KnownHosts != "" {
		argv = append(argv, "--known-hosts", cfg.KnownHosts)
	}
	if o.Source != "" && o.Source != reinstall.DefaultSource {
		argv = append(argv, "--source", o.Source)
	}
	for _, s := range o.Services {
		argv = append(argv, "--service", s)
	}
	if o.Identity != "" {
		argv = append(argv, reinstall.IdentityFlag, o.Identity)
	}
	return command + " " + steps.ShellJoin(append(argv, "--restore", archive))
}
