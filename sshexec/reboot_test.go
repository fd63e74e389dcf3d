package sshexec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
)

func TestVerifyReboot(t *testing.T) {
	const other = "other.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFG9+urPvUOp2JdWiybf0PXjR4ZO4474YU2AElrKsALx"
	tests := []struct {
		name      string
		bootOnto  string // "expected" or "other"
		wantErr   error
		wantState bool
	}{
		{name: "comes back on the expected key", bootOnto: "expected"},
		{name: "comes back on another key", bootOnto: "other", wantErr: ErrHostKeyMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := testhost.Start(t, testhost.Options{})
			kh := knownHostsFile(t, h, other)
			before, _ := os.ReadFile(kh)

			extra := t.TempDir()
			sshDir := filepath.Join(extra, "persistent", "etc", "ssh")
			if err := os.MkdirAll(sshDir, 0o755); err != nil {
				t.Fatal(err)
			}
			newKey, _, err := testhost.GenerateKey(sshDir, "ssh_host_ed25519_key", "")
			if err != nil {
				t.Fatal(err)
			}
			expected, err := ReadExpectedHostKey(ExpectedHostKeyFile(extra))
			if err != nil {
				t.Fatal(err)
			}
			boot := newKey
			if tt.bootOnto == "other" {
				boot = ""
			}
			h.Reboot(500*time.Millisecond, boot)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rep, err := VerifyReboot(ctx, RebootOptions{
				Target:          Target{Host: h.IP, Port: h.Port, User: h.User, Identity: h.ClientKey, SSHConfig: os.DevNull},
				ExpectedHostKey: expected, KnownHosts: kh, AgentSocket: "none", Timeout: 20 * time.Second,
			})
			after, _ := os.ReadFile(kh)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "serial console") && !strings.Contains(err.Error(), "extra-files") {
					t.Errorf("error does not say what it can mean: %v", err)
				}
				if string(after) != string(before) {
					t.Errorf("known_hosts changed after a refusal:\n%s", after)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.Attempts < 2 {
				t.Errorf("attempts = %d: the wait did not start while the host was down", rep.Attempts)
			}
			f := strings.Fields(string(expected))
			want := "[127.0.0.1]:" + h.PortString() + " " + f[0] + " " + f[1] + "\n"
			if string(after) != other+"\n"+want {
				t.Errorf("known_hosts =\n%s\nwant the other host intact and\n%s", after, want)
			}
			if backup, _ := os.ReadFile(kh + KnownHostsBackupSuffix); string(backup) != string(before) {
				t.Errorf("backup = %q, want the old file", backup)
			}
			if rep.HostKey.Fingerprint != fingerprintOfLine(t, string(expected)) {
				t.Errorf("report key %s", rep.HostKey.Fingerprint)
			}
		})
	}
	t.Run("never comes back", func(t *testing.T) {
		h := testhost.Start(t, testhost.Options{})
		h.Stop()
		start := time.Now()
		_, err := VerifyReboot(context.Background(), RebootOptions{
			Target:          Target{Host: h.IP, Port: h.Port, User: h.User, Identity: h.ClientKey, SSHConfig: os.DevNull},
			ExpectedHostKey: []byte(h.HostKeyPub()), KnownHosts: filepath.Join(t.TempDir(), "kh"), AgentSocket: "none",
			Timeout: 1500 * time.Millisecond,
		})
		if !errors.Is(err, ErrRebootTimeout) || !strings.Contains(err.Error(), "serial console") {
			t.Fatalf("err = %v, want ErrRebootTimeout pointing at the serial console", err)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("took %s", d)
		}
	})
}

func TestReplaceKnownHost(t *testing.T) {
	testutil.Need(t, "ssh-keygen")
	dir := t.TempDir()
	_, pubA, _ := testhost.GenerateKey(dir, "a", "")
	_, pubB, _ := testhost.GenerateKey(dir, "b", "")
	fa, fb := strings.Fields(pubA), strings.Fields(pubB)
	kh := filepath.Join(dir, "known_hosts")
	hashed := "|1|F1E1KeoE/eEWhi10WpGv4OdiO6Y=|3988QV0VE8wmZL7suNrYQLITLCg=" // ssh-keygen's example for "192.168.1.61"
	content := "# comment\n[10.0.0.1]:2222 " + fa[0] + " " + fa[1] + "\n" + "10.0.0.1 " + fa[0] + " " + fa[1] + "\n" +
		"@revoked * " + fa[0] + " " + fa[1] + "\n" + hashed + " " + fa[0] + " " + fa[1] + "\n"
	if err := os.WriteFile(kh, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := parsePub(pubB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReplaceKnownHost(kh, "10.0.0.1:2222", key, false); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(kh)
	want := "# comment\n10.0.0.1 " + fa[0] + " " + fa[1] + "\n" + "@revoked * " + fa[0] + " " + fa[1] + "\n" + hashed + " " + fa[0] + " " + fa[1] + "\n" +
		"[10.0.0.1]:2222 " + fb[0] + " " + fb[1] + "\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if !hashMatches(hashed, "192.168.1.61") || hashMatches(hashed, "192.168.1.62") {
		t.Error("hashMatches does not follow ssh-keygen -H")
	}
	if st, _ := os.Stat(kh); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
}
