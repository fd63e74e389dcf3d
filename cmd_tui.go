package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/local"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/steps/remote"
	"github.com/bigbang-nix/bigbang/steps/runner"
	"github.com/bigbang-nix/bigbang/ui"
)

// runTUI is the interactive install on a terminal: the wizard over the real
// backend (sshexec, the local flake checks and the runner).
func runTUI(ctx context.Context, cfg *steps.Config, flags installFlags) error {
	return runWizard(ctx, cfg, flags, nil)
}

// runWizard runs the wizard over backend; nil is the real backend, with the
// flake evaluation started now, so that it runs while the operator reads
// the welcome screen and fills in the form. wrap, when not nil, wraps the
// real backend (tests).
func runWizard(ctx context.Context, cfg *steps.Config, flags installFlags, wrap func(ui.Backend) ui.Backend) error {
	return wizard(ctx, cfg, flags.rebootTimeout, wrap, nil)
}

// wizard runs the wizard over the real backend (wrapped by wrap when not
// nil); re, when not nil, makes it a reinstall with those flags.
func wizard(ctx context.Context, cfg *steps.Config, rebootTimeout time.Duration, wrap func(ui.Backend) ui.Backend, re *reinstallFlags) error {
	c := *cfg
	notes := targetDefaults(ctx, &c)
	b := newRealBackend(ctx, c)
	b.rebootTimeout = rebootTimeout
	var backend ui.Backend = b
	if wrap != nil {
		backend = wrap(b)
	}
	wd, _ := os.Getwd()
	opts := ui.Options{
		Config:      c,
		Backend:     backend,
		Welcome:     ui.Welcome{Flake: c.Flake, Found: describeFolder(wd), Folder: wd},
		TargetNotes: notes,
	}
	if re != nil {
		b.reinstall = *re
		opts.Reinstall = &ui.ReinstallOptions{Backend: b, Source: re.source, Services: re.services, Force: re.force}
		res, err := ui.Run(ctx, opts)
		if res.Log != "" {
			fmt.Fprintf(os.Stderr, "bigbang: %s; the transcript is in %s\n", reinstallOutcomeText(res), res.Log)
		}
		if errors.Is(err, ui.ErrNothingToReinstall) {
			fmt.Fprintf(os.Stderr, "bigbang: %v.\n", err)
			return nil
		}
		return tuiExit(res, err)
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
	// rebootTimeout bounds the wait for the new system after the reboot
	// (--reboot-timeout); zero is sshexec's default.
	rebootTimeout time.Duration
	// reinstall holds the flags of `bigbang reinstall` for its steps
	// (Prepare, Backup, Restore).
	reinstall reinstallFlags
}

// newRealBackend starts evaluating cfg's flake in the background under ctx.
func newRealBackend(ctx context.Context, cfg steps.Config) realBackend {
	if _, _, err := steps.SplitFlake(cfg.Flake); err != nil {
		return realBackend{}
	}
	return realBackend{flake: flake.Start(ctx, cfg.Flake), flakeRef: cfg.Flake}
}

func (realBackend) dialOptions(cfg steps.Config, prompt sshexec.HostKeyPrompt) sshexec.Options {
	return targetDialOptions(cfg, prompt)
}

// dialNoting dials the target for the wizard: a host key known_hosts does
// not know is refused but noted (seen returns it), for the operator to
// compare on the screen; after the operator's y, the next dial trusts the
// key shown then (ui.ApprovedHostKey) and nothing else.
func (b realBackend) dialNoting(ctx context.Context, cfg steps.Config) (c *sshexec.Client, seen func() sshexec.HostKeyInfo, err error) {
	var mu sync.Mutex
	var key sshexec.HostKeyInfo
	opts := b.dialOptions(cfg, func(_ context.Context, k sshexec.HostKeyInfo) (bool, error) {
		mu.Lock()
		key = k
		mu.Unlock()
		return false, nil
	})
	opts.ApprovedHostKey = ui.ApprovedHostKey(ctx)
	c, err = sshexec.Dial(ctx, opts)
	return c, func() sshexec.HostKeyInfo {
		mu.Lock()
		defer mu.Unlock()
		return key
	}, err
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
		info   *flake.Info
	}
	lc := make(chan localOut, 1)
	go func() {
		pending := b.flake
		if pending == nil || b.flakeRef != cfg.Flake {
			pending = flake.Start(ctx, cfg.Flake)
		}
		checks, exp, _ := local.RunWith(ctx, cfg, pending)
		send(checks)
		// The evaluation has ended by now; the install's receipt records
		// its revision and disko layout.
		info, ferr := pending.Wait(ctx)
		if ferr != nil {
			info = nil
		}
		lc <- localOut{checks, exp, info}
	}()

	c, seenKey, err := b.dialNoting(ctx, cfg)
	lo := <-lc
	checks := append([]steps.Check(nil), lo.checks...)
	var wiped []string
	for _, d := range lo.exp.Disks {
		wiped = append(wiped, d.Device)
	}
	seen := seenKey()
	hk := ui.HostKey{Fingerprint: seen.Fingerprint, Type: seen.Type}
	switch {
	case errors.Is(err, sshexec.ErrHostKeyUnknown):
		hk.Status = ui.HostKeyNew
		return ui.Report{Checks: checks, HostKey: hk}, nil
	case errors.Is(err, sshexec.ErrHostKeyChangedSinceApproval):
		// Not a known_hosts entry to forget: nothing was saved. The check
		// blocks the install and says which two keys differ.
		un := remote.Unreached(remote.IDHostKey, "the host key changed between the two connections: nothing was saved, bigbang refuses to go on", err.Error())
		send(un)
		return ui.Report{Checks: append(checks, un...), HostKey: ui.HostKey{Fingerprint: seen.Fingerprint, Type: seen.Type}}, nil
	case errors.Is(err, sshexec.ErrHostKeyMismatch):
		hk.Status = ui.HostKeyChanged
		un := remote.Unreached(remote.IDHostKey, "the host key of "+cfg.Host+" changed", "if the VPS was rebuilt, remove the old key with: "+ui.ForgetHostKeyCommand(cfg))
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
	rep.Flake = lo.info
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
// pane stays open until then. Whatever the outcome, once nixos-anywhere
// has run, the install's receipt is written.
func (b realBackend) Install(ctx context.Context, req ui.InstallRequest, sink steps.Sink) (ui.InstallResult, error) {
	clock := newPhaseClock()
	emit := func(e steps.Event) {
		clock.observe(e)
		sink(e)
	}
	// The runner's result and its "reboot done" wait for the verification
	// of the new system.
	verdict := runner.HoldVerdict(emit)
	res, err := runner.Run(ctx, runner.Options{Argv: req.Plan.Argv, LogPath: req.Log, Phases: req.Plan.Phases}, verdict.Emit)
	out := ui.InstallResult{Outcome: res.Outcome, FailedPhase: res.FailedPhase, Diagnosis: res.Diagnosis, Log: res.Log, ExitCode: res.ExitCode}
	if err != nil {
		// Nothing ran: no receipt either.
		verdict.Release()
		return out, err
	}

	var rebootEnd steps.PhaseState // how the reboot phase ends; "" when it did not run
	if res.Outcome == steps.OutcomeSuccess && req.Plan.Runs(steps.PhaseReboot) {
		rebootEnd = b.verify(ctx, req, &out, func(s string) {
			emit(steps.Event{Time: time.Now(), Type: steps.EventLine, Phase: steps.PhaseReboot, Text: s})
		})
	}
	end := steps.Event{Time: time.Now(), Type: steps.EventPhase, Phase: steps.PhaseReboot, State: rebootEnd}
	if rebootEnd != "" {
		clock.observe(end)
	}

	if res.LogErr != nil {
		out.Notes = append(out.Notes, "the transcript is incomplete: "+res.LogErr.Error())
	}
	if p, werr := receipt.Write(installReceipt(req, out, clock.times())); werr != nil {
		out.Notes = append(out.Notes, "the receipt of this install could not be written: "+werr.Error())
	} else {
		out.Receipt = p
	}
	notePhase := out.FailedPhase
	if notePhase == "" {
		notePhase = clock.lastPhase()
	}
	for _, n := range out.Notes {
		emit(steps.Event{Time: time.Now(), Type: steps.EventLine, Phase: notePhase, Text: "bigbang: " + n})
	}
	if rebootEnd != "" {
		sink(end)
	}
	result := verdict.Result()
	result.Time = time.Now()
	result.Outcome, result.FailedPhase, result.Diagnosis, result.Log, result.ExitCode = out.Outcome, out.FailedPhase, out.Diagnosis, out.Log, out.ExitCode
	sink(result)
	return out, nil
}

// unverifiedDiagnosis is the reboot's failure when the extra-files tree
// holds no pre-generated host key: nixos-anywhere finished, but nothing
// proves that the machine that comes back is the one installed, and its
// key was neither checked nor pinned.
func unverifiedDiagnosis(cfg steps.Config, keyFile string) *steps.Diagnosis {
	scan, login := []string{"ssh-keyscan", cfg.Host}, []string{"ssh", "root@" + cfg.Host}
	if cfg.Port != 22 && cfg.Port != 0 {
		port := strconv.Itoa(cfg.Port)
		scan = []string{"ssh-keyscan", "-p", port, cfg.Host}
		login = []string{"ssh", "-p", port, "root@" + cfg.Host}
	}
	return &steps.Diagnosis{ID: ui.DiagnosisRebootUnverified,
		Summary: "nixos-anywhere finished, but the new system's host key was NOT verified and NOT pinned: there is no pre-generated host key at " + keyFile + " to compare it with",
		Remedy: "do not run the install again. Compare the new system's fingerprint (" + steps.ShellJoin(scan) +
			" | ssh-keygen -lf -) with the provider's console, remove the installer's old key with: " + ui.ForgetHostKeyCommand(cfg) +
			", then connect with: " + steps.ShellJoin(login) + "; next time generate the host key first with: bigbang keys"}
}

// verify waits for the new system after nixos-anywhere's reboot and pins
// its host key, the pre-generated one of the extra-files tree. It updates
// out and returns the reboot phase's final state.
func (b realBackend) verify(ctx context.Context, req ui.InstallRequest, out *ui.InstallResult, line func(string)) steps.PhaseState {
	cfg := req.Config
	keyFile := sshexec.ExpectedHostKeyFile(cfg.ExtraFiles)
	want, kerr := sshexec.ReadExpectedHostKey(keyFile)
	if kerr != nil {
		// Without the shipped key there is nothing to prove the new
		// system against: bigbang does not call that a success, and it
		// does not trust whatever key answers now.
		out.Outcome, out.FailedPhase = steps.OutcomeFailed, steps.PhaseReboot
		out.Diagnosis = unverifiedDiagnosis(cfg, keyFile)
		line("bigbang: " + out.Diagnosis.Summary)
		line("bigbang: " + out.Diagnosis.Remedy)
		return steps.StateFailed
	}
	line("bigbang: waiting for " + cfg.Host + " to come back with the host key from " + keyFile + "…")
	rep, err := sshexec.VerifyReboot(ctx, sshexec.RebootOptions{
		Target:          rebootTarget(cfg),
		ExpectedHostKey: want,
		KnownHosts:      cfg.KnownHosts,
		Timeout:         b.rebootTimeout,
	})
	switch {
	case err != nil && ctx.Err() != nil:
		// The operator stopped bigbang (Ctrl+C) while it waited: that is
		// an interruption, not a failed machine.
		out.Outcome, out.FailedPhase = steps.OutcomeAborted, steps.PhaseReboot
		out.Diagnosis = &steps.Diagnosis{ID: "reboot.interrupted",
			Summary: "stopped while waiting for the new system; nixos-anywhere had finished and the machine was rebooting",
			Remedy:  "check the new system with: bigbang status --host " + steps.ShellQuote(cfg.Host)}
		return steps.StateFailed
	case err != nil:
		out.Outcome, out.FailedPhase = steps.OutcomeFailed, steps.PhaseReboot
		out.Diagnosis = rebootDiagnosis(err, cfg.Host)
		return steps.StateFailed
	}
	line(rebootLine(rep))
	out.HostKeyFingerprint = rep.HostKey.Fingerprint
	out.SSHCommand = "ssh root@" + cfg.Host
	if cfg.Port != 22 && cfg.Port != 0 {
		out.SSHCommand = fmt.Sprintf("ssh -p %d root@%s", cfg.Port, cfg.Host)
	}
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
func installReceipt(req ui.InstallRequest, out ui.InstallResult, phases []receipt.PhaseTime) receipt.Receipt {
	cfg := req.Config
	r := receipt.Receipt{
		Host: cfg.Host, User: cfg.User, Port: cfg.Port, Identity: cfg.Identity, InstalledAt: time.Now().UTC(),
		Flake: cfg.Flake, ExtraFiles: cfg.ExtraFiles, BuildOn: req.Plan.BuildOn,
		HostKeyFingerprint: out.HostKeyFingerprint, Phases: phases, Log: out.Log,
	}
	if info := req.Flake; info != nil {
		r.System = info.Config.System
		if info.Config.Revision != nil {
			r.FlakeRevision = *info.Config.Revision
		}
		r.Disko = reinstall.FromDisko(info.Config.Disko)
	}
	if old, err := receipt.Read(cfg.Host); err == nil {
		r.Backups = old.Backups
	}
	return r
}

// phaseClock follows the phase events of an install: when each phase
// started and how and when it ended, for the receipt.
type phaseClock struct {
	mu    sync.Mutex
	order []steps.PhaseID
	start map[steps.PhaseID]time.Time
	end   map[steps.PhaseID]time.Time
	state map[steps.PhaseID]steps.PhaseState
	last  steps.PhaseID
}

func newPhaseClock() *phaseClock {
	return &phaseClock{start: map[steps.PhaseID]time.Time{}, end: map[steps.PhaseID]time.Time{}, state: map[steps.PhaseID]steps.PhaseState{}}
}

func (c *phaseClock) observe(e steps.Event) {
	if e.Type != steps.EventPhase {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, seen := c.state[e.Phase]; !seen {
		c.order = append(c.order, e.Phase)
	}
	c.state[e.Phase] = e.State
	switch e.State {
	case steps.StateRunning:
		if c.start[e.Phase].IsZero() {
			c.start[e.Phase] = e.Time
		}
		c.last = e.Phase
	case steps.StateDone, steps.StateFailed:
		c.end[e.Phase] = e.Time
	}
}

// lastPhase is the phase that started last.
func (c *phaseClock) lastPhase() steps.PhaseID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// times lists every phase of the plan in the order the events named them,
// with its final state and how long it ran.
func (c *phaseClock) times() []receipt.PhaseTime {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []receipt.PhaseTime{}
	for _, p := range c.order {
		pt := receipt.PhaseTime{Phase: p, State: c.state[p]}
		if s, e := c.start[p], c.end[p]; !s.IsZero() && !e.IsZero() && e.After(s) {
			pt.Seconds = e.Sub(s).Round(time.Millisecond).Seconds()
		}
		out = append(out, pt)
	}
	return out
}

// reinstallOutcomeText is outcomeText for a reinstall, whose failure may
// come after the install (in the restore).
func reinstallOutcomeText(res ui.InstallResult) string {
	switch {
	case res.Outcome == steps.OutcomeSuccess:
		return "reinstalled"
	case res.Diagnosis != nil && res.Diagnosis.ID == "restore":
		return "reinstalled, but the restore did not complete (the backup is kept)"
	case res.Outcome == steps.OutcomeAborted:
		return "interrupted"
	}
	return "the reinstall failed"
}
