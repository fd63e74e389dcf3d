package ui

import (
	"context"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

// Engine is what the wizard calls: the steps of bigbang's one workflow
// (steps/engine), which the wizard drives one screen at a time. The real
// and the rehearsal engine are the same type over different worlds. The
// root model calls it only from commands, never from Update.
type Engine interface {
	// Preflight checks the target and the flake for cfg, sending every
	// check to sink as soon as it is known.
	Preflight(ctx context.Context, cfg steps.Config, p engine.DialPolicy, sink steps.Sink) (engine.Report, error)
	// SetupSudo installs the passwordless sudo line on the target, using
	// the password typed once. The password is never stored or logged.
	SetupSudo(ctx context.Context, cfg steps.Config, p engine.DialPolicy, password []byte) error
	// LogPath is the transcript file an install of cfg will write.
	LogPath(cfg steps.Config) string
	// Install runs the plan, sends phase, line, stall and result events to
	// sink, and, after the reboot, waits for the new system and verifies it.
	Install(ctx context.Context, req engine.InstallRequest, sink steps.Sink) (engine.InstallResult, error)
	// RunInstall is the linear install, for the accessible wizard.
	RunInstall(ctx context.Context, s engine.Script, f engine.Front) (engine.InstallResult, error)
	// Prepare is the reinstall's host key step and drift.
	Prepare(ctx context.Context, cfg steps.Config, p engine.DialPolicy) (engine.Drift, error)
	// Backup takes a verified local backup of the source.
	Backup(ctx context.Context, cfg steps.Config, p engine.DialPolicy, o engine.ReinstallOptions, progress func(reinstall.Progress)) (reinstall.Archive, []string, error)
	// ReinstallInstall is the reinstall's install: nixos-anywhere without
	// its reboot, the restore into the installer's /mnt, then the reboot
	// and its verification.
	ReinstallInstall(ctx context.Context, req engine.InstallRequest, a reinstall.Archive, o engine.ReinstallOptions, f engine.TransferFront, sink steps.Sink) (engine.InstallResult, *engine.Restored, error)
	// StartUnits starts again the units a backup stopped, when the
	// reinstall stops before the wipe.
	StartUnits(ctx context.Context, cfg steps.Config, p engine.DialPolicy, units []string) (string, error)
}

var _ Engine = (*engine.Engine)(nil)
