package sshexec

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// PassphraseFunc asks the operator for the passphrase of a key file. attempt
// counts from 1. The returned bytes are used once and then zeroed; they are
// never stored.
type PassphraseFunc func(keyFile string, attempt int) ([]byte, error)

// maxPassphraseTries is how often a wrong passphrase is asked again.
const maxPassphraseTries = 3

// authSet is the credentials of one dial, in the order they are offered: the
// configured key files first, then the agent's other keys, so that an agent
// holding many keys does not end in "Too many authentication failures".
type authSet struct {
	signers []ssh.Signer
	labels  []string
	used    string // label of the key that signed last (the accepted one)
	// usedKey and usedFile are that key's public half and the key file it
	// came from ("" for an agent key), for the check of the keys that
	// reach root after kexec.
	usedKey  ssh.PublicKey
	usedFile string
	agent    net.Conn
}

func (a *authSet) close() {
	if a.agent != nil {
		a.agent.Close()
	}
}

func (a *authSet) add(s ssh.Signer, label string) { a.addFrom(s, label, "") }

// addFrom is add for a key read from (or matched to) a key file.
func (a *authSet) addFrom(s ssh.Signer, label, file string) {
	pub := s.PublicKey().Marshal()
	for _, have := range a.signers {
		if bytes.Equal(have.PublicKey().Marshal(), pub) {
			return
		}
	}
	a.signers = append(a.signers, a.record(s, label, file))
	a.labels = append(a.labels, label)
}

// loadAuth gathers the key files of r and the agent's keys. explicit is the
// key the operator named with -i: a problem with it is an error, while the
// default key files are skipped when absent or unreadable.
func loadAuth(r Resolved, explicit, agentSock string, passphrase PassphraseFunc) (*authSet, error) {
	a := &authSet{}
	var agentSigners []ssh.Signer
	if agentSock != "" && agentSock != "none" {
		if c, err := net.Dial("unix", agentSock); err == nil {
			a.agent = c
			agentSigners, _ = agent.NewClient(c).Signers()
		}
	}
	inAgent := func(pub ssh.PublicKey) ssh.Signer {
		for _, s := range agentSigners {
			if bytes.Equal(s.PublicKey().Marshal(), pub.Marshal()) {
				return s
			}
		}
		return nil
	}
	for _, file := range r.IdentityFiles {
		s, err := loadKeyFile(file, inAgent, passphrase)
		if err != nil {
			if file == explicit {
				a.close()
				return nil, err
			}
			continue
		}
		if s != nil {
			a.addFrom(s, "key "+file, file)
		}
	}
	if !r.IdentitiesOnly || len(a.signers) == 0 {
		for _, s := range agentSigners {
			a.add(s, "agent key "+ssh.FingerprintSHA256(s.PublicKey()))
		}
	}
	return a, nil
}

func loadKeyFile(file string, inAgent func(ssh.PublicKey) ssh.Signer, passphrase PassphraseFunc) (ssh.Signer, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, newErr(ErrAuthFailed, err, "pass -i with an existing private key file", "key file %s does not exist", file)
		}
		return nil, newErr(ErrAuthFailed, err, "check the file's owner and mode (chmod 600)", "key file %s cannot be read", file)
	}
	s, err := ssh.ParsePrivateKey(data)
	if err == nil {
		return s, nil
	}
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		return nil, newErr(ErrAuthFailed, err, "pass -i with the private key (not the .pub)", "key file %s is not a usable private key", file)
	}
	// A key the agent already holds needs no passphrase.
	if missing.PublicKey != nil {
		if s := inAgent(missing.PublicKey); s != nil {
			return s, nil
		}
	}
	if pub, err := os.ReadFile(file + ".pub"); err == nil {
		if k, _, _, _, err := ssh.ParseAuthorizedKey(pub); err == nil {
			if s := inAgent(k); s != nil {
				return s, nil
			}
		}
	}
	if passphrase == nil {
		return nil, newErr(ErrKeyPassphrase, nil, "load it into the agent (ssh-add "+file+") or run bigbang on a terminal to type the passphrase",
			"key file %s needs a passphrase", file)
	}
	for attempt := 1; attempt <= maxPassphraseTries; attempt++ {
		pp, err := passphrase(file, attempt)
		if err != nil {
			return nil, newErr(ErrKeyPassphrase, err, "type the key's passphrase or load it into ssh-agent", "no passphrase for %s", file)
		}
		s, err := ssh.ParsePrivateKeyWithPassphrase(data, pp)
		clear(pp)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, x509.IncorrectPasswordError) {
			return nil, newErr(ErrAuthFailed, err, "check the key file", "key file %s cannot be decrypted", file)
		}
	}
	return nil, newErr(ErrKeyPassphrase, nil, "check the passphrase, or load the key with ssh-add first",
		"wrong passphrase for %s (%d tries)", file, maxPassphraseTries)
}

// record wraps s so that the label of the key the server accepted is known
// afterwards (x/crypto signs only with a key the server said it accepts).
// The wrapper keeps the signer's algorithm interfaces so that RSA keys still
// sign with SHA-2.
func (a *authSet) record(s ssh.Signer, label, file string) ssh.Signer {
	as, ok := s.(ssh.AlgorithmSigner)
	if !ok {
		return s
	}
	r := recSigner{AlgorithmSigner: as, mark: func() { a.used, a.usedKey, a.usedFile = label, s.PublicKey(), file }}
	if ms, ok := s.(ssh.MultiAlgorithmSigner); ok {
		return recMultiSigner{recSigner: r, algs: ms.Algorithms()}
	}
	return r
}

type recSigner struct {
	ssh.AlgorithmSigner
	mark func()
}

func (s recSigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	s.mark()
	return s.AlgorithmSigner.Sign(rand, data)
}

func (s recSigner) SignWithAlgorithm(rand io.Reader, data []byte, alg string) (*ssh.Signature, error) {
	s.mark()
	return s.AlgorithmSigner.SignWithAlgorithm(rand, data, alg)
}

type recMultiSigner struct {
	recSigner
	algs []string
}

func (s recMultiSigner) Algorithms() []string { return s.algs }

// errDeclined ends authentication when the server asks for a password:
// bigbang logs in with keys only.
var errDeclined = errors.New("password login declined")

func describeAuthFailure(user string, r Resolved, a *authSet, sawPassword bool) *Error {
	target := r.String()
	var tried string
	switch len(a.labels) {
	case 0:
		tried = "no key was available (no key file, no agent)"
	case 1:
		tried = "offered " + a.labels[0]
	default:
		tried = fmt.Sprintf("offered %d keys, first %s", len(a.labels), a.labels[0])
	}
	fix := "install your public key for " + user + " on the target (ssh-copy-id -i KEY.pub " + target + "), or pass -i with the key the provider set up"
	if len(a.signers) == 0 {
		return newErr(ErrAuthFailed, nil, fix, "cannot log in to %s: %s", target, tried)
	}
	if sawPassword {
		return newErr(ErrAuthFailed, nil, fix, "%s accepted none of the keys (%s); it would take a password, which bigbang does not use", target, tried)
	}
	return newErr(ErrAuthFailed, nil, fix, "%s accepted none of the keys (%s)", target, tried)
}
