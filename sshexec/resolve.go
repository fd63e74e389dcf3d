package sshexec

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Target is the host as the operator named it. Empty fields are filled from
// the OpenSSH configuration; set fields win over it, as ssh's -l, -p and -i
// do.
type Target struct {
	Host     string // name, alias from ~/.ssh/config, IP, or [IPv6]
	User     string
	Port     int
	Identity string // private key file
	// SSHConfig is an ssh_config file to read instead of ~/.ssh/config
	// (ssh -F); tests use it.
	SSHConfig string
}

// Resolved is the target after the OpenSSH configuration was applied.
type Resolved struct {
	Alias          string // the name the operator typed
	HostName       string // what to connect to
	User           string
	Port           int
	IdentityFiles  []string // in order; the explicit -i first
	IdentitiesOnly bool
	// FromSSH says the values came from `ssh -G` (else from bigbang's own
	// minimal reading of the config file).
	FromSSH bool
}

// Resolve applies the OpenSSH client configuration to t: through `ssh -G`
// when ssh is installed (so Match, Include and every rule OpenSSH knows
// apply), else through a minimal reader of ~/.ssh/config that knows Host
// blocks with HostName, User, Port, IdentityFile and IdentitiesOnly.
func Resolve(ctx context.Context, t Target) (Resolved, error) {
	host := strings.TrimSuffix(strings.TrimPrefix(t.Host, "["), "]")
	if host == "" {
		return Resolved{}, newErr(ErrUnresolvable, nil, "pass --host with the VPS's IP address or name", "no target host")
	}
	var r Resolved
	if sshBin, err := exec.LookPath("ssh"); err == nil {
		r, err = resolveWithSSH(ctx, sshBin, host, t)
		if err != nil {
			return Resolved{}, err
		}
	} else {
		r = resolveFromFile(host, t)
	}
	r.Alias = host
	if t.User != "" {
		r.User = t.User
	}
	if t.Port != 0 {
		r.Port = t.Port
	}
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

func resolveWithSSH(ctx context.Context, sshBin, host string, t Target) (Resolved, error) {
	args := []string{"-G"}
	if t.SSHConfig != "" {
		args = append(args, "-F", t.SSHConfig)
	}
	if t.User != "" {
		args = append(args, "-l", t.User)
	}
	if t.Port != 0 {
		args = append(args, "-p", strconv.Itoa(t.Port))
	}
	args = append(args, "--", host)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sshBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Resolved{}, newErr(ErrUnresolvable, err, "fix the ssh configuration (ssh -G "+host+" shows the error)",
			"reading the ssh configuration for %s: %s", host, strings.TrimSpace(stderr.String()))
	}
	r := parseSSHG(bytes.NewReader(out))
	r.FromSSH = true
	return r, nil
}

// parseSSHG reads the `keyword value` lines of `ssh -G`.
func parseSSHG(rd io.Reader) Resolved {
	var r Resolved
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		switch strings.ToLower(k) {
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
		}
	}
	return r
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
func resolveFromFile(host string, t Target) Resolved {
	file := t.SSHConfig
	if file == "" {
		file = expandHome("~/.ssh/config")
	}
	var r Resolved
	data, err := os.ReadFile(file)
	if err == nil {
		r = parseSSHConfig(string(data), host)
	}
	if len(r.IdentityFiles) == 0 {
		for _, n := range []string{"id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk"} {
			r.IdentityFiles = append(r.IdentityFiles, expandHome("~/.ssh/"+n))
		}
	}
	return r
}

func parseSSHConfig(text, host string) Resolved {
	var r Resolved
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
		}
	}
	return r
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
