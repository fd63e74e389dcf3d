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

// UnitsFront is what BackupOffering needs of a front end: the offer's
// question, the stages and the progress.
type UnitsFront interface {
	TransferFront
	StopUnits(ctx context.Context, q UnitsQuestion) ([]string, error)
}

// BackupOffering is the reinstall's backup with its offer: Backup, and
// when it saw its source change while no units were named, the question
// which units write into it; the units named are stopped and the backup
// taken again. It returns the units stopped for the verified backup
// (o.Services, or the ones named): they stay stopped until the wipe. A
// backup still refused says how to name the units.
func (e *Engine) BackupOffering(ctx context.Context, cfg steps.Config, p DialPolicy, o ReinstallOptions, f UnitsFront) (reinstall.Archive, []string, []string, error) {
	source := orDefault(o.Source, reinstall.DefaultSource)
	progress := func(pr reinstall.Progress) { f.Progress(pr, false) }
	a, notes, err := e.Backup(ctx, cfg, p, o, progress)
	f.Progress(reinstall.Progress{}, true)
	if err != nil && len(o.Services) == 0 && BackupSawWrites(err) && ctx.Err() == nil {
		units, aerr := f.StopUnits(ctx, UnitsQuestion{Host: cfg.Host, Source: source, Why: err})
		if aerr != nil {
			return a, notes, nil, fmt.Errorf("%w; nothing was wiped", errors.Join(err, aerr))
		}
		if len(units) > 0 {
			o.Services = units
			f.Stage(fmt.Sprintf("Backup of %s:%s again, with %s stopped", cfg.Host, source, strings.Join(units, ", ")))
			a, notes, err = e.Backup(ctx, cfg, p, o, progress)
			f.Progress(reinstall.Progress{}, true)
		}
	}
	if err != nil {
		if len(o.Services) == 0 && BackupSawWrites(err) {
			err = fmt.Errorf("%w; %s", err, UnitsAdvice(source))
		}
		return a, notes, nil, err
	}
	return a, notes, o.Services, nil
}
