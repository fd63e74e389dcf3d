// Package enginetest is a fake world for the engine: a dialer, a child and
// the stores, in memory, that fail the test on any call they were not set
// up for (lazygit's fake command runner style). Front-end tests drive the
// real engine over it.
package enginetest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/flake"
	localgit "github.com/bigbang-nix/bigbang/steps/local"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/steps/remote"
	"github.com/bigbang-nix/bigbang/steps/runner"
)

// Fake is the world. Set what a test expects to be called; anything else
// fails the test.
type Fake struct {
	T   testing.TB
	Dir string // transcripts and receipts go here

	// The target: its facts and host key. Known says known_hosts pins the
	// key; otherwise a dial is refused as unknown unless the options
	// approve exactly this key or accept new keys.
	Facts   remote.Facts
	HostKey sshexec.HostKeyInfo
	Known   bool
	// DialErr, when set, is what every dial returns.
	DialErr error
	// Remote answers Conn.Run; nil fails the test on a remote command.
	Remote func(cmd string, stdout io.Writer) error

	Local engine.Local

	// Child plays nixos-anywhere: its lines are written to the transcript
	// and sent as line events of phase, then Result is returned.
	Child *Child
	// Runs, when set, play the runs of nixos-anywhere in order (a
	// reinstall runs it twice); a run beyond them fails the test.
	Runs []*Child

	// Backup and Restore answer the archiver; nil fails the test when it
	// is called.
	Backup  func(ctx context.Context, o reinstall.BackupOptions) (reinstall.Archive, error)
	Restore func(ctx context.Context, a reinstall.Archive, o reinstall.RestoreOptions) (reinstall.RestoreResult, error)

	// Reboot answers VerifyReboot; nil fails the test when it is called.
	Reboot func(o sshexec.RebootOptions) (sshexec.RebootReport, error)

	// Pushed answers World.Pushed (the flake clone's pushed main); Reach
	// answers World.Reach (a TCP connect from the operator's machine).
	// nil fails the test when it is called.
	Pushed func(dir, rev string) (localgit.Pushed, error)
	Reach  func(addr string) error

	mu       sync.Mutex
	calls    []string
	receipts map[string]receipt.Receipt
}

// Child is a scripted run of nixos-anywhere.
type Child struct {
	Events []steps.Event // sent in order (Time is filled in)
	Lines  []string      // written to the transcript
	Result runner.Result
	// Block makes the child wait for the context to end, then return
	// Result with the outcome aborted.
	Block bool
}

// Calls are the ports called so far, in order, e.g. "dial opc@host".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *Fake) call(format string, args ...any) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

// World is the engine.World over f.
func (f *Fake) World() engine.World {
	return engine.World{
		Dialer:      dialer{f},
		Local:       local{f},
		Child:       child{f},
		Receipts:    receipts{f},
		Archives:    archiver{f},
		LogPath:     func(t steps.Target, _ time.Time) string { return filepath.Join(f.Dir, t.FileName()+".log") },
		BackupDir:   func() (string, error) { return f.Dir, nil },
		HostKeyDirs: []string{"/etc/ssh"},
		AgentSocket: "none",
		Pushed: func(_ context.Context, dir, rev string) (localgit.Pushed, error) {
			f.call("pushed %s %s", dir, rev)
			if f.Pushed == nil {
				f.T.Errorf("unexpected read of the pushed main in %s", dir)
				return localgit.Pushed{}, fmt.Errorf("unexpected call")
			}
			return f.Pushed(dir, rev)
		},
		Reach: func(_ context.Context, addr string) error {
			f.call("reach %s", addr)
			if f.Reach == nil {
				f.T.Errorf("unexpected connect to %s", addr)
				return fmt.Errorf("unexpected call")
			}
			return f.Reach(addr)
		},
	}
}

type dialer struct{ f *Fake }

func (d dialer) Dial(ctx context.Context, o sshexec.Options) (engine.Conn, error) {
	f := d.f
	f.call("dial %s@%s approved=%s", o.Target.User, o.Target.Host, o.ApprovedHostKey)
	if f.DialErr != nil {
		return nil, f.DialErr
	}
	if !f.Known {
		switch {
		case o.ApprovedHostKey == f.HostKey.Fingerprint, o.AcceptNewHostKey && o.ApprovedHostKey == "":
		case o.ApprovedHostKey != "":
			return nil, fmt.Errorf("%w: %w", sshexec.ErrHostKeyMismatch, sshexec.ErrHostKeyChangedSinceApproval)
		default:
			if o.PromptHostKey != nil {
				ok, err := o.PromptHostKey(ctx, f.HostKey)
				if err != nil {
					return nil, err
				}
				if ok {
					break
				}
			}
			return nil, sshexec.ErrHostKeyUnknown
		}
	}
	return conn{f: f, user: o.Target.User}, nil
}

func (d dialer) WaitForHost(ctx context.Context, o sshexec.RebootOptions) (engine.Conn, error) {
	d.f.call("wait %s@%s", o.Target.User, o.Target.Host)
	return conn{f: d.f, user: o.Target.User}, nil
}

func (d dialer) VerifyReboot(ctx context.Context, o sshexec.RebootOptions) (sshexec.RebootReport, error) {
	f := d.f
	f.call("verify %s@%s", o.Target.User, o.Target.Host)
	if f.Reboot == nil {
		f.T.Errorf("unexpected reboot verification of %s", o.Target.Host)
		return sshexec.RebootReport{}, fmt.Errorf("unexpected call")
	}
	return f.Reboot(o)
}

type conn struct {
	f    *Fake
	user string
}

func (c conn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	c.f.call("run %s", cmd)
	if c.f.Remote == nil {
		c.f.T.Errorf("unexpected remote command %q", cmd)
		return fmt.Errorf("unexpected remote command")
	}
	return c.f.Remote(cmd, stdout)
}

func (c conn) Facts(context.Context) (remote.Facts, error) { return c.f.Facts, nil }
func (c conn) CheckOptions() remote.CheckOptions {
	outcome := remote.HostKeyKnown
	if !c.f.Known {
		outcome = remote.HostKeyAccepted
	}
	return remote.CheckOptions{HostKeyOutcome: outcome, HostKeyType: c.f.HostKey.Type, HostKeyFingerprint: c.f.HostKey.Fingerprint, LoginUser: c.user, AuthMethod: "publickey"}
}
func (c conn) HostKey() sshexec.HostKeyInfo { return c.f.HostKey }
func (c conn) Login() sshexec.Resolved {
	return sshexec.Resolved{HostName: "127.0.0.1", User: c.user, Port: 22}
}
func (c conn) SetupSudo(context.Context, []byte) error {
	c.f.call("sudo")
	return nil
}
func (c conn) Close() error { return nil }

type local struct{ f *Fake }

func (l local) Flake(context.Context, string) (*flake.Info, error) {
	l.f.call("flake")
	if l.f.Local.Flake == nil {
		return nil, fmt.Errorf("the fake flake does not evaluate: %w", l.f.Local.FlakeErr)
	}
	return l.f.Local.Flake, nil
}

func (l local) Local(context.Context, steps.Config) engine.Local {
	l.f.call("local")
	return l.f.Local
}

type child struct{ f *Fake }

func (c child) Run(ctx context.Context, o runner.Options, sink steps.Sink) (runner.Result, error) {
	f := c.f
	f.call("child %s", strings.Join(o.Argv, " "))
	run := f.Child
	if f.Runs != nil {
		f.mu.Lock()
		run = nil
		if len(f.Runs) > 0 {
			run, f.Runs = f.Runs[0], f.Runs[1:]
		}
		f.mu.Unlock()
	}
	if run == nil {
		f.T.Errorf("unexpected run of %q", o.Argv)
		return runner.Result{}, fmt.Errorf("unexpected run")
	}
	// The runner appends to the transcript, as a resumed run does.
	lf, err := os.OpenFile(o.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return runner.Result{}, err
	}
	_, err = lf.WriteString(strings.Join(run.Lines, "\n") + "\n")
	if cerr := lf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return runner.Result{}, err
	}
	res := run.Result
	// The phases the events started and ended, as the runner reports them.
	at := map[steps.PhaseID]int{}
	for _, e := range run.Events {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		if e.Type == steps.EventPhase {
			i, ok := at[e.Phase]
			if !ok {
				i = len(res.Phases)
				at[e.Phase] = i
				res.Phases = append(res.Phases, runner.PhaseTime{Phase: e.Phase})
			}
			res.Phases[i].State = e.State
			switch e.State {
			case steps.StateRunning:
				res.Phases[i].Start = e.Time
			case steps.StateDone, steps.StateFailed:
				res.Phases[i].End = e.Time
			}
		}
		sink(e)
	}
	if run.Block {
		<-ctx.Done()
		res.Outcome = steps.OutcomeAborted
	}
	res.Log = o.LogPath
	sink(steps.Event{Time: time.Now(), Type: steps.EventResult, Outcome: res.Outcome, FailedPhase: res.FailedPhase, Diagnosis: res.Diagnosis, Log: res.Log, ExitCode: res.ExitCode})
	return res, nil
}

type receipts struct{ f *Fake }

func (r receipts) Read(t steps.Target) (receipt.Receipt, error) {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	rec, ok := r.f.receipts[t.Host]
	if !ok {
		return rec, os.ErrNotExist
	}
	return rec, nil
}

func (r receipts) Write(rec receipt.Receipt) (string, error) {
	r.f.call("receipt %s", rec.Host)
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	if r.f.receipts == nil {
		r.f.receipts = map[string]receipt.Receipt{}
	}
	r.f.receipts[rec.Host] = rec
	return filepath.Join(r.f.Dir, rec.Host+".json"), nil
}

func (r receipts) AddBackup(t steps.Target, b receipt.Backup) error {
	r.f.call("backup recorded %s", t.Host)
	return nil
}

// Receipt is the receipt written for host (false when none was).
func (f *Fake) Receipt(host string) (receipt.Receipt, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.receipts[host]
	return r, ok
}

type archiver struct{ f *Fake }

func (a archiver) Backup(ctx context.Context, c engine.Conn, o reinstall.BackupOptions, _ func(reinstall.Progress)) (reinstall.Archive, error) {
	a.f.call("backup %s", o.Source)
	if a.f.Backup == nil {
		a.f.T.Errorf("unexpected backup")
		return reinstall.Archive{}, fmt.Errorf("unexpected backup")
	}
	return a.f.Backup(ctx, o)
}

func (a archiver) Restore(ctx context.Context, c engine.Conn, ar reinstall.Archive, o reinstall.RestoreOptions, progress func(reinstall.Progress)) (reinstall.RestoreResult, error) {
	a.f.call("restore %s %s another=%v services=%s", c.Login().User, o.Target, o.AnotherTarget, strings.Join(o.Services, ","))
	if a.f.Restore == nil {
		a.f.T.Errorf("unexpected restore")
		return reinstall.RestoreResult{}, fmt.Errorf("unexpected restore")
	}
	if progress != nil {
		progress(reinstall.Progress{Bytes: 1, Total: 2})
	}
	return a.f.Restore(ctx, ar, o)
}

// A1 is the facts of an Oracle A1 VM as the preflight wants them: aarch64,
// 24 GiB, a 200 GB /dev/sda, passwordless sudo for opc.
func A1() remote.Facts {
	const gb = int64(1000 * 1000 * 1000)
	return remote.Facts{
		Kernel: "Linux", KernelRelease: "5.15.0", Arch: "aarch64", OSID: "ol", OSPrettyName: "Oracle Linux Server 9.4",
		User: "opc", UID: 1000, HasSudo: true, PasswordlessSudo: true, SetsidWait: true,
		Tools:         []string{"blkid", "cpio", "curl", "lsblk", "setsid", "sudo", "tar"},
		MemTotalBytes: 24 * steps.GiB, MemAvailableBytes: 22 * steps.GiB,
		Disks: []remote.Disk{{Path: "/dev/sda", Model: "BlockVolume", SizeBytes: 200 * gb, Type: "disk"}},
		UEFI:  true, Lockdown: "none", Home: "/home/opc", HomeFreeBytes: 100 * gb,
		IPv4DefaultRoute: true,
	}
}

// A1Local is the local side of a flake for an A1: everything ok.
func A1Local() engine.Local {
	efi := true
	return engine.Local{
		Checks: []steps.Check{{ID: "local.flake", Status: steps.StatusOK, Summary: "flake .#vps-arm evaluates"}},
		Expect: steps.TargetExpect{System: "aarch64-linux", Disks: []steps.DiskNeed{{Device: "/dev/sda", MinSizeBytes: 8 * steps.GiB}}, EFI: &efi},
		Flake:  &flake.Info{Ref: ".#vps-arm", Name: "vps-arm", Config: flake.Config{System: "aarch64-linux"}},
	}
}

// A1World is an A1 VPS whose host key known_hosts pins, a flake that fits
// it, an extra-files tree in dir that ships the new system's host key,
// and a child that succeeds (with no events: a test gives it the run it
// plays). cfg installs it with the remote build and the child `true`.
func A1World(t testing.TB, dir string) (*Fake, steps.Config) {
	t.Helper()
	keys := filepath.Join(dir, "keys")
	keyDir := filepath.Join(keys, "persistent", "etc", "ssh")
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pub := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl host\n"
	if err := os.WriteFile(filepath.Join(keyDir, "ssh_host_ed25519_key.pub"), []byte(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	w := &Fake{T: t, Dir: dir, Facts: A1(), Local: A1Local(), Known: true,
		HostKey: sshexec.HostKeyInfo{Type: "ssh-ed25519", Fingerprint: "SHA256:old"},
		Child:   &Child{Lines: []string{"### Done! ###"}, Result: runner.Result{Outcome: steps.OutcomeSuccess}}}
	cfg := steps.DefaultConfig()
	cfg.Host, cfg.ExtraFiles, cfg.NixosAnywhere, cfg.BuildOn = "203.0.113.7", keys, "true", "remote"
	return w, cfg
}
