package sshexec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults of RebootOptions.
const (
	DefaultRebootTimeout = 10 * time.Minute
	DefaultMaxBackoff    = time.Second
)

// ExpectedHostKeyFile is where the public half of the pre-generated host
// key lives in the extra-files tree.
func ExpectedHostKeyFile(extraFiles string) string {
	return filepath.Join(extraFiles, "persistent", "etc", "ssh", "ssh_host_ed25519_key.pub")
}

// RebootOptions configures WaitForHost and VerifyReboot.
type RebootOptions struct {
	// Target is the installed machine; User defaults to root.
	Target Target
	// ExpectedHostKey is the only host key accepted (authorized_keys
	// format, e.g. the content of ExpectedHostKeyFile).
	ExpectedHostKey []byte
	// KnownHosts is the file whose entries for the host are replaced on
	// success; default ~/.ssh/known_hosts.
	KnownHosts     string
	HashKnownHosts bool
	// Timeout bounds the whole wait; default 10 minutes.
	Timeout time.Duration
	// MaxBackoff caps the pause between attempts; default 1 s.
	MaxBackoff  time.Duration
	AgentSocket string
	Passphrase  PassphraseFunc
	// Limits bound the calls over the connection that came back (zero:
	// the defaults).
	Limits Limits
}

// RebootReport is what the machine that came back showed.
type RebootReport struct {
	HostKey          HostKeyInfo
	NixOSVersion     string // "" when nixos-version is missing: not NixOS
	SystemState      string // systemctl is-system-running: running, degraded, starting, …
	Waited           time.Duration
	Attempts         int
	KnownHostsFile   string
	KnownHostsBackup string
}

// WaitForHost waits for the machine to accept TCP and then an SSH login
// with the expected host key, retrying with a backoff capped at
// opts.MaxBackoff. A host that answers with another key is refused at once.
func WaitForHost(ctx context.Context, opts RebootOptions) (*Client, int, error) {
	if len(opts.ExpectedHostKey) == 0 {
		return nil, 0, errors.New("waiting for the host: no expected host key: generate it with bigbang keys")
	}
	if opts.Target.User == "" {
		opts.Target.User = "root"
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultRebootTimeout
	}
	maxBackoff := opts.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = DefaultMaxBackoff
	}
	r, err := Resolve(ctx, opts.Target)
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	deadline := start.Add(timeout)
	backoff := 50 * time.Millisecond
	attempts := 0
	var last error
	for {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return nil, attempts, newErr(ErrRebootTimeout, last,
				"open the provider's serial console (Oracle: the instance's Console connection) to see where the boot stopped; the network or the boot loader may have failed",
				"%s did not come back within %s", r, timeout.Round(time.Second))
		}
		attempts++
		c, err := dialResolved(ctx, r, Options{
			Target: opts.Target, ExpectedHostKey: opts.ExpectedHostKey,
			AgentSocket: opts.AgentSocket, Passphrase: opts.Passphrase, Limits: opts.Limits,
			Timeout: min(remaining, 30*time.Second), ConnectTimeout: min(remaining, time.Second),
		})
		if err == nil {
			return c, attempts, nil
		}
		if ctx.Err() != nil {
			return nil, attempts, ctx.Err()
		}
		if errors.Is(err, ErrHostKeyMismatch) || errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrKeyPassphrase) {
			return nil, attempts, err
		}
		last = err
		t := time.NewTimer(min(backoff, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, attempts, ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// VerifyReboot waits for the installed machine, logs in accepting only the
// expected host key, replaces the host's known_hosts entries with that key
// (keeping a backup and every other host's entries) and reads the NixOS
// version and the system state.
func VerifyReboot(ctx context.Context, opts RebootOptions) (RebootReport, error) {
	start := time.Now()
	c, attempts, err := WaitForHost(ctx, opts)
	if err != nil {
		return RebootReport{Waited: time.Since(start), Attempts: attempts}, fmt.Errorf("verifying the reboot: %w", err)
	}
	defer c.Close()
	rep := RebootReport{HostKey: c.HostKey, Waited: time.Since(start), Attempts: attempts}
	key, _, _, _, err := ssh.ParseAuthorizedKey(opts.ExpectedHostKey)
	if err != nil {
		return rep, err
	}
	rep.KnownHostsFile = dialKnownHosts(opts.KnownHosts, c.Resolved)
	rep.KnownHostsBackup, err = ReplaceKnownHost(rep.KnownHostsFile, c.Resolved.KnownHostsAddress(), key, opts.HashKnownHosts)
	if err != nil {
		return rep, fmt.Errorf("verifying the reboot: pinning the host key: %w", err)
	}
	script := `echo "nixos_version=$(nixos-version 2>/dev/null)"; echo "state=$(systemctl is-system-running 2>/dev/null)"`
	kv, err := c.runProbe(ctx, "the system state probe", script)
	if err != nil {
		return rep, fmt.Errorf("verifying the reboot: %w", err)
	}
	rep.NixOSVersion, rep.SystemState = kv["nixos_version"], kv["state"]
	return rep, nil
}

// ReadExpectedHostKey reads the .pub file of the pre-generated host key.
func ReadExpectedHostKey(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the expected host key: %w: generate it with bigbang keys, or pass --extra-files", err)
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey(data); err != nil {
		return nil, fmt.Errorf("expected host key %s: %w", file, err)
	}
	return data, nil
}
