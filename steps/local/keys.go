package local

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/secrets"
)

// operatorKeys are the public keys the operator will log in with.
type operatorKeys struct {
	source string   // where they came from, for messages
	lines  []string // authorized_keys lines
	keyErr error    // the -i key file's problem
}

// readOperatorKeys finds the operator's public keys: the -i key's .pub (or
// the public half of an unencrypted ed25519 key without one), else the
// agent's keys, else the default key files ssh tries.
func readOperatorKeys(ctx context.Context, identity string) operatorKeys {
	if identity != "" {
		k := operatorKeys{source: identity}
		k.keyErr = steps.CheckKeyFile(identity)
		if data, err := os.ReadFile(identity + ".pub"); err == nil {
			k.lines = append(k.lines, strings.TrimSpace(string(data)))
		} else if data, err := os.ReadFile(identity); err == nil {
			if priv, comment, err := secrets.ParsePrivate(data); err == nil {
				k.lines = append(k.lines, secrets.AuthorizedLine(priv.Public().(ed25519.PublicKey), comment))
			}
		}
		return k
	}
	if os.Getenv("SSH_AUTH_SOCK") != "" {
		if out, err := run(ctx, "ssh-add", "-L"); err == nil && out != "" {
			return operatorKeys{source: "the ssh agent", lines: strings.Split(out, "\n")}
		}
	}
	home, _ := os.UserHomeDir()
	k := operatorKeys{source: "~/.ssh"}
	for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa", "id_ed25519_sk", "id_ecdsa_sk"} {
		if data, err := os.ReadFile(filepath.Join(home, ".ssh", n+".pub")); err == nil {
			k.lines = append(k.lines, strings.TrimSpace(string(data)))
		}
	}
	return k
}

func checkSSHKey(cfg steps.Config, k operatorKeys) steps.Check {
	if cfg.Identity != "" {
		if k.keyErr != nil {
			return fail(IDSSHKey, "the -i key cannot be used", k.keyErr.Error())
		}
		if len(k.lines) == 0 {
			return warn(IDSSHKey, fmt.Sprintf("%s has no .pub beside it, so bigbang cannot check that the new system authorizes it", cfg.Identity),
				"write it with: ssh-keygen -y -f "+steps.ShellQuote(cfg.Identity)+" > "+steps.ShellQuote(cfg.Identity+".pub"))
		}
		return ok(IDSSHKey, "log in with "+cfg.Identity)
	}
	if len(k.lines) == 0 {
		return fail(IDSSHKey, "no SSH key: no -i, no keys in an ssh agent, none in ~/.ssh",
			"pass -i with your private key (e.g. -i ~/.ssh/id_ed25519), or load it with ssh-add")
	}
	return ok(IDSSHKey, fmt.Sprintf("log in with %d key(s) from %s; pass -i to choose one (nixos-anywhere works best with -i)", len(k.lines), k.source))
}

// checkLockout proves that the operator can log in to the installed
// system: sshd on, its port open, and one of the operator's keys
// authorized for root (when root may log in) or a wheel user.
func checkLockout(c *flake.Config, k operatorKeys, flakeDir string) steps.Check {
	const locked = "you would be locked out of the new system: "
	if c == nil {
		return skip(IDLockout, "the flake could not be read, so the login to the new system is not checked")
	}
	if !c.SSH.Enable {
		return fail(IDLockout, locked+"services.openssh.enable is false",
			"set services.openssh.enable = true; in the configuration")
	}
	ports := c.SSH.Ports
	if len(ports) == 0 {
		ports = []int{22}
	}
	open := !c.Firewall.Enable || c.SSH.OpenFirewall
	for _, p := range ports {
		for _, q := range c.Firewall.TCPPorts {
			open = open || p == q
		}
	}
	if !open {
		return fail(IDLockout, fmt.Sprintf("%sthe firewall does not open the SSH port %s", locked, joinInts(ports)),
			"set services.openssh.openFirewall = true; or add the port to networking.firewall.allowedTCPPorts")
	}
	if len(k.lines) == 0 {
		return warn(IDLockout, "no operator key is known, so bigbang cannot check that the new system lets you in",
			"pass -i with your private key (its .pub beside it)")
	}
	rootOK := true
	if p := c.SSH.PermitRootLogin; p != nil && (*p == "no" || *p == "forced-commands-only") {
		rootOK = false
	}
	var who []string
	for _, u := range c.Users {
		if u.Name == "root" && !rootOK {
			continue
		}
		if u.Name != "root" && !u.Wheel() {
			continue
		}
		keys := append([]string(nil), u.Keys...)
		for _, f := range u.KeyFiles {
			if data, err := os.ReadFile(storeToLocal(f, flakeDir)); err == nil {
				keys = append(keys, strings.Split(string(data), "\n")...)
			}
		}
		for _, have := range keys {
			for _, mine := range k.lines {
				if secrets.SameKey(have, mine) {
					who = append(who, u.Name)
				}
			}
		}
	}
	if len(who) > 0 {
		return ok(IDLockout, fmt.Sprintf("your key (from %s) is authorized for %s on port %s", k.source, strings.Join(dedupe(who), ", "), joinInts(ports)))
	}
	target := "users.users.root.openssh.authorizedKeys.keys"
	if !rootOK {
		target = "users.users.<your wheel user>.openssh.authorizedKeys.keys"
	}
	mine := k.lines[0]
	if f := strings.Fields(mine); len(f) >= 2 {
		mine = f[0] + " " + f[1]
	}
	return fail(IDLockout, fmt.Sprintf("%snone of your keys (from %s) is authorized for root or a wheel user", locked, k.source),
		fmt.Sprintf("add your public key to %s in the flake: \"%s\"", target, mine))
}

// storeToLocal maps a path in the flake's store copy back to the flake
// folder: /nix/store/<hash>-source/a/b → <flake>/a/b.
func storeToLocal(p, flakeDir string) string {
	if i := strings.Index(p, "-source/"); strings.HasPrefix(p, "/nix/store/") && i > 0 && flakeDir != "" {
		return filepath.Join(flakeDir, p[i+len("-source/"):])
	}
	return p
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func dedupe(v []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range v {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
