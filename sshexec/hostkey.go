package sshexec

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
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
	host    string // the host name or address dialled, and its port: for
	port    int    // the ssh-keyscan hint
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
	h := &hostKeyCheck{opts: opts, conn: conn, timeout: timeout, addr: r.KnownHostsAddress(), dbAddr: r.knownHostsDBAddress(), host: r.HostName, port: r.Port}
	if len(opts.ExpectedHostKey) > 0 {
		k, _, _, _, err := ssh.ParseAuthorizedKey(opts.ExpectedHostKey)
		if err != nil {
			return nil, fmt.Errorf("expected host key: %w: it must be one line of an ssh-keygen .pub file", err)
		}
		h.pinned = k
		return h, nil
	}
	h.file = dialKnownHosts(opts.KnownHosts, r)
	db, err := openKnownHosts(h.file)
	if err != nil {
		return nil, err
	}
	h.db = db
	return h, nil
}

// openKnownHosts reads a known_hosts file; a missing one is empty. A file
// that cannot be read keeps its cause (a permission error says so), and a
// file without one usable entry names its first broken line: neither may
// pass for "this host is unknown", which would ask to trust a key anew.
func openKnownHosts(file string) (ssh.HostKeyCallback, error) {
	data, err := os.ReadFile(file)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return knownhosts.New()
	case errors.Is(err, os.ErrPermission):
		return nil, newErr(ErrKnownHosts, err,
			fmt.Sprintf("make it readable and writable by you (ls -l %[1]s; chown $USER %[1]s; chmod 600 %[1]s, and the same for its folder), or pass --known-hosts with another file", steps.ShellQuote(file)),
			"cannot read the known_hosts file %s: permission denied", file)
	case err != nil:
		return nil, newErr(ErrKnownHosts, err, "check the file (or pass --known-hosts with another one), then run again",
			"cannot read the known_hosts file %s: %v", file, err)
	}
	db, err := knownhosts.New(file)
	if err == nil {
		return db, nil
	}
	if line, lerr := firstBadLine(data); line > 0 {
		return nil, newErr(ErrKnownHosts, err,
			fmt.Sprintf("fix or delete line %d (each line is: host[,host…] key-type base64-key), or pass --known-hosts with another file", line),
			"the known_hosts file %s has no usable entry: line %d is not a known_hosts line (%v)", file, line, lerr)
	}
	return nil, newErr(ErrKnownHosts, err, "fix the file, or pass --known-hosts with another one",
		"the known_hosts file %s cannot be used: %v", file, err)
}

// firstBadLine returns the number (from 1) of the first line of a
// known_hosts file that does not parse, and why; 0 when every line does.
func firstBadLine(data []byte) (int, error) {
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		// ParseKnownHosts skips what it cannot read and reports io.EOF
		// when nothing was left.
		if _, hosts, _, _, _, err := ssh.ParseKnownHosts([]byte(t)); errors.Is(err, io.EOF) {
			return i + 1, errors.New("no host key found on it")
		} else if err != nil {
			return i + 1, err
		} else if len(hosts) == 0 {
			return i + 1, errors.New("no host pattern")
		}
	}
	return 0, nil
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
		return newErr(ErrHostKeyRevoked, err,
			"nothing was run. Someone marked this key as never to be trusted again (a leaked or compromised key): find out why before you connect; if the VPS is yours, give it a new host key from the provider's console, then run again",
			"%s offered the host key %s %s, which is marked @revoked in %s:%d",
			h.addr, key.Type(), ssh.FingerprintSHA256(key), revoked.Revoked.Filename, revoked.Revoked.Line)
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
			fmt.Sprintf("nothing was run. Someone may be intercepting the connection, or another machine answers on this address: compare the offered fingerprint %s with the one in the provider's console. Only if the VPS was rebuilt and the console shows that new key, remove the old entry (ssh-keygen -R %s -f %s) and run again",
				ssh.FingerprintSHA256(key), steps.ShellQuote(h.addr), steps.ShellQuote(h.file)),
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
			fmt.Sprintf("compare the fingerprint with the one in the provider's console (or %s on a trusted network), then run again with --accept-new-host-key", h.keyscan()),
			"%s is not in %s; it offered %s %s", h.addr, h.file, key.Type(), h.info.Fingerprint)
	}
	if err := AppendKnownHost(h.file, h.addr, key, h.opts.HashKnownHosts); err != nil {
		return err
	}
	h.outcome = remote.HostKeyAccepted
	return nil
}

// keyscan is the ssh-keyscan command that shows the host's keys.
func (h *hostKeyCheck) keyscan() string {
	if h.port != 0 && h.port != 22 {
		return fmt.Sprintf("ssh-keyscan -p %d %s", h.port, steps.ShellQuote(h.host))
	}
	return "ssh-keyscan " + steps.ShellQuote(h.host)
}

// AppendKnownHost adds one entry for address (host or [host]:port) to a
// known_hosts file, creating it (0600, folder 0700) when missing. A
// symlinked file (dotfiles) is appended to through the link.
func AppendKnownHost(file, address string, key ssh.PublicKey, hashed bool) error {
	real, err := resolveLinks(file)
	if err != nil {
		return saveErr(file, err)
	}
	if err := os.MkdirAll(filepath.Dir(real), 0o700); err != nil {
		return saveErr(file, err)
	}
	f, err := os.OpenFile(real, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return saveErr(file, err)
	}
	// A file without a final newline would glue our entry onto its last line.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		if last, err := readLastByte(real); err == nil && last != '\n' {
			if _, err := f.WriteString("\n"); err != nil {
				f.Close()
				return saveErr(file, err)
			}
		}
	}
	if _, err := f.WriteString(knownHostsLine(address, key, hashed) + "\n"); err != nil {
		f.Close()
		return saveErr(file, err)
	}
	if err := f.Close(); err != nil {
		return saveErr(file, err)
	}
	return nil
}

// saveErr is a known_hosts file that could not be written: nothing was
// saved, and the fix depends on why.
func saveErr(file string, err error) error {
	fix := "free some space or fix the file, or pass --known-hosts with another file, then run again"
	if errors.Is(err, os.ErrPermission) {
		fix = fmt.Sprintf("make it writable by you (ls -l %[1]s; chown $USER %[1]s; chmod 600 %[1]s, and the same for its folder), or pass --known-hosts with another file", steps.ShellQuote(file))
	}
	return newErr(ErrKnownHosts, err, fix, "saving the host key to %s: %v", file, err)
}

// resolveLinks follows file through its symbolic links (a known_hosts kept
// in a dotfiles repository and linked into ~/.ssh) to the file that holds
// the data, which need not exist yet. A regular or missing file is itself.
func resolveLinks(file string) (string, error) {
	cur := file
	for range 40 {
		st, err := os.Lstat(cur)
		if errors.Is(err, os.ErrNotExist) {
			return cur, nil
		}
		if err != nil {
			return "", err
		}
		if st.Mode()&os.ModeSymlink == 0 {
			return cur, nil
		}
		target, err := os.Readlink(cur)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(cur), target)
		}
		cur = target
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", file)
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
//
// A symlinked file (dotfiles) stays a link: the file it points to is
// replaced, with its mode kept. The backup lies beside the name given.
func ReplaceKnownHost(file, address string, key ssh.PublicKey, hashed bool) (string, error) {
	address = knownhosts.Normalize(address)
	real, err := resolveLinks(file)
	if err != nil {
		return "", saveErr(file, err)
	}
	old, err := os.ReadFile(real)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", saveErr(file, err)
	}
	mode := os.FileMode(0o600)
	if st, err := os.Stat(real); err == nil {
		mode = st.Mode().Perm()
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
	if err := os.MkdirAll(filepath.Dir(real), 0o700); err != nil {
		return "", saveErr(file, err)
	}
	backup := ""
	if old != nil {
		backup = file + KnownHostsBackupSuffix
		if err := writeFileAtomic(backup, old, 0o600); err != nil {
			return "", saveErr(backup, err)
		}
	}
	if err := writeFileAtomic(real, out.Bytes(), mode); err != nil {
		return backup, saveErr(file, err)
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

func writeFileAtomic(file string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
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
