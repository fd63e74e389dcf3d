package rehearsal

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/remote"
	"github.com/bigbang-nix/bigbang/steps/runner"
	"github.com/bigbang-nix/bigbang/ui"
)

// ReplayCommand is the hidden subcommand that prints the recorded run; the
// runner starts it under a PTY exactly as it starts nixos-anywhere.
const ReplayCommand = "__rehearsal-replay"

// Options shape a rehearsal.
type Options struct {
	Speed  float64 // 1: recorded pace
	FailAt string  // a phase id where the replay fails (tests)
	// Exe is the bigbang binary that has the replay subcommand; default
	// os.Executable().
	Exe string
}

// Backend is the ui.Backend of `bigbang demo`: every call goes to the
// simulated VPS through the real sshexec client and the real runner.
type Backend struct {
	opts       Options
	dir        string
	srv        *sshexec.SimServer
	prof       Profile
	sshConfig  string
	knownHosts string
	identity   string
	extra      string
}

var _ ui.Backend = (*Backend)(nil)

// New starts the simulated VPS and prepares a temporary folder with its ssh
// config, a known_hosts file, a client key and the extra-files tree.
func New(opts Options) (*Backend, error) {
	if opts.Speed <= 0 {
		opts.Speed = 1
	}
	if opts.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("rehearsal: finding the bigbang binary: %w", err)
		}
		opts.Exe = exe
	}
	dir, err := os.MkdirTemp("", "bigbang-rehearsal-")
	if err != nil {
		return nil, fmt.Errorf("rehearsal: temporary folder: %w; check that $TMPDIR is writable", err)
	}
	b := &Backend{opts: opts, dir: dir}
	fail := func(err error) (*Backend, error) {
		b.Close()
		return nil, err
	}
	// The profile names the server's host key, so it is made after the
	// server; the handler reads it through an atomic pointer.
	var prof atomic.Pointer[Profile]
	srv, err := sshexec.NewSimServer(nil, func(c string, in io.Reader, out, errw io.Writer) int {
		p := prof.Load()
		if p == nil {
			return 255
		}
		return p.Handler()(c, in, out, errw)
	})
	if err != nil {
		return fail(err)
	}
	b.srv = srv
	b.prof = OracleA1(srv.HostKeyLine())
	prof.Store(&b.prof)

	b.identity = filepath.Join(dir, "id_ed25519")
	if err := writeClientKey(b.identity); err != nil {
		return fail(err)
	}
	b.knownHosts = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(b.knownHosts, nil, 0o600); err != nil {
		return fail(err)
	}
	b.sshConfig = filepath.Join(dir, "ssh_config")
	// Every host name the operator may type leads to the simulated VPS:
	// the demo touches nothing real.
	conf := fmt.Sprintf("Host *\n  HostName 127.0.0.1\n  Port %d\n", srv.Port())
	if err := os.WriteFile(b.sshConfig, []byte(conf), 0o600); err != nil {
		return fail(err)
	}
	b.extra = filepath.Join(dir, "secrets-init", "keys")
	sshDir := filepath.Join(b.extra, "persistent", "etc", "ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(sshDir, "ssh_host_ed25519_key.pub"), []byte(srv.HostKeyLine()+"\n"), 0o644); err != nil {
		return fail(err)
	}
	return b, nil
}

// Close stops the simulated VPS and removes the temporary folder.
func (b *Backend) Close() error {
	if b.srv != nil {
		_ = b.srv.Close()
	}
	return os.RemoveAll(b.dir)
}

// Dir is the temporary folder holding everything the rehearsal writes.
func (b *Backend) Dir() string { return b.dir }

// Config is the configuration the demo's wizard starts from.
func (b *Backend) Config() steps.Config {
	cfg := steps.DefaultConfig()
	cfg.Host = DemoHost
	cfg.Identity = b.identity
	cfg.ExtraFiles = b.extra
	cfg.KnownHosts = b.knownHosts
	argv := []string{b.opts.Exe, ReplayCommand, "--speed", strconv.FormatFloat(b.opts.Speed, 'g', -1, 64)}
	if b.opts.FailAt != "" {
		argv = append(argv, "--fail-at", b.opts.FailAt)
	}
	cfg.NixosAnywhere = steps.ShellJoin(append(argv, "--"))
	return cfg
}

// target is where every dial of the rehearsal goes: the simulated VPS,
// whatever host the operator typed in the Target form. The ssh config maps
// every name to it as well, and neither the port nor an --ssh-option of
// the form reaches the dial.
func (b *Backend) target(cfg steps.Config, user string) sshexec.Target {
	return sshexec.Target{Host: "127.0.0.1", Port: b.srv.Port(), User: user, Identity: cfg.Identity, SSHConfig: b.sshConfig}
}

// pause waits d at the rehearsal's speed, so the checklist fills in live.
func (b *Backend) pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(float64(d) / b.opts.Speed)):
	}
}

// expect is what the demo flake says about its target.
func expect() steps.TargetExpect {
	efi := true
	return steps.TargetExpect{System: "aarch64-linux", Disks: []steps.DiskNeed{{Device: "/dev/sda", MinSizeBytes: 8 * steps.GiB}}, EFI: &efi}
}

// Preflight dials the simulated VPS with sshexec, gathers its facts and
// runs the remote checks, after the local checks a real run would make.
func (b *Backend) Preflight(ctx context.Context, cfg steps.Config, emit func(steps.Event)) (ui.Report, error) {
	check := func(c steps.Check) {
		emit(steps.Event{Time: time.Now(), Type: steps.EventCheck, Check: c})
	}
	local := []steps.Check{
		{ID: "local.flake", Status: steps.StatusOK, Summary: "flake " + cfg.Flake + " evaluates: nixosConfigurations.vps-arm, aarch64-linux"},
		{ID: "local.disko", Status: steps.StatusOK, Summary: "disko layout: /dev/sda (GPT, ESP 512 MiB, btrfs root), fits 8 GiB and up"},
		{ID: "local.hostkey", Status: steps.StatusOK, Summary: "host key secrets-init/keys/persistent/etc/ssh/ssh_host_ed25519_key is in place"},
		{ID: "local.sops", Status: steps.StatusOK, Summary: "the host key's age recipient is listed in .sops.yaml"},
		{ID: "local.lockout", Status: steps.StatusOK, Summary: "root and opc get your ssh key in the new system"},
	}
	for _, c := range local {
		b.pause(ctx, 250*time.Millisecond)
		check(c)
	}
	var seen sshexec.HostKeyInfo
	var mu sync.Mutex
	c, err := sshexec.Dial(ctx, sshexec.Options{
		Target:           b.target(cfg, cfg.User),
		KnownHosts:       b.knownHosts,
		AcceptNewHostKey: cfg.AcceptNewHostKey,
		ApprovedHostKey:  ui.ApprovedHostKey(ctx),
		PromptHostKey: func(_ context.Context, k sshexec.HostKeyInfo) (bool, error) {
			mu.Lock()
			seen = k
			mu.Unlock()
			return false, nil
		},
		AgentSocket: "none",
		Timeout:     10 * time.Second,
	})
	if errors.Is(err, sshexec.ErrHostKeyUnknown) {
		mu.Lock()
		defer mu.Unlock()
		return ui.Report{Checks: local, HostKey: ui.HostKey{Fingerprint: seen.Fingerprint, Type: seen.Type, Status: ui.HostKeyNew}}, nil
	}
	if err != nil {
		return ui.Report{Checks: local}, fmt.Errorf("rehearsal: reaching the simulated VPS: %w", err)
	}
	defer c.Close()
	facts, err := c.Facts(ctx)
	if err != nil {
		return ui.Report{Checks: local}, err
	}
	checks := remote.Checks(facts, expect(), c.CheckOptions())
	for _, ch := range checks {
		b.pause(ctx, 120*time.Millisecond)
		check(ch)
	}
	status := ui.HostKeyKnown
	r := ui.ReportFromFacts(facts, append(local, checks...), ui.HostKey{Fingerprint: c.HostKey.Fingerprint, Type: c.HostKey.Type, Status: status}, []string{"/dev/sda"})
	r.CPUs = b.prof.CPUs
	return r, ctx.Err()
}

// SetupSudo succeeds: the simulated opc already has passwordless sudo.
func (b *Backend) SetupSudo(ctx context.Context, cfg steps.Config, password []byte) error {
	return nil
}

// LogPath puts the transcript into the rehearsal's temporary folder.
func (b *Backend) LogPath(cfg steps.Config) string {
	return filepath.Join(b.dir, "rehearsal-"+cfg.Host+".log")
}

// Install replays the recorded run through the real runner, then verifies
// the "new system" over SSH with the expected host key, as after a real
// reboot. The reboot pane stays open until that check is done.
func (b *Backend) Install(ctx context.Context, req ui.InstallRequest, sink steps.Sink) (ui.InstallResult, error) {
	stall := time.Duration(float64(runner.DefaultStall) / b.opts.Speed)
	verdict := runner.HoldVerdict(sink)
	res, err := runner.Run(ctx, runner.Options{
		Argv: req.Plan.Argv, LogPath: req.Log, Phases: req.Plan.Phases,
		DefaultStall: max(stall, time.Second),
	}, verdict.Emit)
	out := ui.InstallResult{Outcome: res.Outcome, FailedPhase: res.FailedPhase, Diagnosis: res.Diagnosis, Log: res.Log, ExitCode: res.ExitCode}
	if err != nil || res.Outcome != steps.OutcomeSuccess {
		verdict.Release()
		return out, err
	}
	line := func(s string) {
		sink(steps.Event{Time: time.Now(), Type: steps.EventLine, Phase: steps.PhaseReboot, Text: s})
	}
	line("bigbang: waiting for " + req.Config.Host + " to come back with the host key from " + filepath.Base(req.Config.ExtraFiles) + "…")
	b.pause(ctx, 30*time.Second)
	rep, err := sshexec.VerifyReboot(ctx, sshexec.RebootOptions{
		Target:          b.target(req.Config, "root"),
		ExpectedHostKey: []byte(b.srv.HostKeyLine()),
		KnownHosts:      b.knownHosts,
		Timeout:         30 * time.Second,
		AgentSocket:     "none",
	})
	if err != nil {
		out.Outcome, out.FailedPhase = steps.OutcomeFailed, steps.PhaseReboot
		out.Diagnosis = &steps.Diagnosis{ID: "reboot.verify", Summary: err.Error(), Remedy: "open the provider's console and check that the machine booted"}
		sink(steps.Event{Time: time.Now(), Type: steps.EventPhase, Phase: steps.PhaseReboot, State: steps.StateFailed})
		sink(steps.Event{Time: time.Now(), Type: steps.EventResult, Outcome: out.Outcome, FailedPhase: out.FailedPhase, Diagnosis: out.Diagnosis, Log: out.Log})
		return out, nil
	}
	line(fmt.Sprintf("bigbang: NixOS %s is up (%s); host key %s matches", rep.NixOSVersion, rep.SystemState, rep.HostKey.Fingerprint))
	line("bigbang: known_hosts updated: " + rep.KnownHostsFile)
	sink(steps.Event{Time: time.Now(), Type: steps.EventPhase, Phase: steps.PhaseReboot, State: steps.StateDone})
	sink(steps.Event{Time: time.Now(), Type: steps.EventResult, Outcome: steps.OutcomeSuccess, Log: out.Log})
	out.HostKeyFingerprint = rep.HostKey.Fingerprint
	out.SSHCommand = "ssh root@" + req.Config.Host
	return out, nil
}

// writeClientKey writes a fresh ed25519 key as PKCS#8 PEM, mode 0600: the
// demo's login key, which the simulated VPS accepts.
func writeClientKey(path string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}
