// Package engine is bigbang's workflow, written once: the preflight, the
// install (nixos-anywhere under the runner, the held verdict, the verified
// reboot, the receipt, the resume command) and the reinstall (host-key
// continuity, drift, backup, install, restore). Every front end — the
// wizard, the accessible wizard, the plain and JSON output, the demo —
// drives it and renders its events; none of them runs a step itself.
//
// The engine reaches the world through the small interfaces of this file
// (the ports). Real gives the real ones; the demo plugs in its simulated
// VPS; tests plug in fakes that fail on any call they do not expect.
package engine

import (
	"context"
	"io"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/local"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/steps/remote"
	"github.com/bigbang-nix/bigbang/steps/runner"
)

// Conn is a logged-in connection to the target.
type Conn interface {
	// Run runs one remote command (quoted by steps.ShellQuote).
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error
	// Facts gathers the target's facts in one round trip.
	Facts(ctx context.Context) (remote.Facts, error)
	// CheckOptions is what the connection established, for remote.Checks.
	CheckOptions() remote.CheckOptions
	// HostKey is the key the server proved it holds.
	HostKey() sshexec.HostKeyInfo
	// Login is the target after the ssh configuration was applied.
	Login() sshexec.Resolved
	// SetupSudo writes the passwordless sudo line with the password
	// typed once; the password is never stored or logged.
	SetupSudo(ctx context.Context, password []byte) error
	Close() error
}

// Dialer reaches the target.
type Dialer interface {
	Dial(ctx context.Context, o sshexec.Options) (Conn, error)
	// WaitForHost waits for the machine to come back with the expected
	// host key and logs in.
	WaitForHost(ctx context.Context, o sshexec.RebootOptions) (Conn, error)
	// VerifyReboot waits for the new system, proves its host key and pins
	// it in known_hosts.
	VerifyReboot(ctx context.Context, o sshexec.RebootOptions) (sshexec.RebootReport, error)
}

// Local is what the operator's machine and flake say.
type Local struct {
	Checks []steps.Check
	Expect steps.TargetExpect
	// Flake is the evaluation (nil when it failed); Summary is the flake's
	// part of `check --output json`.
	Flake    *flake.Info
	FlakeErr error
	Summary  any
	// Build is what decides whether this machine builds the system
	// (nix.conf, builders, binfmt_misc), whatever --build-on says; a zero
	// value is this machine's own system alone.
	Build local.BuildFacts
}

// LocalChecker runs the local checks for cfg (nix, the flake, the keys,
// the secrets) and evaluates the flake.
type LocalChecker interface {
	Local(ctx context.Context, cfg steps.Config) Local
	// Flake is the evaluation of ref alone, for the steps that need the
	// flake's layout or revision and none of the checks (drift, status).
	Flake(ctx context.Context, ref string) (*flake.Info, error)
}

// Child runs nixos-anywhere (or what stands in for it).
type Child interface {
	Run(ctx context.Context, o runner.Options, sink steps.Sink) (runner.Result, error)
}

// Receipts keep what each install did.
type Receipts interface {
	Read(t steps.Target) (receipt.Receipt, error)
	Write(r receipt.Receipt) (string, error)
	AddBackup(t steps.Target, b receipt.Backup) error
}

// Archiver takes and restores the backup of a reinstall.
type Archiver interface {
	Backup(ctx context.Context, c Conn, o reinstall.BackupOptions, progress func(reinstall.Progress)) (reinstall.Archive, error)
	Restore(ctx context.Context, c Conn, a reinstall.Archive, o reinstall.RestoreOptions, progress func(reinstall.Progress)) (reinstall.RestoreResult, error)
}

// World is every port of the engine.
type World struct {
	Dialer   Dialer
	Local    LocalChecker
	Child    Child
	Receipts Receipts
	Archives Archiver
	// LogPath is the default transcript of an install of t started now.
	LogPath func(t steps.Target, now time.Time) string
	// BackupDir is the default folder for reinstall backups.
	BackupDir func() (string, error)
	// HostKeyDirs are the folders of the machine where the reinstall looks
	// for its ed25519 host key, in order.
	HostKeyDirs []string
	// Resolve applies the operator's ssh configuration to a target, as
	// nixos-anywhere's ssh will (nil: not checked). It refuses a proxy,
	// which bigbang's own connections cannot follow.
	Resolve func(ctx context.Context, t sshexec.Target) (sshexec.Resolved, error)
	// LockDir holds the per-machine locks of installs, backups and
	// restores ("": no locks).
	LockDir string
	// AgentSocket is given to every dial ("" the operator's agent, "none"
	// no agent).
	AgentSocket string
	// Pushed reads the flake repository's pushed main from the local
	// clone that holds dir, and places the revision rev against it, for
	// status (nil: not checked).
	Pushed func(ctx context.Context, dir, rev string) (local.Pushed, error)
	// Reach opens a TCP connection from the operator's machine to addr
	// (host:port) and closes it, for status's view of the provider's
	// firewall (nil: not checked).
	Reach func(ctx context.Context, addr string) error
}

// Decider answers the questions the engine asks on the linear path (the
// plain, JSON and accessible front ends). The wizard asks them on its own
// screens and calls the engine's steps itself.
type Decider interface {
	// TrustHostKey asks whether to trust a host key known_hosts does not
	// know.
	TrustHostKey(ctx context.Context, t steps.Target, k HostKey) (bool, error)
	// SudoPassword asks for the login user's sudo password, used once to
	// set up passwordless sudo; nil: do not set it up.
	SudoPassword(ctx context.Context, t steps.Target) ([]byte, error)
	// ConfirmWipe asks for the typed confirmation of the wipe.
	ConfirmWipe(ctx context.Context, w Wipe) (bool, error)
	// ConfirmRestore asks for the typed confirmation (the host, as for
	// the wipe) of a restore into another directory than the archive's
	// source (`reinstall --restore ARCHIVE --source DIR
	// --restore-elsewhere`).
	ConfirmRestore(ctx context.Context, r RestoreInto) (bool, error)
}

// Wipe is what the wipe confirmation names.
type Wipe struct {
	Target steps.Target
	Disks  []Disk
	Backup string // a reinstall's verified backup; "" for an install
}
