package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

// UnitsQuestion is the offer a backup that saw its source change makes:
// stop the units that write into it and back up again.
type UnitsQuestion struct {
	Host, Source string
	// Why is the backup's failure.
	Why error
}

// BackupSawWrites reports whether a backup failed because something wrote
// into its source while it was read: the offer to stop units fits it.
func BackupSawWrites(err error) bool {
	return errors.Is(err, reinstall.ErrChanging) || errors.Is(err, reinstall.ErrVerify)
}

// UnitsAdvice is added to a backup's failure that saw writes when no unit
// was stopped: how to make the backup consistent.
func UnitsAdvice(source string) string {
	return fmt.Sprintf("name the systemd units that write into %s with --service UNIT (repeatable): they are stopped before the backup, and started again if the reinstall stops before the wipe", source)
}

// systemctl runs `systemctl verb -- units` over c (through sudo for a
// login that is not root).
func systemctl(ctx context.Context, c Conn, verb string, units []string) error {
	var errb strings.Builder
	cmd := steps.ShellJoin(append([]string{"systemctl", verb, "--"}, units...))
	if err := c.Run(ctx, wrapSudo(cmd, sudo(c)), nil, io.Discard, &errb); err != nil {
		if msg := strings.TrimSpace(errb.String()); msg != "" {
			return fmt.Errorf("systemctl %s %s: %w: %s", verb, strings.Join(units, " "), err, msg)
		}
		return fmt.Errorf("systemctl %s %s: %w", verb, strings.Join(units, " "), err)
	}
	return nil
}

// startAgain starts the units again over c, also after an interruption,
// and says what happened.
func startAgain(ctx context.Context, c Conn, host string, units []string) (string, error) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := systemctl(sctx, c, "start", units); err != nil {
		return "", fmt.Errorf("could not start %s again on %s: %w: start them by hand (systemctl start %s)", strings.Join(units, ", "), host, err, steps.ShellJoin(units))
	}
	return fmt.Sprintf("Started %s again on %s: the reinstall stopped before the wipe.", strings.Join(units, ", "), host), nil
}

// StartUnits starts again, over a connection of its own, the units a
// backup stopped, when the reinstall stops before the wipe. It returns
// what it did, in words.
func (e *Engine) StartUnits(ctx context.Context, cfg steps.Config, p DialPolicy, units []string) (string, error) {
	if len(units) == 0 {
		return "", nil
	}
	c, err := e.Connect(context.WithoutCancel(ctx), cfg, p)
	if err != nil {
		return "", fmt.Errorf("could not start %s again: %w: start them by hand (systemctl start %s)", strings.Join(units, ", "), err, steps.ShellJoin(units))
	}
	defer c.Close()
	return startAgain(ctx, c, cfg.Host, units)
}

// Untouched reports whether an install that ended with res left the
// machine as it was: it failed before kexec (or never ran), so the units
// a consistent backup stopped must run again.
func Untouched(res InstallResult) bool {
	if res.Outcome == steps.OutcomeSuccess {
		return false
	}
	switch res.FailedPhase {
	case "", steps.PhaseBuild, steps.PhaseConnect:
		return true
	}
	return false
}
