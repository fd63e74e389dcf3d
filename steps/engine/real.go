package engine

import (
	"context"
	"net"
	"path/filepath"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/local"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/steps/runner"
)

// Real is the world bigbang installs into: sshexec, the local checks over
// an evaluation of flakeRef started now (so that nix runs while the
// operator reads the first screens), nixos-anywhere under the runner, the
// receipts and backups under $XDG_STATE_HOME/bigbang.
func Real(ctx context.Context, flakeRef string) World {
	lc := &realLocal{}
	if _, _, err := steps.SplitFlake(flakeRef); err == nil {
		lc.pending, lc.ref = flake.Start(ctx, flakeRef), flakeRef
	}
	return World{
		Dialer:      SSHDialer{},
		Local:       lc,
		Child:       RunnerChild{},
		Receipts:    fileReceipts{},
		Archives:    tarArchiver{},
		LogPath:     func(t steps.Target, now time.Time) string { return runner.DefaultLogPath(t.Host, now) },
		BackupDir:   defaultBackupDir,
		LockDir:     stateDir("locks"),
		Resolve:     sshexec.Resolve,
		HostKeyDirs: []string{"/persistent/etc/ssh", "/etc/ssh"},
		Pushed:      local.PushedMain,
		Reach:       reachTCP,
	}
}

// reachTCP connects to addr over TCP and hangs up.
func reachTCP(ctx context.Context, addr string) error {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// SSHDialer dials with sshexec.
type SSHDialer struct{}

// Dial logs in to the target.
func (SSHDialer) Dial(ctx context.Context, o sshexec.Options) (Conn, error) {
	c, err := sshexec.Dial(ctx, o)
	if err != nil {
		return nil, err
	}
	return sshConn{c}, nil
}

// WaitForHost waits for the machine with the expected host key.
func (SSHDialer) WaitForHost(ctx context.Context, o sshexec.RebootOptions) (Conn, error) {
	c, _, err := sshexec.WaitForHost(ctx, o)
	if err != nil {
		return nil, err
	}
	return sshConn{c}, nil
}

// VerifyReboot waits for the new system and pins its host key.
func (SSHDialer) VerifyReboot(ctx context.Context, o sshexec.RebootOptions) (sshexec.RebootReport, error) {
	return sshexec.VerifyReboot(ctx, o)
}

// sshConn is a Conn over an sshexec client.
type sshConn struct{ *sshexec.Client }

func (c sshConn) HostKey() sshexec.HostKeyInfo { return c.Client.HostKey }
func (c sshConn) Login() sshexec.Resolved      { return c.Client.Resolved }
func (c sshConn) SetupSudo(ctx context.Context, password []byte) error {
	_, err := c.SetupPasswordlessSudo(ctx, sshexec.SudoSetup{Password: func(attempt int) ([]byte, error) {
		if attempt > 1 {
			return nil, sshexec.ErrSudoPassword
		}
		return append([]byte(nil), password...), nil
	}})
	return err
}

// realLocal runs the local checks, over the evaluation started at launch
// when the operator kept that flake.
type realLocal struct {
	pending *flake.Pending
	ref     string
}

// evaluation is the one started at launch when ref is that flake, else a
// new one.
func (l *realLocal) evaluation(ctx context.Context, ref string) *flake.Pending {
	if l.pending == nil || l.ref != ref {
		return flake.Start(ctx, ref)
	}
	return l.pending
}

func (l *realLocal) Flake(ctx context.Context, ref string) (*flake.Info, error) {
	return l.evaluation(ctx, ref).Wait(ctx)
}

func (l *realLocal) Local(ctx context.Context, cfg steps.Config) Local {
	pending := l.evaluation(ctx, cfg.Flake)
	r := local.Inspect(ctx, cfg, pending, local.BinfmtDir)
	info, err := pending.Wait(ctx)
	if err != nil {
		info = nil
	}
	return Local{Checks: r.Checks, Expect: r.Expect, Flake: info, FlakeErr: err, Summary: r.FlakeSummary, Build: r.Build}
}

// RunnerChild is nixos-anywhere under the runner: the only place that
// starts it.
type RunnerChild struct{}

func (RunnerChild) Run(ctx context.Context, o runner.Options, sink steps.Sink) (runner.Result, error) {
	return runner.Run(ctx, o, sink)
}

// fileReceipts are the receipts of steps/receipt.
type fileReceipts struct{}

func (fileReceipts) Read(t steps.Target) (receipt.Receipt, error) {
	return receipt.Read(t.Host, t.Port)
}
func (fileReceipts) Write(r receipt.Receipt) (string, error) { return receipt.Write(r) }
func (fileReceipts) AddBackup(t steps.Target, b receipt.Backup) error {
	return receipt.AddBackup(t.Host, t.Port, b)
}

// tarArchiver is steps/reinstall's streamed tar backup and restore.
type tarArchiver struct{}

func (tarArchiver) Backup(ctx context.Context, c Conn, o reinstall.BackupOptions, progress func(reinstall.Progress)) (reinstall.Archive, error) {
	return reinstall.Backup(ctx, c, o, progress)
}

func (tarArchiver) Restore(ctx context.Context, c Conn, a reinstall.Archive, o reinstall.RestoreOptions, progress func(reinstall.Progress)) (reinstall.RestoreResult, error) {
	return reinstall.Restore(ctx, c, a, o, progress)
}

// stateDir is a folder beside the receipts under $XDG_STATE_HOME/bigbang
// ("" when there is no home to put it in).
func stateDir(name string) string {
	hosts, err := receipt.Dir()
	if err != nil {
		return ""
	}
	return filepath.Join(filepath.Dir(hosts), name)
}

// defaultBackupDir is $XDG_STATE_HOME/bigbang/backups, beside the receipts.
func defaultBackupDir() (string, error) {
	hosts, err := receipt.Dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(hosts), "backups"), nil
}
