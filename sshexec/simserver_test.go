package sshexec

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

func simEcho(command string, stdin io.Reader, stdout, stderr io.Writer) int {
	switch command {
	case "cat":
		_, _ = io.Copy(stdout, stdin)
		return 0
	case "fail":
		fmt.Fprintln(stderr, "simulated failure")
		return 3
	}
	fmt.Fprintf(stdout, "ran: %s\n", command)
	return 0
}

func TestSimServerExec(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	srv, err := NewSimServer(seed, simEcho)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	again, err := NewSimServer(seed, simEcho)
	if err != nil {
		t.Fatal(err)
	}
	if again.HostKeyFingerprint() != srv.HostKeyFingerprint() {
		t.Errorf("same seed, different host keys: %s vs %s", again.HostKeyFingerprint(), srv.HostKeyFingerprint())
	}
	again.Close()

	pub, err := ssh.ParsePublicKey(mustParseAuthorized(t, srv.HostKeyLine()).Marshal())
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	client, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{
		User:            "opc",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(pub),
	})
	if err != nil {
		t.Fatalf("dial the simulated server with its pinned key: %v", err)
	}
	defer client.Close()

	tests := []struct {
		name, cmd, stdin, wantOut string
		wantCode                  int
	}{
		{"command echoed", "uname -m", "", "ran: uname -m\n", 0},
		{"stdin reaches the handler", "cat", "hello", "hello", 0},
		{"exit status travels", "fail", "", "", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sess, err := client.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			var out bytes.Buffer
			sess.Stdout = &out
			sess.Stdin = strings.NewReader(tc.stdin)
			err = sess.Run(tc.cmd)
			code := 0
			if ee, ok := err.(*ssh.ExitError); ok {
				code = ee.ExitStatus()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || out.String() != tc.wantOut {
				t.Errorf("got %q status %d, want %q status %d", out.String(), code, tc.wantOut, tc.wantCode)
			}
		})
	}
}

// TestSimServerOpenSSH checks that the real ssh client accepts the
// simulation, with the host key pinned in a known_hosts file.
func TestSimServerOpenSSH(t *testing.T) {
	sshBin := testutil.Need(t, "ssh")
	keygen := testutil.Need(t, "ssh-keygen")
	srv, err := NewSimServer(nil, simEcho)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	kh := filepath.Join(dir, "known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%d %s\n", srv.Port(), srv.HostKeyLine())
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sshBin, "-F", "/dev/null", "-i", key, "-p", fmt.Sprint(srv.Port()),
		"-o", "UserKnownHostsFile="+kh, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"opc@127.0.0.1", "echo", "hi").CombinedOutput()
	if err != nil {
		t.Fatalf("ssh: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "ran: echo hi") {
		t.Errorf("ssh output %q, want the handler's answer", out)
	}
}

func mustParseAuthorized(t *testing.T, line string) ssh.PublicKey {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
