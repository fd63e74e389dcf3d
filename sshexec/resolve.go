package sshexec

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/bigbang-nix/bigbang/steps"
)

// Target is the host as the operator named it. Empty fields are filled from
// the OpenSSH configuration; set fields win over it, as ssh's -l, -p and -i
// do, with one exception that ssh has too: a User in Options wins over the
// User field, as `ssh -o User=… user@host` logs in as the -o user (and so
// does nixos-anywhere given --ssh-option User=…).
type Target struct {
	Host     string // name, alias from ~/.ssh/config, IP, or [IPv6]
	User     string
	Port     int
	Identity string // private key file
	// SSHConfig is an ssh_config file to read instead of ~/.ssh/config
	// (ssh -F).
	SSHConfig string
	// Options are ssh_config options as KEY=VALUE, given to ssh -o (the
	// --ssh-option flags, which nixos-anywhere gets too), so that both
	// reach the same host the same way. They win over the configuration
	// file. Of what ssh -G then shows, the dial uses HostName, User, Port,
	// IdentityFile, IdentitiesOnly and HostKeyAlias, and a UserKnownHostsFile
	// given here; a ProxyJump or ProxyCommand is refused with
	// ErrUnsupportedOption rather than silently bypassed.
	Options []string
}

// Resolved is the target after the OpenSSH configuration was applied.
type Resolved struct {
	Alias          string // the name the operator typed
	HostName       string // what to connect to
	User           string
	Port           int
	IdentityFiles  []string // in order; the explicit -i first
	IdentitiesOnly bool
	// HostKeyAlias is the name the host key is looked up and saved under in
	// known_hosts instead of the host name and port ("": none).
	HostKeyAlias string
	// KnownHostsFile is the first UserKnownHostsFile of Target.Options
	// ("": none given there).
	KnownHostsFile string
	// FromSSH says the values came from `ssh -G` (else from bigbang's own
	// minimal reading of the config file).
	FromSSH bool
}

// Resolve applies the OpenSSH client configuration to t: through `ssh -G`
// when ssh is installed (so Match, Include and every rule OpenSSH knows
// apply), else through a minimal reader of ~/.ssh/config that knows Host
// blocks with HostName, User, Port, IdentityFile, IdentitiesOnly and
// HostKeyAlias. A target reached through a proxy is refused
// (ErrUnsupportedOption): the dial would otherwise go to it directly.
func Resolve(ctx context.Context, t Target) (Resolved, error) {
	host := strings.TrimSuffix(strings.TrimPrefix(t.Host, "["), "]")
	if host == "" {
		return Resolved{}, newErr(ErrUnresolvable, nil, "pass --host with the VPS's IP address or name", "no target host")
	}
	var r Resolved
	var proxy string
	if sshBin, err := exec.LookPath("ssh"); err == nil {
		r, proxy, err = resolveWithSSH(ctx, sshBin, host, t)
		if err != nil {
			return Resolved{}, err
		}
	} else {
		r, proxy = resolveFromFile(host, t)
	}
	if proxy != "" {
		return Resolved{}, newErr(ErrUnsupportedOption, nil,
			"let bigbang reach the target directly: pass --ssh-option ProxyJump=none (or ProxyCommand=none) when it is reachable from here, or run bigbang on a machine that reaches it",
			"%s is reached through %s (from --ssh-option or the ssh configuration), which bigbang's own connection does not support", host, proxy)
	}
	r.Alias = host
	r.KnownHostsFile = knownHostsOption(t.Options)
	if r.Port == 0 {
		r.Port = 22
	}
	if r.HostName == "" {
		r.HostName = host
	}
	if r.User == "" {
		if u, err := user.Current(); err == nil {
			r.User = u.Username
		}
	}
	if t.Identity != "" {
		files := []string{expandHome(t.Identity)}
		for _, f := range r.IdentityFiles {
			if f != files[0] {
				files = append(files, f)
			}
		}
		r.IdentityFiles = files
	}
	return r, nil
}

// SSHGArgs is the argv after `ssh` that shows t's configuration. ssh keeps
// the first value it gets of a keyword, so the order is the precedence:
// the port flag, then the options, then the user flag (as in
// nixos-anywhere's ssh, whose -p comes before the -o options and whose
// user@host loses to -o User).
func SSHGArgs(host string, t Target) []string {
	args := []string{"-G"}
	if t.SSHConfig != "" {
		args = append(args, "-F", t.SSHConfig)
	}
	if t.Port != 0 {
		args = append(args, "-p", strconv.Itoa(t.Port))
	}
	for _, o := range t.Options {
		args = append(args, "-o", o)
	}
	if t.User != "" {
		args = append(args, "-l", t.User)
	}
	return append(args, "--", host)
}

func resolveWithSSH(ctx context.Context, sshBin, host string, t Target) (r Resolved, proxy string, err error) {
	args := SSHGArgs(host, t)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sshBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		fix := "fix the ssh configuration"
		if len(t.Options) > 0 {
			fix = "fix --ssh-option or the ssh configuration"
		}
		return Resolved{}, "", newErr(ErrUnresolvable, err, fix+" (ssh "+steps.ShellJoin(args)+" shows the error)",
			"reading the ssh configuration for %s: %s", host, strings.TrimSpace(stderr.String()))
	}
	r, proxy = parseSSHG(bytes.NewReader(out))
	r.FromSSH = true
	return r, proxy, nil
}

// parseSSHG reads the `keyword value` lines of `ssh -G`; proxy is the
// ProxyJump or ProxyCommand in effect ("" for none).
func parseSSHG(rd io.Reader) (r Resolved, proxy string) {
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		switch k = strings.ToLower(k); k {
		case "hostname":
			r.HostName = v
		case "user":
			r.User = v
		case "port":
			r.Port, _ = strconv.Atoi(v)
		case "identityfile":
			r.IdentityFiles = append(r.IdentityFiles, expandHome(v))
		case "identitiesonly":
			r.IdentitiesOnly = v == "yes"
		case "hostkeyalias":
			r.HostKeyAlias = v
		case "proxyjump", "proxycommand":
			if v != "none" && proxy == "" {
				proxy = proxyName(k) + " " + v
			}
		}
	}
	return r, proxy
}

// proxyName is a lower-case proxy keyword as ssh_config spells it.
func proxyName(keyword string) string {
	if keyword == "proxyjump" {
		return "ProxyJump"
	}
	return "ProxyCommand"
}

// knownHostsOption returns the first file of the first UserKnownHostsFile
// among opts (ssh keeps the first), or "".
func knownHostsOption(opts []string) string {
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		if strings.EqualFold(strings.TrimSpace(k), "UserKnownHostsFile") {
			if f := strings.Fields(v); len(f) > 0 {
				return expandHome(f[0])
			}
		}
	}
	return ""
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[1:])
		}
	}
	return p
}

// resolveFromFile reads the config file the way ssh does for the keywords
// bigbang needs: the first value of a keyword wins; IdentityFile adds up.
// The flags and options come first, in sshGArgs's order, as lines that
// apply to every host.
func resolveFromFile(host string, t Target) (Resolved, string) {
	file := t.SSHConfig
	if file == "" {
		file = expandHome("~/.ssh/config")
	}
	var head strings.Builder
	if t.Port != 0 {
		fmt.Fprintf(&head, "Port %d\n", t.Port)
	}
	for _, o := range t.Options {
		k, v, _ := strings.Cut(o, "=")
		fmt.Fprintf(&head, "%s %s\n", k, v)
	}
	if t.User != "" {
		fmt.Fprintf(&head, "User %s\n", t.User)
	}
	text := head.String()
	if data, err := os.ReadFile(file); err == nil {
		text += string(data)
	}
	r, proxy := parseSSHConfig(text, host)
	if len(r.IdentityFiles) == 0 {
		for _, n := range []string{"id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk"} {
			r.IdentityFiles = append(r.IdentityFiles, expandHome("~/.ssh/"+n))
		}
	}
	return r, proxy
}

// parseSSHConfig applies the Host blocks of an ssh_config text to host;
// proxy is as parseSSHG's.
func parseSSHConfig(text, host string) (r Resolved, proxy string) {
	seen := map[string]bool{}
	active := true
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		if i := strings.IndexAny(line, " \t="); i > 0 {
			k, v = line[:i], strings.TrimLeft(line[i:], " \t=")
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		key := strings.ToLower(k)
		switch key {
		case "host":
			active = hostMatches(strings.Fields(v), host)
			continue
		case "match":
			// Match needs ssh itself to evaluate; without ssh its block is
			// ignored rather than guessed.
			active = false
			continue
		}
		if !active {
			continue
		}
		if key == "identityfile" {
			r.IdentityFiles = append(r.IdentityFiles, expandHome(strings.ReplaceAll(v, "%d", expandHome("~"))))
			continue
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		switch key {
		case "hostname":
			r.HostName = strings.ReplaceAll(v, "%h", host)
		case "user":
			r.User = v
		case "port":
			r.Port, _ = strconv.Atoi(v)
		case "identitiesonly":
			r.IdentitiesOnly = strings.EqualFold(v, "yes")
		case "hostkeyalias":
			r.HostKeyAlias = v
		case "proxyjump", "proxycommand":
			if !strings.EqualFold(v, "none") && proxy == "" {
				proxy = proxyName(key) + " " + v
			}
		}
	}
	return r, proxy
}

// hostMatches applies a Host line's patterns: a negated match excludes, any
// other match includes.
func hostMatches(patterns []string, host string) bool {
	matched := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if ok, _ := path.Match(p, host); ok {
			if neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

// KnownHostsAddress is the name the host key is known under in
// known_hosts: the HostKeyAlias when there is one (ssh adds no port to it),
// else host or [host]:port.
func (r Resolved) KnownHostsAddress() string {
	if r.HostKeyAlias != "" {
		return r.HostKeyAlias
	}
	return knownhosts.Normalize(net.JoinHostPort(r.HostName, strconv.Itoa(r.Port)))
}

// knownHostsDBAddress is KnownHostsAddress as host:port, the form the
// knownhosts callback needs; port 22 stands for none.
func (r Resolved) knownHostsDBAddress() string {
	if r.HostKeyAlias != "" {
		return net.JoinHostPort(r.HostKeyAlias, "22")
	}
	return net.JoinHostPort(r.HostName, strconv.Itoa(r.Port))
}

// String is the target as ssh would show it: user@host, with the port when
// it is not 22.
func (r Resolved) String() string {
	h := r.HostName
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if r.Port != 22 {
		return fmt.Sprintf("%s@%s:%d", r.User, h, r.Port)
	}
	return r.User + "@" + h
}
