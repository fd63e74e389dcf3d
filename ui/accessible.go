package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"charm.land/huh/v2"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

// Accessible reports whether ACCESSIBLE is set: then the wizard asks its
// questions as plain prompts (huh's accessible mode) and shows the install
// with the plain renderer, which screen readers can follow.
func Accessible() bool { return os.Getenv("ACCESSIBLE") != "" }

// RunAccessible is the wizard as a sequence of plain prompts on r and w.
func RunAccessible(ctx context.Context, opts Options, r io.Reader, w io.Writer) (InstallResult, error) {
	cfg := opts.Config
	ask := func(groups ...*huh.Group) error {
		if opts.Auto {
			return nil
		}
		err := huh.NewForm(groups...).WithAccessible(true).WithInput(r).WithOutput(w).RunWithContext(ctx)
		if errors.Is(err, huh.ErrUserAborted) {
			return ErrAborted
		}
		return err
	}
	if opts.Rehearsal {
		fmt.Fprintln(w, "REHEARSAL: a simulated VPS; nothing real is touched.")
	}
	fmt.Fprintln(w, "bigbang installs NixOS onto a fresh VPS: connect, kexec, disko, install, reboot.")
	t := newTargetScreen(cfg, opts.Auto)
	if err := ask(t.fields(true)); err != nil {
		return InstallResult{}, err
	}
	cfg = t.apply(cfg)

	var report Report
	approved := ""
	for {
		fmt.Fprintf(w, "Preflight of %s@%s and %s:\n", cfg.User, cfg.Host, cfg.Flake)
		plain := textout.Plain(w)
		pctx := ctx
		if approved != "" {
			pctx = WithApprovedHostKey(ctx, approved)
		}
		rep, err := opts.Backend.Preflight(pctx, cfg, func(e steps.Event) { plain(e) })
		if err != nil {
			return InstallResult{}, err
		}
		report = rep
		if rep.HostKey.Status == HostKeyNew && !cfg.AcceptNewHostKey {
			accept := opts.Auto
			if err := ask(huh.NewGroup(huh.NewConfirm().Title("New host key " + rep.HostKey.Type + " " + rep.HostKey.Fingerprint + ": trust it?").Value(&accept))); err != nil {
				return InstallResult{}, err
			}
			if !accept {
				return InstallResult{}, ErrAborted
			}
			// The next connection trusts this key and no other.
			approved = rep.HostKey.Fingerprint
			continue
		}
		if rep.HostKey.Status == HostKeyChanged {
			return InstallResult{}, fmt.Errorf("the host key of %s changed: if the VPS was rebuilt, remove the old key with %s", cfg.Host, ForgetHostKeyCommand(cfg))
		}
		if rep.SudoNeedsPassword && !opts.Auto {
			var pw string
			if err := ask(huh.NewGroup(huh.NewInput().Title("sudo password for " + cfg.User + " (used once to set up passwordless sudo; never stored)").EchoMode(huh.EchoModeNone).Value(&pw))); err != nil {
				return InstallResult{}, err
			}
			b := []byte(pw)
			pw = ""
			err := opts.Backend.SetupSudo(ctx, cfg, b)
			clear(b)
			if err != nil {
				return InstallResult{}, err
			}
			continue
		}
		if n := rep.Blocking(); n > 0 {
			return InstallResult{Outcome: steps.OutcomeFailed}, fmt.Errorf("%d problem(s) block the install; fix them (see above) and run bigbang again", n)
		}
		break
	}

	b := newBuildScreen(cfg, report)
	ram, on := b.ramValue(), b.buildOn()
	if err := ask(huh.NewGroup(
		huh.NewInput().Title("Target RAM ["+ram+"]").Value(&ram).Validate(keepDefault(true, ram, func(s string) error { _, err := steps.ParseRAM(s); return err })),
		huh.NewSelect[string]().Title("Build the system").Options(huh.NewOption("on the VPS (--build-on remote)", "remote"), huh.NewOption("on this machine (--build-on local)", "local")).Value(&on),
	)); err != nil {
		return InstallResult{}, err
	}
	cfg.RAM, cfg.BuildOn = ram, on
	plan, err := steps.NewPlan(cfg, steps.PlanEnv{LocalSystem: report.LocalSystem, TargetSystem: report.TargetSystem, TargetRAM: report.TargetRAM, TargetIsInstaller: report.TargetIsInstaller})
	if err != nil {
		return InstallResult{}, err
	}
	fmt.Fprintln(w, "Plan:")
	for _, d := range plan.Decisions {
		fmt.Fprintf(w, "  %s: %s\n", d.What, d.Why)
	}
	fmt.Fprintln(w, "Command: "+plan.Command())
	for _, d := range report.Disks {
		var parts []string
		for _, p := range d.Partitions {
			parts = append(parts, strings.TrimSpace(p.Name+" "+p.Mountpoint))
		}
		fmt.Fprintf(w, "WIPED: %s %s %s on %s (%s)\n", d.Device, steps.FormatBytes(d.Size), d.Model, cfg.Host, strings.Join(parts, ", "))
	}
	typed := ""
	if opts.Auto {
		typed = cfg.Host
	}
	if err := ask(huh.NewGroup(huh.NewInput().Title("Type the host to wipe it").Value(&typed).Validate(func(s string) error {
		if strings.TrimSpace(s) != cfg.Host {
			return fmt.Errorf("type %s exactly to wipe it", cfg.Host)
		}
		return nil
	}))); err != nil {
		return InstallResult{}, err
	}
	logPath := opts.Backend.LogPath(cfg)
	fmt.Fprintln(w, "Log: "+logPath)
	res, err := opts.Backend.Install(ctx, InstallRequest{Config: cfg, Plan: plan, Log: logPath, Disks: report.Disks, Flake: report.Flake}, textout.Plain(w))
	for _, n := range res.Notes {
		fmt.Fprintln(w, "Note: "+n)
	}
	if res.Receipt != "" {
		fmt.Fprintln(w, "Receipt: "+res.Receipt)
	}
	if err == nil && res.Outcome != steps.OutcomeSuccess {
		if d := res.Diagnosis; d != nil {
			fmt.Fprintln(w, "What went wrong: "+d.Summary)
			if d.Remedy != "" {
				fmt.Fprintln(w, "What to do: "+d.Remedy)
			}
		}
		if res.Diagnosis == nil || res.Diagnosis.ID != DiagnosisRebootUnverified {
			// The resumed run appends to this run's transcript.
			cfg.Log = logPath
			fmt.Fprintln(w, "Resume: "+ResumeCommand(opts.Command, cfg, plan, res.FailedPhase))
		}
	}
	return res, err
}
