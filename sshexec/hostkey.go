package sshexec

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// DefaultKnownHosts returns ~/.ssh/known_hosts.
func DefaultKnownHosts() string { return expandHome("~/.ssh/known_hosts") }

// dialKnownHosts is the known_hosts file of a dial: the one the caller
// names (--known-hosts), else a UserKnownHostsFile of --ssh-option, else
// the default.
func dialKnownHosts(named string, r Resolved) string {
	switch {
	case named != "":
		return named
	case r.KnownHostsFile != "":
		return r.KnownHostsFile
	}
	return DefaultKnownHosts()
}

// hostKeyCheck is the host key policy of one dial: known_hosts with trust
// on first use through the operator, or a single pinned key.
type hostKeyCheck struct {
	opts Options
	addr string // known_hosts address
	// dbAddr is addr as the knownhosts callback takes it: always with a
	// port (it refuses a bare host, which is how port 22 and an alias are
	// written).
	dbAddr  string
	file    string
	db      ssh.HostKeyCallback
	pinned  ssh.PublicKey
	conn    net.Conn
	timeout time.Duration

	called  bool // the server got as far as showing its key
	info    HostKeyInfo
	outcome remote.HostKeyOutcome
	err     error
}

func newHostKeyCheck(r Resolved, opts Options, conn net.Conn, timeout time.Duration) (*hostKeyCheck, error) {
	h := &hostKeyCheck{opts: opts, conn: conn, timeout: timeout, addr: r.KnownHostsAddress(), dbAddr: r.knownHostsDBAddress()}
	if len(opts.ExpectedHostKey) > 0 {
		k, _, _, _, err := ssh.ParseAuthorizedKey(opts.ExpectedHostKey)
		if err != nil {
			return nil, fmt.Errorf("expected host key: %w: it must be one line of an ssh-keygen .pub file", err)
		}
		h.pinned = k
		return h, nil
	}
	h.file = dialKnownHosts(opts.KnownHosts, r)
	files := []string{}
	if _, err := os.Stat(h.file); err == nil {
		files = append(files, h.file)
	}
	db, err := knownhosts.New(files...)
	if err != nil {
		return nil, newErr(ErrHostKeyUnknown, err, "fix or remove the broken line", "reading %s", h.file)
	}
	h.db = db
	return h, nil
}

// probeKey matches no known key; checking it returns every key known for
// the host, whose types then become the host key algorithms to ask for.
type probeKey struct{}

func (probeKey) Type() string                        { return "bigbang-probe" }
func (probeKey) Marshal() []byte                     { return []byte("bigbang-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }

// algorithms returns the host key algorithms to negotiate: the types of the
// keys known for this host, so that a server holding several host keys
// shows the one we can verify (x/crypto otherwise may pick another type and
// report a false mismatch, golang/go#29286). nil: the library's default.
func (h *hostKeyCheck) algorithms(remoteAddr net.Addr) []string {
	if h.pinned != nil {
		return algorithmsFor(h.pinned.Type())
	}
	var ke *knownhosts.KeyError
	if err := h.db(h.dbAddr, remoteAddr, probeKey{}); !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, w := range ke.Want {
		for _, a := range algorithmsFor(w.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

func (h *hostKeyCheck) callback(_ string, remoteAddr net.Addr, key ssh.PublicKey) error {
	h.called = true
	h.info = keyInfo(h.addr, key)
	h.err = h.check(remoteAddr, key)
	return h.err
}

func (h *hostKeyCheck) check(remoteAddr net.Addr, key ssh.PublicKey) error {
	if h.pinned != nil {
		if bytes.Equal(h.pinned.Marshal(), key.Marshal()) {
			h.outcome = remote.HostKeyKnown
			return nil
		}
		e := newErr(ErrHostKeyMismatch, nil,
			"nothing was run. It can mean: the pre-generated key did not reach /persistent/etc/ssh (check --extra-files and the impermanence config), the new system generated its own key, or another machine answers on this address; look at the provider's serial console before trusting it",
			"%s answered with host key %s but the expected key is %s", h.addr, ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(h.pinned))
		return e
	}
	err := h.db(h.dbAddr, remoteAddr, key)
	if err == nil {
		h.outcome = remote.HostKeyKnown
		return nil
	}
	var revoked *knownhosts.RevokedError
	if errors.As(err, &revoked) {
		return newErr(ErrHostKeyMismatch, err, "do not connect; find out why the key was revoked",
			"the host key %s of %s is marked @revoked in %s", ssh.FingerprintSHA256(key), h.addr, revoked.Revoked.String())
	}
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return err
	}
	if len(ke.Want) > 0 {
		var known []string
		for _, w := range ke.Want {
			known = append(known, fmt.Sprintf("%s %s (%s:%d)", w.Key.Type(), ssh.FingerprintSHA256(w.Key), w.Filename, w.Line))
		}
		return newErr(ErrHostKeyMismatch, err,
			fmt.Sprintf("nothing was run. If you reinstalled this VPS, remove the old entry (ssh-keygen -R %s -f %s) and run again; otherwise someone may be intercepting the connection",
				steps.ShellQuote(h.addr), steps.ShellQuote(h.file)),
			"the host key of %s has CHANGED: known_hosts has %s, the server offered %s %s",
			h.addr, strings.Join(known, ", "), key.Type(), ssh.FingerprintSHA256(key))
	}
	// Unknown host: trust on first use, with consent.
	if h.opts.ApprovedHostKey != "" {
		// The consent was given to one key, shown on an earlier
		// connection: only that key is trusted now.
		if h.info.Fingerprint != h.opts.ApprovedHostKey {
			return newErr(ErrHostKeyMismatch, ErrHostKeyChangedSinceApproval,
				"nothing was saved or run. Another machine may be answering on this address, or someone may be intercepting the connection; compare the key with the provider's console before you connect again",
				"the host key changed between the two connections: you approved %s, but %s now offers %s %s",
				h.opts.ApprovedHostKey, h.addr, key.Type(), h.info.Fingerprint)
		}
		if err := AppendKnownHost(h.file, h.addr, key, h.opts.HashKnownHosts); err != nil {
			return err
		}
		h.outcome = remote.HostKeyAccepted
		return nil
	}
	accept := h.opts.AcceptNewHostKey
	if !accept && h.opts.PromptHostKey != nil {
		// The operator's think time is not part of the dial deadline.
		_ = h.conn.SetDeadline(time.Time{})
		ok, perr := h.opts.PromptHostKey(context.Background(), h.info)
		_ = h.conn.SetDeadline(time.Now().Add(h.timeout))
		if perr != nil {
			return newErr(ErrHostKeyUnknown, perr, "run again and answer the question, or pass --accept-new-host-key", "asking about the host key of %s", h.addr)
		}
		accept = ok
	}
	if !accept {
		return newErr(ErrHostKeyUnknown, err,
			fmt.Sprintf("compare the fingerprint with the one in the provider's console (or ssh-keyscan %s on a trusted network), then run again with --accept-new-host-key", steps.ShellQuote(h.info.Address)),
			"%s is not in %s; it offered %s %s", h.addr, h.file, key.Type(), h.info.Fingerprint)
	}
	if err := AppendKnownHost(h.file, h.addr, key, h.opts.HashKnownHosts); err != nil {
		return err
	}
	h.outcome = remote.HostKeyAccepted
	return nil
}

// AppendKnownHost adds one entry for address (host or [host]:port) to a
// known_hosts file, creating it (0600, folder 0700) when missing.
func AppendKnownHost(file, address string, key ssh.PublicKey, hashed bool) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("saving the host key: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("saving the host key to %s: %w", file, err)
	}
	// A file without a final newline would glue our entry onto its last line.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		if last, err := readLastByte(file); err == nil && last != '\n' {
			if _, err := f.WriteString("\n"); err != nil {
				f.Close()
				return fmt.Errorf("saving the host key to %s: %w", file, err)
			}
		}
	}
	if _, err := f.WriteString(knownHostsLine(address, key, hashed) + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("saving the host key to %s: %w", file, err)
	}
	return f.Close()
}

func knownHostsLine(address string, key ssh.PublicKey, hashed bool) string {
	host := knownhosts.Normalize(address)
	if hashed {
		host = knownhosts.HashHostname(host)
	}
	return knownhosts.Line([]string{host}, key)
}

func readLastByte(file string) (byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	b := make([]byte, 1)
	_, err = f.ReadAt(b, st.Size()-1)
	return b[0], err
}

// KnownHostsBackupSuffix is appended to a known_hosts file's name for the
// copy kept before bigbang rewrites it.
const KnownHostsBackupSuffix = ".bigbang-backup"

// ReplaceKnownHost removes every entry of address (plain or hashed) from a
// known_hosts file and adds one for key, leaving every other line as it
// was. The old file is kept as file+KnownHostsBackupSuffix and the new one
// replaces it atomically. It returns the backup's path ("" when there was
// no file).
func ReplaceKnownHost(file, address string, key ssh.PublicKey, hashed bool) (string, error) {
	address = knownhosts.Normalize(address)
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", file, err)
	}
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(old), "\n") {
		if line == "" {
			continue
		}
		if lineNamesHost(line, address) {
			continue
		}
		out.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			out.WriteString("\n")
		}
	}
	out.WriteString(knownHostsLine(address, key, hashed) + "\n")
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", fmt.Errorf("updating %s: %w", file, err)
	}
	backup := ""
	if old != nil {
		backup = file + KnownHostsBackupSuffix
		if err := writeFileAtomic(backup, old); err != nil {
			return "", fmt.Errorf("backing up %s: %w", file, err)
		}
	}
	if err := writeFileAtomic(file, out.Bytes()); err != nil {
		return backup, fmt.Errorf("updating %s: %w", file, err)
	}
	return backup, nil
}

// lineNamesHost reports whether a known_hosts line is a plain key entry for
// address (listed by name or by hash). Marker lines (@cert-authority,
// @revoked), comments and pattern lines are kept.
func lineNamesHost(line, address string) bool {
	t := strings.TrimSpace(line)
	if t == "" || t[0] == '#' || t[0] == '@' {
		return false
	}
	hosts, _, _ := strings.Cut(t, " ")
	for _, h := range strings.Split(hosts, ",") {
		if h == address {
			return true
		}
		if strings.HasPrefix(h, "|1|") && hashMatches(h, address) {
			return true
		}
	}
	return false
}

// hashMatches checks a hashed known_hosts name (|1|salt|hash, HMAC-SHA1 of
// the name keyed with the salt, as ssh-keygen -H writes it) against address.
func hashMatches(entry, address string) bool {
	parts := strings.Split(entry, "|")
	if len(parts) != 4 || parts[1] != "1" {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(parts[2])
	want, err2 := base64.StdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	m := hmac.New(sha1.New, salt)
	m.Write([]byte(address))
	return hmac.Equal(m.Sum(nil), want)
}

func writeFileAtomic(file string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
