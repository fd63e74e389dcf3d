package secrets

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
)

// DefaultKeyPath is where the host key lands in the new system when the
// flake does not say (the seed's impermanence layout).
const DefaultKeyPath = "/persistent/etc/ssh/ssh_host_ed25519_key"

// More errors of the host key, matched with errors.Is.
var (
	// ErrMissing: there is no host key at the path.
	ErrMissing = errors.New("no host key")
	// ErrPubMismatch: the .pub file holds another key than the private file.
	ErrPubMismatch = errors.New("the .pub file does not match the private key")
	// ErrPubMissing: the private key has no .pub beside it.
	ErrPubMissing = errors.New("the .pub file is missing")
)

// KeyPath returns the host key's path in the extra-files tree and the path
// it will have on the new system: the first of the flake's
// sops.age.sshKeyPaths when it has any, else DefaultKeyPath.
func KeyPath(extraFiles string, sshKeyPaths []string) (local, target string) {
	target = DefaultKeyPath
	for _, p := range sshKeyPaths {
		if strings.HasPrefix(p, "/") {
			target = p
			break
		}
	}
	return filepath.Join(extraFiles, filepath.FromSlash(strings.TrimPrefix(target, "/"))), target
}

// HostKey is the state of the host key file and what is derived from it.
type HostKey struct {
	Path        string
	Mode        fs.FileMode
	Public      ed25519.PublicKey
	Comment     string
	Fingerprint string // SHA256:…, as ssh-keygen -lf prints it
	Recipient   string // age1…
	// PubErr is nil when Path.pub exists and holds the same key; otherwise
	// it wraps ErrPubMissing or ErrPubMismatch.
	PubErr error

	priv ed25519.PrivateKey // never printed or written except by Generate
}

// ModeOK reports whether the private key is readable by its owner only, as
// sshd demands of a host key.
func (k *HostKey) ModeOK() bool { return k.Mode.Perm()&0o077 == 0 }

// ModeFix is the command that fixes the mode.
func (k *HostKey) ModeFix() string { return "chmod 600 " + steps.ShellQuote(k.Path) }

// Inspect reads the host key at path. A missing file wraps ErrMissing; an
// unreadable key wraps ErrNotKey, ErrEncrypted or ErrKeyType. A wrong mode
// or .pub is reported in the result, not as an error, so the fingerprint is
// still shown.
func Inspect(path string) (*HostKey, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s", ErrMissing, path)
	}
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("host key %s: %w: it is a folder", path, ErrNotKey)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	priv, comment, err := ParsePrivate(data)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	k := &HostKey{Path: path, Mode: st.Mode(), Comment: comment, priv: priv}
	k.Public = priv.Public().(ed25519.PublicKey)
	k.Fingerprint = Fingerprint(k.Public)
	if k.Recipient, err = AgeRecipient(k.Public); err != nil {
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	k.PubErr = checkPub(path+".pub", k.Public)
	return k, nil
}

func checkPub(path string, want ed25519.PublicKey) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrPubMissing, path)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	pub, _, err := ParseAuthorized(string(data))
	if err != nil || !pub.Equal(want) {
		return fmt.Errorf("%w: %s", ErrPubMismatch, path)
	}
	return nil
}

// Generate creates a new ed25519 host key at path (0600) and its .pub
// (0644), as sshd expects them, creating the folders (0755: they become
// /etc/ssh and its parents on the new system). It never overwrites a file.
func Generate(path, comment string) (*HostKey, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	pem, err := MarshalPrivate(priv, comment)
	if err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	if err := writeNew(path, pem, 0o600); err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	if err := writeNew(path+".pub", []byte(AuthorizedLine(pub, comment)+"\n"), 0o644); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	return Inspect(path)
}

// writeNew writes a file that must not exist yet, with exactly mode perm
// (the umask does not apply).
func writeNew(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(path, perm)); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// FixMode makes the private key readable by its owner only.
func FixMode(path string) error {
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("chmod host key: %w", err)
	}
	return nil
}
