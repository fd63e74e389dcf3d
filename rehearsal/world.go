package rehearsal

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
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
	Speed float64 // 1: recorded pace
	// FailAt rehearses a failure: a phase id (the run fails there as real
	// runs do), or one of the first-time failures the preflight catches
	// (FailAtChoices).
	FailAt string
	// Reinstall rehearses a reinstall: the machine runs the installed
	// system, whose key the extra-files tree holds and keeps.
	Reinstall bool
	// Exe is the bigbang binary that has the replay subcommand; default
	// os.Executable().
	Exe string
}

// FailAtChoices are the failures a rehearsal can show, with what each is.
var FailAtChoices = [][2]string{
	{"connect", "the install key is refused (ssh-copy-id: Permission denied)"},
	{"kexec", "the installer does not fit in RAM (the OOM killer)"},
	{"disko", "the disk layout does not fit the disk"},
	{"install", "the boot loader fails to install"},
	{"keys", "the host keys cannot be copied"},
	{"reboot", "the new system never comes back"},
	{"sudo", "the login user has no passwordless sudo (the wizard sets it up)"},
	{"disk", "the disk is too small for the flake's layout"},
	{"sops", "the host key is not a recipient of the sops secrets"},
	{"hostkey", "known_hosts holds another key for the host (a rebuilt VPS)"},
}

// ValidFailAt says whether s names a rehearsable failure.
func ValidFailAt(s string) bool {
	for _, c := range FailAtChoices {
		if c[0] == s {
			return true
		}
	}
	return s == ""
}

// Rehearsal is the simulated world of `bigbang demo`: an in-process SSH
// server that plays an Oracle A1 VPS, a recorded nixos-anywhere run as the
// child, and a temporary folder for everything written. It is plugged into
// the real engine (Engine), so the demo runs the code a real install runs.
type Rehearsal struct {
	opts Options
	dir  string
	// srv is the VPS before the install; newSrv is the installed system,
	// which answers with the host key the extra-files tree ships (a
	// reinstall keeps the machine's key: then newSrv is srv).
	srv, newSrv *sshexec.SimServer
	prof        Profile
	sshConfig   string
	knownHosts  string
	identity    string
	extra       string
	receipts    *memReceipts
	// deadPort is a loopback port nothing listens on: the new system that
	// never comes back.
	deadPort int
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
	seed, newSeed := make([]byte, ed25519.SeedSize), make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return fail(err)
	}
	if _, err := rand.Read(newSeed); err != nil {
		return fail(err)
	}
	// The profile names the server's host key, so it is made after the
	// server; the handler reads it through an atomic pointer.
	var prof atomic.Pointer[Profile]
	handler := func(c string, in io.Reader, out, errw io.Writer) int {
		p := prof.Load()
		if p == nil {
			return 255
		}
		return p.Handler()(c, in, out, errw)
	}
	srv, err := sshexec.NewSimServer(seed, handler)
	if err != nil {
		return fail(err)
	}
	b.srv, b.newSrv = srv, srv
	shipped := seed
	if !opts.Reinstall {
		if b.newSrv, err = sshexec.NewSimServer(newSeed, handler); err != nil {
			return fail(err)
		}
		shipped = newSeed
	}
	b.prof = OracleA1(srv.HostKeyLine())
	b.prof.sudoSet = &atomic.Bool{}
	switch opts.FailAt {
	case "sudo":
		b.prof.Facts.PasswordlessSudo = false
	case "disk":
		b.prof.Facts.Disks[0].SizeBytes = 6 * steps.GiB
		b.prof.Facts.Disks[0].Partitions = nil
	}
	prof.Store(&b.prof)

	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		b.deadPort = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	b.identity = filepath.Join(dir, "id_ed25519")
	line, err := writeClientKey(b.identity)
	if err != nil {
		return fail(err)
	}
	b.prof.WithLoginKey(line)
	b.knownHosts = filepath.Join(dir, "known_hosts")
	var known []byte
	if opts.FailAt == "hostkey" {
		// The VPS was rebuilt: known_hosts pins the key of the one before.
		_, old, _ := ed25519.GenerateKey(rand.Reader)
		known = []byte(DemoHost + " " + secrets.AuthorizedLine(old.Public().(ed25519.PublicKey), "") + "\n")
	}
	if err := os.WriteFile(b.knownHosts, known, 0o600); err != nil {
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
	if err := writeHostKey(filepath.Join(b.extra, "persistent", "etc", "ssh"), ed25519.NewKeyFromSeed(shipped)); err != nil {
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
	if b.newSrv != nil && b.newSrv != b.srv {
		_ = b.newSrv.Close()
	}
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
	return cfg
}

// replayArgv is the recorded run that plays nixos-anywhere: the plan
// shows the real command, and the child that runs is this one.
func (b *Rehearsal) replayArgv() []string {
	argv := []string{b.opts.Exe, ReplayCommand, "--speed", strconv.FormatFloat(b.opts.Speed, 'g', -1, 64)}
	if b.opts.FailAt != "" {
		argv = append(argv, "--fail-at", b.opts.FailAt)
	}
	return append(argv, "--")
}

// replayChild runs the recorded run in place of the pinned nixos-anywhere
// command, with the plan's arguments, under the real runner.
type replayChild struct{ b *Rehearsal }

func (c replayChild) Run(ctx context.Context, o runner.Options, sink steps.Sink) (runner.Result, error) {
	prefix, _ := steps.SplitCommand(steps.DefaultNixosAnywhere)
	if len(o.Argv) >= len(prefix) && slices.Equal(o.Argv[:len(prefix)], prefix) {
		o.Argv = append(c.b.replayArgv(), o.Argv[len(prefix):]...)
	}
	return engine.RunnerChild{}.Run(ctx, o, sink)
}

// Engine is the real engine in the rehearsal's world.
func (b *Rehearsal) Engine() *engine.Engine {
	e := engine.New(engine.World{
		Dialer:   simDialer{b},
		Local:    simLocal{b},
		Child:    replayChild{b},
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
	// The recorded reboot takes 150 s at speed 1: the deadline from the
	// Rebooting step, and the wait for the new system, leave room for it.
	e.RebootTimeout = max(time.Duration(float64(200*time.Second)/b.opts.Speed), 30*time.Second)
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

// redirect points t at srv. The known_hosts name stays the host the
// operator typed (HostKeyAlias), so that the key the installed system
// brings replaces the old one under that name, as after a real install.
func (d simDialer) redirect(t sshexec.Target, srv *sshexec.SimServer) sshexec.Target {
	return sshexec.Target{Host: "127.0.0.1", Port: srv.Port(), User: t.User, Identity: t.Identity, SSHConfig: d.b.sshConfig,
		Options: []string{"HostKeyAlias=" + t.Host}}
}

func (d simDialer) Dial(ctx context.Context, o sshexec.Options) (engine.Conn, error) {
	srv := d.b.srv
	if o.ExpectedHostKey != nil {
		// Only the installed system answers with the shipped key.
		srv = d.b.newSrv
	}
	o.Target, o.KnownHosts, o.AgentSocket = d.redirect(o.Target, srv), d.b.knownHosts, "none"
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	return engine.SSHDialer{}.Dial(ctx, o)
}

func (d simDialer) WaitForHost(ctx context.Context, o sshexec.RebootOptions) (engine.Conn, error) {
	o.Target, o.AgentSocket = d.redirect(o.Target, d.b.newSrv), "none"
	return engine.SSHDialer{}.WaitForHost(ctx, o)
}

// VerifyReboot lets the simulated machine take its time to boot, then
// checks it as after a real reboot.
func (d simDialer) VerifyReboot(ctx context.Context, o sshexec.RebootOptions) (sshexec.RebootReport, error) {
	d.b.pause(ctx, 30*time.Second)
	if d.b.opts.FailAt == "reboot" {
		// The new system never comes back: nothing answers where it
		// should, as when its initrd lacks the disk's driver.
		o.Target, o.Timeout = sshexec.Target{Host: "127.0.0.1", Port: d.b.deadPort, User: o.Target.User, Identity: o.Target.Identity}, min(o.Timeout, 10*time.Second)
		return engine.SSHDialer{}.VerifyReboot(ctx, o)
	}
	o.Target, o.KnownHosts, o.AgentSocket = d.redirect(o.Target, d.b.newSrv), d.b.knownHosts, "none"
	return engine.SSHDialer{}.VerifyReboot(ctx, o)
}

// writeClientKey writes a fresh ed25519 key as PKCS#8 PEM, mode 0600: the
// demo's login key, which the simulated VPS accepts.
func writeClientKey(path string) (authorizedLine string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	return secrets.AuthorizedLine(pub, ""), os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}
