package reinstall

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/sshexec"
)

// dialTestHost logs in to the real-sshd test host (through addr, which may
// be a proxy in front of it) with its host key pinned.
func dialTestHost(t *testing.T, h *testhost.Host, host string, port int) *sshexec.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := sshexec.Dial(ctx, sshexec.Options{
		Target:          sshexec.Target{Host: host, Port: port, User: h.User, Identity: h.ClientKey, SSHConfig: os.DevNull},
		ExpectedHostKey: []byte(h.HostKeyPub()),
		AgentSocket:     "none",
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatalf("dial test host: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRoundTripThroughSSHD takes the backup through a real OpenSSH sshd
// and restores it the same way: the restored tree is identical.
func TestRoundTripThroughSSHD(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	c := dialTestHost(t, h, h.IP, h.Port)
	base := t.TempDir()
	src, dst := filepath.Join(base, "persistent"), filepath.Join(base, "restored")
	makeTree(t, src)
	want, wantLines := treeHash(t, src)

	a, err := Backup(context.Background(), c, BackupOptions{Plaintext: true, Host: "vps", HostKeyFingerprint: c.HostKey.Fingerprint, Source: src, Dir: filepath.Join(base, "backups")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Manifest.HostKeyFingerprint != c.HostKey.Fingerprint || a.Manifest.Entries != int64(len(wantLines)) {
		t.Fatalf("manifest %+v", a.Manifest)
	}
	if _, err := Restore(context.Background(), c, a, RestoreOptions{Host: "vps", HostKeyFingerprint: c.HostKey.Fingerprint, Target: dst, AnotherTarget: true}, nil); err != nil {
		t.Fatal(err)
	}
	if got, gotLines := treeHash(t, dst); got != want {
		t.Fatalf("restored tree differs:\n%s\nwant\n%s", strings.Join(gotLines, "\n"), strings.Join(wantLines, "\n"))
	}
	// A restore onto a machine with another host key is refused.
	if _, err := Restore(context.Background(), c, a, RestoreOptions{Host: "vps", HostKeyFingerprint: "SHA256:someoneelse", Target: dst, AnotherTarget: true}, nil); !errors.Is(err, ErrOtherHost) {
		t.Fatalf("restore onto another host key: %v", err)
	}
}

// TestCutThroughProxy cuts the TCP connection in the middle of a backup:
// the backup fails, and the partial file is named as incomplete.
func TestCutThroughProxy(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	p := testhost.NewProxy(t, h.Addr(), 0)
	c := dialTestHost(t, h, p.Host(), p.Port())
	src := t.TempDir()
	buf := make([]byte, 32<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		if err := os.WriteFile(filepath.Join(src, name), buf, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	var once sync.Once
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := Backup(ctx, c, BackupOptions{Plaintext: true, Host: "vps", Source: src, Dir: dir}, func(pr Progress) {
		if pr.Bytes > 0 {
			once.Do(p.Cut)
		}
	})
	var ie *IncompleteError
	if !errors.As(err, &ie) || !errors.Is(err, ErrIncomplete) {
		t.Fatalf("err = %v, want an incomplete backup", err)
	}
	if !strings.HasSuffix(ie.Path, IncompleteSuffix) {
		t.Fatalf("partial file %s", ie.Path)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), IncompleteSuffix) {
			t.Fatalf("a file not named incomplete after a cut: %s", e.Name())
		}
	}
}

// TestEncryptedThroughSSHD takes an age-encrypted backup through a real
// OpenSSH sshd and restores it with the identity; without one, nothing
// runs on the target.
func TestEncryptedThroughSSHD(t *testing.T) {
	noDefaultIdentities(t)
	h := testhost.Start(t, testhost.Options{})
	c := dialTestHost(t, h, h.IP, h.Port)
	base := t.TempDir()
	src, dst := filepath.Join(base, "persistent"), filepath.Join(base, "restored")
	makeTree(t, src)
	want, _ := treeHash(t, src)
	keyFile, r := newIdentity(t)
	a, err := Backup(context.Background(), c, BackupOptions{Host: "vps", HostKeyFingerprint: c.HostKey.Fingerprint, Source: src, Dir: filepath.Join(base, "backups"), Recipients: []string{r}, Identity: keyFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, a.Path); !strings.HasPrefix(body, AgeMagic) || !a.Manifest.Encrypted() {
		t.Fatalf("not age ciphertext: %q…, manifest %+v", body[:min(len(body), 30)], a.Manifest)
	}
	o := RestoreOptions{Host: "vps", HostKeyFingerprint: c.HostKey.Fingerprint, Target: dst, AnotherTarget: true}
	if _, err := Restore(context.Background(), c, a, o, nil); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("restore without the identity: %v", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the target directory was made without the identity: %v", err)
	}
	o.Identity = keyFile
	if _, err := Restore(context.Background(), c, a, o, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := treeHash(t, dst); got != want {
		t.Fatal("the restored tree differs")
	}
}

// TestRestoreBlamesTar restores, through a real sshd, a crafted archive
// whose members are all safe but which tar cannot unpack (a file under a
// regular file): the error names tar and carries its message, not mkdir,
// the command's first word.
func TestRestoreBlamesTar(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	c := dialTestHost(t, h, h.IP, h.Port)
	dst := filepath.Join(t.TempDir(), "persistent")
	a := sealedArchive(t, []member{dir("./"), file("./a"), file("./a/b")}, "gzip", dst)
	_, err := Restore(context.Background(), c, a, RestoreOptions{Host: "vps"}, nil)
	if !errors.Is(err, ErrRestoreIncomplete) {
		t.Fatalf("err = %v, want a failed restore", err)
	}
	msg := err.Error()
	for _, want := range []string{"tar --extract into " + dst + " exited with status 2 on the target", "a/b", "Not a directory"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "mkdir") {
		t.Errorf("the error blames mkdir: %s", msg)
	}
	var re *sshexec.RemoteError
	if !errors.As(err, &re) || re.Status != 2 {
		t.Errorf("the remote error is not kept: %#v", re)
	}
}
