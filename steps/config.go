package steps

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// DefaultNixosAnywhere is the pinned nixos-anywhere command: release 1.13.0,
// whose step lines the classifier knows, run with the flake features on
// because a fresh Nix has them off.
const DefaultNixosAnywhere = "nix --extra-experimental-features 'nix-command flakes' run github:nix-community/nixos-anywhere/1.13.0 --"

// Config is what the operator told bigbang, from flags or the wizard.
type Config struct {
	Host             string
	User             string
	Port             int
	Identity         string
	Flake            string
	ExtraFiles       string
	RAM              string // "24G"; empty: detect on the target
	BuildOn          string // auto, local or remote
	KnownHosts       string
	AcceptNewHostKey bool
	NixosAnywhere    string
	Output           string // tui, plain or json
	Log              string
	YesWipe          string
	SSHOptions       []string
	Phases           string // comma-separated phase list; empty: all
	// PostKexecPort is the port of the NixOS installer after kexec
	// (nixos-anywhere's --post-kexec-ssh-port); 0: its default, 22.
	PostKexecPort int
	// RebootPort is the port the installed system's sshd listens on; 0:
	// the flake's services.openssh.ports (first), else 22.
	RebootPort int
	// Debug passes nixos-anywhere's --debug (set -x locally and remotely).
	Debug bool
	// Kexec is another kexec image (URL or file) for nixos-anywhere's
	// --kexec, e.g. when the default one panics on the machine.
	Kexec string
	// HardwareConfig is --generate-hardware-config: the tool
	// (nixos-facter or nixos-generate-config) and the file it writes.
	HardwareConfig, HardwareConfigPath string
	// DiskKeys are --disk-encryption-keys pairs, "REMOTE=LOCAL".
	DiskKeys []string
	// PrintBuildLogs is -L; NoSubstituteOnDestination is
	// --no-substitute-on-destination.
	PrintBuildLogs, NoSubstituteOnDestination bool
	// Extra are arguments after `--`, passed to nixos-anywhere unchecked.
	Extra []string
}

// AfterKexecPort is the port nixos-anywhere (and so bigbang) reaches the
// installer on once kexec ran: --post-kexec-ssh-port, 22 by default.
func (c Config) AfterKexecPort() int {
	if c.PostKexecPort != 0 {
		return c.PostKexecPort
	}
	return 22
}

// DefaultConfig returns the defaults of the deployment plan: `.#vps-arm`,
// `./secrets-init/keys`, `opc@host` on port 22.
func DefaultConfig() Config {
	return Config{
		User:          "opc",
		Port:          22,
		Flake:         ".#vps-arm",
		ExtraFiles:    "./secrets-init/keys",
		BuildOn:       "auto",
		NixosAnywhere: DefaultNixosAnywhere,
	}
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid input")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

var (
	hostNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$`)
	dottedRE   = regexp.MustCompile(`^[0-9]+(\.[0-9]+){3}$`)
	userRE     = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)
	ramRE      = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([KMGT](?:I?B)?|B)?$`)
)

// ValidateHost checks a host name or IP address as the operator typed it.
func ValidateHost(h string) error {
	switch {
	case h == "":
		return invalid("no target host: pass --host with the VPS's IP address or name (e.g. --host 203.0.113.7)")
	case strings.ContainsAny(h, " \t\r\n"):
		return invalid("host %q contains whitespace: give one IP address or host name", h)
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if ip := net.ParseIP(h); ip != nil {
		return nil
	}
	if dottedRE.MatchString(h) {
		return invalid("host %q is not a valid IPv4 address (each part must be 0-255): check the address in your provider's console", h)
	}
	if !hostNameRE.MatchString(h) || len(h) > 253 {
		return invalid("host %q is neither an IP address nor a valid host name: use letters, digits, '-' and '.' only", h)
	}
	return nil
}

// ValidateUser checks a login user name.
func ValidateUser(u string) error {
	if !userRE.MatchString(u) {
		return invalid("user %q is not a valid login name: use lower-case letters, digits, '_', '.' or '-' (e.g. --user opc)", u)
	}
	return nil
}

// ValidatePort checks a port number given as text (the wizard's field).
func ValidatePort(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, invalid("port %q is not a number: give the SSH port, usually 22", s)
	}
	return n, validPort(n)
}

func validPort(n int) error {
	if n < 1 || n > 65535 {
		return invalid("port %d is out of range: give a port from 1 to 65535, usually 22", n)
	}
	return nil
}

// SplitFlake splits `path#name` into the flake path and the configuration
// name. A reference without a fragment makes nixos-anywhere exit 1, so it is
// refused here.
func SplitFlake(ref string) (path, name string, err error) {
	i := strings.LastIndex(ref, "#")
	if i < 0 || i == len(ref)-1 {
		return "", "", invalid("flake reference %q has no configuration name: write it as <flake>#<name>, e.g. .#vps-arm", ref)
	}
	path = ref[:i]
	if path == "" {
		path = "."
	}
	return path, ref[i+1:], nil
}

// Bounds of ParseRAM: below 256 MiB no NixOS installer boots, above
// 16 TiB the value is a typo (no VPS has that much).
const (
	MinRAM int64 = 256 << 20
	MaxRAM int64 = 16 << 40
)

// ParseRAM reads a RAM size such as 24G, 1.5GiB or 512M. The units are
// binary (G = GiB), as free(1) and the wizard show them; K, M, G and T may
// be followed by B or iB. A bare number means GiB ("24" is 24 GiB, "1.5" is
// 1.5 GiB), never bytes. The result lies between MinRAM and MaxRAM; every
// error says what to type.
func ParseRAM(s string) (int64, error) {
	t := strings.TrimSpace(s)
	m := ramRE.FindStringSubmatch(strings.ToUpper(t))
	if m == nil {
		return 0, invalid("RAM %q is not a size: write a number with a unit, like 24G, 1.5G or 512M (a bare number means GiB)", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		// Only a number too long for a float64 gets here.
		return 0, invalid("RAM %q is far too large: write it like 24G (at most 16T)", s)
	}
	if m[2] == "B" {
		// A byte count is always a typo for RAM.
		return 0, invalid("RAM %q is a byte count: write the size with a unit, like 24G or 512M", s)
	}
	unit := strings.TrimSuffix(strings.TrimSuffix(m[2], "B"), "I")
	mult := map[string]float64{"": 1 << 30, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]
	// Compared as a float first, so that a huge value cannot overflow
	// int64 on the way.
	bytes := v * mult
	switch {
	case bytes <= 0:
		return 0, invalid("RAM %q must be more than zero: write it like 24G", s)
	case bytes < float64(MinRAM):
		hint := ""
		if unit == "" {
			hint = " (a bare number means GiB)"
		}
		return 0, invalid("RAM %q is too small%s: the smallest is 256M; write it like 24G or 512M", s, hint)
	case bytes > float64(MaxRAM):
		hint := ""
		if unit == "" {
			hint = " (a bare number means GiB, not bytes)"
		}
		return 0, invalid("RAM %q is too large%s: the largest is 16T; write it like 24G", s, hint)
	}
	return int64(math.Round(bytes)), nil
}

// ParsePhases reads a comma-separated phase list such as "disko,install".
// An empty string means every phase.
func ParsePhases(s string) ([]PhaseID, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []PhaseID
	for _, part := range strings.Split(s, ",") {
		p, err := ParsePhase(strings.TrimSpace(part))
		if err != nil {
			return nil, invalid("--phases: %v", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// ValidateTarget checks what a command that only logs in needs: the host,
// the user, the port, the output style and a key file (a passphrase is
// asked for on a terminal, so an encrypted key passes here).
func (c Config) ValidateTarget() error {
	if err := ValidateHost(c.Host); err != nil {
		return err
	}
	if err := ValidateUser(c.User); err != nil {
		return err
	}
	if err := validPort(c.Port); err != nil {
		return err
	}
	switch c.Output {
	case "", "tui", "plain", "json":
	default:
		return invalid("--output %q: use tui, plain or json", c.Output)
	}
	if c.Identity != "" {
		if err := CheckKeyFile(c.Identity); err != nil && !errors.Is(err, ErrKeyEncrypted) {
			return err
		}
	}
	return nil
}

// Validate checks everything that can be checked without touching the
// network, and returns the first problem with what to do about it.
func (c Config) Validate() error {
	if err := c.ValidateTarget(); err != nil {
		return err
	}
	if _, _, err := SplitFlake(c.Flake); err != nil {
		return err
	}
	switch c.BuildOn {
	case "auto", "local", "remote":
	default:
		return invalid("--build-on %q: use auto, local or remote", c.BuildOn)
	}
	for _, p := range []struct {
		flag string
		n    int
	}{{"--post-kexec-ssh-port", c.PostKexecPort}, {"--reboot-port", c.RebootPort}} {
		if p.n != 0 && validPort(p.n) != nil {
			return invalid("%s %d is out of range: give a port from 1 to 65535", p.flag, p.n)
		}
	}
	if err := c.validateOptions(); err != nil {
		return err
	}
	if c.RAM != "" {
		if _, err := ParseRAM(c.RAM); err != nil {
			return err
		}
	}
	if _, err := ParsePhases(c.Phases); err != nil {
		return err
	}
	for _, o := range c.SSHOptions {
		if !strings.Contains(o, "=") || strings.HasPrefix(o, "=") {
			return invalid("--ssh-option %q: write it as KEY=VALUE, e.g. ControlMaster=no", o)
		}
	}
	if c.ExtraFiles != "" {
		st, err := os.Stat(c.ExtraFiles)
		if err != nil {
			return invalid("extra-files folder %s is missing: create it (bigbang keys generates the host key in it) or pass --extra-files", c.ExtraFiles)
		}
		if !st.IsDir() {
			return invalid("extra-files %s is not a folder: pass the folder whose tree is copied into / of the new system", c.ExtraFiles)
		}
	}
	if c.Identity != "" {
		if err := CheckKeyFile(c.Identity); err != nil {
			return err
		}
	}
	return nil
}

// ErrKeyMode is wrapped when a private key file is readable by others: ssh
// refuses such a file and nixos-anywhere then stops without a clear error.
var ErrKeyMode = errors.New("private key file is readable by others")

// ErrKeyEncrypted is wrapped when a private key file needs a passphrase,
// which nixos-anywhere's non-interactive ssh cannot ask for.
var ErrKeyEncrypted = errors.New("private key file is passphrase-protected")

// CheckKeyFile checks an SSH private key file the way ssh and nixos-anywhere
// will use it: it must exist, be mode 0600 (or stricter) and not need a
// passphrase.
func CheckKeyFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return invalid("key file %s is missing: pass -i with your private key (e.g. -i ~/.ssh/id_ed25519)", path)
	}
	if st.IsDir() {
		return invalid("key file %s is a folder: pass -i with the private key file itself", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %w: %s has mode %04o and ssh will refuse it; fix it with: chmod 600 %s",
			ErrInvalidConfig, ErrKeyMode, path, st.Mode().Perm(), ShellQuote(path))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return invalid("key file %s cannot be read: %v", path, err)
	}
	enc, err := KeyEncrypted(data)
	if err != nil {
		return invalid("key file %s: %v", path, err)
	}
	if enc {
		return fmt.Errorf("%w: %w: %s; load it into ssh-agent (ssh-add %s) and leave out -i, or use a key without a passphrase",
			ErrInvalidConfig, ErrKeyEncrypted, path, ShellQuote(path))
	}
	return nil
}

// validateOptions checks the nixos-anywhere options bigbang passes on:
// the files they name exist, and the values have the shape the tool wants.
func (c Config) validateOptions() error {
	if k := c.Kexec; k != "" && !strings.HasPrefix(k, "https://") && !strings.HasPrefix(k, "http://") {
		if st, err := os.Stat(k); err != nil || st.IsDir() {
			return invalid("--kexec %q is neither an http(s) URL nor a file here: give the URL or the path of a kexec tarball (nixos-images releases)", k)
		}
	}
	switch c.HardwareConfig {
	case "":
		if c.HardwareConfigPath != "" {
			return invalid("--hardware-config-path needs --generate-hardware-config nixos-facter or nixos-generate-config")
		}
	case "nixos-facter", "nixos-generate-config":
		if c.HardwareConfigPath == "" {
			return invalid("--generate-hardware-config %s needs --hardware-config-path with the file to write, e.g. ./facter.json or ./hardware-configuration.nix", c.HardwareConfig)
		}
		if st, err := os.Stat(filepath.Dir(c.HardwareConfigPath)); err != nil || !st.IsDir() {
			return invalid("--hardware-config-path %s: its folder does not exist: give a path in your flake's folder", c.HardwareConfigPath)
		}
	default:
		return invalid("--generate-hardware-config %q: use nixos-facter or nixos-generate-config", c.HardwareConfig)
	}
	for _, k := range c.DiskKeys {
		remote, local, ok := strings.Cut(k, "=")
		if !ok || !strings.HasPrefix(remote, "/") || local == "" {
			return invalid("--disk-encryption-keys %q: write it as REMOTE=LOCAL, e.g. /tmp/secret.key=./secrets/disk.key (the remote path is absolute)", k)
		}
		st, err := os.Stat(local)
		switch {
		case err != nil || !st.Mode().IsRegular():
			return invalid("--disk-encryption-keys: %s is not a file here: give the local key file", local)
		case st.Mode().Perm()&0o077 != 0:
			return invalid("--disk-encryption-keys: %s has mode %04o: a disk key must be private: chmod 600 %s", local, st.Mode().Perm(), ShellQuote(local))
		}
	}
	return nil
}
