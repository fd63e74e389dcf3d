package rehearsal

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/runner"
	"github.com/bigbang-nix/bigbang/steps/secrets"
)

// ReplayCommand is the hidden subcommand that prints the recorded run; the
// runner starts it under a PTY exactly as it starts nixos-anywhere.
const ReplayCommand = "__rehearsal-replay"

// Options shape a rehearsal.
type Options struct {
	Speed  float64 // 1: recorded pace
	FailAt string  // a phase id where the replay fails
	// Exe is the bigbang binary that has the replay subcommand; default
	// os.Executable().
	Exe string
}

// Rehearsal is the simulated world of `bigbang demo`: an in-process SSH
// server that plays an Oracle A1 VPS, a recorded nixos-anywhere run as the
// child, and a temporary folder for everything written. It is plugged into
// the real engine (Engine), so the demo runs the code a real install runs.
type Rehearsal struct {
	opts       Options
	dir        string
	srv        *sshexec.SimServer
	prof       Profile
	sshConfig  string
	knownHosts string
	identity   string
	extra      string
	receipts   *memReceipts
}

// New starts the simulated VPS and prepares a temporary folder with its ssh
// config, a known_hosts file, a client key and the extra-files tree with
// the machine's host key.
func New(opts Options) (*Rehearsal, error) {
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
	b := &Rehearsal{opts: opts, dir: dir, receipts: &memReceipts{dir: dir}}
	fail := func(err error) (*Rehearsal, error) {
		b.Close()
		return nil, err
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return fail(err)
	}
	// The profile names the server's host key, so it is made after the
	// server; the handler reads it through an atomic pointer.
	var prof atomic.Pointer[Profile]
	srv, err := sshexec.NewSimServer(seed, func(c string, in io.Reader, out, errw io.Writer) int {
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
	if err := writeHostKey(filepath.Join(b.extra, "persistent", "etc", "ssh"), ed25519.NewKeyFromSeed(seed)); err != nil {
		return fail(err)
	}
	return b, nil
}

// writeHostKey writes the machine's host key into the extra-files tree, as
// `bigbang keys` would have: the reinstall's host key step finds it there.
func writeHostKey(dir string, key ed25519.PrivateKey) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	priv, err := secrets.MarshalPrivate(key, "rehearsal")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ssh_host_ed25519_key"), priv, 0o600); err != nil {
		return err
	}
	line := secrets.AuthorizedLine(key.Public().(ed25519.PublicKey), "rehearsal")
	return os.WriteFile(filepath.Join(dir, "ssh_host_ed25519_key.pub"), []byte(line+"\n"), 0o644)
}

// Close stops the simulated VPS and removes the temporary folder.
func (b *Rehearsal) Close() error {
	if b.srv != nil {
		_ = b.srv.Close()
	}
	return os.RemoveAll(b.dir)
}

// Dir is the temporary folder holding everything the rehearsal writes.
func (b *Rehearsal) Dir() string { return b.dir }

// Config is the configuration the demo's wizard starts from.
func (b *Rehearsal) Config() steps.Config {
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

// Engine is the real engine in the rehearsal's world.
func (b *Rehearsal) Engine() *engine.Engine {
	e := engine.New(engine.World{
		Dialer:   simDialer{b},
		Local:    simLocal{b},
		Child:    engine.RunnerChild{},
		Receipts: b.receipts,
		Archives: simArchiver{b},
		LogPath: func(t steps.Target, _ time.Time) string {
			return filepath.Join(b.dir, "rehearsal-"+t.FileName()+".log")
		},
		BackupDir:   func() (string, error) { return b.dir, nil },
		HostKeyDirs: []string{"/persistent/etc/ssh", "/etc/ssh"},
		AgentSocket: "none",
	})
	e.Stall = max(time.Duration(float64(runner.DefaultStall)/b.opts.Speed), time.Second)
	e.RebootTimeout = 30 * time.Second
	return e
}

// pause waits d at the rehearsal's speed, so the checklist fills in live.
func (b *Rehearsal) pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(float64(d) / b.opts.Speed)):
	}
}

// simDialer sends every dial to the simulated VPS, whatever host the
// operator typed: the ssh config maps every name to it as well, and
// neither the port nor an --ssh-option of the form reaches the dial.
type simDialer struct{ b *Rehearsal }

func (d simDialer) redirect(t sshexec.Target) sshexec.Target {
	return sshexec.Target{Host: "127.0.0.1", Port: d.b.srv.Port(), User: t.User, Identity: t.Identity, SSHConfig: d.b.sshConfig}
}

func (d simDialer) Dial(ctx context.Context, o sshexec.Options) (engine.Conn, error) {
	o.Target, o.KnownHosts, o.AgentSocket = d.redirect(o.Target), d.b.knownHosts, "none"
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	return engine.SSHDialer{}.Dial(ctx, o)
}

func (d simDialer) WaitForHost(ctx context.Context, o sshexec.RebootOptions) (engine.Conn, error) {
	o.Target, o.AgentSocket = d.redirect(o.Target), "none"
	return engine.SSHDialer{}.WaitForHost(ctx, o)
}

// VerifyReboot lets the simulated machine take its time to boot, then
// checks it as after a real reboot.
func (d simDialer) VerifyReboot(ctx context.Context, o sshexec.RebootOptions) (sshexec.RebootReport, error) {
	d.b.pause(ctx, 30*time.Second)
	o.Target, o.KnownHosts, o.AgentSocket = d.redirect(o.Target), d.b.knownHosts, "none"
	return engine.SSHDialer{}.VerifyReboot(ctx, o)
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
