package sshexec

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
)

// passwordUser creates a throwaway local user with a password and sudo
// rights that need it (group sudo), removed when the test ends.
func passwordUser(t *testing.T, password string) string {
	t.Helper()
	testutil.NeedRoot(t, "creating a throwaway local user with a password needs root")
	testutil.Need(t, "sudo")
	testutil.Need(t, "visudo")
	useradd := testutil.Need(t, "useradd")
	chpasswd := testutil.Need(t, "chpasswd")
	userdel := testutil.Need(t, "userdel")
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := "bbtest" + hex.EncodeToString(b)
	if out, err := exec.Command(useradd, "-m", "-s", "/bin/sh", "-G", "sudo", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(userdel, "-r", "-f", name).Run() })
	cmd := exec.Command(chpasswd)
	cmd.Stdin = strings.NewReader(name + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v: %s", err, out)
	}
	return name
}

func TestSetupPasswordlessSudo(t *testing.T) {
	// A password of this run only, with a space in it: a test killed before
	// its clean-up must not leave an account with a known password behind.
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	password := "s3 " + hex.EncodeToString(pw)
	user := passwordUser(t, password)
	// The read-only folder is mounted before the test host starts: its
	// sshd runs in a mount namespace of its own, made at its start.
	roDir := t.TempDir()
	roMounted := exec.Command("mount", "-t", "tmpfs", "-o", "ro", "tmpfs", roDir).Run() == nil
	if roMounted {
		t.Cleanup(func() { _ = exec.Command("umount", roDir).Run() })
	}
	h := testhost.Start(t, testhost.Options{User: user})
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	// A name of our own in the real /etc/sudoers.d, so the real sudo reads it.
	file := "/etc/sudoers.d/90-bigbang-test-" + hex.EncodeToString(b)
	t.Cleanup(func() { os.Remove(file) })

	answers := func(list ...string) (func(int) ([]byte, error), *int) {
		n := 0
		return func(attempt int) ([]byte, error) {
			n++
			return []byte(list[min(attempt-1, len(list)-1)]), nil
		}, &n
	}
	tests := []struct {
		name     string
		setup    SudoSetup
		answers  []string
		wantErr  error
		wantAsks int
	}{
		{name: "sudo missing", setup: SudoSetup{File: file, Sudo: "sudo-not-installed"}, answers: []string{password}, wantErr: ErrSudoMissing},
		{name: "visudo missing", setup: SudoSetup{File: file, Visudo: "visudo-not-installed"}, answers: []string{password}, wantErr: ErrVisudoMissing},
		{name: "wrong password three times", setup: SudoSetup{File: file}, answers: []string{"wrong"}, wantErr: ErrSudoPassword, wantAsks: 3},
		{name: "read-only sudoers folder", setup: SudoSetup{File: filepath.Join(roDir, "90-nixos-anywhere")}, answers: []string{password}, wantErr: ErrSudoersReadOnly},
		{name: "wrong, then right", setup: SudoSetup{File: file}, answers: []string{"wrong", password}, wantAsks: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantErr == ErrSudoersReadOnly && !roMounted {
				t.Skip("cannot mount a read-only tmpfs here (no CAP_SYS_ADMIN)")
			}
			c := dial(t, opts(h, knownHostsFile(t, h)))
			pw, asks := answers(tt.answers...)
			tt.setup.Password = pw
			changed, err := c.SetupPasswordlessSudo(context.Background(), tt.setup)
			if tt.wantAsks != 0 && *asks != tt.wantAsks {
				t.Errorf("asked %d times, want %d", *asks, tt.wantAsks)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), password) {
					t.Error("the password appears in the error")
				}
				if _, err := os.Stat(file); err == nil {
					t.Error("a sudoers file was written")
				}
				return
			}
			if err != nil || !changed {
				t.Fatalf("changed %v, err %v", changed, err)
			}
			st, err := os.Stat(file)
			if err != nil || st.Mode().Perm() != 0o440 {
				t.Fatalf("sudoers file: %v mode %v", err, st.Mode())
			}
			data, _ := os.ReadFile(file)
			if string(data) != user+" ALL=(ALL) NOPASSWD:ALL\n" {
				t.Errorf("sudoers = %q", data)
			}
			if out, err := c.Output(context.Background(), "sudo -n id -u"); err != nil || strings.TrimSpace(string(out)) != "0" {
				t.Errorf("sudo -n id -u = %q, %v", out, err)
			}
			// Nothing left to do the second time.
			changed, err = c.SetupPasswordlessSudo(context.Background(), tt.setup)
			if err != nil || changed {
				t.Errorf("second run: changed %v, err %v", changed, err)
			}
		})
	}
}
