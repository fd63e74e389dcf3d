package sshexec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bigbang-nix/bigbang/steps/remote"
)

// Defaults of Options.
const (
	DefaultTimeout           = 20 * time.Second
	DefaultKeepaliveInterval = 10 * time.Second
	DefaultKeepaliveMax      = 3
)

// Options configures Dial.
type Options struct {
	Target Target
	// KnownHosts is the known_hosts file to check and extend; default
	// ~/.ssh/known_hosts.
	KnownHosts string
	// AcceptNewHostKey trusts an unknown host's key without asking (the
	// --accept-new-host-key flag).
	AcceptNewHostKey bool
	// HashKnownHosts writes new entries with hashed host names, as ssh's
	// HashKnownHosts does.
	HashKnownHosts bool
	// PromptHostKey asks the operator about an unknown host's key. nil: an
	// unknown key is refused unless AcceptNewHostKey is set.
	PromptHostKey HostKeyPrompt
	// ApprovedHostKey is the SHA256 fingerprint ("SHA256:…") of an unknown
	// host's key that the operator approved on an earlier connection. When
	// set, an unknown host is trusted (and saved to known_hosts) only if it
	// offers exactly that key; any other key is refused with
	// ErrHostKeyChangedSinceApproval and nothing is saved. It takes
	// precedence over AcceptNewHostKey and PromptHostKey, so that a consent
	// given to one key never extends to another.
	ApprovedHostKey string
	// ExpectedHostKey, when set (authorized_keys format), is the only key
	// accepted; known_hosts is then neither read nor written.
	ExpectedHostKey []byte
	// Passphrase asks for a key file's passphrase; nil: such keys are used
	// only through the agent.
	Passphrase PassphraseFunc
	// AgentSocket is the ssh-agent socket; default $SSH_AUTH_SOCK, "none"
	// disables the agent.
	AgentSocket string
	// Timeout bounds TCP connect, SSH handshake and authentication together
	// (the time spent in PromptHostKey and Passphrase does not count).
	Timeout time.Duration
	// ConnectTimeout bounds the TCP connect alone (default Timeout): a wait
	// loop uses a short one so that a host coming back is noticed soon.
	ConnectTimeout time.Duration
	// KeepaliveInterval and KeepaliveMax: a connection whose keepalives go
	// unanswered KeepaliveMax times in a row is closed. Interval < 0
	// disables keepalives.
	KeepaliveInterval time.Duration
	KeepaliveMax      int
	// Limits bound the remote calls of the connection (zero: the
	// defaults); see Limits.
	Limits Limits
}

// HostKeyInfo describes a host key for the operator.
type HostKeyInfo struct {
	Address       string // known_hosts form: host, or [host]:port
	Type          string // e.g. "ssh-ed25519"
	Fingerprint   string // "SHA256:…"
	AuthorizedKey string // "ssh-ed25519 AAAA…"
	Where         string // for a known key: "file:line"
}

// HostKeyPrompt asks whether to trust an unknown host key. The dial's
// deadline is paused while it runs.
type HostKeyPrompt func(ctx context.Context, key HostKeyInfo) (accept bool, err error)

func keyInfo(address string, k ssh.PublicKey) HostKeyInfo {
	return HostKeyInfo{
		Address:       address,
		Type:          k.Type(),
		Fingerprint:   ssh.FingerprintSHA256(k),
		AuthorizedKey: string(trimNL(ssh.MarshalAuthorizedKey(k))),
	}
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// Client is an authenticated SSH connection to the target.
type Client struct {
	ssh      *ssh.Client
	Resolved Resolved
	// HostKey is the key the server proved it holds.
	HostKey        HostKeyInfo
	HostKeyOutcome remote.HostKeyOutcome
	KnownHostsFile string
	// AuthMethod names the credential the server accepted.
	AuthMethod string
	// AuthKeyFingerprint is that key's SHA256 fingerprint, AuthKeyFile the
	// key file it came from ("" for an agent key).
	AuthKeyFingerprint string
	AuthKeyFile        string

	limits    Limits
	done      chan struct{}
	closeOnce sync.Once
	lost      atomic.Bool
}

// CheckOptions returns what the connection established, for remote.Checks.
func (c *Client) CheckOptions() remote.CheckOptions {
	return remote.CheckOptions{
		HostKeyOutcome:     c.HostKeyOutcome,
		HostKeyType:        c.HostKey.Type,
		HostKeyFingerprint: c.HostKey.Fingerprint,
		KnownHostsFile:     c.KnownHostsFile,
		LoginUser:          c.Resolved.User,
		AuthMethod:         c.AuthMethod,
		AuthKeyFingerprint: c.AuthKeyFingerprint,
		AuthKeyFile:        c.AuthKeyFile,
	}
}

// Close closes the connection and stops its keepalives.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		err = c.ssh.Close()
	})
	return err
}

// Lost reports whether the connection was closed because keepalives went
// unanswered.
func (c *Client) Lost() bool { return c.lost.Load() }

// Dial connects to the target, verifies its host key and logs in. The whole
// dial is bounded by opts.Timeout; cancelling ctx aborts it.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	r, err := Resolve(ctx, opts.Target)
	if err != nil {
		return nil, err
	}
	return dialResolved(ctx, r, opts)
}

func dialResolved(ctx context.Context, r Resolved, opts Options) (*Client, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	agentSock := opts.AgentSocket
	if agentSock == "" {
		agentSock = os.Getenv("SSH_AUTH_SOCK")
	}
	auth, err := loadAuth(r, expandHome(opts.Target.Identity), agentSock, opts.Passphrase)
	if err != nil {
		return nil, err
	}
	defer auth.close()

	hostport := net.JoinHostPort(r.HostName, strconv.Itoa(r.Port))
	start := time.Now()
	deadline := start.Add(timeout)
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	cctx := dctx
	if opts.ConnectTimeout > 0 && opts.ConnectTimeout < timeout {
		var ccancel context.CancelFunc
		cctx, ccancel = context.WithTimeout(dctx, opts.ConnectTimeout)
		defer ccancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(cctx, "tcp", hostport)
	if err != nil {
		return nil, dialError(ctx, r, err, time.Since(start))
	}
	// Cancelling ctx closes the connection, which ends a handshake blocked
	// in a read; the deadline does the same when the server stalls.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return nil, err
	}

	hk, err := newHostKeyCheck(r, opts, conn, timeout)
	if err != nil {
		conn.Close()
		return nil, err
	}
	sawPassword := false
	cfg := &ssh.ClientConfig{
		User: r.User,
		Auth: []ssh.AuthMethod{
			ssh.PublicKeysCallback(func() ([]ssh.Signer, error) { return auth.signers, nil }),
			ssh.PasswordCallback(func() (string, error) { sawPassword = true; return "", errDeclined }),
			ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) {
				sawPassword = true
				return nil, errDeclined
			}),
		},
		HostKeyCallback:   hk.callback,
		HostKeyAlgorithms: hk.algorithms(conn.RemoteAddr()),
		ClientVersion:     "SSH-2.0-bigbang",
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, hostport, cfg)
	if err != nil {
		conn.Close()
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("connecting to %s: %w", r, ctx.Err())
		case hk.err != nil:
			return nil, hk.err
		case isTimeout(err) || time.Now().After(deadline):
			stage := "the SSH handshake"
			if hk.called {
				stage = "authentication"
			}
			return nil, newErr(ErrTimeout, err, "check that the port is the SSH port and that the server is not overloaded; raise the timeout for very slow links",
				"%s: no answer during %s after %s", r, stage, time.Since(start).Round(100*time.Millisecond))
		case hk.called:
			return nil, describeAuthFailure(r.User, r, auth, sawPassword)
		default:
			return nil, newErr(ErrHandshake, err, "check that --port is the SSH port (not a web or other service) and that the server is not refusing connections (fail2ban, MaxStartups); try: ssh -v "+r.String(),
				"%s closed the connection during the SSH handshake", r)
		}
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		sc.Close()
		return nil, err
	}
	c := &Client{
		ssh:            ssh.NewClient(sc, chans, reqs),
		Resolved:       r,
		HostKey:        hk.info,
		HostKeyOutcome: hk.outcome,
		KnownHostsFile: hk.file,
		AuthMethod:     auth.used,
		AuthKeyFile:    auth.usedFile,
		limits:         opts.Limits,
		done:           make(chan struct{}),
	}
	if auth.usedKey != nil {
		c.AuthKeyFingerprint = ssh.FingerprintSHA256(auth.usedKey)
	}
	interval := opts.KeepaliveInterval
	if interval == 0 {
		interval = DefaultKeepaliveInterval
	}
	maxMissed := opts.KeepaliveMax
	if maxMissed <= 0 {
		maxMissed = DefaultKeepaliveMax
	}
	if interval > 0 {
		go c.keepalive(interval, maxMissed)
	}
	return c, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dialError turns a failed TCP connect into an operator-facing error.
func dialError(ctx context.Context, r Resolved, err error, waited time.Duration) error {
	if ctx.Err() != nil {
		return fmt.Errorf("connecting to %s: %w", r, ctx.Err())
	}
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && !dnsErr.IsTimeout:
		return newErr(ErrUnresolvable, err, "check the spelling, or pass the VPS's IP address from the provider's console",
			"host name %q does not resolve", r.HostName)
	case errors.Is(err, syscall.ECONNREFUSED):
		return newErr(ErrConnRefused, err, "check --port (SSH usually listens on 22) and that sshd runs on the target (provider's console)",
			"%s refused the connection on port %d", r.HostName, r.Port)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return newErr(ErrUnreachable, err, "check the address and your network; for an IPv6 address, check that this machine has IPv6",
			"%s cannot be reached (no route)", r.HostName)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return newErr(ErrTimeout, err, "check the address, that the VPS is running, and that the provider's firewall (security list) allows TCP port "+strconv.Itoa(r.Port),
			"no answer from %s port %d after %s", r.HostName, r.Port, waited.Round(100*time.Millisecond))
	}
	return newErr(ErrUnreachable, err, "check the address and your network", "connecting to %s: %v", r, err)
}

// keepalive sends keepalive@openssh.com requests (want-reply, as OpenSSH's
// ServerAliveInterval does) and closes the connection after max intervals
// without an answer. It ends with the connection.
func (c *Client) keepalive(interval time.Duration, maxMissed int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	missed := 0
	var pending chan error
	for {
		select {
		case <-c.done:
			return
		case err := <-pending:
			pending = nil
			if err != nil {
				return // the connection is gone already
			}
			missed = 0
		case <-t.C:
			if pending != nil {
				missed++
				if missed >= maxMissed {
					c.lost.Store(true)
					c.ssh.Close()
					return
				}
				continue
			}
			pending = make(chan error, 1)
			go func(p chan<- error) {
				_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
				p <- err
			}(pending)
		}
	}
}
