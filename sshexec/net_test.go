package sshexec

import (
	"net"

	"golang.org/x/crypto/ssh"
)

func net6Listen() (net.Listener, error) { return net.Listen("tcp6", "[::1]:0") }

func parsePub(line string) (ssh.PublicKey, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	return k, err
}
