package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/local"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/remote"
	"github.com/bigbang-nix/bigbang/steps/runner"
	"github.com/bigbang-nix/bigbang/ui"
)

// runTUI is the interactive install on a terminal: the wizard over the real
// backend (sshexec, the local flake checks and the runner).
func runTUI(ctx context.Context, cfg *steps.Config) error {
	return runWizard(ctx, cfg, nil)
}

// runWizard runs the wizard over backend; nil is the real backend, with the
// flake evaluation started now, so that it runs while the operator reads
// the welcome screen and fills in the form.
func runWizard(ctx context.Context, cfg *steps.Config, backend ui.Backend) error {
	c := *cfg
	notes := targetDefaults(ctx, &c)
	if backend == nil {
		backend = newRealBackend(ctx, c)
	}
	wd, _ := os.Getwd()
	opts := ui.Options{
		Config:      c,
		Backend:     backend,
		Welcome:     ui.Welcome{Flake: c.Flake, Found: describeFolder(wd), Folder: wd},
		TargetNotes: notes,
	}
	if ui.Accessible() {
		res, err := ui.RunAccessible(ctx, opts, os.Stdin, os.Stdout)
		return tuiExit(res, err)
	}
	res, err := ui.Run(ctx, opts)
	if res.Log != "" {
		// The alternate screen is gone with the wizard: the transcript's
		// path stays in the terminal's scrollback.
		fmt.Fprintf(os.Stderr, "bigbang: %s; the transcript is in %s\n", outcomeText(res.Outcome), res.Log)
	}
	return tuiExit(res, err)
}

func outcomeText(o steps.Outcome) string {
	switch o {
	case steps.OutcomeSuccess:
		return "installed"
	case steps.OutcomeAborted:
		return "interrupted"
	}
	return "the install failed"
}

// targetDefaults fills in what the operator did not give, for a host given
// on the command line: first from the last install of that host (its
// receipt), then from the ssh client configuration. It returns one note per
// source used, for the target screen.
func targetDefaults(ctx context.Context, cfg *steps.Config) []string {
	if cfg.Host == "" {
		return nil
	}
	var notes []string
	before := *cfg
	if r, err := receipt.Read(cfg.Host); err == nil {
		r.Prefill(cfg)
		if cfg.User != before.User || cfg.Port != before.Port || cfg.Identity != before.Identity ||
			cfg.Flake != before.Flake || cfg.ExtraFiles != before.ExtraFiles || cfg.BuildOn != before.BuildOn {
			notes = append(notes, fmt.Sprintf("defaults from the last install of %s (%s)", cfg.Host, r.InstalledAt.Local().Format("2006-01-02 15:04")))
		}
	}
	d := steps.DefaultConfig()
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	res, err := sshexec.Resolve(rctx, sshexec.Target{Host: cfg.Host})
	if err != nil || !res.FromSSH {
		return notes
	}
	var from []string
	// ssh -G prints the local user name and port 22 when nothing is
	// configured: only other values come from the configuration.
	if cur, uerr := user.Current(); uerr == nil && cfg.User == d.User && res.User != "" && res.User != cur.Username {
		cfg.User = res.User
		from = append(from, "user "+res.User)
	}
	if cfg.Port == d.Port && res.Port != 0 && res.Port != d.Port {
		cfg.Port = res.Port
		from = append(from, fmt.Sprintf("port %d", res.Port))
	}
	if cfg.Identity == "" && res.IdentitiesOnly && len(res.IdentityFiles) > 0 {
		if _, serr := os.Stat(res.IdentityFiles[0]); serr == nil {
			cfg.Identity = res.IdentityFiles[0]
			from = append(from, "key "+res.IdentityFiles[0])
		}
	}
	if len(from) > 0 {
		notes = append(notes, "from the ssh configuration of "+cfg.Host+": "+strings.Join(from, ", "))
	}
	return notes
}

// describeFolder says what the welcome screen found in the working folder.
func describeFolder(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "flake.nix")); err == nil {
		return "flake.nix in this folder"
	}
	return "no flake.nix in this folder: give --flake with the path of yours"
}

// tuiExit maps the wizard's end to the exit codes of the contract.
func tuiExit(res ui.InstallResult, err error) error {
	switch {
	case errors.Is(err, ui.ErrAborted):
		return &exitError{code: exitInterrupted, err: err}
	case err != nil:
		return failErr(err)
	case res.Outcome == steps.OutcomeAborted:
		return &exitError{code: exitInterrupted, err: errSilentFailure}
	case res.Outcome != steps.OutcomeSuccess:
		return errSilentFailure
	}
	return nil
}

// realBackend is the wizard's way to the real target. Its zero value works;
// newRealBackend adds a flake evaluation started early.
type realBackend struct {
	// flake is an evaluation of flakeRef started at launch; the preflight
	// uses it when the operator kept that flake.
	flake    *flake.Pending
	flakeRef string
}

// newRealBackend starts evaluating cfg's flake in the background under ctx.
func newRealBackend(ctx context.Context, cfg steps.Config) realBackend {
	if _, _, err := steps.SplitFlake(cfg.Flake); err != nil {
		return realBackend{}
	}
	return realBackend{flake: flake.Start(ctx, cfg.Flake), flakeRef: cfg.Flake}
}

func (realBackend) dialOptions(cfg steps.Config, prompt sshexec.HostKeyPrompt) sshexec.Options {
	return sshexec.Options{
		Target:           sshexec.Target{Host: cfg.Host, User: cfg.User, Port: cfg.Port, Identity: cfg.Identity},
		KnownHosts:       cfg.KnownHosts,
		AcceptNewHostKey: cfg.AcceptNewHostKey,
		PromptHostKey:    prompt,
	}
}

// Preflight evaluates the flake in the background while it reaches the
// target, and sends every check as soon as it is known.
func (b realBackend) Preflight(ctx context.Context, cfg steps.Config, emit func(steps.Event)) (ui.Report, error) {
	send := func(cs []steps.Check) {
		for _, c := range cs {
			emit(steps.Event{Time: time.Now(), Type: steps.EventCheck, Check: c})
		}
	}
	type localOut struct {
		checks []steps.Check
		exp    steps.TargetExpect
	}
	lc := make(chan localOut, 1)
	go func() {
		var pending *flake.Pending
		if b.flake != nil && b.flakeRef == cfg.Flake {
			pending = b.flake
		}
		checks, exp, _ := local.RunWith(ctx, cfg, pending)
		send(checks)
		lc <- localOut{checks, exp}
	}()

	var seen sshexec.HostKeyInfo
	var mu sync.Mutex
	c, err := sshexec.Dial(ctx, b.dialOptions(cfg, func(_ context.Context, k sshexec.HostKeyInfo) (bool, error) {
		mu.Lock()
		seen = k
		mu.Unlock()
		return false, nil
	}))
	lo := <-lc
	checks := append([]steps.Check(nil), lo.checks...)
	var wiped []string
	for _, d := range lo.exp.Disks {
		wiped = append(wiped, d.Device)
	}
	mu.Lock()
	hk := ui.HostKey{Fingerprint: seen.Fingerprint, Type: seen.Type}
	mu.Unlock()
	switch {
	case errors.Is(err, sshexec.ErrHostKeyUnknown):
		hk.Status = ui.HostKeyNew
		return ui.Report{Checks: checks, HostKey: hk}, nil
	case errors.Is(err, sshexec.ErrHostKeyMismatch):
		hk.Status = ui.HostKeyChanged
		un := remote.Unreached(remote.IDHostKey, "the host key of "+cfg.Host+" changed", "if the VPS was rebuilt, remove the old key with: ssh-keygen -R "+steps.ShellQuote(cfg.Host))
		send(un)
		return ui.Report{Checks: append(checks, un...), HostKey: hk}, nil
	case err != nil:
		un := remote.Unreached(remote.IDAuth, "cannot log in to "+cfg.User+"@"+cfg.Host, err.Error())
		send(un)
		return ui.Report{Checks: append(checks, un...)}, nil
	}
	defer c.Close()
	facts, err := c.Facts(ctx)
	if err != nil {
		return ui.Report{Checks: checks}, fmt.Errorf("preflight facts: %w", err)
	}
	rc := remote.Checks(facts, lo.exp, c.CheckOptions())
	send(rc)
	hk = ui.HostKey{Fingerprint: c.HostKey.Fingerprint, Type: c.HostKey.Type, Status: ui.HostKeyKnown}
	rep := ui.ReportFromFacts(facts, append(checks, rc...), hk, wiped)
	rep.LocalCanBuild, rep.LocalBuildNote = localBuild(rep.LocalSystem, rep.TargetSystem, cfg.BuildOn, lo.checks, binfmtDir)
	return rep, nil
}

// binfmtDir is where the kernel lists the registered binfmt_misc
// interpreters.
var binfmtDir = "/proc/sys/fs/binfmt_misc"

// localBuild says whether this machine can build the target's system, for
// the RAM screen: natively, or through emulation, which needs both a
// binfmt_misc interpreter for the target's CPU and the target's system in
// nix.conf's extra-platforms (the local.build check reads nix.conf; its
// verdict is used rather than read twice).
func localBuild(localSys, targetSys, buildOn string, checks []steps.Check, binfmt string) (bool, string) {
	if targetSys == "" {
		return false, ""
	}
	if localSys == targetSys {
		return true, "this machine is " + localSys + " too"
	}
	extra := false
	for _, c := range checks {
		// With --build-on remote the check passes whatever nix.conf says.
		if c.ID == local.IDBuild && c.Status == steps.StatusOK && buildOn != "remote" {
			extra = true
		}
	}
	cpu, _, _ := strings.Cut(targetSys, "-")
	emulator := binfmtEntry(binfmt, cpu)
	switch {
	case extra && emulator != "":
		return true, "binfmt emulation (" + emulator + ") and extra-platforms = " + targetSys + " in nix.conf"
	case extra:
		return true, "nix.conf lists " + targetSys + " in extra-platforms"
	case emulator != "":
		return false, "binfmt emulation (" + emulator + ") is registered, but nix.conf lacks extra-platforms = " + targetSys
	}
	return false, "no binfmt emulation for " + cpu + " is registered (" + binfmt + ")"
}

// binfmtEntry returns the name of an enabled binfmt_misc entry that runs
// programs for cpu (qemu-aarch64, aarch64-linux, …), or "".
func binfmtEntry(dir, cpu string) string {
	entries, err := os.ReadDir(dir)
	if err != nil || cpu == "" {
		return ""
	}
	for _, e := range entries {
		n := e.Name()
		if n == "register" || n == "status" || !strings.Contains(n, cpu) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err == nil && strings.HasPrefix(string(b), "enabled") {
			return n
		}
	}
	return ""
}

// SetupSudo writes the passwordless sudo line with the password typed once;
// the bytes go to sudo's standard input and are zeroed after.
func (b realBackend) SetupSudo(ctx context.Context, cfg steps.Config, password []byte) error {
	cfg.AcceptNewHostKey = false
	c, err := sshexec.Dial(ctx, b.dialOptions(cfg, nil))
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.SetupPasswordlessSudo(ctx, sshexec.SudoSetup{Password: func(attempt int) ([]byte, error) {
		if attempt > 1 {
			return nil, sshexec.ErrSudoPassword
		}
		return append([]byte(nil), password...), nil
	}})
	return err
}

// LogPath is --log or the default transcript path.
func (realBackend) LogPath(cfg steps.Config) string {
	if cfg.Log != "" {
		return cfg.Log
	}
	return runner.DefaultLogPath(cfg.Host, time.Now())
}

// Install runs nixos-anywhere under the runner and then proves the new
// system: it waits for it and pins the pre-generated host key. The reboot
// pane stays open until then.
func (realBackend) Install(ctx context.Context, req ui.InstallRequest, sink steps.Sink) (ui.InstallResult, error) {
	var held *steps.Event
	filter := func(e steps.Event) {
		switch {
		case e.Type == steps.EventResult:
			held = &e
		case e.Type == steps.EventPhase && e.Phase == steps.PhaseReboot && e.State == steps.StateDone:
		default:
			sink(e)
		}
	}
	res, err := runner.Run(ctx, runner.Options{Argv: req.Plan.Argv, LogPath: req.Log, Phases: req.Plan.Phases}, filter)
	out := ui.InstallResult{Outcome: res.Outcome, FailedPhase: res.FailedPhase, Diagnosis: res.Diagnosis, Log: res.Log, ExitCode: res.ExitCode}
	if err != nil || res.Outcome != steps.OutcomeSuccess || !req.Plan.Runs(steps.PhaseReboot) {
		if held != nil {
			sink(*held)
		}
		if err == nil && res.Outcome == steps.OutcomeSuccess {
			sink(steps.Event{Time: time.Now(), Type: steps.EventPhase, Phase: steps.PhaseReboot, State: steps.StateDone})
		}
		return out, err
	}
	line := func(s string) {
		sink(steps.Event{Time: time.Now(), Type: steps.EventLine, Phase: steps.PhaseReboot, Text: s})
	}
	finish := func() (ui.InstallResult, error) {
		sink(steps.Event{Time: time.Now(), Type: steps.EventPhase, Phase: steps.PhaseReboot, State: steps.StateDone})
		sink(steps.Event{Time: time.Now(), Type: steps.EventResult, Outcome: out.Outcome, Log: out.Log})
		return out, nil
	}
	keyFile := sshexec.ExpectedHostKeyFile(req.Config.ExtraFiles)
	want, kerr := sshexec.ReadExpectedHostKey(keyFile)
	if kerr != nil {
		line("bigbang: no pre-generated host key at " + keyFile + "; the new system's key is not verified")
		return finish()
	}
	line("bigbang: waiting for " + req.Config.Host + " to come back with the host key from " + keyFile + "…")
	rep, err := sshexec.VerifyReboot(ctx, sshexec.RebootOptions{
		Target:          sshexec.Target{Host: req.Config.Host, User: "root", Port: req.Config.Port, Identity: req.Config.Identity},
		ExpectedHostKey: want,
		KnownHosts:      req.Config.KnownHosts,
	})
	if err != nil {
		out.Outcome, out.FailedPhase = steps.OutcomeFailed, steps.PhaseReboot
		out.Diagnosis = &steps.Diagnosis{ID: "reboot.verify", Summary: err.Error(),
			Remedy: "open the provider's console: check that the machine booted NixOS and has network; then run bigbang status --host " + req.Config.Host}
		sink(steps.Event{Time: time.Now(), Type: steps.EventPhase, Phase: steps.PhaseReboot, State: steps.StateFailed})
		sink(steps.Event{Time: time.Now(), Type: steps.EventResult, Outcome: out.Outcome, FailedPhase: out.FailedPhase, Diagnosis: out.Diagnosis, Log: out.Log})
		return out, nil
	}
	line(fmt.Sprintf("bigbang: NixOS %s is up (%s); host key %s matches", rep.NixOSVersion, rep.SystemState, rep.HostKey.Fingerprint))
	out.HostKeyFingerprint = rep.HostKey.Fingerprint
	out.SSHCommand = "ssh root@" + req.Config.Host
	if req.Config.Port != 22 && req.Config.Port != 0 {
		out.SSHCommand = fmt.Sprintf("ssh -p %d root@%s", req.Config.Port, req.Config.Host)
	}
	return finish()
}
