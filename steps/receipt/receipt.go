// Package receipt keeps what bigbang knows about each machine it installed:
// one JSON file per host and port under $XDG_STATE_HOME/bigbang/hosts. The wizard
// prefills from it; `bigbang status` and `bigbang reinstall` compare the
// machine and the flake against it.
package receipt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

// Version is the version of the receipt format; Read refuses newer ones.
const Version = 1

// ErrNotFound is returned by Read when no receipt exists for the host.
var ErrNotFound = errors.New("no receipt for this host")

// PhaseTime is how long one phase of the install took.
type PhaseTime struct {
	Phase   steps.PhaseID    `json:"phase"`
	State   steps.PhaseState `json:"state"`
	Seconds float64          `json:"seconds"`
}

// Backup is one backup taken of the host.
type Backup struct {
	Path     string    `json:"path"`
	Manifest string    `json:"manifest"`
	Created  time.Time `json:"created"`
	Source   string    `json:"source"`
	Bytes    int64     `json:"bytes"`
	SHA256   string    `json:"sha256"`
	Restored bool      `json:"restored"`
}

// Receipt is the record of the last install of one host.
type Receipt struct {
	Version            int                   `json:"version"`
	Host               string                `json:"host"`
	User               string                `json:"user"` // the login user before the install
	Port               int                   `json:"port"`
	Identity           string                `json:"identity,omitempty"`
	InstalledAt        time.Time             `json:"installed_at"`
	Flake              string                `json:"flake"`          // e.g. ".#vps-arm"
	FlakeRevision      string                `json:"flake_revision"` // git revision of the flake; "" when dirty or unknown
	System             string                `json:"system,omitempty"`
	ExtraFiles         string                `json:"extra_files,omitempty"`
	BuildOn            string                `json:"build_on,omitempty"`
	Disko              []reinstall.FlakeDisk `json:"disko"`
	HostKeyFingerprint string                `json:"host_key_fingerprint"`
	Phases             []PhaseTime           `json:"phases"`
	Log                string                `json:"log"`
	Backups            []Backup              `json:"backups"`
	// Outcome is how the last run ended (success, failed, aborted) and
	// FailedPhase where it stopped: a receipt is written after every run
	// that started nixos-anywhere, not only after a success.
	Outcome     steps.Outcome `json:"outcome,omitempty"`
	FailedPhase steps.PhaseID `json:"failed_phase,omitempty"`
	// Login is who reaches the installed system, and on which port: what
	// the verified reboot logged in as. Nil until an install was verified.
	Login *Login `json:"login,omitempty"`
	// Argv is the exact nixos-anywhere command the run used, with every
	// option bigbang passed.
	Argv []string `json:"argv,omitempty"`
}

// Login is a user and port that reach the installed system.
type Login struct {
	User string `json:"user"`
	Port int    `json:"port"`
}

// Dir returns the folder of the receipts: $XDG_STATE_HOME/bigbang/hosts, or
// ~/.local/state/bigbang/hosts when XDG_STATE_HOME is not set.
func Dir() (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" || !filepath.IsAbs(base) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("receipts: no home folder (%w): set XDG_STATE_HOME", err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "bigbang", "hosts"), nil
}

// Path returns the receipt file of the machine at host:port: host.json
// for port 22 (or 0), host@PORT.json for any other, so that two machines
// behind one address on different ports keep their own receipts.
func Path(host string, port int) (string, error) {
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, fileName(host, port)), nil
}

// fileName makes a host (a name, an IPv4 or an IPv6 address) and port into
// a file name: anything but letters, digits, '.', '-' and '_' in the host
// becomes '_', and a port other than 22 follows an '@', which no host
// name holds.
func fileName(host string, port int) string {
	name := steps.Target{Host: strings.Trim(host, "[]")}.FileName()
	if port != 0 && port != 22 {
		name += "@" + strconv.Itoa(port)
	}
	return name + ".json"
}

// keyPort is the port a receipt is filed under: the one that reaches the
// machine now (the installed system's login port once an install was
// verified, else the port the run went in through).
func (r Receipt) keyPort() int {
	if r.Login != nil && r.Login.Port != 0 {
		return r.Login.Port
	}
	return r.Port
}

// Reaches says whether the receipt describes the machine reached at port:
// the port it was installed through or the installed system's.
func (r Receipt) Reaches(port int) bool {
	if port == 0 {
		port = 22
	}
	norm := func(p int) int {
		if p == 0 {
			return 22
		}
		return p
	}
	return norm(r.Port) == port || r.Login != nil && norm(r.Login.Port) == port
}

// Write stores r as the receipt of r.Host: mode 0600 in folders made 0700
// (it names the machine, its key and its backups), through a temporary file
// so a crash never leaves half a receipt. It returns the file's path.
func Write(r Receipt) (string, error) {
	if r.Host == "" {
		return "", errors.New("receipt: no host")
	}
	r.Version = Version
	p, err := Path(r.Host, r.keyPort())
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("receipt: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("receipt: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".receipt-*")
	if err != nil {
		return "", fmt.Errorf("receipt: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", fmt.Errorf("receipt: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return "", fmt.Errorf("receipt: writing %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("receipt: writing %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", fmt.Errorf("receipt: %w", err)
	}
	// A receipt filed under another port that this run went in through
	// described the same machine before its port moved: this one replaces it.
	for _, o := range hostReceipts(r.Host) {
		if o.path != p && o.r.Reaches(r.Port) {
			_ = os.Remove(o.path)
		}
	}
	return p, nil
}

type filed struct {
	path string
	r    Receipt
}

// hostReceipts are the readable receipts of host under every port.
func hostReceipts(host string) []filed {
	dir, err := Dir()
	if err != nil {
		return nil
	}
	base := strings.TrimSuffix(fileName(host, 22), ".json")
	names, _ := filepath.Glob(filepath.Join(dir, base+"@*.json"))
	names = append([]string{filepath.Join(dir, base+".json")}, names...)
	var out []filed
	for _, n := range names {
		r, err := readFile(n, host)
		if err == nil && strings.Trim(r.Host, "[]") == strings.Trim(host, "[]") {
			out = append(out, filed{n, r})
		}
	}
	return out
}

// Read returns the receipt of the machine at host:port; ErrNotFound when
// there is none. A receipt filed under another port is found when the
// machine was installed through port or answers on it now, and, for port
// 22 (or 0: not given), when it is the host's only receipt.
func Read(host string, port int) (Receipt, error) {
	p, err := Path(host, port)
	if err != nil {
		return Receipt{}, err
	}
	r, err := readFile(p, host)
	if !errors.Is(err, ErrNotFound) {
		return r, err
	}
	all := hostReceipts(host)
	for _, o := range all {
		if o.r.Reaches(port) {
			return o.r, nil
		}
	}
	if (port == 0 || port == 22) && len(all) == 1 {
		return all[0].r, nil
	}
	if len(all) > 1 {
		ports := make([]string, 0, len(all))
		for _, o := range all {
			ports = append(ports, strconv.Itoa(o.r.keyPort()))
		}
		return Receipt{}, fmt.Errorf("%w: %s has receipts for ports %s, none for %d: give --port", ErrNotFound, host, strings.Join(ports, ", "), port)
	}
	return Receipt{}, err
}

func readFile(p, host string) (Receipt, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Receipt{}, fmt.Errorf("%w: %s (none is written until an install of %s finishes)", ErrNotFound, p, host)
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("receipt: %w", err)
	}
	var r Receipt
	if err := json.Unmarshal(b, &r); err != nil {
		return Receipt{}, fmt.Errorf("receipt %s is not valid JSON (%w): move it away; the next install writes a new one", p, err)
	}
	if r.Version > Version {
		return Receipt{}, fmt.Errorf("receipt %s has version %d, this bigbang reads up to %d: update bigbang", p, r.Version, Version)
	}
	return r, nil
}

// AddBackup records a backup in the receipt of host, creating a receipt
// with only the host when none exists (a machine installed before bigbang
// kept receipts can still be backed up).
func AddBackup(host string, port int, b Backup) error {
	r, err := Read(host, port)
	if errors.Is(err, ErrNotFound) || err == nil && !r.Reaches(port) {
		// Not the receipt of another machine behind the same address.
		r, err = Receipt{Host: host, Port: port}, nil
	}
	if err != nil {
		return err
	}
	r.Backups = append(r.Backups, b)
	_, err = Write(r)
	return err
}

// BackupFromArchive turns a completed archive into a receipt entry.
func BackupFromArchive(a reinstall.Archive) Backup {
	return Backup{
		Path: a.Path, Manifest: a.ManifestPath, Created: a.Manifest.Created, Source: a.Manifest.Source,
		Bytes: a.Manifest.Bytes, SHA256: a.Manifest.SHA256,
	}
}

// LastBackup returns the newest backup of the receipt, if any.
func (r Receipt) LastBackup() (Backup, bool) {
	if len(r.Backups) == 0 {
		return Backup{}, false
	}
	last := r.Backups[0]
	for _, b := range r.Backups[1:] {
		if b.Created.After(last.Created) {
			last = b
		}
	}
	return last, true
}

// Prefill copies the receipt's connection settings into cfg where cfg
// still has the defaults, so a second run against a host needs only --host.
func (r Receipt) Prefill(cfg *steps.Config) {
	d := steps.DefaultConfig()
	user, port := r.User, r.Port
	if r.Login != nil {
		// The installed system: the user before the install (opc) is gone.
		user, port = r.Login.User, r.Login.Port
	}
	if cfg.User == d.User && user != "" {
		cfg.User = user
	}
	if cfg.Port == d.Port && port != 0 {
		cfg.Port = port
	}
	if cfg.Identity == "" {
		cfg.Identity = r.Identity
	}
	if cfg.Flake == d.Flake && r.Flake != "" {
		cfg.Flake = r.Flake
	}
	if cfg.ExtraFiles == d.ExtraFiles && r.ExtraFiles != "" {
		cfg.ExtraFiles = r.ExtraFiles
	}
	if cfg.BuildOn == d.BuildOn && r.BuildOn != "" {
		cfg.BuildOn = r.BuildOn
	}
}
