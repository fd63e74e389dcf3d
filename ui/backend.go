package ui

import (
	"context"
	"strconv"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
)

// Backend is how the wizard reaches the world: the real one dials the
// target with sshexec, evaluates the flake and runs nixos-anywhere under the
// runner; the rehearsal one does the same against a simulated VPS. The root
// model calls it only from commands, never from Update.
type Backend interface {
	// Preflight checks the target and the flake for cfg. It sends every
	// check to emit as soon as it is known (emit never blocks) and returns
	// the whole report at the end.
	Preflight(ctx context.Context, cfg steps.Config, emit func(steps.Event)) (Report, error)
	// SetupSudo installs the passwordless sudo line on the target, using
	// the password typed once. The password is never stored or logged.
	SetupSudo(ctx context.Context, cfg steps.Config, password []byte) error
	// LogPath is the transcript file an install of cfg will write.
	LogPath(cfg steps.Config) string
	// Install runs the plan, sends phase, line, stall and result events to
	// sink, and, after the reboot, waits for the new system and verifies it.
	Install(ctx context.Context, req InstallRequest, sink steps.Sink) (InstallResult, error)
}

type approvedHostKeyKey struct{}

// WithApprovedHostKey returns ctx carrying the fingerprint ("SHA256:…") of
// the host key the operator approved after the first connection of a
// preflight. Backend.Preflight then trusts that exact key and refuses any
// other, so that the consent given to the key shown never extends to the
// key offered on the next connection.
func WithApprovedHostKey(ctx context.Context, fingerprint string) context.Context {
	return context.WithValue(ctx, approvedHostKeyKey{}, fingerprint)
}

// ApprovedHostKey is the fingerprint WithApprovedHostKey put into ctx, or
// "" when the operator approved none.
func ApprovedHostKey(ctx context.Context) string {
	fp, _ := ctx.Value(approvedHostKeyKey{}).(string)
	return fp
}

// HostKeyStatus says what known_hosts knows about the target's host key.
type HostKeyStatus string

// The host key states the preflight screen handles.
const (
	HostKeyKnown   HostKeyStatus = "known"   // pinned and matching
	HostKeyNew     HostKeyStatus = "new"     // never seen: ask the operator
	HostKeyChanged HostKeyStatus = "changed" // differs from the pinned key: refuse
)

// HostKey is the target's host key as the preflight met it.
type HostKey struct {
	Fingerprint string // SHA256:…
	Type        string // ssh-ed25519
	Status      HostKeyStatus
}

// Partition is one partition of a disk that will be wiped.
type Partition struct {
	Name       string // sda1
	Size       int64
	FSType     string
	Mountpoint string
}

// Disk is one disk that will be wiped, as the target reports it.
type Disk struct {
	Device     string // /dev/sda
	Model      string
	Size       int64
	Partitions []Partition
}

// Report is what the preflight found.
type Report struct {
	Checks            []steps.Check
	HostKey           HostKey
	SudoNeedsPassword bool   // the login user has sudo, but only with a password
	TargetRAM         int64  // bytes
	TargetSystem      string // e.g. aarch64-linux
	LocalSystem       string // e.g. x86_64-linux
	TargetOS          string // e.g. Oracle Linux Server 9.4
	CPUs              int
	Disks             []Disk
	TargetIsInstaller bool
	// LocalCanBuild says whether this machine can build for TargetSystem
	// (same system, or binfmt emulation registered), for the RAM screen.
	LocalCanBuild bool
	// LocalBuildNote says why (same system, binfmt emulation with
	// extra-platforms, or what is missing).
	LocalBuildNote string
	// Flake is the evaluation of the flake the preflight checked, nil when
	// it did not evaluate; the install's receipt records its revision and
	// disko layout.
	Flake *flake.Info
}

// Blocking is the number of checks that stop an install.
func (r Report) Blocking() int { return steps.CountBlocking(r.Checks) }

// InstallRequest is what Install runs.
type InstallRequest struct {
	Config steps.Config
	Plan   steps.Plan
	Log    string
	Disks  []Disk
	// Flake is the preflight's evaluation of the flake (nil: none).
	Flake *flake.Info
}

// InstallResult is how an install ended, with what the result screen shows.
type InstallResult struct {
	Outcome            steps.Outcome
	FailedPhase        steps.PhaseID
	Diagnosis          *steps.Diagnosis
	Log                string
	ExitCode           int
	HostKeyFingerprint string // the new system's key, now in known_hosts
	SSHCommand         string // the exact line to log in
	// Receipt is the file that records this install ("" when none was
	// written).
	Receipt string
	// Notes are what the operator must know besides the outcome, such as
	// a transcript that could not be written whole.
	Notes []string
}

// KnownHostsName is the name known_hosts files the target under: the host
// alone on port 22, "[host]:port" on any other.
func KnownHostsName(host string, port int) string {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if port == 0 || port == 22 {
		return host
	}
	return "[" + host + "]:" + strconv.Itoa(port)
}

// ForgetHostKeyCommand is the exact command that removes the target's old
// host key from known_hosts (the operator's file, or --known-hosts), for
// a VPS that was rebuilt.
func ForgetHostKeyCommand(cfg steps.Config) string {
	argv := []string{"ssh-keygen", "-R", KnownHostsName(cfg.Host, cfg.Port)}
	if cfg.KnownHosts != "" {
		argv = append(argv, "-f", cfg.KnownHosts)
	}
	return steps.ShellJoin(argv)
}
