package steps

import (
	"bytes"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"strings"
)

// KeyEncrypted reports whether an SSH private key file needs a passphrase.
// It reads the container formats directly (OpenSSH's openssh-key-v1 and the
// older PEM ones) so that steps/ needs no SSH library.
func KeyEncrypted(data []byte) (bool, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return false, errors.New("not a private key file (no PEM block): pass the private key, not the .pub")
	}
	switch block.Type {
	case "OPENSSH PRIVATE KEY":
		const magic = "openssh-key-v1\x00"
		b := block.Bytes
		if !bytes.HasPrefix(b, []byte(magic)) {
			return false, errors.New("corrupt OpenSSH private key (bad header)")
		}
		b = b[len(magic):]
		if len(b) < 4 {
			return false, errors.New("corrupt OpenSSH private key (truncated)")
		}
		n := binary.BigEndian.Uint32(b)
		if uint32(len(b)-4) < n {
			return false, errors.New("corrupt OpenSSH private key (truncated)")
		}
		return string(b[4:4+n]) != "none", nil
	case "ENCRYPTED PRIVATE KEY":
		return true, nil
	default:
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			return false, errors.New("not a private key file: found a " + block.Type)
		}
		return strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED"), nil
	}
}
