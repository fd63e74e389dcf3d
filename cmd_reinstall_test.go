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
	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/secrets"
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
	waiveContainer(t)
	machineKeyDir(t, x.h)
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
		return append([]string{"reinstall", "--host", h.IP, "--port", h.PortString(), "--user", h.User, "-i", h.ClientKey,
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
		if code != exitFailed || !strings.Contains(out, "local.lockout") || !strings.Contains(errOut, "before the backup") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if entries, _ := os.ReadDir(backups); len(entries) != 0 {
			t.Errorf("backed up although a check blocks: %v", entries)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Errorf("nixos-anywhere ran although a check blocks")
		}
		if rec, err := receipt.Read(x.h.IP); err == nil && len(rec.Backups) != 0 {
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
		if code != exitFailed || !strings.Contains(errOut, "app.service") || !strings.Contains(out, "Backup verified") {
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
		rec, err := receipt.Read(x.h.IP)
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
		if code != exitFailed || !strings.Contains(errOut, "another host") {
			t.Fatalf("restore onto another host: exit %d\n%s", code, errOut)
		}
	})
}

// machineKeyDir points hostKeyDirs at a new folder holding the test host's
// private host key (the test host is this machine: its own /etc/ssh holds
// another key) until the test ends, and returns the folder.
func machineKeyDir(t *testing.T, h *testhost.Host) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(h.Dir, "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ssh_host_ed25519_key"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	saved := hostKeyDirs
	hostKeyDirs = []string{dir}
	t.Cleanup(func() { hostKeyDirs = saved })
	return dir
}

// TestReinstallKeepHostKey checks the host key step against the real-sshd test
// host: the private key must be in the tree, parse and be the served one;
// a missing one is fetched from the machine (0600), or the step refuses
// with what to do.
func TestReinstallKeepHostKey(t *testing.T) {
	h, kh := startTestHost(t, testhost.Options{})
	machine := machineKeyDir(t, h)
	hostPriv, err := os.ReadFile(filepath.Join(h.Dir, "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatal(err)
	}
	hostPub := h.HostKeyPub()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := steps.Config{Host: h.IP, Port: h.Port, User: h.User, Identity: h.ClientKey, KnownHosts: kh}
	c, err := sshexec.Dial(ctx, targetDialOptions(cfg, nil))
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
				hostKeyDirs = []string{t.TempDir()}
			default:
				d := t.TempDir()
				if err := os.WriteFile(filepath.Join(d, "ssh_host_ed25519_key"), []byte(tt.machine), 0o600); err != nil {
					t.Fatal(err)
				}
				hostKeyDirs = []string{d}
			}
			defer func() { hostKeyDirs = []string{machine} }()

			var out strings.Builder
			got, err := keepHostKey(ctx, c, tree, needsSudo(c), &out)
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
			if !secrets.SameKey(string(got), hostPub) {
				t.Errorf("returned %q, want the served %q", got, hostPub)
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
