// Package secrets handles the pre-generated SSH host key that ships with
// --extra-files: its state, its age recipient (the identity sops-nix derives
// from it) and the proof that it decrypts the flake's sops files.
package secrets

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Errors of reading a key, matched with errors.Is.
var (
	// ErrNotKey: the file is not an OpenSSH private key.
	ErrNotKey = errors.New("not an OpenSSH private key")
	// ErrEncrypted: the key needs a passphrase, which sshd cannot type.
	ErrEncrypted = errors.New("the host key is passphrase-protected")
	// ErrKeyType: the key is not ed25519, which sops-nix's age needs.
	ErrKeyType = errors.New("the host key is not ed25519")
)

const (
	opensshMagic = "openssh-key-v1\x00"
	keyTypeEd    = "ssh-ed25519"
)

// sshString appends an RFC 4251 string.
func sshString(b []byte, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// publicBlob is the SSH wire form of an ed25519 public key.
func publicBlob(pub ed25519.PublicKey) []byte {
	return sshString(sshString(nil, []byte(keyTypeEd)), pub)
}

// AuthorizedLine renders pub as an authorized_keys / .pub line.
func AuthorizedLine(pub ed25519.PublicKey, comment string) string {
	line := keyTypeEd + " " + base64.StdEncoding.EncodeToString(publicBlob(pub))
	if comment != "" {
		line += " " + comment
	}
	return line
}

// Fingerprint is the SHA256 fingerprint as `ssh-keygen -lf` prints it.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(publicBlob(pub))
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// MarshalPrivate writes priv in OpenSSH's unencrypted private key format
// (PROTOCOL.key in OpenSSH's sources), which is what sshd reads for
// HostKey and what ssh-keygen writes.
func MarshalPrivate(priv ed25519.PrivateKey, comment string) ([]byte, error) {
	var check [4]byte
	if _, err := rand.Read(check[:]); err != nil {
		return nil, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	var sec []byte
	sec = append(sec, check[:]...)
	sec = append(sec, check[:]...)
	sec = sshString(sec, []byte(keyTypeEd))
	sec = sshString(sec, pub)
	sec = sshString(sec, priv) // seed || public, 64 bytes
	sec = sshString(sec, []byte(comment))
	for i := byte(1); len(sec)%8 != 0; i++ {
		sec = append(sec, i)
	}
	var b []byte
	b = append(b, opensshMagic...)
	b = sshString(b, []byte("none")) // cipher
	b = sshString(b, []byte("none")) // kdf
	b = sshString(b, nil)            // kdf options
	b = binary.BigEndian.AppendUint32(b, 1)
	b = sshString(b, publicBlob(pub))
	b = sshString(b, sec)
	return pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: b}), nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) str() []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < 4 {
		r.err = fmt.Errorf("%w: truncated", ErrNotKey)
		return nil
	}
	n := binary.BigEndian.Uint32(r.b)
	if uint64(len(r.b)-4) < uint64(n) {
		r.err = fmt.Errorf("%w: truncated", ErrNotKey)
		return nil
	}
	s := r.b[4 : 4+n]
	r.b = r.b[4+n:]
	return s
}

func (r *reader) u32() uint32 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 4 {
		r.err = fmt.Errorf("%w: truncated", ErrNotKey)
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

// ParsePrivate reads an unencrypted OpenSSH ed25519 private key and returns
// it with its comment.
func ParsePrivate(data []byte) (ed25519.PrivateKey, string, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, "", fmt.Errorf("%w: no PEM block (is this the .pub file?)", ErrNotKey)
	}
	switch block.Type {
	case "OPENSSH PRIVATE KEY":
	case "ENCRYPTED PRIVATE KEY":
		return nil, "", ErrEncrypted
	case "RSA PRIVATE KEY", "EC PRIVATE KEY", "DSA PRIVATE KEY":
		if strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, "", ErrEncrypted
		}
		return nil, "", fmt.Errorf("%w: found a %s", ErrKeyType, block.Type)
	default:
		return nil, "", fmt.Errorf("%w: found a %s block", ErrNotKey, block.Type)
	}
	if !bytes.HasPrefix(block.Bytes, []byte(opensshMagic)) {
		return nil, "", fmt.Errorf("%w: bad header", ErrNotKey)
	}
	r := &reader{b: block.Bytes[len(opensshMagic):]}
	cipher, _, _ := r.str(), r.str(), r.str()
	if r.err == nil && string(cipher) != "none" {
		return nil, "", ErrEncrypted
	}
	if n := r.u32(); r.err == nil && n != 1 {
		return nil, "", fmt.Errorf("%w: %d keys in one file", ErrNotKey, n)
	}
	pubBlob := r.str()
	sec := &reader{b: r.str()}
	if r.err != nil {
		return nil, "", r.err
	}
	pr := &reader{b: pubBlob}
	if t := pr.str(); pr.err == nil && string(t) != keyTypeEd {
		return nil, "", fmt.Errorf("%w: it is %s; generate an ed25519 key", ErrKeyType, t)
	}
	c1, c2 := sec.u32(), sec.u32()
	if sec.err == nil && c1 != c2 {
		return nil, "", fmt.Errorf("%w: check bytes differ (corrupt file)", ErrNotKey)
	}
	kt, pub, priv, comment := sec.str(), sec.str(), sec.str(), sec.str()
	if sec.err != nil {
		return nil, "", sec.err
	}
	if string(kt) != keyTypeEd {
		return nil, "", fmt.Errorf("%w: it is %s", ErrKeyType, kt)
	}
	if len(pub) != ed25519.PublicKeySize || len(priv) != ed25519.PrivateKeySize {
		return nil, "", fmt.Errorf("%w: wrong ed25519 key length (corrupt file)", ErrNotKey)
	}
	key := ed25519.NewKeyFromSeed(priv[:ed25519.SeedSize])
	if !bytes.Equal(key.Public().(ed25519.PublicKey), pub) || !bytes.Equal(key[32:], priv[32:]) {
		return nil, "", fmt.Errorf("%w: the public half does not belong to the private half (corrupt file)", ErrNotKey)
	}
	return key, string(comment), nil
}

// ParseAuthorized reads an ed25519 key from an authorized_keys or .pub line.
func ParseAuthorized(line string) (ed25519.PublicKey, string, error) {
	f := strings.Fields(strings.TrimSpace(line))
	// Skip authorized_keys options such as from="…" before the key type.
	for len(f) > 0 && !strings.HasPrefix(f[0], "ssh-") && !strings.HasPrefix(f[0], "ecdsa-") && !strings.HasPrefix(f[0], "sk-") {
		f = f[1:]
	}
	if len(f) < 2 {
		return nil, "", errors.New("not an SSH public key line")
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return nil, "", fmt.Errorf("not an SSH public key line: %w", err)
	}
	r := &reader{b: blob}
	t, k := r.str(), r.str()
	if r.err != nil {
		return nil, "", r.err
	}
	if string(t) != keyTypeEd || len(k) != ed25519.PublicKeySize {
		return nil, "", fmt.Errorf("%w: it is %s", ErrKeyType, t)
	}
	return ed25519.PublicKey(k), strings.Join(f[2:], " "), nil
}

// SameKey compares two public key lines by type and key, not comment.
func SameKey(a, b string) bool {
	fa, fb := strings.Fields(a), strings.Fields(b)
	for len(fa) > 0 && !looksLikeType(fa[0]) {
		fa = fa[1:]
	}
	for len(fb) > 0 && !looksLikeType(fb[0]) {
		fb = fb[1:]
	}
	return len(fa) >= 2 && len(fb) >= 2 && fa[0] == fb[0] && fa[1] == fb[1]
}

func looksLikeType(s string) bool {
	return strings.HasPrefix(s, "ssh-") || strings.HasPrefix(s, "ecdsa-") || strings.HasPrefix(s, "sk-")
}
