package local

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
)

// IDSSHConfig is the check of the operator's resolved ssh configuration
// for the target: the settings that make nixos-anywhere's ssh hang or fail
// after kexec, found before anything runs.
const IDSSHConfig = "local.ssh_config"

// InstallerMaxAuthTries is sshd's default MaxAuthTries, which the kexec
// installer runs with whatever the old system's sshd said: after kexec,
// nixos-anywhere logs in to root with its own install key, which ssh
// offers after every key of the agent, so an agent with this many keys
// uses up the tries before the install key is reached.
const InstallerMaxAuthTries = 6

// sshGConfigFile, when set, is passed to `ssh -G` as -F: the tests point it
// at fixture configurations (ssh reads ~/.ssh/config from the password
// database's home, not $HOME).
var sshGConfigFile string

// sshSettings is what the check needs of `ssh -G`.
type sshSettings struct {
	ControlMaster  string // yes/true, no/false, auto, ask, autoask
	ControlPath    string // "" for none
	ControlPersist string
	ProxyJump      string
	ProxyCommand   string
	IdentitiesOnly bool
	IdentityAgent  string // "", "SSH_AUTH_SOCK", "none" or a socket path
}

// sshGArgs is the argv after ssh that shows the configuration nixos-anywhere
// will use for cfg's target: -p, the --ssh-option values, -l, as
// nixos-anywhere gives them (ssh keeps a keyword's first value, and command
// line options win over the configuration files).
func sshGArgs(cfg steps.Config) []string {
	t := cfg.Target()
	return sshexec.SSHGArgs(t.Host, sshexec.Target{Port: t.Port, User: t.User, Options: cfg.SSHOptions, SSHConfig: sshGConfigFile})
}

// parseSSHG reads the `keyword value` lines of `ssh -G`.
func parseSSHG(out string) sshSettings {
	var s sshSettings
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		switch strings.ToLower(k) {
		case "controlmaster":
			s.ControlMaster = strings.ToLower(v)
		case "controlpath":
			if !strings.EqualFold(v, "none") {
				s.ControlPath = v
			}
		case "controlpersist":
			s.ControlPersist = v
		case "proxyjump":
			if !strings.EqualFold(v, "none") {
				s.ProxyJump = v
			}
		case "proxycommand":
			if !strings.EqualFold(v, "none") {
				s.ProxyCommand = v
			}
		case "identitiesonly":
			s.IdentitiesOnly = strings.EqualFold(v, "yes")
		case "identityagent":
			s.IdentityAgent = v
		}
	}
	return s
}

// sshConfigFacts is what readSSHConfig found: the settings, the number of
// keys the agent ssh uses holds (-1: no agent), or why ssh -G failed.
type sshConfigFacts struct {
	settings  sshSettings
	agentKeys int
	err       error
	noSSH     bool
}

func readSSHConfig(ctx context.Context, cfg steps.Config) sshConfigFacts {
	var f sshConfigFacts
	if cfg.Host == "" {
		f.err = fmt.Errorf("no target host")
		return f
	}
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		f.noSSH = true
		return f
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	args := sshGArgs(cfg)
	cmd := exec.CommandContext(ctx, ssh, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		f.err = fmt.Errorf("ssh %s: %s", steps.ShellJoin(args), strings.TrimSpace(stderr.String()))
		return f
	}
	f.settings = parseSSHG(string(out))
	f.agentKeys = agentKeyCount(ctx, f.settings.IdentityAgent)
	return f
}

// agentKeyCount counts the keys of the agent ssh will ask: $SSH_AUTH_SOCK,
// or the IdentityAgent socket of the configuration; -1 when there is none.
func agentKeyCount(ctx context.Context, identityAgent string) int {
	sock := os.Getenv("SSH_AUTH_SOCK")
	switch identityAgent {
	case "", "SSH_AUTH_SOCK", "$SSH_AUTH_SOCK":
	case "none":
		return -1
	default:
		sock = os.ExpandEnv(identityAgent)
		if strings.HasPrefix(sock, "~/") {
			if h, err := os.UserHomeDir(); err == nil {
				sock = h + sock[1:]
			}
		}
	}
	if sock == "" {
		return -1
	}
	cmd := exec.CommandContext(ctx, "ssh-add", "-l")
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	out, err := cmd.Output()
	if err != nil {
		// ssh-add -l exits 1 when the agent holds no key, 2 when there is
		// no agent at all.
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
			return 0
		}
		return -1
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n
}

// sharing reports whether a ControlMaster value opens a master connection.
func sharing(controlMaster string) bool {
	switch controlMaster {
	case "yes", "true", "auto", "ask", "autoask":
		return true
	}
	return false
}

func checkSSHConfig(cfg steps.Config, f sshConfigFacts) steps.Check {
	switch {
	case cfg.Host == "":
		return skip(IDSSHConfig, "no target host yet, so the ssh configuration for it was not read")
	case f.noSSH:
		return fail(IDSSHConfig, "ssh is not installed: nixos-anywhere runs ssh", "install OpenSSH's client (ssh, ssh-copy-id), then run again")
	case f.err != nil:
		return fail(IDSSHConfig, "the ssh configuration for "+cfg.Host+" cannot be read: "+f.err.Error(),
			"fix ~/.ssh/config (or the --ssh-option values) until `ssh -G "+cfg.Host+"` works")
	}
	s := f.settings
	var fails, warns, fixes []string
	if proxy := firstNonEmpty("ProxyJump "+s.ProxyJump, s.ProxyJump, "ProxyCommand "+s.ProxyCommand, s.ProxyCommand); proxy != "" {
		fails = append(fails, fmt.Sprintf("%s is reached through %s, which bigbang's own connection (the preflight, the reboot check) does not support", cfg.Host, proxy))
		fixes = append(fixes, "let bigbang reach the target directly: pass --ssh-option ProxyJump=none (or ProxyCommand=none) when it is reachable from here, "+
			"or run bigbang on a machine that reaches it")
	}
	if s.ControlPath != "" {
		persist := ""
		if s.ControlPersist != "" && s.ControlPersist != "no" {
			persist = ", ControlPersist " + s.ControlPersist
		}
		if sharing(s.ControlMaster) {
			fails = append(fails, fmt.Sprintf("your ssh configuration shares connections to %s (ControlMaster %s, ControlPath %s%s): "+
				"nixos-anywhere's connections then hang after 'Gathering machine facts' or in the closure copy, after the disk was wiped",
				cfg.Host, s.ControlMaster, s.ControlPath, persist))
		} else {
			warns = append(warns, fmt.Sprintf("ControlPath %s is set for %s: an ssh would join a master connection another ssh left open there, "+
				"which hangs nixos-anywhere's closure copy", s.ControlPath, cfg.Host))
		}
		fixes = append(fixes, "turn connection sharing off for this run: --ssh-option ControlPath=none (bigbang passes it to nixos-anywhere; "+
			"it wins over ~/.ssh/config), or remove ControlMaster/ControlPath for this host from ~/.ssh/config")
	}
	if cfg.Identity == "" && !s.IdentitiesOnly && f.agentKeys >= InstallerMaxAuthTries {
		fails = append(fails, fmt.Sprintf("no -i and your ssh agent holds %d keys: ssh offers them all before nixos-anywhere's install key, "+
			"and the kexec installer's sshd allows %d tries, so the login to root after kexec fails with 'Too many authentication failures'",
			f.agentKeys, InstallerMaxAuthTries))
		fixes = append(fixes, "pass -i with the key that logs in to the target (e.g. -i ~/.ssh/id_ed25519), or --ssh-option IdentitiesOnly=yes, "+
			fmt.Sprintf("or leave at most %d keys in the agent (ssh-add -d)", InstallerMaxAuthTries-1))
	}
	summary := strings.Join(append(fails, warns...), "; ")
	fix := strings.Join(fixes, "; ")
	switch {
	case len(fails) > 0:
		return fail(IDSSHConfig, summary, fix)
	case len(warns) > 0:
		return warn(IDSSHConfig, summary, fix)
	}
	agent := "no ssh agent"
	switch {
	case f.agentKeys >= 0 && (cfg.Identity != "" || s.IdentitiesOnly):
		agent = fmt.Sprintf("agent with %d key(s), only the chosen key offered", f.agentKeys)
	case f.agentKeys >= 0:
		agent = fmt.Sprintf("agent with %d key(s), fewer than the installer's %d tries", f.agentKeys, InstallerMaxAuthTries)
	}
	return ok(IDSSHConfig, fmt.Sprintf("ssh to %s: no connection sharing, no proxy, %s", cfg.Host, agent))
}

// firstNonEmpty takes pairs (text, value) and returns the first text whose
// value is set.
func firstNonEmpty(pairs ...string) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			return pairs[i]
		}
	}
	return ""
}

// SSHConfigCheck is local.ssh_config over a given `ssh -G` output and agent
// key count (-1: no agent), for a world that simulates ssh (the demo's).
func SSHConfigCheck(cfg steps.Config, sshG string, agentKeys int) steps.Check {
	return checkSSHConfig(cfg, sshConfigFacts{settings: parseSSHG(sshG), agentKeys: agentKeys})
}
