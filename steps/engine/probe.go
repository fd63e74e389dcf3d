package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
)

// MachineState is what a target is now, as a resume needs to know it.
type MachineState string

// The states Probe tells apart.
const (
	StateDown      MachineState = "down"      // no SSH login answered
	StateOldOS     MachineState = "old-os"    // the system before the install: kexec did not happen
	StateInstaller MachineState = "installer" // the NixOS installer in RAM, reached as root
	StateInstalled MachineState = "installed" // the new system, with the shipped host key
	// StateUnverified: it answers, but with a host key bigbang cannot
	// trust (not in known_hosts, or changed).
	StateUnverified MachineState = "unverified"
)

// Words describe the state for the operator.
func (s MachineState) Words() string {
	return map[MachineState]string{
		StateDown:       "does not answer on SSH",
		StateOldOS:      "runs its old system",
		StateInstaller:  "runs the NixOS installer in RAM",
		StateInstalled:  "runs the installed system with its shipped host key",
		StateUnverified: "answers with a host key bigbang cannot verify",
	}[s]
}

// probeTimeout bounds each dial of a probe: a machine that is down must
// not hold the operator up for long.
const probeTimeout = 8 * time.Second

// RebootPort is the port the installed system's sshd listens on:
// --reboot-port, else the flake's services.openssh.ports (the first), else
// 22.
func RebootPort(cfg steps.Config, info *flake.Info) int {
	switch {
	case cfg.RebootPort != 0:
		return cfg.RebootPort
	case info != nil && len(info.Config.SSH.Ports) > 0 && info.Config.SSH.Ports[0] != 0:
		return info.Config.SSH.Ports[0]
	}
	return 22
}

// Probe finds out what the target is now: the installed system (it
// answers on the reboot port with the host key the extra-files tree
// ships), the NixOS installer (root on the port after kexec, its facts say
// so), the old system (the login user on --port), or down.
func (e *Engine) Probe(ctx context.Context, cfg steps.Config, info *flake.Info) MachineState {
	target := func(user string, port int) sshexec.Target {
		t := SSHTarget(cfg)
		t.User, t.Port = user, port
		if port == 22 {
			t.Port = 0
		}
		return t
	}
	if want, err := sshexec.ReadExpectedHostKey(sshexec.ExpectedHostKeyFile(cfg.ExtraFiles)); err == nil {
		c, err := e.World.Dialer.Dial(ctx, sshexec.Options{Target: target("root", RebootPort(cfg, info)), ExpectedHostKey: want,
			Timeout: probeTimeout, AgentSocket: e.World.AgentSocket})
		if err == nil {
			c.Close()
			return StateInstalled
		}
	}
	o := e.dialOptions(cfg, DialPolicy{Timeout: probeTimeout})
	o.AcceptNewHostKey = false
	o.Target = target("root", cfg.Port)
	c, err := e.World.Dialer.Dial(ctx, o)
	if err == nil {
		defer c.Close()
		f, err := c.Facts(ctx)
		switch {
		case err == nil && f.IsInstaller():
			return StateInstaller
		case err == nil && f.OSID == "nixos":
			// NixOS that is not the installer: the installed system,
			// reached with the key known_hosts pins.
			return StateInstalled
		}
		return StateOldOS
	}
	keyErr := errors.Is(err, sshexec.ErrHostKeyUnknown) || errors.Is(err, sshexec.ErrHostKeyMismatch)
	o.Target = target(cfg.User, cfg.Port)
	if c, err := e.World.Dialer.Dial(ctx, o); err == nil {
		c.Close()
		return StateOldOS
	} else if keyErr || errors.Is(err, sshexec.ErrHostKeyUnknown) || errors.Is(err, sshexec.ErrHostKeyMismatch) {
		return StateUnverified
	}
	return StateDown
}

// ErrResumeRefused is wrapped when the machine's state does not fit the
// resume asked for: running it would hang or undo the install.
var ErrResumeRefused = errors.New("the resume does not fit the machine's state")

// resumePlan decides what a resumed run (--phases) does against the
// machine as it is now: verify only (the installed system, or one that is
// down after the reboot), run nixos-anywhere, or refuse with what to do. A
// resume never reboots an installed system.
func resumePlan(state MachineState, phases []steps.PhaseID, host string) (verifyOnly bool, err error) {
	onlyReboot := len(phases) == 1 && phases[0] == steps.PhaseReboot
	quoted := steps.ShellQuote(host)
	switch {
	case onlyReboot && (state == StateInstalled || state == StateDown):
		// The install is done and the machine rebooted (or is rebooting):
		// what is left is to wait for it and check it.
		return true, nil
	case state == StateUnverified:
		return false, fmt.Errorf("%w: %s answers with a host key bigbang cannot verify: compare it with the provider's console (bigbang check --host %s shows it) before anything else runs against it",
			ErrResumeRefused, host, quoted)
	case state == StateInstalled:
		return false, fmt.Errorf("%w: %s already runs the installed system with its shipped host key: nothing is resumed, so that it is not wiped or rebooted again; check it with: bigbang status --host %s",
			ErrResumeRefused, host, quoted)
	case state == StateDown:
		return false, fmt.Errorf("%w: %s does not answer on SSH, and nixos-anywhere would retry ssh-copy-id for ever: open the provider's console (Oracle: the instance's Console connection) to see what it does, then resume again",
			ErrResumeRefused, host)
	case state == StateOldOS && !slices.Contains(phases, steps.PhaseKexec):
		return false, fmt.Errorf("%w: %s still runs its old system (kexec did not happen or the machine rebooted into it), so nothing was wiped: run the whole install again, without --phases: bigbang install --host %s",
			ErrResumeRefused, host, quoted)
	case state == StateInstaller && slices.Contains(phases, steps.PhaseKexec):
		return false, fmt.Errorf("%w: %s already runs the NixOS installer: resume after kexec, as root, with --phases %s",
			ErrResumeRefused, host, "disko,install,reboot")
	}
	return false, nil
}
