package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/cli"
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
		return append([]string{"reinstall", "--host", h.IP, "--port", h.PortString(), "--post-kexec-ssh-port", h.PortString(), "--user", h.User, "-i", h.ClientKey,
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
		if code != cli.Failed || !strings.Contains(errOut, "would change identity") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if entries, _ := os.ReadDir(backups); len(entries) != 0 {
			t.Fatalf("went on to a backup: %v", entries)
		}
	})

}

// TestReinstallPreflight runs the scripted reinstall against the test host
// with a flake that describes this machine (e2eFlake) and the stand-in
// nixos-anywhere: a check that blocks stops it before the backup, and a
// tree with the host key's .pub alone gets the private key from the
// machine, then goes through the install, the verified reboot and the
// restore.
func TestReinstallPreflight(t *testing.T) {
	x := newE2E(t)
	// The test host is a container here: remote.container would block
	// although the stand-in never kexecs; every other check keeps its
	// verdict.
	needVPS(t)
	src := filepath.Join(t.TempDir(), "persistent")
	if err := os.MkdirAll(filepath.Join(src, "var/lib/app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "var/lib/app/db"), []byte("rows"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	args := func(r *e2eRun, flakeDir, backups string, extra ...string) []string {
		h := x.h
		return append([]string{"reinstall", "--host", h.IP, "--port", h.PortString(), "--post-kexec-ssh-port", h.PortString(), "--user", h.User, "-i", h.ClientKey,
			"--known-hosts", r.knownHosts, "--flake", flakeDir + "#machine", "--extra-files", r.keys, "--nixos-anywhere", x.standin,
			"--source", src, "--backup-dir", backups, "--yes-wipe", h.IP, "--output", "plain", "--reboot-timeout", "20s",
			"--log", r.log}, extra...)
	}

	t.Run("a blocking check stops it before the backup", func(t *testing.T) {
		r := x.newRun(t)
		copyHostKey(t, x.h, r.keys)
		// The same flake, with another operator key: local.lockout.
		locked := t.TempDir()
		if err := os.WriteFile(filepath.Join(locked, "flake.nix"), []byte(readFile(t, filepath.Join(x.flakeDir, "flake.nix"))), 0o644); err != nil {
			t.Fatal(err)
		}
		_, other, err := testhost.GenerateKey(t.TempDir(), "other", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(locked, "operator.pub"), []byte(other+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		marker := filepath.Join(t.TempDir(), "ran")
		t.Setenv("STANDIN_MARKER", marker)
		backups := t.TempDir()
		code, out, errOut := runRoot(ctx, "", args(r, locked, backups)...)
		if code != cli.Failed || !strings.Contains(out, "local.lockout") || !strings.Contains(errOut, "before the backup") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if entries, _ := os.ReadDir(backups); len(entries) != 0 {
			t.Errorf("backed up although a check blocks: %v", entries)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Errorf("nixos-anywhere ran although a check blocks")
		}
		if rec, err := receipt.Read(x.h.IP, x.h.Port); err == nil && len(rec.Backups) != 0 {
			t.Errorf("the receipt records a backup: %+v", rec.Backups)
		}
	})

	t.Run("only the .pub: the key is copied, backup, install, restore, receipt", func(t *testing.T) {
		r := x.newRun(t)
		copyHostKey(t, x.h, r.keys)
		privFile := filepath.Join(r.keys, "persistent", "etc", "ssh", "ssh_host_ed25519_key")
		if err := os.Remove(privFile); err != nil {
			t.Fatal(err)
		}
		backups := t.TempDir()
		code, out, errOut := runRoot(ctx, "", args(r, x.flakeDir, backups, "--service", "app.service")...)
		// The test host has no systemd: the services flag must fail the
		// restore, not the install; run without it below.
		if code != cli.Failed || !strings.Contains(errOut, "app.service") || !strings.Contains(out, "Backup verified") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		fi, err := os.Stat(privFile)
		if err != nil || fi.Mode().Perm() != 0o600 || readFile(t, privFile) != readFile(t, filepath.Join(x.h.Dir, "ssh_host_ed25519_key")) {
			t.Fatalf("the machine's private key was not copied into the tree (0600): %v", err)
		}
		code, out, errOut = runRoot(ctx, "", args(r, x.flakeDir, backups)...)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		for _, want := range []string{"remote.disk", "Backup verified", "It holds the machine's secrets", "same host key", "Restored and compared", "Reinstall of " + x.h.IP + " done"} {
			if !strings.Contains(out, want) {
				t.Fatalf("output lacks %q:\n%s\n%s", want, out, errOut)
			}
		}
		if strings.Index(out, "remote.disk") > strings.Index(out, "Backup verified") {
			t.Errorf("the preflight did not come before the backup:\n%s", out)
		}
		rec, err := receipt.Read(x.h.IP, x.h.Port)
		if err != nil {
			t.Fatal(err)
		}
		last, ok := rec.LastBackup()
		if !ok || !last.Restored || len(rec.Phases) == 0 || rec.HostKeyFingerprint == "" || len(rec.Disko) != 1 {
			b, _ := json.MarshalIndent(rec, "", "  ")
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
		h := x.h
		code, out, errOut = runRoot(ctx, "", "reinstall", "--host", h.IP, "--port", h.PortString(), "--user", h.User, "-i", h.ClientKey,
			"--known-hosts", r.knownHosts, "--restore", last.Path, "--output", "plain")
		if b, _ := os.ReadFile(filepath.Join(src, "var/lib/app/db")); code != 0 || string(b) != "rows" {
			t.Fatalf("restore only: exit %d, file %q\n%s\n%s", code, b, out, errOut)
		}
		code, _, errOut = runRoot(ctx, "", "reinstall", "--host", "localhost", "--port", h.PortString(), "--user", h.User, "-i", h.ClientKey,
			"--known-hosts", r.knownHosts, "--restore", last.Path, "--output", "plain")
		if code != cli.Failed || !strings.Contains(errOut, "another host") {
			t.Fatalf("restore onto another host: exit %d\n%s", code, errOut)
		}
	})
}
