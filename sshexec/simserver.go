package sshexec

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// SimHandler answers one exec request of a SimServer: command is the exact
// command string the client sent, stdin is the session's input, and the
// returned value is the command's exit status.
type SimHandler func(command string, stdin io.Reader, stdout, stderr io.Writer) int

// SimServer is an in-process SSH server on 127.0.0.1 that stands in for a
// VPS in `bigbang demo`: it accepts any public key (it only ever listens on
// loopback and serves a simulation) and answers exec requests with a
// SimHandler. It lives in sshexec because only this package may import
// golang.org/x/crypto/ssh.
type SimServer struct {
	ln      net.Listener
	config  *ssh.ServerConfig
	signer  ssh.Signer
	handler SimHandler

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewSimServer starts a SimServer on 127.0.0.1 with an ed25519 host key made
// from hostKeySeed (32 bytes; nil or short makes a random key, so every run
// has its own ephemeral key).
func NewSimServer(hostKeySeed []byte, handler SimHandler) (*SimServer, error) {
	if handler == nil {
		return nil, errors.New("simulated ssh server: no handler given")
	}
	seed := hostKeySeed
	if len(seed) != ed25519.SeedSize {
		seed = make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, fmt.Errorf("simulated ssh server: host key: %w", err)
		}
	}
	signer, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		return nil, fmt.Errorf("simulated ssh server: host key: %w", err)
	}
	cfg := &ssh.ServerConfig{
		// Any key is welcome: the server is a loopback simulation whose
		// only job is to look like a fresh VPS to the real client code.
		PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
			return &ssh.Permissions{}, nil
		},
		ServerVersion: "SSH-2.0-OpenSSH_8.7",
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("simulated ssh server: listen on loopback: %w", err)
	}
	s := &SimServer{ln: ln, config: cfg, signer: signer, handler: handler, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Addr is the server's address, "127.0.0.1:port".
func (s *SimServer) Addr() string { return s.ln.Addr().String() }

// Port is the TCP port the server listens on.
func (s *SimServer) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// HostKeyFingerprint is the SHA256 fingerprint of the host key, as ssh
// prints it ("SHA256:…").
func (s *SimServer) HostKeyFingerprint() string { return ssh.FingerprintSHA256(s.signer.PublicKey()) }

// HostKeyLine is the host key in authorized_keys form ("ssh-ed25519 AAAA…"),
// the shape a known_hosts entry ends with.
func (s *SimServer) HostKeyLine() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.signer.PublicKey())))
}

// Close stops listening, drops every connection and waits for the handlers
// to return.
func (s *SimServer) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *SimServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handleConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			_ = c.Close()
		}()
	}
}

func (s *SimServer) handleConn(c net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions are simulated")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handleSession(ch, chReqs)
		}()
	}
	wg.Wait()
}

func (s *SimServer) handleSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "exec":
			var payload struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			code := s.handler(payload.Command, ch, ch, ch.Stderr())
			status := make([]byte, 4)
			binary.BigEndian.PutUint32(status, uint32(code))
			_, _ = ch.SendRequest("exit-status", false, status)
			return
		case "env", "pty-req":
			_ = req.Reply(true, nil)
		default:
			_ = req.Reply(false, nil)
		}
	}
}
