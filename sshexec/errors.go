// Package sshexec is bigbang's SSH client: it resolves the target like
// OpenSSH, trusts host keys only through known_hosts or the operator's
// consent, bounds every dial with a deadline, gathers the target's facts in
// one round trip, sets up passwordless sudo and verifies the machine that
// comes back after the install. It is the only package that imports
// golang.org/x/crypto/ssh.
package sshexec

import (
	"errors"
	"fmt"
)

// Sentinel errors; match them with errors.Is. The *Error that wraps them
// carries the operator-facing summary and fix.
var (
	// ErrHostKeyUnknown: the host is not in known_hosts and the operator did
	// not accept its key.
	ErrHostKeyUnknown = errors.New("unknown host key")
	// ErrHostKeyMismatch: the host offered a key other than the one known
	// or expected. Nothing was run.
	ErrHostKeyMismatch = errors.New("host key mismatch")
	// ErrHostKeyRevoked: the host offered a key that known_hosts marks
	// @revoked. It is not a changed key (it does not wrap
	// ErrHostKeyMismatch): nothing was run, and no known_hosts edit makes
	// it right.
	ErrHostKeyRevoked = errors.New("host key revoked")
	// ErrKnownHosts: the known_hosts file cannot be read (a permission
	// error, kept as the cause) or holds no usable entry (the first broken
	// line is named), or cannot be written. Nothing was dialled or saved.
	ErrKnownHosts = errors.New("known_hosts file unusable")
	// ErrHostKeyChangedSinceApproval: the host offered a key other than the
	// one the operator approved on the connection before (see
	// Options.ApprovedHostKey). It comes wrapped with ErrHostKeyMismatch;
	// nothing was saved or run.
	ErrHostKeyChangedSinceApproval = errors.New("host key changed since it was approved")
	// ErrAuthFailed: the server accepted none of the offered credentials.
	ErrAuthFailed = errors.New("authentication failed")
	// ErrTimeout: the dial (TCP, handshake and authentication) did not
	// finish within its deadline.
	ErrTimeout = errors.New("timed out")
	// ErrConnRefused: nothing listens on the port.
	ErrConnRefused = errors.New("connection refused")
	// ErrUnresolvable: the host name does not resolve.
	ErrUnresolvable = errors.New("host name does not resolve")
	// ErrUnreachable: the network or host cannot be reached.
	ErrUnreachable = errors.New("host unreachable")
	// ErrHandshake: the server closed the connection or spoke no SSH during
	// the handshake.
	ErrHandshake = errors.New("SSH handshake failed")
	// ErrKeyPassphrase: a key file needs a passphrase that was not given.
	ErrKeyPassphrase = errors.New("key passphrase missing or wrong")
	// ErrConnectionLost: keepalives went unanswered and the connection was
	// closed.
	ErrConnectionLost = errors.New("connection lost")
	// ErrUnsupportedOption: the ssh configuration or --ssh-option asks for
	// something the dial cannot do (a ProxyJump or ProxyCommand); nothing
	// was dialled.
	ErrUnsupportedOption = errors.New("unsupported ssh option")
	// ErrRemoteTimeout: a remote command did not answer within its bound
	// (see Limits); it was sent SIGTERM and its session closed.
	ErrRemoteTimeout = errors.New("remote command did not answer in time")
	// ErrRemoteCommand: a remote command exited non-zero.
	ErrRemoteCommand = errors.New("remote command failed")

	// ErrSudoMissing: the target has no sudo.
	ErrSudoMissing = errors.New("sudo is not installed")
	// ErrVisudoMissing: the target has no visudo, so a sudoers file cannot be
	// validated and is not written.
	ErrVisudoMissing = errors.New("visudo is not installed")
	// ErrSudoPassword: sudo refused the password (after every try).
	ErrSudoPassword = errors.New("sudo refused the password")
	// ErrSudoersReadOnly: the sudoers folder cannot be written.
	ErrSudoersReadOnly = errors.New("sudoers folder is not writable")
	// ErrSudoersInvalid: visudo rejected the sudoers line.
	ErrSudoersInvalid = errors.New("sudoers line rejected by visudo")
	// ErrSudoStillAsks: the sudoers file is in place but sudo still asks for
	// a password.
	ErrSudoStillAsks = errors.New("sudo still asks for a password")

	// ErrRebootTimeout: the machine did not come back after the reboot.
	ErrRebootTimeout = errors.New("machine did not come back")
)

// Error is an operator-facing error: what happened (Summary) and what to do
// next (Fix). Kind is one of the sentinel errors above.
type Error struct {
	Kind    error
	Summary string
	Fix     string
	Err     error // the underlying cause, if any
}

// Error joins the summary and the fix.
func (e *Error) Error() string {
	s := e.Summary
	if e.Fix != "" {
		s += "; " + e.Fix
	}
	return s
}

// Unwrap returns the sentinel and the cause, so errors.Is matches both.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

func newErr(kind, cause error, fix string, format string, args ...any) *Error {
	return &Error{Kind: kind, Summary: fmt.Sprintf(format, args...), Fix: fix, Err: cause}
}
