// Package testhost starts a real OpenSSH sshd on loopback for the tests of
// sshexec, the preflight and the end-to-end runs: generated host and client
// keys, a configurable login user, a target root folder, and a "reboot"
// that comes back on another host key. It also has a TCP proxy that adds
// delay and can cut or black-hole connections, and listeners that misbehave.
package testhost

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

// Options configures Start.
type Options struct {
	// User is the login user the tests use; default the current user.
	User string
	// PasswordOnly makes the server refuse public keys and offer only
	// password login.
	PasswordOnly bool
	// IPv6 also listens on [::1].
	IPv6 bool
	// Installer makes the machine say it is the NixOS installer
	// (/etc/os-release ID=nixos, VARIANT_ID=installer), as a machine after
	// kexec does. It needs root (the namespace of vpsNamespace).
	Installer bool
	// WatchRebootRequests makes the host watch RebootRequestFile, so that a
	// separate process (the stand-in nixos-anywhere) can reboot it.
	WatchRebootRequests bool
	// ForceCommand, when set, is run instead of every command a session
	// asks for (sshd's ForceCommand): "sleep 300" plays a target whose
	// commands never return (a wedged shell, a df on a dead NFS home).
	// Logins still succeed.
	ForceCommand string
	// Extra is appended to sshd_config.
	Extra string
	// KeysOutsideRoot authorizes the client key only from the test's own
	// authorized_keys file, none of those the kexec installer copies to
	// root. By default (as root, in the namespace of vpsNamespace) it is
	// also in /etc/ssh/authorized_keys.d/<user>, as on a machine whose
	// keys reach root after kexec.
	KeysOutsideRoot bool
	// RootAtMnt shows the target root folder at /mnt to the machine's
	// sessions, as the NixOS installer has the new system's file systems
	// mounted there after nixos-install: what a session writes into /mnt
	// lands in Root, never in this machine's /mnt. It needs root (the
	// namespace of vpsNamespace); Start skips the test otherwise.
	RootAtMnt bool
}

// Host is a running sshd.
type Host struct {
	t    testing.TB
	opts Options
	sshd string

	Dir  string // scratch folder: config, keys, log
	Root string // the target root folder (what an install writes, like /mnt)
	IP   string // "127.0.0.1"
	Port int
	User string

	ClientKey string // private key file (0600) authorized for every user
	ClientPub string // its authorized_keys line

	// RebootRequestFile: writing "<delay> <host key file>" into it reboots
	// the host onto that key (with WatchRebootRequests).
	RebootRequestFile string

	mu         sync.Mutex
	cmd        *exec.Cmd
	exited     chan struct{}
	hostKey    string // current host private key
	hostPub    string
	listenedAt time.Time
	up         chan struct{} // closed when sshd listens (reset by Reboot)
	stopWatch  chan struct{}
	bootErr    error
	closed     bool // the test ended: a pending reboot must not start sshd
	onReboot   func()
}

// OnReboot sets what happens when the machine goes down for a reboot,
// before it comes back: a test reads what the new system will boot with
// there (the target root), or makes it the machine's.
func (h *Host) OnReboot(f func()) {
	h.mu.Lock()
	h.onReboot = f
	h.mu.Unlock()
}

// Start starts sshd and stops it when the test ends. It skips (or fails
// under BIGBANG_REQUIRE_TOOLS) when sshd or ssh-keygen is missing.
func Start(t testing.TB, opts Options) *Host {
	t.Helper()
	sshd := testutil.Need(t, "sshd")
	testutil.Need(t, "ssh-keygen")
	if opts.RootAtMnt {
		testutil.NeedRoot(t, "the test host shows its target root at /mnt only in a mount namespace of its own")
		testutil.Need(t, "unshare")
		if fi, err := os.Stat("/mnt"); err != nil || !fi.IsDir() {
			t.Skip("the test host shows its target root at /mnt, and this machine has no /mnt to mount it on")
		}
	}
	if opts.User == "" {
		u, err := user.Current()
		if err != nil {
			t.Fatalf("testhost: current user: %v", err)
		}
		opts.User = u.Username
	}
	dir := t.TempDir()
	if cur, err := user.Current(); err == nil && cur.Username != opts.User {
		// sshd reads authorized_keys as the login user: let it through the
		// test's private temp folders (the keys in them stay 0600).
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	h := &Host{t: t, opts: opts, sshd: sshd, Dir: dir, Root: filepath.Join(dir, "root"), IP: "127.0.0.1", User: opts.User,
		RebootRequestFile: filepath.Join(dir, "reboot-request"), stopWatch: make(chan struct{})}
	for _, d := range []string{h.Root, h.Home()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 {
		// Debian's sshd refuses to start without its privilege separation
		// folder, which only exists once the service ran.
		_ = os.MkdirAll("/run/sshd", 0o755)
	}
	var err error
	h.ClientKey, h.ClientPub, err = GenerateKey(dir, "client_ed25519", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(h.ClientPub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key, pub, err := GenerateKey(dir, "ssh_host_ed25519_key", "")
	if err != nil {
		t.Fatal(err)
	}
	h.hostKey, h.hostPub = key, pub
	if err := h.start(); err != nil {
		t.Fatalf("testhost: %v", err)
	}
	if opts.WatchRebootRequests {
		go h.watchRebootRequests()
	}
	t.Cleanup(func() {
		close(h.stopWatch)
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		h.Stop()
	})
	return h
}

// GenerateKey writes a new ed25519 key pair with ssh-keygen (passphrase ""
// for none) and returns the private key's path and the public key line.
func GenerateKey(dir, name, passphrase string) (priv, pub string, err error) {
	priv = filepath.Join(dir, name)
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", priv).CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	p, err := os.ReadFile(priv + ".pub")
	if err != nil {
		return "", "", err
	}
	return priv, strings.TrimSpace(string(p)), nil
}

// Addr is "127.0.0.1:port".
func (h *Host) Addr() string { return net.JoinHostPort(h.IP, strconv.Itoa(h.Port)) }

// PortString is the port as text.
func (h *Host) PortString() string { return strconv.Itoa(h.Port) }

// HostKeyPub returns the current host key's authorized_keys line.
func (h *Host) HostKeyPub() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hostPub
}

// KnownHostsLine is the known_hosts entry of the current host key.
func (h *Host) KnownHostsLine() string {
	f := strings.Fields(h.HostKeyPub())
	return fmt.Sprintf("[%s]:%d %s %s", h.IP, h.Port, f[0], f[1])
}

// WriteKnownHosts writes a known_hosts file (0600) that trusts this host,
// followed by the given extra lines.
func (h *Host) WriteKnownHosts(path string, extra ...string) {
	h.t.Helper()
	content := h.KnownHostsLine() + "\n"
	for _, l := range extra {
		content += l + "\n"
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// Home is the login user's home in sessions ($HOME): an empty folder of
// the test host's.
func (h *Host) Home() string { return filepath.Join(h.Dir, "home") }

// LogFile is sshd's log (-e), for debugging failures.
func (h *Host) LogFile() string { return filepath.Join(h.Dir, "sshd.log") }

func (h *Host) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Port %d\nListenAddress 127.0.0.1\n", h.Port)
	if h.opts.IPv6 {
		b.WriteString("ListenAddress ::1\n")
	}
	// The login user's ~/.ssh/authorized_keys (HOME is Home, not the
	// password database's) and /etc/ssh/authorized_keys.d/%u (the
	// namespace's /etc/ssh) are read too, as a VPS's sshd reads its
	// users' files: ssh-copy-id's key works, and the kexec installer's
	// copy of the keys to root finds the client key.
	fmt.Fprintf(&b, "HostKey %s\nPidFile %s\nAuthorizedKeysFile %s %s /etc/ssh/authorized_keys.d/%%u\n", h.hostKey, filepath.Join(h.Dir, "sshd.pid"),
		filepath.Join(h.Dir, "authorized_keys"), filepath.Join(h.Home(), ".ssh", "authorized_keys"))
	b.WriteString("StrictModes no\nPermitRootLogin prohibit-password\nUsePAM no\nMaxStartups 200\nMaxAuthTries 10\nLogLevel VERBOSE\n")
	b.WriteString("Subsystem sftp internal-sftp\nAcceptEnv LANG LC_*\n")
	// Sessions get a home of their own, as on a fresh VPS: the shell then
	// reads none of this machine's dotfiles, whose start-up work (a
	// version manager's rehash that waits for a lock other sessions hold)
	// can make every command slow, or hang while other tests log in. sshd
	// takes only its first SetEnv line, so those of Extra join this one
	// (and a HOME given there wins).
	setenv, extra := splitSetEnv(h.opts.Extra)
	if !strings.Contains(" "+strings.Join(setenv, " "), " HOME=") {
		setenv = append([]string{"HOME=" + h.Home()}, setenv...)
	}
	fmt.Fprintf(&b, "SetEnv %s\n", strings.Join(setenv, " "))
	if h.opts.PasswordOnly {
		b.WriteString("PubkeyAuthentication no\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n")
	} else {
		b.WriteString("PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n")
	}
	if h.opts.ForceCommand != "" {
		fmt.Fprintf(&b, "ForceCommand %s\n", h.opts.ForceCommand)
	}
	b.WriteString(extra)
	return b.String()
}

// splitSetEnv takes the SetEnv lines out of an sshd_config fragment and
// returns their NAME=VALUE words (values without spaces) and the rest of
// the fragment.
func splitSetEnv(cfg string) (vars []string, rest string) {
	var keep []string
	for _, l := range strings.SplitAfter(cfg, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && strings.EqualFold(f[0], "SetEnv") {
			vars = append(vars, f[1:]...)
			continue
		}
		keep = append(keep, l)
	}
	return vars, strings.Join(keep, "")
}

// vpsNamespace is the command that starts sshd as the VPS it plays: in a
// mount namespace of its own where the marks of the container the tests
// run in (Docker's /.dockerenv, systemd-detect-virt) are hidden, so the
// target's facts say what a VM's would and remote.container passes, as it
// does on a real VPS; and where /etc/ssh holds the host key sshd serves,
// as on a real machine (the reinstall copies it from there). It needs root
// and unshare; nil otherwise (the container then shows, and the preflight
// refuses it).
func (h *Host) vpsNamespace() []string {
	if os.Geteuid() != 0 {
		return nil
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return nil
	}
	etc := filepath.Join(h.Dir, "etc-ssh")
	h.mu.Lock()
	key, pub := h.hostKey, h.hostPub
	h.mu.Unlock()
	priv, err := os.ReadFile(key)
	if err != nil || os.MkdirAll(etc, 0o755) != nil ||
		os.WriteFile(filepath.Join(etc, "ssh_host_ed25519_key"), priv, 0o600) != nil ||
		os.WriteFile(filepath.Join(etc, "ssh_host_ed25519_key.pub"), []byte(pub+"\n"), 0o644) != nil {
		return nil
	}
	if !h.opts.KeysOutsideRoot {
		d := filepath.Join(etc, "authorized_keys.d")
		if os.MkdirAll(d, 0o755) != nil || os.WriteFile(filepath.Join(d, h.User), []byte(h.ClientPub+"\n"), 0o644) != nil {
			return nil
		}
	}
	script := `for f in /.dockerenv /run/.containerenv "$(command -v systemd-detect-virt)"; do ` +
		`[ -e "$f" ] && mount --bind /dev/null "$f"; done; mount --bind "$0" /etc/ssh && exec "$@"`
	if h.opts.RootAtMnt {
		script = `mount --bind '` + strings.ReplaceAll(h.Root, "'", `'\''`) + `' /mnt && ` + script
	}
	if h.opts.Installer {
		release := filepath.Join(h.Dir, "os-release")
		if os.WriteFile(release, []byte("NAME=NixOS\nID=nixos\nVARIANT_ID=installer\nPRETTY_NAME=\"NixOS 25.11 (installer)\"\n"), 0o644) != nil {
			return nil
		}
		script = `mount --bind ` + release + ` /etc/os-release && ` + script
	}
	return []string{"unshare", "-m", "--propagation", "private", "sh", "-c", script, etc}
}

// MachineKeyDir is the folder the machine's own /etc/ssh shows (as root,
// in the namespace of vpsNamespace): it holds the host key sshd serves.
func (h *Host) MachineKeyDir() string { return filepath.Join(h.Dir, "etc-ssh") }

// start picks a free port (listen on :0, close, retry when sshd loses the
// race for it) and starts sshd on it.
func (h *Host) start() error {
	var lastErr error
	for try := 0; try < 5; try++ {
		if h.Port == 0 || try > 0 {
			p, err := FreePort()
			if err != nil {
				return err
			}
			h.Port = p
		}
		if lastErr = h.startOnce(); lastErr == nil {
			return nil
		}
	}
	return lastErr
}

func (h *Host) startOnce() error {
	cfg := filepath.Join(h.Dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(h.config()), 0o600); err != nil {
		return err
	}
	logf, err := os.OpenFile(h.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(h.sshd, "-D", "-e", "-f", cfg)
	argv := h.vpsNamespace()
	if argv == nil && h.opts.RootAtMnt {
		logf.Close()
		return errors.New("the target root cannot be shown at /mnt without the machine's mount namespace")
	}
	if argv != nil {
		cmd = exec.Command(argv[0], append(argv[1:], h.sshd, "-D", "-e", "-f", cfg)...)
	}
	cmd.Stderr = logf
	cmd.Stdout = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting sshd: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	h.mu.Lock()
	if h.up == nil {
		h.up = make(chan struct{})
	}
	h.cmd, h.exited = cmd, exited
	up := h.up
	h.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			log, _ := os.ReadFile(h.LogFile())
			return fmt.Errorf("sshd exited at start: %s", lastLines(string(log), 5))
		default:
		}
		c, err := net.DialTimeout("tcp", h.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			h.mu.Lock()
			h.listenedAt = time.Now()
			h.mu.Unlock()
			close(up)
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	h.kill()
	return errors.New("sshd did not listen within 10 s")
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (h *Host) kill() {
	h.mu.Lock()
	cmd, exited := h.cmd, h.exited
	h.cmd = nil
	h.mu.Unlock()
	if cmd == nil {
		return
	}
	// sshd -D forks a process per connection (and those fork their
	// privilege-separated children); killing the listener leaves them
	// serving their connections, as a rebooting machine would not. Stop the
	// listener first so that it forks no more, note every process below
	// it while the tree still hangs together (a dead parent's children go
	// to init), then kill them all.
	pid := cmd.Process.Pid
	_ = cmd.Process.Signal(syscall.SIGSTOP)
	below := descendants(pid)
	_ = cmd.Process.Kill()
	for _, p := range below {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	<-exited
}

// descendants lists the processes below pid: children, their children, ….
func descendants(pid int) []int {
	children := map[int][]int{}
	for _, p := range procs() {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// GroupMembers lists the live (not zombie) processes of process group
// pgid, for the tests that check that a stopped run leaves none behind.
func GroupMembers(pgid int) []int {
	var out []int
	for _, p := range procs() {
		if p.pgid == pgid && p.state != "Z" {
			out = append(out, p.pid)
		}
	}
	return out
}

// proc is a process as /proc/<pid>/stat describes it.
type proc struct {
	pid, ppid, pgid int
	state           string
}

// procs lists this machine's processes from /proc. The command name in
// parentheses may hold spaces and parentheses, so the fields are counted
// from the last ')'.
func procs() []proc {
	var out []proc
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		// Fields after the command name: state ppid pgrp …
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 {
			continue
		}
		ppid, err1 := strconv.Atoi(f[1])
		pgid, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, proc{pid: pid, ppid: ppid, pgid: pgid, state: f[0]})
	}
	return out
}

// Stop stops sshd and every connection it serves.
func (h *Host) Stop() { h.kill() }

// Reboot stops sshd now and starts it again on the same port after delay,
// with the host key in newHostKey (a private key file; "" generates a new
// key). It returns at once; WaitUp waits for the restart.
func (h *Host) Reboot(delay time.Duration, newHostKey string) {
	h.t.Helper()
	h.kill()
	h.mu.Lock()
	onReboot := h.onReboot
	h.mu.Unlock()
	if onReboot != nil {
		onReboot()
	}
	h.mu.Lock()
	h.up = make(chan struct{})
	h.bootErr = nil
	h.mu.Unlock()
	key, pub, err := h.installHostKey(newHostKey)
	if err != nil {
		h.t.Errorf("testhost reboot: %v", err)
		return
	}
	go func() {
		time.Sleep(delay)
		h.mu.Lock()
		h.hostKey, h.hostPub = key, pub
		closed := h.closed
		h.mu.Unlock()
		if closed {
			return
		}
		// The port stays the same: the machine comes back on its address.
		err := h.startOnce()
		h.mu.Lock()
		h.bootErr = err
		closed = h.closed
		h.mu.Unlock()
		if closed {
			h.kill()
		}
	}()
}

// installHostKey copies a host key into the scratch folder with mode 0600
// (sshd ignores a group- or world-readable key), or makes a new one.
func (h *Host) installHostKey(src string) (key, pub string, err error) {
	name := fmt.Sprintf("ssh_host_ed25519_key.%d", time.Now().UnixNano())
	if src == "" {
		return GenerateKey(h.Dir, name, "")
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return "", "", err
	}
	key = filepath.Join(h.Dir, name)
	if err := os.WriteFile(key, data, 0o600); err != nil {
		return "", "", err
	}
	out, err := exec.Command("ssh-keygen", "-y", "-f", key).Output()
	if err != nil {
		return "", "", fmt.Errorf("ssh-keygen -y %s: %v", src, err)
	}
	return key, strings.TrimSpace(string(out)), nil
}

// WaitUp waits until sshd listens (again) and returns when it started
// listening.
func (h *Host) WaitUp(timeout time.Duration) (time.Time, error) {
	h.mu.Lock()
	up := h.up
	h.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-up:
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.listenedAt, nil
		case <-t.C:
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.bootErr != nil {
				return time.Time{}, h.bootErr
			}
			return time.Time{}, errors.New("testhost: sshd is not up")
		case <-time.After(20 * time.Millisecond):
			h.mu.Lock()
			err := h.bootErr
			h.mu.Unlock()
			if err != nil {
				return time.Time{}, err
			}
		}
	}
}

// watchRebootRequests polls RebootRequestFile: "<delay> <key file>", e.g.
// "2s /tmp/x/persistent/etc/ssh/ssh_host_ed25519_key".
func (h *Host) watchRebootRequests() {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-h.stopWatch:
			return
		case <-tick.C:
		}
		data, err := os.ReadFile(h.RebootRequestFile)
		if err != nil || !bytes.HasSuffix(data, []byte("\n")) {
			continue
		}
		_ = os.Remove(h.RebootRequestFile)
		f := strings.Fields(string(data))
		delay := time.Duration(0)
		key := ""
		if len(f) > 0 {
			delay, _ = time.ParseDuration(f[0])
		}
		if len(f) > 1 {
			key = f[1]
		}
		h.Reboot(delay, key)
	}
}

// Fingerprint is ssh-keygen's SHA256 fingerprint of a public key line.
func Fingerprint(t testing.TB, pub string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "k.pub")
	if err := os.WriteFile(f, []byte(pub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", f).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[1]
}
