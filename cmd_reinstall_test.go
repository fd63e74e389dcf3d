package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/steps/receipt"
)

// TestReinstallCommand runs the guided reinstall against the real-sshd test
// host, a loop device whose layout the flake changed, and the stand-in
// nixos-anywhere: drift, backup, install, wait with the pinned host key,
// restore, receipt.
func TestReinstallCommand(t *testing.T) {
	dev := driftLoopDisk(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	flakeDir := writeFlakeDir(t, strings.ReplaceAll(driftCmdFlake, "@DEVICE@", dev))
	h, kh := startTestHost(t, testhost.Options{})
	src := filepath.Join(t.TempDir(), "persistent")
	if err := os.MkdirAll(filepath.Join(src, "var/lib/app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "var/lib/app/db"), []byte("rows"), 0o600); err != nil {
		t.Fatal(err)
	}
	backups := t.TempDir()
	args := func(keys, config string, extra ...string) []string {
		return append([]string{"reinstall", "--host", h.IP, "--port", h.PortString(), "--user", h.User, "-i", h.ClientKey,
			"--known-hosts", kh, "--flake", flakeDir + "#" + config, "--extra-files", keys, "--nixos-anywhere", buildStandin(t),
			"--source", src, "--backup-dir", backups, "--yes-wipe", h.IP, "--output", "plain", "--reboot-timeout", "20s",
			"--log", filepath.Join(t.TempDir(), "run.log")}, extra...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	t.Run("no drift: stops before the backup", func(t *testing.T) {
		keys := t.TempDir()
		copyHostKey(t, h, keys)
		code, out, errOut := runRoot(ctx, "", args(keys, "same")...)
		if code != 0 || !strings.Contains(out, "Nothing to reinstall") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if entries, _ := os.ReadDir(backups); len(entries) != 0 {
			t.Fatalf("backed up although nothing changed: %v", entries)
		}
	})

	t.Run("another host key in extra-files is refused", func(t *testing.T) {
		keys := t.TempDir()
		other := filepath.Join(keys, "persistent", "etc", "ssh")
		if err := os.MkdirAll(other, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, _, err := testhost.GenerateKey(other, "ssh_host_ed25519_key", ""); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runRoot(ctx, "", args(keys, "bigger-esp")...)
		if code != exitFailed || !strings.Contains(errOut, "would change identity") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if entries, _ := os.ReadDir(backups); len(entries) != 0 {
			t.Fatalf("went on to a backup: %v", entries)
		}
	})

	t.Run("layout changed: backup, install, restore, receipt", func(t *testing.T) {
		keys := t.TempDir()
		copyHostKey(t, h, keys)
		code, out, errOut := runRoot(ctx, "", args(keys, "bigger-esp", "--service", "app.service")...)
		// The test host has no systemd: the services flag must fail the
		// restore, not the install; run without it below.
		if code != exitFailed || !strings.Contains(errOut, "app.service") || !strings.Contains(out, "Backup verified") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		code, out, errOut = runRoot(ctx, "", args(keys, "bigger-esp")...)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		for _, want := range []string{"partition disk-main-ESP", "Backup verified", "It holds the machine's secrets", "same host key", "Restored and compared", "Reinstall of " + h.IP + " done"} {
			if !strings.Contains(out, want) {
				t.Fatalf("output lacks %q:\n%s\n%s", want, out, errOut)
			}
		}
		r, err := receipt.Read(h.IP)
		if err != nil {
			t.Fatal(err)
		}
		last, ok := r.LastBackup()
		if !ok || !last.Restored || len(r.Phases) == 0 || r.HostKeyFingerprint == "" || len(r.Disko) != 1 || r.Disko[0].Partitions[0].Size != "64M" {
			b, _ := json.MarshalIndent(r, "", "  ")
			t.Fatalf("receipt:\n%s", b)
		}
		if fi, err := os.Stat(last.Path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("backup %s: %v", last.Path, err)
		}

		// Resume: the restore alone brings back a deleted file, and an
		// archive offered to another host is refused.
		if err := os.Remove(filepath.Join(src, "var/lib/app/db")); err != nil {
			t.Fatal(err)
		}
		code, out, errOut = runRoot(ctx, "", "reinstall", "--host", h.IP, "--port", h.PortString(), "--user", h.User, "-i", h.ClientKey,
			"--known-hosts", kh, "--restore", last.Path, "--output", "plain")
		if b, _ := os.ReadFile(filepath.Join(src, "var/lib/app/db")); code != 0 || string(b) != "rows" {
			t.Fatalf("restore only: exit %d, file %q\n%s\n%s", code, b, out, errOut)
		}
		code, _, errOut = runRoot(ctx, "", "reinstall", "--host", "localhost", "--port", h.PortString(), "--user", h.User, "-i", h.ClientKey,
			"--known-hosts", kh, "--restore", last.Path, "--output", "plain")
		if code != exitFailed || !strings.Contains(errOut, "another host") {
			t.Fatalf("restore onto another host: exit %d\n%s", code, errOut)
		}
	})
}
