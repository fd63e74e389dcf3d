package steps

import (
	"fmt"
	"strings"
)

// GiB is 2^30 bytes.
const GiB = int64(1) << 30

// RemoteBuildMinRAM is the RAM above which building on the target is
// offered: the kexec installer itself needs 1.5 GB, so a target with more
// can hold the installer and a build.
const RemoteBuildMinRAM = 3 * GiB / 2

// PlanEnv is what is known about the two machines when the plan is made.
// Zero values mean "not known".
type PlanEnv struct {
	LocalSystem       string // e.g. "x86_64-linux"
	TargetSystem      string // the flake's system, e.g. "aarch64-linux"
	TargetRAM         int64  // bytes, detected on the target
	TargetIsInstaller bool   // the target already runs the NixOS installer
}

// Decision is one choice the plan made and why, in words for the plan
// screen and the plain output.
type Decision struct {
	What string `json:"what"`
	Why  string `json:"why"`
}

// Plan is everything that will happen: the phases in run order and the
// exact nixos-anywhere command.
type Plan struct {
	Target    string     // user@host that nixos-anywhere logs in as
	Host      string     // the host alone, for the typed confirmation
	BuildOn   string     // local or remote, never auto
	Phases    []PhaseID  // bigbang phases that will run, in PhaseOrder
	NAPhases  []string   // nixos-anywhere's --phases
	Argv      []string   // the full command, ready for exec
	Decisions []Decision // each choice with its reason
}

// Runs reports whether the plan runs phase p.
func (p Plan) Runs(id PhaseID) bool {
	for _, q := range p.Phases {
		if q == id {
			return true
		}
	}
	return false
}

// Command returns the plan's command as one line a person can copy.
func (p Plan) Command() string { return ShellJoin(p.Argv) }

// defaultNAPhases are nixos-anywhere's own default phases.
var defaultNAPhases = []string{"kexec", "disko", "install", "reboot"}

// NewPlan turns the operator's config into a plan. cfg must have passed
// Validate.
func NewPlan(cfg Config, env PlanEnv) (Plan, error) {
	p := Plan{Host: cfg.Host}
	prefix, err := SplitCommand(cfg.NixosAnywhere)
	if err != nil {
		return p, fmt.Errorf("--nixos-anywhere: %w", err)
	}
	if len(prefix) == 0 {
		return p, invalid("--nixos-anywhere is empty: leave it out to use the pinned nixos-anywhere 1.13.0, or give the command of your own build")
	}
	ram := env.TargetRAM
	if cfg.RAM != "" {
		r, err := ParseRAM(cfg.RAM)
		if err != nil {
			return p, err
		}
		ram = r
		p.decide(fmt.Sprintf("Target RAM %s", FormatBytes(ram)), "given with --ram, instead of what the target reports")
	}

	// nixos-anywhere phases.
	wanted, err := ParsePhases(cfg.Phases)
	if err != nil {
		return p, err
	}
	switch {
	case len(wanted) > 0:
		p.NAPhases = naPhases(wanted)
		if len(p.NAPhases) == 0 {
			return p, invalid("--phases %q names no phase that nixos-anywhere runs: include kexec, disko, install (or keys) or reboot", cfg.Phases)
		}
		p.decide("Run the phases "+strings.Join(p.NAPhases, ","), "given with --phases (resuming a run)")
	case env.TargetIsInstaller:
		p.NAPhases = []string{"disko", "install", "reboot"}
		p.decide("Skip kexec", "the target already runs the NixOS installer")
	default:
		p.NAPhases = defaultNAPhases
	}
	runsKexec := contains(p.NAPhases, "kexec")

	// Who nixos-anywhere logs in as: without kexec it always uses root.
	t := cfg.Target()
	p.Target = t.SSHArg()
	if !runsKexec {
		p.Target = t.WithUser("root").SSHArg()
		if cfg.User != "root" {
			p.decide("Log in as root@"+cfg.Host, "without the kexec phase nixos-anywhere logs in as root on the installer, whatever user was given")
		}
	} else {
		p.decide("Log in as "+p.Target, "the user of the running system; nixos-anywhere switches to root in the installer after kexec")
	}

	// Where to build.
	p.BuildOn, err = chooseBuildOn(cfg.BuildOn, ram, env, &p)
	if err != nil {
		return p, err
	}

	// The bigbang phases, in pane order.
	installs := contains(p.NAPhases, "install")
	for _, id := range PhaseOrder {
		switch id {
		case PhaseBuild:
			if p.BuildOn == "local" && installs {
				p.Phases = append(p.Phases, id)
			}
		case PhaseConnect:
			p.Phases = append(p.Phases, id)
		case PhaseKeys:
			if installs && cfg.ExtraFiles != "" {
				p.Phases = append(p.Phases, id)
			}
		default:
			if contains(p.NAPhases, string(id)) {
				p.Phases = append(p.Phases, id)
			}
		}
	}

	// The command.
	argv := append([]string{}, prefix...)
	argv = append(argv, "--flake", cfg.Flake)
	if cfg.ExtraFiles != "" && installs {
		argv = append(argv, "--extra-files", cfg.ExtraFiles)
		p.decide("Copy "+cfg.ExtraFiles+" into / of the new system", "it holds the pre-generated host key, so the new system keeps a known identity and can decrypt its sops secrets")
	}
	argv = append(argv, "--build-on", p.BuildOn)
	if cfg.Identity != "" {
		argv = append(argv, "-i", cfg.Identity)
		p.decide("Log in with "+cfg.Identity, "passing the key explicitly avoids 'Too many authentication failures' and a root login without the key after kexec")
	}
	if cfg.Port != 22 && cfg.Port != 0 {
		argv = append(argv, "-p", fmt.Sprint(cfg.Port))
	}
	if ram > 0 && ram < RemoteBuildMinRAM && runsKexec {
		argv = append(argv, "--no-disko-deps")
		p.decide("Pass --no-disko-deps", fmt.Sprintf("the target has %s of RAM; the kexec installer needs 1.5 GB, and leaving disko's dependencies out saves memory", FormatBytes(ram)))
	}
	if cfg.PostKexecPort != 0 && runsKexec {
		argv = append(argv, "--post-kexec-ssh-port", fmt.Sprint(cfg.PostKexecPort))
		p.decide(fmt.Sprintf("Reach the installer on port %d after kexec", cfg.PostKexecPort), "given with --post-kexec-ssh-port; nixos-anywhere's default is 22, whatever -p was")
	}
	if cfg.Kexec != "" && runsKexec {
		argv = append(argv, "--kexec", cfg.Kexec)
		p.decide("Boot the installer from "+cfg.Kexec, "given with --kexec, instead of nixos-images' default kexec image (which panics on some machines, e.g. Oracle A1: nixos-images#172)")
	}
	if cfg.HardwareConfig != "" {
		argv = append(argv, "--generate-hardware-config", cfg.HardwareConfig, cfg.HardwareConfigPath)
		p.decide("Write "+cfg.HardwareConfigPath+" with "+cfg.HardwareConfig, "given with --generate-hardware-config: the machine's real drivers (its disk's and NIC's initrd modules) go into the flake before it is built; nixos-anywhere adds the file to git (intent to add)")
	}
	for _, k := range cfg.DiskKeys {
		remote, local, _ := strings.Cut(k, "=")
		argv = append(argv, "--disk-encryption-keys", remote, local)
		p.decide("Upload "+local+" to "+remote, "given with --disk-encryption-keys: disko reads the disk key there to set up encryption")
	}
	if cfg.PrintBuildLogs {
		argv = append(argv, "--print-build-logs")
		p.decide("Pass --print-build-logs", "given with --print-build-logs: nix prints every build's log")
	}
	if cfg.NoSubstituteOnDestination {
		argv = append(argv, "--no-substitute-on-destination")
		p.decide("Pass --no-substitute-on-destination", "given: the target fetches nothing from binary caches, everything is copied from here")
	}
	if cfg.Debug {
		argv = append(argv, "--debug")
		p.decide("Pass --debug", "given with --debug: nixos-anywhere traces every command (set -x) locally and remotely")
	}
	for _, o := range cfg.SSHOptions {
		argv = append(argv, "--ssh-option", o)
	}
	if !equalStrings(p.NAPhases, defaultNAPhases) {
		argv = append(argv, "--phases", strings.Join(p.NAPhases, ","))
	}
	if len(cfg.Extra) > 0 {
		argv = append(argv, cfg.Extra...)
		p.decide("Pass "+ShellJoin(cfg.Extra)+" through", "given after --: passed through to nixos-anywhere, not checked by bigbang")
	}
	argv = append(argv, p.Target)
	p.Argv = argv
	return p, nil
}

func chooseBuildOn(flag string, ram int64, env PlanEnv, p *Plan) (string, error) {
	cross := env.LocalSystem != "" && env.TargetSystem != "" && env.LocalSystem != env.TargetSystem
	switch flag {
	case "local":
		why := "given with --build-on local"
		if cross {
			why += fmt.Sprintf("; this machine is %s and the target %s, so it needs binfmt emulation or a remote builder", env.LocalSystem, env.TargetSystem)
		}
		p.decide("Build the system on this machine", why)
		return "local", nil
	case "remote":
		why := "given with --build-on remote"
		if ram > 0 && ram < RemoteBuildMinRAM {
			why += fmt.Sprintf("; the target has only %s of RAM, the build may run out of memory", FormatBytes(ram))
		}
		p.decide("Build the system on the target", why)
		return "remote", nil
	case "auto", "":
	default:
		return "", invalid("--build-on %q: use auto, local or remote", flag)
	}
	switch {
	case ram >= RemoteBuildMinRAM:
		why := fmt.Sprintf("the target has %s of RAM (more than 1.5 GB), enough for the installer and the build", FormatBytes(ram))
		if cross {
			why = fmt.Sprintf("this machine is %s, the target is %s with %s of RAM", env.LocalSystem, env.TargetSystem, FormatBytes(ram))
		}
		p.decide("Build the system on the target (--build-on remote)", why)
		return "remote", nil
	case ram > 0:
		why := fmt.Sprintf("the target has only %s of RAM, too little to build there", FormatBytes(ram))
		if cross {
			why += fmt.Sprintf("; this machine is %s and the target %s, so a local build needs binfmt emulation or a remote builder", env.LocalSystem, env.TargetSystem)
		}
		p.decide("Build the system on this machine (--build-on local)", why)
		return "local", nil
	case cross:
		p.decide("Build the system on the target (--build-on remote)", fmt.Sprintf("this machine is %s and cannot build for %s; the target's RAM is not known yet", env.LocalSystem, env.TargetSystem))
		return "remote", nil
	default:
		p.decide("Build the system on the target (--build-on remote)", "the target's RAM is not known; nixos-anywhere's auto mode is avoided because it decides silently")
		return "remote", nil
	}
}

// naPhases maps bigbang phases to nixos-anywhere's phases.
func naPhases(ids []PhaseID) []string {
	var out []string
	add := func(s string) {
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	for _, want := range defaultNAPhases {
		for _, id := range ids {
			switch {
			case string(id) == want:
				add(want)
			case id == PhaseKeys && want == "install":
				add(want)
			}
		}
	}
	return out
}

func (p *Plan) decide(what, why string) {
	p.Decisions = append(p.Decisions, Decision{What: what, Why: why})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FormatBytes prints a size in binary units with one decimal, as the
// wizard shows RAM and disks ("23.4 GiB").
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// SplitCommand splits a command line into words the way a POSIX shell does
// for simple words and single and double quotes (no expansion).
func SplitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, invalid("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, invalid("unterminated \" in %q", s)
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
