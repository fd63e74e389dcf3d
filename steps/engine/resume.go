package engine

import (
	"strconv"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
)

// ResumeStyle says how a resume command is written: for the wizard (the
// target and the choices; the wizard asks the rest), or for a script (the
// non-interactive install with everything it needs).
type ResumeStyle struct {
	Script        bool
	SkipPreflight bool // the run itself skipped the preflight
	RebootTimeout time.Duration
}

// ResumeCommand is the exact command that resumes a failed install from
// the phase that failed. Before the disk is touched (connect, kexec) the
// whole install is simply run again.
func ResumeCommand(command string, cfg steps.Config, plan steps.Plan, failed steps.PhaseID, style ResumeStyle) string {
	if command == "" {
		command = "bigbang"
	}
	if !style.Script {
		return command + " " + steps.ShellJoin(ResumeArgs(cfg, plan, failed))
	}
	// --log goes with the flags a script needs, below.
	wizardCfg := cfg
	wizardCfg.Log = ""
	argv := append([]string{"install"}, ResumeArgs(wizardCfg, plan, failed)...)
	// Past kexec the machine runs the NixOS installer, reached as root with
	// a host key of its own: the preflight, made for the system before the
	// wipe, would refuse it. It checked the machine before the wipe.
	if style.SkipPreflight || len(ResumePhases(plan, failed)) > 0 {
		argv = append(argv, "--skip-preflight")
	}
	if style.RebootTimeout > 0 && style.RebootTimeout != sshexec.DefaultRebootTimeout {
		argv = append(argv, "--reboot-timeout", style.RebootTimeout.String())
	}
	if cfg.Log != "" {
		// The transcript is appended to: one file tells the whole story.
		argv = append(argv, "--log", cfg.Log)
	}
	if cfg.Output != "" {
		argv = append(argv, "--output", cfg.Output)
	}
	argv = append(argv, "--yes-wipe", cfg.Host)
	return command + " " + steps.ShellJoin(argv)
}

// ResumeArgs are the flags of ResumeCommand: the target and the choices
// that differ from the defaults, and --phases from the failed phase on
// when the disk may already have been touched.
func ResumeArgs(cfg steps.Config, plan steps.Plan, failed steps.PhaseID) []string {
	argv := []string{}
	add := func(flag, v, def string) {
		if v != "" && v != def {
			argv = append(argv, flag, v)
		}
	}
	d := steps.DefaultConfig()
	rest := ResumePhases(plan, failed)
	add("--host", cfg.Host, "")
	add("--user", cfg.User, d.User)
	// Past kexec nixos-anywhere reaches the installer on the port after
	// kexec (-p is replaced by --post-kexec-ssh-port, 22 by default), and
	// a resumed run, which skips kexec, uses -p as given: so the resume
	// names that port.
	port := cfg.Port
	if len(rest) > 0 {
		port = cfg.AfterKexecPort()
	}
	if port != 0 && port != d.Port {
		argv = append(argv, "--port", strconv.Itoa(port))
	}
	if len(rest) == 0 && cfg.PostKexecPort != 0 {
		argv = append(argv, "--post-kexec-ssh-port", strconv.Itoa(cfg.PostKexecPort))
	}
	if cfg.RebootPort != 0 {
		argv = append(argv, "--reboot-port", strconv.Itoa(cfg.RebootPort))
	}
	add("-i", cfg.Identity, "")
	add("--flake", cfg.Flake, d.Flake)
	add("--extra-files", cfg.ExtraFiles, d.ExtraFiles)
	add("--build-on", plan.BuildOn, "")
	add("--nixos-anywhere", cfg.NixosAnywhere, d.NixosAnywhere)
	// The verified reboot pins the new key in this file: the resumed run
	// must use the same one.
	add("--known-hosts", cfg.KnownHosts, "")
	// The runner appends to the transcript: the resumed run writes into
	// the same file, so that one install keeps one transcript.
	add("--log", cfg.Log, "")
	for _, o := range cfg.SSHOptions {
		argv = append(argv, "--ssh-option", o)
	}
	if cfg.Debug {
		argv = append(argv, "--debug")
	}
	if len(rest) > 0 {
		argv = append(argv, "--phases", strings.Join(rest, ","))
	}
	return argv
}

// ResumePhases are the phases a resumed install runs, from the failed one
// on; none (run it all again) when the failure came before the disk was
// touched.
func ResumePhases(plan steps.Plan, failed steps.PhaseID) []string {
	switch failed {
	case steps.PhaseBuild, steps.PhaseConnect, steps.PhaseKexec, "":
		// Nothing on the disk changed yet: run it all again.
		return nil
	}
	var rest []string
	from := false
	for _, id := range plan.Phases {
		if id == failed {
			from = true
		}
		if from && id != steps.PhaseConnect && id != steps.PhaseBuild {
			rest = append(rest, string(id))
		}
	}
	return rest
}

// ForgetHostKeyCommand is the exact command that removes the target's old
// host key from known_hosts (the operator's file, or --known-hosts), for
// a VPS that was rebuilt.
func ForgetHostKeyCommand(cfg steps.Config) string {
	argv := []string{"ssh-keygen", "-R", cfg.Target().KnownHostsName()}
	if cfg.KnownHosts != "" {
		argv = append(argv, "-f", cfg.KnownHosts)
	}
	return steps.ShellJoin(argv)
}

// sshCommand is the exact line that logs in to the new system as root.
func sshCommand(t steps.Target) string {
	argv := []string{"ssh"}
	if t.Port != 0 && t.Port != 22 {
		argv = append(argv, "-p", strconv.Itoa(t.Port))
	}
	return steps.ShellJoin(append(argv, t.WithUser("root").SSHArg()))
}
