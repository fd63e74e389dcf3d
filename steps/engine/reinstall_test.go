package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/secrets"
)

// TestReinstallKeepHostKey checks the host key step against the real-sshd test
// host: the private key must be in the tree, parse and be the served one;
// a missing one is fetched from the machine (0600), or the step refuses
// with what to do.
func TestReinstallKeepHostKey(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	h.WriteKnownHosts(kh)
	machine := t.TempDir()
	hostPriv, err := os.ReadFile(filepath.Join(h.Dir, "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatal(err)
	}
	hostPub := h.HostKeyPub()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := os.WriteFile(filepath.Join(machine, "ssh_host_ed25519_key"), hostPriv, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := steps.Config{Host: h.IP, Port: h.Port, User: h.User, Identity: h.ClientKey, KnownHosts: kh}
	e := New(World{Dialer: SSHDialer{}, AgentSocket: "none", HostKeyDirs: []string{machine}})
	c, err := e.Connect(ctx, cfg, DialPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	otherDir := t.TempDir()
	if _, _, err := testhost.GenerateKey(otherDir, "other", ""); err != nil {
		t.Fatal(err)
	}
	otherPriv, _ := os.ReadFile(filepath.Join(otherDir, "other"))
	const (
		priv = "persistent/etc/ssh/ssh_host_ed25519_key"
		pub  = priv + ".pub"
	)
	tests := []struct {
		name    string
		files   map[string]string // relative path → content, 0600
		mode    os.FileMode       // of the private key when not 0
		machine string            // what the machine's key folder holds ("" as set up)
		wantErr string
		// wantPriv is the private key the tree must hold after a success.
		wantPriv string
	}{
		{name: "both keys there", files: map[string]string{priv: string(hostPriv), pub: hostPub + "\n"}, wantPriv: string(hostPriv)},
		{name: "nothing there: both copied", files: nil, wantPriv: string(hostPriv)},
		{name: "only the .pub: the private key is copied", files: map[string]string{pub: hostPub + "\n"}, wantPriv: string(hostPriv)},
		{name: "only the .pub, the machine's key unreadable: refused", files: map[string]string{pub: hostPub + "\n"}, machine: "empty",
			wantErr: "yourself (chmod 600)"},
		{name: "only the .pub, the machine's file holds another key: refused", files: map[string]string{pub: hostPub + "\n"}, machine: string(otherPriv),
			wantErr: "not the key it serves"},
		{name: "only the private key: the .pub is written", files: map[string]string{priv: string(hostPriv)}, wantPriv: string(hostPriv)},
		{name: "a private key that does not parse: refused", files: map[string]string{priv: "garbage\n", pub: hostPub + "\n"}, wantErr: "move it and its .pub away"},
		{name: "another private key: refused", files: map[string]string{priv: string(otherPriv), pub: hostPub + "\n"}, wantErr: "would change identity"},
		{name: "a private key others can read: refused", files: map[string]string{priv: string(hostPriv), pub: hostPub + "\n"}, mode: 0o644, wantErr: "chmod 600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := t.TempDir()
			for rel, content := range tt.files {
				p := filepath.Join(tree, rel)
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.mode != 0 {
				if err := os.Chmod(filepath.Join(tree, priv), tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			switch tt.machine {
			case "":
			case "empty":
				e.World.HostKeyDirs = []string{t.TempDir()}
			default:
				d := t.TempDir()
				if err := os.WriteFile(filepath.Join(d, "ssh_host_ed25519_key"), []byte(tt.machine), 0o600); err != nil {
					t.Fatal(err)
				}
				e.World.HostKeyDirs = []string{d}
			}
			defer func() { e.World.HostKeyDirs = []string{machine} }()

			_, err := e.keepHostKey(ctx, c, tree)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if tt.files[priv] == "" {
					if _, err := os.Stat(filepath.Join(tree, priv)); err == nil {
						t.Errorf("a refused step wrote a private key")
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(tree, priv))
			if err != nil {
				t.Fatalf("the tree holds no private key: %v", err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("private key mode %04o, want 0600", fi.Mode().Perm())
			}
			if b, _ := os.ReadFile(filepath.Join(tree, priv)); string(b) != tt.wantPriv {
				t.Errorf("the tree's private key is not the machine's")
			}
			if b, err := os.ReadFile(filepath.Join(tree, pub)); err != nil || !secrets.SameKey(string(b), hostPub) {
				t.Errorf("the tree's .pub %q (%v) is not the served key", b, err)
			}
		})
	}
}
