package sshexec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/bigbang-nix/bigbang/internal/testhost"
)

// A known_hosts file the operator cannot read is said as such (with the
// permission error and the chmod that fixes it), not taken for an empty one
// that would ask to trust the host anew. Root reads every file, so as root
// the dial runs in a copy of the test binary as nobody.
func TestKnownHostsUnreadable(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, []byte(h.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var got khResult
	if os.Geteuid() == 0 {
		got = runAsNobody(t, dir, kh, h)
	} else {
		if err := os.Chmod(kh, 0o000); err != nil {
			t.Fatal(err)
		}
		got = dialForKnownHosts(kh, h.IP, h.Port)
	}
	if !got.KnownHosts || !got.Permission || got.Unknown {
		t.Fatalf("err = %q: want ErrKnownHosts wrapping a permission error, not ErrHostKeyUnknown (%+v)", got.Msg, got)
	}
	for _, want := range []string{"cannot read the known_hosts file " + kh + ": permission denied", "chmod 600 " + kh, "--known-hosts"} {
		if !strings.Contains(got.Msg, want) {
			t.Errorf("error lacks %q: %s", want, got.Msg)
		}
	}
}

// khResult is what a dial said about a known_hosts file, as the helper
// process reports it.
type khResult struct {
	KnownHosts, Permission, Unknown bool
	Msg                             string
}

func dialForKnownHosts(kh, ip string, port int) khResult {
	_, err := Dial(context.Background(), Options{
		Target:     Target{Host: ip, Port: port, User: "nobody", SSHConfig: os.DevNull},
		KnownHosts: kh, AgentSocket: "none",
	})
	r := khResult{KnownHosts: errors.Is(err, ErrKnownHosts), Permission: errors.Is(err, os.ErrPermission), Unknown: errors.Is(err, ErrHostKeyUnknown)}
	if err != nil {
		r.Msg = err.Error()
	}
	return r
}

func runAsNobody(t *testing.T, dir, kh string, h *testhost.Host) khResult {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sshexec.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestKnownHostsHelperProcess$", "-test.count=1")
	cmd.Env = []string{"BIGBANG_KH_HELPER=" + kh, "BIGBANG_KH_ADDR=" + h.IP + " " + h.PortString(), "HOME=/nonexistent", "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if j, ok := strings.CutPrefix(line, "KHRESULT "); ok {
			var r khResult
			if err := json.Unmarshal([]byte(j), &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
	t.Fatalf("helper printed no result:\n%s", out)
	return khResult{}
}

// TestKnownHostsHelperProcess is the dial of TestKnownHostsUnreadable, run
// as another user; it does nothing in a normal test run.
func TestKnownHostsHelperProcess(t *testing.T) {
	kh := os.Getenv("BIGBANG_KH_HELPER")
	if kh == "" {
		return
	}
	ip, port, _ := strings.Cut(os.Getenv("BIGBANG_KH_ADDR"), " ")
	p, _ := strconv.Atoi(port)
	j, _ := json.Marshal(dialForKnownHosts(kh, ip, p))
	fmt.Printf("KHRESULT %s\n", j)
}

// A known_hosts file without one usable line names the first broken one,
// and is neither taken for an empty file nor written to.
func TestKnownHostsBrokenLines(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	tests := []struct {
		name, content string
		line          int
	}{
		{"garbage", "this is not a known_hosts file\nnor is this\n", 1},
		{"after comments and blanks", "# my hosts\n\n" + "[127.0.0.1]:" + h.PortString() + " ssh-ed25519 AAAAnotbase64!!\n", 3},
		{"a key type without a key", "# x\nhost1 ssh-ed25519\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if err := os.WriteFile(kh, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			o := opts(h, kh)
			o.AcceptNewHostKey = true // must not turn a broken file into a new host
			c, err := Dial(context.Background(), o)
			if c != nil {
				c.Close()
			}
			if !errors.Is(err, ErrKnownHosts) || errors.Is(err, ErrHostKeyUnknown) {
				t.Fatalf("err = %v, want ErrKnownHosts only", err)
			}
			for _, want := range []string{kh, fmt.Sprintf("line %d is not a known_hosts line", tt.line), fmt.Sprintf("fix or delete line %d", tt.line)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if data, _ := os.ReadFile(kh); string(data) != tt.content {
				t.Errorf("known_hosts changed: %q", data)
			}
		})
	}
}

// A known_hosts kept in a dotfiles repository and linked into ~/.ssh stays
// a link: a new key is appended through it, a pinned key replaces the
// content of the file it points to (its mode kept).
func TestKnownHostsSymlink(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	for _, relative := range []bool{false, true} {
		t.Run(fmt.Sprintf("relative=%v", relative), func(t *testing.T) {
			base := t.TempDir()
			dotfiles := filepath.Join(base, "dotfiles", "ssh")
			sshDir := filepath.Join(base, "home", ".ssh")
			for _, d := range []string{dotfiles, sshDir} {
				if err := os.MkdirAll(d, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			real := filepath.Join(dotfiles, "known_hosts")
			other := "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHn7k2bCz0l7pXgVQG2cK8Nn3LQJ3xJXkq1v7mS6Xw5c\n"
			if err := os.WriteFile(real, []byte(other), 0o644); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(sshDir, "known_hosts")
			target := real
			if relative {
				target = "../../dotfiles/ssh/known_hosts"
			}
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			assertLink := func(stage string) {
				t.Helper()
				st, err := os.Lstat(link)
				if err != nil || st.Mode()&os.ModeSymlink == 0 {
					t.Fatalf("%s: %s is no longer a symlink: %v %v", stage, link, st.Mode(), err)
				}
				if got, _ := os.Readlink(link); got != target {
					t.Fatalf("%s: the link points to %q, want %q", stage, got, target)
				}
			}

			o := opts(h, link)
			o.AcceptNewHostKey = true
			c := dial(t, o)
			c.Close()
			assertLink("after the first dial")
			data, _ := os.ReadFile(real)
			if string(data) != other+h.KnownHostsLine()+"\n" {
				t.Fatalf("the linked file holds %q", data)
			}

			_, newPub, err := testhost.GenerateKey(t.TempDir(), "new", "")
			if err != nil {
				t.Fatal(err)
			}
			newKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(newPub))
			if err != nil {
				t.Fatal(err)
			}
			backup, err := ReplaceKnownHost(link, "[127.0.0.1]:"+h.PortString(), newKey, false)
			if err != nil {
				t.Fatal(err)
			}
			assertLink("after the replace")
			data, _ = os.ReadFile(real)
			f := strings.Fields(newPub)
			if want := other + "[127.0.0.1]:" + h.PortString() + " " + f[0] + " " + f[1] + "\n"; string(data) != want {
				t.Errorf("the linked file holds %q, want %q", data, want)
			}
			if st, _ := os.Stat(real); st.Mode().Perm() != 0o644 {
				t.Errorf("mode of the linked file = %v, want 0644 kept", st.Mode().Perm())
			}
			if backup != link+KnownHostsBackupSuffix {
				t.Errorf("backup at %q", backup)
			}
			if b, _ := os.ReadFile(backup); string(b) != other+h.KnownHostsLine()+"\n" {
				t.Errorf("backup holds %q", b)
			}
			if entries, _ := os.ReadDir(dotfiles); len(entries) != 1 {
				t.Errorf("the dotfiles folder got files of ours: %v", entries)
			}
		})
	}
	t.Run("dangling link", func(t *testing.T) {
		base := t.TempDir()
		real := filepath.Join(base, "dotfiles", "known_hosts")
		if err := os.MkdirAll(filepath.Dir(real), 0o700); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(base, "known_hosts")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		o := opts(h, link)
		o.AcceptNewHostKey = true
		c := dial(t, o)
		c.Close()
		if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("link replaced: %v", err)
		}
		if data, _ := os.ReadFile(real); string(data) != h.KnownHostsLine()+"\n" {
			t.Errorf("target holds %q", data)
		}
	})
}

// The hint for an unknown key on another port than 22 is a keyscan that
// works: ssh-keyscan -p PORT host, not the known_hosts form [host]:port.
func TestUnknownHostKeyscanHint(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	_, err := Dial(context.Background(), opts(h, kh))
	if !errors.Is(err, ErrHostKeyUnknown) {
		t.Fatalf("err = %v", err)
	}
	want := "ssh-keyscan -p " + h.PortString() + " 127.0.0.1 on a trusted network"
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "ssh-keyscan '[") {
		t.Errorf("error = %v\nwant the hint %q", err, want)
	}
	// The hint is a command that works: run it.
	if _, lerr := exec.LookPath("ssh-keyscan"); lerr == nil {
		out, kerr := exec.Command("ssh-keyscan", "-p", h.PortString(), "127.0.0.1").Output()
		if kerr != nil || !strings.Contains(string(out), strings.Fields(h.HostKeyPub())[1]) {
			t.Errorf("ssh-keyscan -p: %v %q", kerr, out)
		}
	}
}

// A key marked @revoked is reported as revoked, with the file and line
// that say so, not as a changed key; nothing runs and nothing is written.
func TestRevokedHostKey(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	f := strings.Fields(h.HostKeyPub())
	content := "# revoked after the 2024 leak\n@revoked * " + f[0] + " " + f[1] + "\n" + h.KnownHostsLine() + "\n"
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "ran")
	o := opts(h, kh)
	o.AcceptNewHostKey = true
	c, err := Dial(context.Background(), o)
	if c != nil {
		_ = c.Run(context.Background(), "touch "+marker, nil, io.Discard, nil)
		c.Close()
	}
	if !errors.Is(err, ErrHostKeyRevoked) {
		t.Fatalf("err = %v, want ErrHostKeyRevoked", err)
	}
	if errors.Is(err, ErrHostKeyMismatch) || errors.Is(err, ErrHostKeyUnknown) {
		t.Errorf("a revoked key also matches mismatch/unknown: %v", err)
	}
	for _, want := range []string{"@revoked in " + kh + ":2", fingerprintOfLine(t, h.HostKeyPub()), "nothing was run", "new host key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	for _, not := range []string{"CHANGED", "ssh-keygen -R"} {
		if strings.Contains(err.Error(), not) {
			t.Errorf("error says %q: %v", not, err)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a command ran on a host with a revoked key")
	}
	if data, _ := os.ReadFile(kh); string(data) != content {
		t.Errorf("known_hosts changed: %q", data)
	}
}
