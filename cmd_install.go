package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/remote"
	"github.com/bigbang-nix/bigbang/steps/runner"
	"github.com/bigbang-nix/bigbang/ui"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

// installFlags are the flags of `bigbang install` alone.
type installFlags struct {
	skipPreflight bool
	// rebootTimeout bounds the wait for the new system after the reboot;
	// zero (the root command without the flag) is sshexec's default.
	rebootTimeout time.Duration
}

// addInstallFlags binds the flags of the install alone to cmd. The root
// command, which is `bigbang install` without the word, can bind them too.
func addInstallFlags(cmd *cobra.Command, f *installFlags) {
	cmd.Flags().BoolVar(&f.skipPreflight, "skip-preflight", false,
		"do not check the target and the flake before the wipe (the reboot is still verified)")
	cmd.Flags().DurationVar(&f.rebootTimeout, "reboot-timeout", sshexec.DefaultRebootTimeout,
		"how long to wait for the new system after the reboot before giving up (then look at the provider's serial console)")
}

func init() {
	subcommands = append(subcommands, func(cfg *steps.Config) *cobra.Command {
		var f installFlags
		cmd := &cobra.Command{
			Use:   "install",
			Short: "Install the flake onto the target (non-interactive with --yes-wipe HOST)",
			Long: "install checks the target and the flake first (the same preflight as the wizard and\n" +
				"bigbang check) and refuses when something blocks; then it runs nixos-anywhere with the\n" +
				"plan made from the flags and what the preflight learned, shows every phase as it\n" +
				"happens (--output plain or json), saves the whole transcript, and after the reboot waits\n" +
				"for the new system and pins its pre-generated host key. It wipes the target's disks,\n" +
				"so it runs only with --yes-wipe set to the target host.",
			Example: "  bigbang install --host 203.0.113.7 --yes-wipe 203.0.113.7 -i ~/.ssh/id_ed25519\n" +
				"  bigbang install --host 203.0.113.7 --yes-wipe 203.0.113.7 --output json > events.jsonl",
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runInstall(cmd, *cfg, f)
			},
		}
		addInstallFlags(cmd, &f)
		return cmd
	})
}

// installStall is the silence after which the plain and JSON outputs warn
// that a phase may hang (nixos-anywhere has loops that never end on their
// own).
var installStall = 2 * time.Minute

// installPreflight is the preflight of the non-interactive install: the
// wizard's own, so that both refuse the same targets. Tests wrap it.
var installPreflight = func(ctx context.Context, cfg steps.Config, emit func(steps.Event)) (ui.Report, error) {
	return realBackend{}.Preflight(ctx, cfg, emit)
}

// runInstall is `bigbang install`: the wizard on a terminal (runTUI), else
// the non-interactive install, for --yes-wipe or when there is no terminal.
// Everything that can be refused without the network is refused before the
// preflight, and the preflight refuses before anything runs. The engine is
// the wizard's (realBackend.Install): the runner, then the verified reboot.
func runInstall(cmd *cobra.Command, cfg steps.Config, flags installFlags) error {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	stdout := cmd.OutOrStdout()

	output := cfg.Output
	if flags.rebootTimeout < 0 || flags.rebootTimeout == 0 && cmd.Flags().Changed("reboot-timeout") {
		return usageErr(fmt.Errorf("--reboot-timeout %s: give a time to wait, e.g. 10m or 30m", flags.rebootTimeout))
	}
	if wantsWizard(cmd, cfg) {
		return runTUI(ctx, &cfg, flags)
	}
	if err := cfg.Validate(); err != nil {
		return usageErr(err)
	}
	if err := confirmWipe(cfg); err != nil {
		return usageErr(err)
	}
	if output == "" {
		output = "plain"
	}
	// A first plan, before anything is known of the target, tells which
	// command will run; the real plan is made after the preflight.
	plan, err := steps.NewPlan(cfg, steps.PlanEnv{})
	if err != nil {
		return usageErr(err)
	}
	if _, err := exec.LookPath(plan.Argv[0]); err != nil {
		return failErr(commandMissing(plan.Argv[0]))
	}

	logPath := cfg.Log
	if logPath == "" {
		logPath = runner.DefaultLogPath(cfg.Host, time.Now())
	}
	_, statErr := os.Stat(logPath)
	logf, err := runner.OpenLog(logPath)
	if err != nil {
		return failErr(fmt.Errorf("install: %w (nothing was started)", err))
	}
	logf.Close()
	// A run refused by the preflight leaves no empty transcript behind.
	dropLog := func() {
		if errors.Is(statErr, os.ErrNotExist) {
			if fi, err := os.Stat(logPath); err == nil && fi.Size() == 0 {
				_ = os.Remove(logPath)
			}
		}
	}

	// A failed or interrupted install ends with the exact command that
	// resumes it; plan is the final one by the time the result comes.
	tout := textout.Options{Resume: func(e steps.Event) string {
		if e.Outcome == steps.OutcomeSuccess {
			return ""
		}
		// The resumed run appends to the transcript this one wrote, the
		// default one included: one install keeps one transcript.
		rc := cfg
		rc.Log = logPath
		return resumeCommand(rc, plan, flags, e.FailedPhase)
	}}
	var sink steps.Sink
	if output == "json" {
		sink = textout.JSONWith(stdout, tout)
	} else {
		sink = textout.PlainWith(stdout, tout)
	}

	env := steps.PlanEnv{}
	var disks []ui.Disk
	var flakeInfo *flake.Info
	if flags.skipPreflight {
		notef(cmd, "bigbang: the preflight is skipped (--skip-preflight): nothing checked %s or the flake before the wipe\n", cfg.Host)
	} else {
		rep, err := installPreflight(ctx, cfg, func(e steps.Event) { sink(e) })
		if err != nil || ctx.Err() != nil {
			dropLog()
			if ctx.Err() != nil {
				return &exitError{code: exitInterrupted, err: errors.New("interrupted during the preflight; nothing was started")}
			}
			return failErr(fmt.Errorf("install: %w; nothing was started (bigbang check --host %s shows the same)", err, steps.ShellQuote(cfg.Host)))
		}
		if err := refuseBlocked(cfg, rep, sink); err != nil {
			dropLog()
			return failErr(err)
		}
		env = steps.PlanEnv{LocalSystem: rep.LocalSystem, TargetSystem: rep.TargetSystem,
			TargetRAM: rep.TargetRAM, TargetIsInstaller: rep.TargetIsInstaller}
		disks, flakeInfo = rep.Disks, rep.Flake
		if plan, err = steps.NewPlan(cfg, env); err != nil {
			dropLog()
			return usageErr(err)
		}
	}

	if output != "json" {
		printPlan(stdout, cfg, plan)
	}
	notef(cmd, "bigbang: transcript: %s\n", logPath)
	res, err := realBackend{rebootTimeout: flags.rebootTimeout}.Install(ctx,
		ui.InstallRequest{Config: cfg, Plan: plan, Log: logPath, Disks: disks, Flake: flakeInfo}, sink)
	if err != nil {
		return failErr(fmt.Errorf("install: %w", err))
	}
	for _, n := range res.Notes {
		notef(cmd, "bigbang: %s\n", n)
	}
	if res.Receipt != "" {
		notef(cmd, "bigbang: receipt: %s\n", res.Receipt)
	}
	switch res.Outcome {
	case steps.OutcomeSuccess:
		if res.SSHCommand != "" {
			notef(cmd, "bigbang: %s is up with host key %s; log in with: %s\n", cfg.Host, res.HostKeyFingerprint, res.SSHCommand)
		}
		notef(cmd, "bigbang: transcript: %s\n", logPath)
		return nil
	case steps.OutcomeAborted:
		return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted; the transcript is in %s", logPath)}
	default:
		notef(cmd, "bigbang: install failed; the transcript is in %s (bigbang explain %s)\n", logPath, steps.ShellQuote(logPath))
		return errSilentFailure
	}
}

// resumeCommand is the exact command that resumes a failed
// non-interactive install from the phase that failed, non-interactive
// too: the wizard's resume flags, then what a script needs.
func resumeCommand(cfg steps.Config, plan steps.Plan, flags installFlags, failed steps.PhaseID) string {
	// --log goes with the flags a script needs, below.
	wizardCfg := cfg
	wizardCfg.Log = ""
	argv := append([]string{"install"}, ui.ResumeArgs(wizardCfg, plan, failed)...)
	// Past kexec the machine runs the NixOS installer, reached as root with
	// a host key of its own: the preflight, made for the system before the
	// wipe, would refuse it. It checked the machine before the wipe.
	if flags.skipPreflight || len(ui.ResumePhases(plan, failed)) > 0 {
		argv = append(argv, "--skip-preflight")
	}
	if flags.rebootTimeout > 0 && flags.rebootTimeout != sshexec.DefaultRebootTimeout {
		argv = append(argv, "--reboot-timeout", flags.rebootTimeout.String())
	}
	if cfg.Log != "" {
		// The transcript is appended to: one file tells the whole story.
		argv = append(argv, "--log", cfg.Log)
	}
	if cfg.Output != "" {
		argv = append(argv, "--output", cfg.Output)
	}
	argv = append(argv, "--yes-wipe", cfg.Host)
	return "bigbang " + steps.ShellJoin(argv)
}

// wantsWizard says whether the install is the interactive wizard: asked
// for with --output tui, or by default on a terminal when the wipe is not
// confirmed beforehand with --yes-wipe (which is how scripts install).
func wantsWizard(cmd *cobra.Command, cfg steps.Config) bool {
	switch cfg.Output {
	case "tui":
		return true
	case "":
		out, ok := cmd.OutOrStdout().(*os.File)
		return ok && cfg.YesWipe == "" && term.IsTerminal(os.Stdin.Fd()) && term.IsTerminal(out.Fd())
	}
	return false
}

// refuseBlocked says no when the preflight found something that blocks the
// install. An unknown host key is one of those here: the wizard asks about
// it, a script must have said yes beforehand with --accept-new-host-key.
func refuseBlocked(cfg steps.Config, rep ui.Report, sink steps.Sink) error {
	checks := rep.Checks
	if rep.HostKey.Status == ui.HostKeyNew {
		c := steps.Check{ID: remote.IDHostKey, Status: steps.StatusFail,
			Summary: fmt.Sprintf("the host key of %s is not known: %s %s", cfg.Host, rep.HostKey.Type, rep.HostKey.Fingerprint),
			Fix: fmt.Sprintf("compare the fingerprint with the one in the provider's console (or ssh-keyscan %s on a trusted network), then run again with --accept-new-host-key",
				steps.ShellQuote(cfg.Host))}
		sink(steps.Event{Time: time.Now(), Type: steps.EventCheck, Check: c})
		checks = append(checks, c)
	}
	var blocking []string
	for _, c := range checks {
		if c.Blocking() {
			blocking = append(blocking, fmt.Sprintf("%s (%s; fix: %s)", c.ID, c.Summary, c.Fix))
		}
	}
	if len(blocking) == 0 {
		return nil
	}
	return fmt.Errorf("install: the preflight found %d problem(s) that block the install, and nothing was started: %s",
		len(blocking), strings.Join(blocking, "; "))
}

// errNoConfirm is wrapped when --yes-wipe does not name the target.
var errNoConfirm = errors.New("the disk wipe is not confirmed")

// confirmWipe checks the typed confirmation of scripts: --yes-wipe must
// name the target host exactly, so a command line copied to another host
// cannot wipe it.
func confirmWipe(cfg steps.Config) error {
	host := cfg.Host
	switch {
	case cfg.YesWipe == "":
		return fmt.Errorf("%w: installing wipes every disk of %s; to go ahead without questions, pass --yes-wipe %s (run `bigbang check --host %s` first to see what is there)",
			errNoConfirm, host, steps.ShellQuote(host), steps.ShellQuote(host))
	case strings.Trim(cfg.YesWipe, "[]") != strings.Trim(host, "[]"):
		return fmt.Errorf("%w: --yes-wipe %s does not match the target host %s; pass --yes-wipe %s to wipe %s",
			errNoConfirm, steps.ShellQuote(cfg.YesWipe), host, steps.ShellQuote(host), host)
	}
	return nil
}

// commandMissing says how to get the nixos-anywhere command.
func commandMissing(name string) error {
	if name == "nix" {
		return errors.New("nix not found: install Nix (https://nixos.org/download) or pass --nixos-anywhere with your own build")
	}
	return fmt.Errorf("%s not found: check --nixos-anywhere (a command on PATH or a path to your nixos-anywhere build), or leave it out to use the pinned nixos-anywhere 1.13.0 through nix", name)
}

// printPlan tells a plain reader what is about to happen and why.
func printPlan(w io.Writer, cfg steps.Config, plan steps.Plan) {
	fmt.Fprintf(w, "\nInstalling %s onto %s\n", cfg.Flake, plan.Target)
	for _, d := range plan.Decisions {
		fmt.Fprintf(w, "  - %s: %s\n", d.What, d.Why)
	}
	fmt.Fprintf(w, "  $ %s\n\n", plan.Command())
}
