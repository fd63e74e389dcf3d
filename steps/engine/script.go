package engine

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

// Front is a linear front end (plain, JSON, accessible): it renders the
// run and answers the engine's questions. The script calls it in the order
// DetSys's nix-installer does: the plan is described, confirmed, then
// executed, so that the three front ends are three renderings of one run.
type Front interface {
	Decider
	// Event renders one event of the run.
	Event(e steps.Event)
	// Choose lets the operator change the RAM and the build location
	// after the preflight (the accessible wizard asks; the others keep
	// cfg).
	Choose(ctx context.Context, cfg steps.Config, rep Report) (steps.Config, error)
	// Plan shows what is about to happen, before the wipe is confirmed.
	Plan(cfg steps.Config, plan steps.Plan, disks []Disk)
	// Stage announces a step of the reinstall.
	Stage(text string)
	// Note tells the operator something beside the events (the log path,
	// a skipped preflight).
	Note(text string)
	// Drift shows the layout comparison of a reinstall.
	Drift(host string, rep reinstall.Report)
	// Progress shows a backup's or restore's progress (it must not block);
	// done ends it.
	Progress(p reinstall.Progress, done bool)
	// StopUnits is the offer of a backup that saw its source change: the
	// systemd units the operator names are stopped and the backup taken
	// again (none, or a front end that cannot ask: the backup stays
	// refused, with the advice of --service).
	StopUnits(ctx context.Context, q UnitsQuestion) ([]string, error)
}

// Script is a linear run: what the front end's flags asked for.
type Script struct {
	Config        steps.Config
	SkipPreflight bool
	Dial          DialPolicy
	// Resume says how the resume command is written.
	Resume ResumeStyle
	// Reinstall makes it a reinstall (nil: an install).
	Reinstall *ReinstallOptions
}

// ErrNotConfirmed is wrapped when the operator did not confirm the wipe.
var ErrNotConfirmed = errors.New("the disk wipe is not confirmed")

// ErrInterrupted is wrapped when the operator stopped the run before
// anything was changed.
var ErrInterrupted = errors.New("interrupted")

// checkReach refuses, before anything runs (with or without the
// preflight), a target that bigbang's own connections could not reach as
// nixos-anywhere's ssh does: through a ProxyJump or ProxyCommand. The
// check reads the local ssh configuration only.
func (e *Engine) checkReach(ctx context.Context, cfg steps.Config) error {
	if e.World.Resolve == nil {
		return nil
	}
	if _, err := e.World.Resolve(ctx, SSHTarget(cfg)); errors.Is(err, sshexec.ErrUnsupportedOption) {
		return fmt.Errorf("%w; nothing was started", err)
	}
	return nil
}

// CheckYesWipe checks the typed confirmation of scripts: --yes-wipe must
// name the target host exactly, so a command line copied to another host
// cannot wipe it.
func CheckYesWipe(cfg steps.Config) error {
	host := cfg.Host
	switch {
	case cfg.YesWipe == "":
		return fmt.Errorf("%w: installing wipes every disk of %s; to go ahead without questions, pass --yes-wipe %s (run `bigbang check --host %s` first to see what is there)",
			ErrNotConfirmed, host, steps.ShellQuote(host), steps.ShellQuote(host))
	case strings.Trim(cfg.YesWipe, "[]") != cfg.Target().Host:
		return fmt.Errorf("%w: --yes-wipe %s does not match the target host %s; pass --yes-wipe %s to wipe %s",
			ErrNotConfirmed, steps.ShellQuote(cfg.YesWipe), host, steps.ShellQuote(host), host)
	}
	return nil
}

// CheckCommand says how to get the nixos-anywhere command of plan when it
// is not there.
func CheckCommand(plan steps.Plan) error {
	name := plan.Argv[0]
	if _, err := exec.LookPath(name); err == nil {
		return nil
	}
	if name == "nix" {
		return errors.New("nix not found: install Nix (https://nixos.org/download) or pass --nixos-anywhere with your own build")
	}
	return fmt.Errorf("%s not found: check --nixos-anywhere (a command on PATH or a path to your nixos-anywhere build), or leave it out to use the pinned nixos-anywhere 1.13.0 through nix", name)
}

// Check is `bigbang check`: the preflight alone, with a host key that
// known_hosts does not know refused as a blocking check.
func (e *Engine) Check(ctx context.Context, cfg steps.Config, p DialPolicy) (Report, error) {
	rep, err := e.Preflight(ctx, cfg, p, func(steps.Event) {})
	if err == nil && rep.HostKey.Status == HostKeyNew {
		rep.Checks = append(rep.Checks, UnknownKeyChecks(cfg.Target(), rep.HostKey)...)
	}
	return rep, err
}

// preflight runs the preflight until the operator's answers are in: a new
// host key approved (or refused), passwordless sudo set up; it refuses
// when something blocks. nothing says what was not done yet.
func (e *Engine) preflight(ctx context.Context, s Script, f Front, nothing string) (Report, error) {
	cfg, p := s.Config, s.Dial
	for {
		rep, err := e.Preflight(ctx, cfg, p, f.Event)
		if ctx.Err() != nil {
			return rep, fmt.Errorf("%w during the preflight; %s", ErrInterrupted, nothing)
		}
		if err != nil {
			return rep, fmt.Errorf("%w; %s (bigbang check --host %s shows the same)", err, nothing, steps.ShellQuote(cfg.Host))
		}
		if rep.HostKey.Status == HostKeyNew {
			ok, err := f.TrustHostKey(ctx, cfg.Target(), rep.HostKey)
			if err != nil {
				return rep, err
			}
			if ok && p.Approved != rep.HostKey.Fingerprint {
				// The next connection trusts this key and no other.
				p.Approved = rep.HostKey.Fingerprint
				continue
			}
			for _, c := range UnknownKeyChecks(cfg.Target(), rep.HostKey) {
				f.Event(steps.Event{Time: e.now(), Type: steps.EventCheck, Check: c})
				rep.Checks = append(rep.Checks, c)
			}
		}
		if rep.SudoNeedsPassword {
			pw, err := f.SudoPassword(ctx, cfg.Target())
			if err != nil {
				return rep, err
			}
			if pw != nil {
				if err := e.SetupSudo(ctx, cfg, p, pw); err != nil {
					return rep, fmt.Errorf("setting up passwordless sudo: %w; %s", err, nothing)
				}
				continue
			}
		}
		if rep.Blocking() > 0 {
			return rep, &Refusal{Checks: rep.Checks}
		}
		return rep, nil
	}
}

// RunInstall is the linear install: preflight (unless skipped), plan,
// confirmation, install with the verified reboot. Everything that can be
// refused is refused before anything runs; a transcript refused runs
// leave behind is removed.
func (e *Engine) RunInstall(ctx context.Context, s Script, f Front) (InstallResult, error) {
	cfg := s.Config
	// A first plan, before anything is known of the target, tells which
	// command will run; the real plan is made after the preflight.
	plan, err := steps.NewPlan(cfg, steps.PlanEnv{})
	if err != nil {
		return InstallResult{}, err
	}
	if err := CheckCommand(plan); err != nil {
		return InstallResult{}, err
	}
	if err := e.checkReach(ctx, cfg); err != nil {
		return InstallResult{}, err
	}
	logPath := e.LogPath(cfg)
	warn, err := checkLog(logPath)
	if err != nil {
		return InstallResult{}, fmt.Errorf("%w (nothing was started)", err)
	}
	if warn != "" {
		f.Note(warn)
	}
	if phases, _ := steps.ParsePhases(cfg.Phases); len(phases) > 0 {
		// A resume fits the machine as it is now, or does not run.
		state := e.Probe(ctx, cfg, nil)
		f.Note(fmt.Sprintf("before the resume, %s %s", cfg.Host, state.Words()))
		verifyOnly, err := resumePlan(state, phases, cfg.Host)
		if err != nil {
			return InstallResult{}, err
		}
		if verifyOnly {
			f.Note("transcript: " + logPath)
			return e.VerifyOnly(ctx, InstallRequest{Config: cfg, Plan: plan, Log: logPath, Resume: s.Resume, StateKnown: true}, state, f.Event)
		}
	}
	var rep Report
	if s.SkipPreflight {
		f.Note(fmt.Sprintf("the preflight is skipped (--skip-preflight): nothing checked %s or the flake before the wipe", cfg.Host))
	} else {
		if rep, err = e.preflight(ctx, s, f, "nothing was started"); err != nil {
			return InstallResult{}, err
		}
		if cfg, err = f.Choose(ctx, cfg, rep); err != nil {
			return InstallResult{}, err
		}
		if plan, err = steps.NewPlan(cfg, rep.PlanEnv()); err != nil {
			return InstallResult{}, err
		}
	}
	f.Plan(cfg, plan, rep.Disks)
	ok, err := f.ConfirmWipe(ctx, Wipe{Target: cfg.Target(), Disks: rep.Disks})
	if err != nil || !ok {
		return InstallResult{}, errors.Join(ErrNotConfirmed, err)
	}
	f.Note("transcript: " + logPath)
	return e.Install(ctx, InstallRequest{Config: cfg, Plan: plan, Log: logPath, Disks: rep.Disks, Flake: rep.Flake, Resume: s.Resume, StateKnown: true}, f.Event)
}

// Reinstalled is how a linear reinstall ended.
type Reinstalled struct {
	Install InstallResult
	Archive reinstall.Archive
	// Restored is set when the restore ran and was verified.
	Restored *Restored
	// RestoreLater is the command that restores the backup into the new
	// system after its boot, when the install ran and the restore before
	// the first boot did not happen ("" otherwise).
	RestoreLater string
}

// RunReinstall is the linear reinstall: host-key continuity and drift
// (ErrNothingToReinstall when the layout did not change), the install's
// preflight, the consistent, verified backup (BackupOffering: the
// --service units stopped, or the ones named after a backup that saw
// writes), the typed confirmation naming it, and the reinstall's install
// (ReinstallInstall: nixos-anywhere without its reboot, the restore into
// the installer's /mnt, the reboot phase and the verified reboot, the
// receipt, the resume). Units stopped for the backup are started again
// when it stops before the wipe.
func (e *Engine) RunReinstall(ctx context.Context, s Script, f Front) (Reinstalled, error) {
	cfg, o := s.Config, *s.Reinstall
	var out Reinstalled
	plan, err := steps.NewPlan(cfg, steps.PlanEnv{})
	if err != nil {
		return out, err
	}
	if err := CheckCommand(plan); err != nil {
		return out, err
	}
	if err := e.checkReach(ctx, cfg); err != nil {
		return out, err
	}
	d, err := e.Prepare(ctx, cfg, s.Dial)
	if err == nil && d.NewHostKey.Status == HostKeyNew {
		ok, aerr := f.TrustHostKey(ctx, cfg.Target(), d.NewHostKey)
		switch {
		case aerr != nil:
			return out, aerr
		case !ok:
			for _, c := range UnknownKeyChecks(cfg.Target(), d.NewHostKey) {
				if c.Blocking() {
					return out, fmt.Errorf("%s; fix: %s", c.Summary, c.Fix)
				}
			}
		}
		s.Dial.Approved = d.NewHostKey.Fingerprint
		d, err = e.Prepare(ctx, cfg, s.Dial)
	}
	if err != nil {
		return out, err
	}
	f.Stage(d.HostKey)
	f.Stage("Disk layout against " + cfg.Flake)
	f.Drift(cfg.Host, d.Report)
	if d.Report.Verdict == reinstall.VerdictNone && !o.Force {
		return out, ErrNothingToReinstall
	}
	// The preflight of the install, before anything is copied: the machine
	// is about to be wiped exactly as by `bigbang install`. It runs after
	// the host key step, so that the sops checks see the key the new
	// system will get.
	f.Stage(fmt.Sprintf("Preflight of %s and %s", cfg.Host, cfg.Flake))
	rep, err := e.preflight(ctx, s, f, "nothing was backed up or wiped")
	if err != nil {
		return out, fmt.Errorf("reinstall stopped before the backup: %w", err)
	}
	if plan, err = steps.NewPlan(cfg, rep.PlanEnv()); err != nil {
		return out, fmt.Errorf("%w; nothing was backed up or wiped", err)
	}
	source := orDefault(o.Source, reinstall.DefaultSource)
	f.Stage(fmt.Sprintf("Backup of %s:%s", cfg.Host, source))
	a, notes, units, err := e.BackupOffering(ctx, cfg, s.Dial, o, f)
	o.Services = units
	for _, n := range notes {
		f.Note(n)
	}
	out.Archive = a
	if err != nil {
		return out, err
	}
	// Units stopped for the backup run again when the reinstall stops
	// before the wipe (a refused confirmation, an interruption, an install
	// that failed before kexec).
	stopped := o.Services
	untouched := true
	defer func() {
		if len(stopped) > 0 && untouched {
			if words, err := e.StartUnits(ctx, cfg, s.Dial, stopped); err != nil {
				f.Note(err.Error())
			} else {
				f.Stage(words)
			}
		}
	}()
	m := a.Manifest
	f.Stage(fmt.Sprintf("Backup verified: %s\n  %d entries, %s of files, %s compressed, sha256 %s\n  It holds the machine's secrets: keep it as safe as the host key.",
		a.Path, m.Entries, steps.FormatBytes(m.Bytes), steps.FormatBytes(m.ArchiveBytes), m.SHA256))
	// The plan shown is the reinstall's: the install without its reboot,
	// then the reboot.
	shown, _, err := SplitReboot(cfg, plan)
	if err != nil {
		return out, fmt.Errorf("%w; nothing was wiped, the backup stays in %s", err, a.Path)
	}
	f.Plan(cfg, shown, rep.Disks)
	ok, err := f.ConfirmWipe(ctx, Wipe{Target: cfg.Target(), Disks: rep.Disks, Backup: a.Path})
	if err != nil || !ok {
		return out, fmt.Errorf("%w; nothing was wiped, the backup stays in %s", errors.Join(ErrNotConfirmed, err), a.Path)
	}
	f.Stage(fmt.Sprintf("Install of %s onto %s, without its reboot: the backup goes into the new system before its first boot", cfg.Flake, cfg.Host))
	logPath := e.LogPath(cfg)
	if warn, err := checkLog(logPath); err != nil {
		return out, fmt.Errorf("%w (nothing was started; the backup is kept)", err)
	} else if warn != "" {
		f.Note(warn)
	}
	f.Note("transcript: " + logPath)
	// Units stopped for the backup are not in the installer: the restore
	// into it stops none (the restore after a boot, --restore, does).
	res, restored, err := e.ReinstallInstall(ctx, InstallRequest{Config: cfg, Plan: plan, Log: logPath, Disks: rep.Disks, Flake: rep.Flake, Resume: s.Resume, Layout: d.Layout, StateKnown: true},
		a, o, f, f.Event)
	out.Install, out.Restored = res, restored
	untouched = Untouched(res)
	if restored == nil && !untouched {
		out.RestoreLater = RestoreArchiveCommand(e.Command, cfg, RebootPort(cfg, rep.Flake), a.Path, o)
	}
	if err != nil {
		return out, err
	}
	if restored != nil {
		for _, n := range restored.Notes {
			f.Note(n)
		}
	}
	return out, nil
}

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}
