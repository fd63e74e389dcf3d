package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"charm.land/huh/v2"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

// Accessible reports whether ACCESSIBLE is set: then the wizard asks its
// questions as plain prompts (huh's accessible mode) and shows the install
// with the plain renderer, which screen readers can follow.
func Accessible() bool { return os.Getenv("ACCESSIBLE") != "" }

// RunAccessible is the wizard as a sequence of plain prompts on r and w:
// the target form, then the engine's linear install, whose questions are
// asked here.
func RunAccessible(ctx context.Context, opts Options, r io.Reader, w io.Writer) (engine.InstallResult, error) {
	a := &accessible{ctx: ctx, auto: opts.Auto, r: r, w: w, plain: textout.Plain(w)}
	if opts.Rehearsal {
		fmt.Fprintln(w, "REHEARSAL: a simulated VPS; nothing real is touched.")
	}
	fmt.Fprintln(w, "bigbang installs NixOS onto a fresh VPS: connect, kexec, disko, install, reboot.")
	cfg := opts.Config
	t := newTargetScreen(cfg, opts.Auto)
	if err := a.ask(t.fields(true)); err != nil {
		return engine.InstallResult{}, err
	}
	cfg = t.apply(cfg)
	fmt.Fprintf(w, "Preflight of %s@%s and %s:\n", cfg.User, cfg.Host, cfg.Flake)
	res, err := opts.Engine.RunInstall(ctx, engine.Script{Config: cfg}, a)
	if errors.Is(err, engine.ErrNotConfirmed) && ctx.Err() == nil {
		return res, ErrAborted
	}
	var refusal *engine.Refusal
	if errors.As(err, &refusal) {
		return engine.InstallResult{Outcome: steps.OutcomeFailed}, fmt.Errorf("%d problem(s) block the install; fix them (see above) and run bigbang again", steps.CountBlocking(refusal.Checks))
	}
	for _, n := range res.Notes {
		fmt.Fprintln(w, "Note: "+n)
	}
	if res.Receipt != "" {
		fmt.Fprintln(w, "Receipt: "+res.Receipt)
	}
	if err == nil && res.Outcome == steps.OutcomeSuccess && res.SSHCommand != "" {
		fmt.Fprintln(w, "Log in with: "+res.SSHCommand)
	}
	if res.Outcome != "" && res.Outcome != steps.OutcomeSuccess && res.Log != "" {
		// The plain renderer named the transcript; this says how to read it.
		fmt.Fprintln(w, "Explain the transcript with: bigbang explain "+steps.ShellQuote(res.Log))
	}
	return res, err
}

// accessible is the accessible wizard's side of the engine's linear run:
// each question a huh prompt in accessible mode, each event plain text.
type accessible struct {
	ctx   context.Context
	auto  bool
	r     io.Reader
	w     io.Writer
	plain steps.Sink
}

var _ engine.Front = (*accessible)(nil)

func (a *accessible) ask(groups ...*huh.Group) error {
	if a.auto {
		return nil
	}
	err := huh.NewForm(groups...).WithAccessible(true).WithInput(a.r).WithOutput(a.w).RunWithContext(a.ctx)
	if errors.Is(err, huh.ErrUserAborted) {
		return ErrAborted
	}
	return err
}

func (a *accessible) Event(e steps.Event) { a.plain(e) }
func (a *accessible) Stage(text string)   { fmt.Fprintln(a.w, text) }
func (a *accessible) Note(text string)    { fmt.Fprintln(a.w, "Note: "+text) }

func (a *accessible) Drift(host string, rep reinstall.Report) {
	fmt.Fprintln(a.w, strings.TrimSpace(rep.Summary()))
}

func (a *accessible) Progress(p reinstall.Progress, done bool) {}

// StopUnits names no unit: the accessible wizard installs, it takes no
// backup (`bigbang reinstall --service UNIT` names them).
func (a *accessible) StopUnits(context.Context, engine.UnitsQuestion) ([]string, error) {
	return nil, nil
}

func (a *accessible) TrustHostKey(_ context.Context, t steps.Target, k engine.HostKey) (bool, error) {
	accept := a.auto
	err := a.ask(huh.NewGroup(huh.NewConfirm().Title("New host key " + k.Type + " " + k.Fingerprint + " (compare it with the provider's console): trust it?").Value(&accept)))
	if err == nil && !accept {
		return false, ErrAborted
	}
	return accept, err
}

func (a *accessible) SudoPassword(_ context.Context, t steps.Target) ([]byte, error) {
	if a.auto {
		return nil, nil
	}
	var pw string
	if err := a.ask(huh.NewGroup(huh.NewInput().Title("sudo password for " + t.User + " (used once to set up passwordless sudo; never stored)").EchoMode(huh.EchoModeNone).Value(&pw))); err != nil {
		return nil, err
	}
	b := []byte(pw)
	pw = ""
	return b, nil
}

func (a *accessible) Choose(_ context.Context, cfg steps.Config, rep engine.Report) (steps.Config, error) {
	b := newBuildScreen(cfg, rep)
	ram, on := b.ramValue(), b.buildOn()
	if err := a.ask(huh.NewGroup(
		huh.NewInput().Title("Target RAM ["+ram+"]").Value(&ram).Validate(keepDefault(true, ram, func(s string) error { _, err := steps.ParseRAM(s); return err })),
		huh.NewSelect[string]().Title("Build the system").Options(huh.NewOption("on the VPS (--build-on remote)", "remote"), huh.NewOption("on this machine (--build-on local)", "local")).Value(&on).Validate(func(s string) error {
			// The choice is judged on the preflight's facts, as the wizard's
			// RAM screen judges it.
			judged := cfg
			judged.BuildOn = s
			if c := rep.BuildCheck(judged); s == "local" && c.Blocking() {
				return fmt.Errorf("cannot build here: %s; choose on the VPS, or %s", c.Summary, c.Fix)
			}
			return nil
		}),
	)); err != nil {
		return cfg, err
	}
	// The config is made as the RAM screen makes it: only what the
	// operator changed becomes a flag, so a kept RAM is not "given with
	// --ram" and the plan gives its own reasons.
	b.ram.SetValue(ram)
	b.remote = on == "remote"
	_, out, err := b.makePlan(rep.PlanEnv())
	if err != nil {
		return cfg, err
	}
	return out, nil
}

func (a *accessible) Plan(cfg steps.Config, plan steps.Plan, disks []engine.Disk) {
	fmt.Fprintln(a.w, "Plan:")
	for _, d := range plan.Decisions {
		fmt.Fprintf(a.w, "  %s: %s\n", d.What, d.Why)
	}
	fmt.Fprintln(a.w, "Command: "+plan.Command())
	for _, d := range disks {
		var parts []string
		for _, p := range d.Partitions {
			parts = append(parts, strings.TrimSpace(p.Name+" "+p.Mountpoint))
		}
		held := ""
		if len(parts) > 0 {
			held = " (" + strings.Join(parts, ", ") + ")"
		}
		fmt.Fprintf(a.w, "Will be wiped: %s %s %s on %s%s\n", d.Device, steps.FormatBytes(d.Size), d.Model, cfg.Host, held)
	}
}

func (a *accessible) ConfirmRestore(_ context.Context, r engine.RestoreInto) (bool, error) {
	typed := ""
	if a.auto {
		typed = r.Target.Host
	}
	title := fmt.Sprintf("%s was taken from %s. Type the host to restore it into %s:%s (what is there is overwritten)", r.Archive, r.From, r.Target.Host, r.Into)
	err := a.ask(huh.NewGroup(huh.NewInput().Title(title).Value(&typed).Validate(func(s string) error {
		if strings.TrimSpace(s) != r.Target.Host {
			return fmt.Errorf("type %s exactly to restore into %s", r.Target.Host, r.Into)
		}
		return nil
	})))
	if err != nil {
		return false, err
	}
	return true, nil
}

func (a *accessible) ConfirmWipe(_ context.Context, wp engine.Wipe) (bool, error) {
	typed := ""
	if a.auto {
		typed = wp.Target.Host
	}
	err := a.ask(huh.NewGroup(huh.NewInput().Title("Type the host to wipe it").Value(&typed).Validate(func(s string) error {
		if strings.TrimSpace(s) != wp.Target.Host {
			return fmt.Errorf("type %s exactly to wipe it", wp.Target.Host)
		}
		return nil
	})))
	if err != nil {
		return false, err
	}
	return a.countdown(wp.Target.Host)
}

// countdownTick is one second of the accessible countdown (tests shorten
// it).
var countdownTick = time.Second

// countdown is the wipe screen's countdown in lines a screen reader
// follows: it says when the wipe starts and how to stop it, then the
// seconds left every two seconds; Enter (any line typed) stops it, and
// nothing has changed then. An input that ends (no terminal, --yes) lets
// it run out.
func (a *accessible) countdown(host string) (bool, error) {
	typed := make(chan struct{}, 1)
	if !a.auto {
		// The read outlives a countdown that runs out: no question follows
		// the wipe, so the line it takes is nobody's answer.
		go func() {
			var b [1]byte
			for {
				n, err := a.r.Read(b[:])
				if n == 1 && b[0] == '\n' {
					typed <- struct{}{}
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	fmt.Fprintf(a.w, "Wiping %s in %d seconds. Press Enter to stop.\n", host, wipeCountdown)
	for left := wipeCountdown; left > 0; left-- {
		select {
		case <-typed:
			fmt.Fprintln(a.w, "Countdown stopped; nothing was changed.")
			return false, nil
		case <-a.ctx.Done():
			return false, a.ctx.Err()
		case <-time.After(countdownTick):
		}
		switch n := left - 1; {
		case n == 1:
			fmt.Fprintln(a.w, "1 second.")
		case n > 0 && n%2 == 1:
			fmt.Fprintf(a.w, "%d seconds.\n", n)
		}
	}
	fmt.Fprintf(a.w, "Wiping %s now.\n", host)
	return true, nil
}
