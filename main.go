// Command bigbang installs a NixOS flake onto a fresh VPS by driving
// nixos-anywhere, with a preflight before the wipe, live progress while it
// runs and a verified reboot after it. This file holds the command line and
// the wiring only; the logic lives in steps/, sshexec/ and ui/.
package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"charm.land/fang/v2"
	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/steps"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes of the command-line contract.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// exitError carries the exit code a command wants alongside its error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as a usage error (exit code 2).
func usageErr(err error) error { return &exitError{code: exitUsage, err: err} }

// failErr marks err as a failed or blocked run (exit code 1).
func failErr(err error) error { return &exitError{code: exitFailed, err: err} }

// errSilentFailure ends a command with exit code 1 when the command has
// already told the operator why.
var errSilentFailure = errors.New("failed")

func newRoot(cfg *steps.Config) *cobra.Command {
	root := &cobra.Command{
		Use:   "bigbang",
		Short: "Install a NixOS flake onto a fresh VPS, safely and visibly",
		Long: "bigbang drives nixos-anywhere to put a NixOS flake onto a fresh VPS: it checks the\n" +
			"target and the flake before anything is wiped, shows every phase as it happens,\n" +
			"saves the whole transcript, and proves the new system after the reboot.",
	}
	addCommonFlags(root, cfg)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	// The host is parsed once, here: user@host[:port] fills in the user
	// and the port, and nothing further in parses it again.
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if err := cfg.Normalize(); err != nil {
			return usageErr(err)
		}
		return nil
	}
	root.AddCommand(newInstallCmd(cfg), newCheckCmd(cfg), newExplainCmd(cfg), newDemoCmd(cfg), newReplayCmd(cfg),
		newDriftCmd(cfg), newReinstallCmd(cfg), newKeysCmd(cfg), newStatusCmd(cfg))
	// `bigbang` alone is `bigbang install`: the wizard on a terminal, the
	// non-interactive install with --yes-wipe or without a terminal.
	var inst installFlags
	addInstallFlags(root, cfg, &inst)
	root.Args = cobra.NoArgs
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		return runInstall(cmd, *cfg, inst)
	}
	return root
}

// addCommonFlags binds the flags that DESIGN.md lists as common to every
// subcommand.
func addCommonFlags(root *cobra.Command, cfg *steps.Config) {
	d := steps.DefaultConfig()
	*cfg = d
	f := root.PersistentFlags()
	f.StringVar(&cfg.Host, "host", "", "target host name or IP address, or user@host[:port]")
	f.StringVar(&cfg.User, "user", d.User, "login user on the target before kexec")
	f.IntVar(&cfg.Port, "port", d.Port, "SSH port of the target")
	f.StringVarP(&cfg.Identity, "identity", "i", "", "SSH private key file to log in with (mode 0600)")
	f.StringVar(&cfg.Flake, "flake", d.Flake, "flake reference with the nixosConfigurations attribute")
	f.StringVar(&cfg.ExtraFiles, "extra-files", d.ExtraFiles, "folder copied into / of the new system (host keys)")
	f.StringVar(&cfg.RAM, "ram", "", "target RAM with a unit, e.g. 24G or 512M (a bare number means GiB; overrides detection)")
	f.StringVar(&cfg.BuildOn, "build-on", d.BuildOn, "where the system is built: auto, local or remote")
	f.StringVar(&cfg.KnownHosts, "known-hosts", "", "known_hosts file (default ~/.ssh/known_hosts)")
	f.BoolVar(&cfg.AcceptNewHostKey, "accept-new-host-key", false, "trust an unknown host key without asking")
	f.StringVar(&cfg.NixosAnywhere, "nixos-anywhere", d.NixosAnywhere, "command that runs nixos-anywhere")
	f.StringVar(&cfg.Output, "output", "", "output style: tui, plain or json (default tui on a terminal, plain otherwise)")
	f.StringVar(&cfg.Log, "log", "", "transcript file (default $XDG_STATE_HOME/bigbang/logs/<host>-<time>.log)")
	f.StringVar(&cfg.YesWipe, "yes-wipe", "", "confirm the disk wipe for scripts: must equal the target host")
	f.StringArrayVar(&cfg.SSHOptions, "ssh-option", nil, "extra ssh option, KEY=VALUE, for nixos-anywhere's ssh and bigbang's own connections (repeatable)")
	f.StringVar(&cfg.Phases, "phases", "", "run only these phases, e.g. disko,install,reboot (resume)")
}

func main() {
	os.Exit(run())
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	var cfg steps.Config
	root := newRoot(&cfg)
	err := fang.Execute(ctx, root, fang.WithVersion(version), fang.WithErrorHandler(errorHandler))
	return exitCode(ctx, err)
}

// errorHandler prints a command's error the way fang does, except for
// errSilentFailure: the command has already said what went wrong.
func errorHandler(w io.Writer, styles fang.Styles, err error) {
	if errors.Is(err, errSilentFailure) {
		return
	}
	fang.DefaultErrorHandler(w, styles, err)
}

// exitCode maps a command's error to the exit codes of the contract.
func exitCode(ctx context.Context, err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return exitInterrupted
	}
	// Cobra reports unknown commands and wrong argument counts as plain
	// errors; they are usage errors.
	if isCobraUsage(err) {
		return exitUsage
	}
	return exitFailed
}

// isCobraUsage recognises the usage errors that cobra creates itself: it
// offers no sentinel errors for them, so their text is the only handle.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
