package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/ui/linear"
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
	keyFile, recipient := ageKey(t)
	args = func(args func(keys, config string, extra ...string) []string) func(keys, config string, extra ...string) []string {
		return func(keys, config string, extra ...string) []string {
			return args(keys, config, append([]string{"--backup-recipient", recipient, "--backup-identity", keyFile}, extra...)...)
		}
	}(args)

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

// ageKey writes a new age identity file (0600) and returns it with its
// recipient.
func ageKey(t *testing.T) (string, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(p, []byte("# public key: "+id.Recipient().String()+"\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, id.Recipient().String()
}

// firstBoot makes the test host's reboot the first boot of the new system:
// what the installer had at /mnt<src> (the test host's target root) becomes
// src, and the returned channel gets what the new system found in
// src/var/lib/app/db when it started.
func firstBoot(t *testing.T, h *testhost.Host, src string) <-chan string {
	t.Helper()
	saw := make(chan string, 4)
	h.OnReboot(func() {
		mnt := filepath.Join(h.Root, src)
		b, err := os.ReadFile(filepath.Join(mnt, "var", "lib", "app", "db"))
		if err != nil {
			saw <- "no state at the first boot: " + err.Error()
			return
		}
		saw <- string(b)
		if err := os.RemoveAll(src); err != nil {
			t.Errorf("first boot: %v", err)
		}
		if err := os.Rename(mnt, src); err != nil {
			t.Errorf("first boot: %v", err)
		}
	})
	return saw
}

// systemctlStub is a directory with a systemctl that appends its
// arguments to the returned log, for the test host's PATH (it has no
// systemd), and the sshd_config line that puts it there.
func systemctlStub(t *testing.T) (extra, log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "systemctl.log")
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte("#!/bin/sh\necho \"$*\" >> "+log+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return "SetEnv PATH=" + dir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n", log
}

// unitCalls are the stop and start calls in a systemctl stub's log.
func unitCalls(t *testing.T, log string) string {
	t.Helper()
	b, _ := os.ReadFile(log)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "stop ") || strings.HasPrefix(l, "start ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestReinstallPreflight runs the scripted reinstall against the test host
// with a flake that describes this machine (e2eFlake) and the stand-in
// nixos-anywhere: a check that blocks stops it before the backup; units
// named with --service are stopped for the backup and started again when
// the install stops before kexec; a tree with the host key's .pub alone
// gets the private key from the machine, then goes through the install
// without its reboot, the restore into the installer's /mnt (the test
// host's target root), the reboot phase and the verified reboot, and the
// new system finds its state at its first start.
func TestReinstallPreflight(t *testing.T) {
	extra, units := systemctlStub(t)
	x := newE2EWith(t, testhost.Options{User: "root", WatchRebootRequests: true, RootAtMnt: true, Extra: extra})
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
	saw := firstBoot(t, x.h, src)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	// The archive is encrypted to the recipients of the flake's
	// .sops.yaml; the identity is where sops looks (SOPS_AGE_KEY_FILE).
	keyFile, recipient := ageKey(t)
	_, teammate := ageKey(t)
	sopsYAML := "creation_rules:\n  - path_regex: secrets/.*\n    key_groups:\n      - age:\n          - " + recipient + "\n          - " + teammate + "\n"
	if err := os.WriteFile(filepath.Join(x.flakeDir, ".sops.yaml"), []byte(sopsYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOPS_AGE_KEY_FILE", keyFile)
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
		code, out, errOut := runRoot(ctx, "", args(r, locked, backups, "--service", "app.service")...)
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
		if got := unitCalls(t, units); got != "" {
			t.Errorf("units were stopped before a refused preflight: %q", got)
		}
	})

	t.Run("only the .pub: the key is copied, consistent backup, install, restore before the first boot, receipt", func(t *testing.T) {
		r := x.newRun(t)
		copyHostKey(t, x.h, r.keys)
		privFile := filepath.Join(r.keys, "persistent", "etc", "ssh", "ssh_host_ed25519_key")
		if err := os.Remove(privFile); err != nil {
			t.Fatal(err)
		}
		backups := t.TempDir()
		// The install stops before kexec (its login fails): nothing was
		// wiped, so the unit stopped for the backup runs again.
		t.Setenv("STANDIN_FAIL_PHASE", "connect")
		code, out, errOut := runRoot(ctx, "", args(r, x.flakeDir, backups, "--service", "app.service")...)
		if code != cli.Failed || !strings.Contains(out, "Backup verified") || !strings.Contains(errOut, "Stopped app.service on "+x.h.IP+" for a consistent backup") ||
			!strings.Contains(out, "Started app.service again on "+x.h.IP+": the reinstall stopped before the wipe") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if got := unitCalls(t, units); got != "stop -- app.service\nstart -- app.service" {
			t.Fatalf("systemctl calls %q, want the unit stopped for the backup and started again", got)
		}
		if !strings.Contains(errOut, "nothing was wiped") {
			t.Errorf("the failure before kexec does not say that nothing was wiped:\n%s", errOut)
		}
		fi, err := os.Stat(privFile)
		if err != nil || fi.Mode().Perm() != 0o600 || readFile(t, privFile) != readFile(t, filepath.Join(x.h.Dir, "ssh_host_ed25519_key")) {
			t.Fatalf("the machine's private key was not copied into the tree (0600): %v", err)
		}
		select {
		case s := <-saw:
			t.Fatalf("the machine rebooted although the install failed before kexec: %s", s)
		default:
		}
		t.Setenv("STANDIN_FAIL_PHASE", "")
		code, out, errOut = runRoot(ctx, "", args(r, x.flakeDir, backups, "--service", "app.service")...)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		for _, want := range []string{"remote.disk", "Backup verified", "It holds the machine's secrets", "same host key", "without its reboot",
			"into " + x.h.IP + ":/mnt" + src + ", before the first boot", "Restored and compared", "its first boot has the restored", "restored before the first boot",
			"Reinstall of " + x.h.IP + " done"} {
			if !strings.Contains(out, want) {
				t.Fatalf("output lacks %q:\n%s\n%s", want, out, errOut)
			}
		}
		if strings.Index(out, "remote.disk") > strings.Index(out, "Backup verified") {
			t.Errorf("the preflight did not come before the backup:\n%s", out)
		}
		// The new system started with its state: the restore went into
		// the installer's /mnt before the stand-in's reboot.
		select {
		case s := <-saw:
			if s != "rows" {
				t.Fatalf("the new system's first boot: %s", s)
			}
		default:
			t.Fatal("the test host did not reboot")
		}
		// The unit stays stopped until the wipe; the installer has none.
		if got := unitCalls(t, units); got != "stop -- app.service\nstart -- app.service\nstop -- app.service" {
			t.Errorf("systemctl calls %q", got)
		}
		tr := readFile(t, r.log)
		if strings.Count(tr, "### Done! ###") != 2 || strings.Index(tr, "bigbang: Restored and compared") > strings.LastIndex(tr, "### Rebooting ###") {
			t.Errorf("the transcript does not show the restore between the install and the reboot phase:\n%s", tr)
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
		// The archive on disk is age ciphertext to .sops.yaml's
		// recipients, and its manifest says so.
		if b := readFile(t, last.Path); !strings.HasPrefix(b, "age-encryption.org/v1\n") || strings.Contains(b, "var/lib/app") {
			t.Fatalf("the archive is not age ciphertext: %q…", b[:min(len(b), 40)])
		}
		a, err := reinstall.OpenArchive(last.Path)
		if err != nil || !a.Manifest.Encrypted() || !slices.Equal(a.Manifest.Recipients, []string{recipient, teammate}) {
			t.Fatalf("manifest %+v: %v", a.Manifest, err)
		}
		if !strings.Contains(errOut, "encrypted with age to "+recipient) {
			t.Errorf("the run does not say who can open the archive:\n%s", errOut)
		}

		// Resume: the restore alone refuses without the identity (nothing
		// lands), brings back a deleted file with it, goes into another
		// directory only with --restore-elsewhere and the confirmation,
		// and an archive offered to another host is refused.
		if err := os.Remove(filepath.Join(src, "var/lib/app/db")); err != nil {
			t.Fatal(err)
		}
		h := x.h
		restoreArgs := func(extra ...string) []string {
			return append([]string{"reinstall", "--host", h.IP, "--port", h.PortString(), "--user", h.User, "-i", h.ClientKey,
				"--known-hosts", r.knownHosts, "--restore", last.Path, "--output", "plain"}, extra...)
		}
		t.Setenv("SOPS_AGE_KEY_FILE", "")
		t.Setenv("XDG_CONFIG_HOME", t.TempDir())
		code, out, errOut = runRoot(ctx, "", restoreArgs()...)
		if code != cli.Failed || !strings.Contains(errOut, "no age identity opens the archive") || !strings.Contains(errOut, recipient) ||
			!strings.Contains(errOut, "--backup-identity FILE") || !strings.Contains(errOut, "nothing was restored") {
			t.Fatalf("restore without the identity: exit %d\n%s\n%s", code, out, errOut)
		}
		if _, err := os.Stat(filepath.Join(src, "var/lib/app/db")); err == nil {
			t.Fatal("the restore without the identity wrote the file")
		}
		code, out, errOut = runRoot(ctx, "", restoreArgs("--backup-identity", keyFile)...)
		if b, _ := os.ReadFile(filepath.Join(src, "var/lib/app/db")); code != 0 || string(b) != "rows" {
			t.Fatalf("restore only: exit %d, file %q\n%s\n%s", code, b, out, errOut)
		}
		elsewhere := filepath.Join(t.TempDir(), "elsewhere")
		for _, tt := range []struct {
			name  string
			extra []string
			code  int
			want  string
		}{
			{"without --restore-elsewhere", nil, cli.Failed, "pass --restore-elsewhere"},
			{"not confirmed", []string{"--restore-elsewhere"}, cli.Failed, "confirm it on a terminal, or with --yes-wipe " + h.IP},
			{"confirmed for another host", []string{"--restore-elsewhere", "--yes-wipe", "203.0.113.9"}, cli.Usage, "--yes-wipe"},
		} {
			code, out, errOut = runRoot(ctx, "", restoreArgs(append([]string{"--backup-identity", keyFile, "--source", elsewhere}, tt.extra...)...)...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Fatalf("restore elsewhere %s: exit %d, want %d and %q\n%s\n%s", tt.name, code, tt.code, tt.want, out, errOut)
			}
			if _, err := os.Stat(elsewhere); err == nil {
				t.Fatalf("restore elsewhere %s: the directory was made", tt.name)
			}
		}
		// On a terminal the host is typed: another word refuses, with
		// nothing restored; the host goes on.
		e := engine.New(engine.Real(ctx, ""))
		cfg := steps.Config{Host: h.IP, Port: h.Port, User: h.User, Identity: h.ClientKey, KnownHosts: r.knownHosts}
		typed := func(answer string) (string, error) {
			var prompt bytes.Buffer
			f := &linear.Front{Out: io.Discard, Err: &prompt, In: bufio.NewReader(strings.NewReader(answer + "\n"))}
			_, err := e.RestoreArchive(ctx, cfg, last.Path, engine.ReinstallOptions{Source: elsewhere, RestoreElsewhere: true, Identity: keyFile}, engine.DialPolicy{Timeout: 10 * time.Second}, f)
			return prompt.String(), err
		}
		prompt, err := typed("yes")
		if !errors.Is(err, engine.ErrRestoreNotConfirmed) || !strings.Contains(prompt, "Type the host ("+h.IP+")") || !strings.Contains(prompt, "into "+h.IP+":"+elsewhere) {
			t.Fatalf("typed yes: %v\n%s", err, prompt)
		}
		if _, err := os.Stat(elsewhere); err == nil {
			t.Fatal("restored into the other directory although the host was not typed")
		}
		if _, err := typed(h.IP); err != nil {
			t.Fatalf("typed the host: %v", err)
		}
		if err := os.RemoveAll(elsewhere); err != nil {
			t.Fatal(err)
		}
		code, out, errOut = runRoot(ctx, "", restoreArgs("--backup-identity", keyFile, "--source", elsewhere, "--restore-elsewhere", "--yes-wipe", h.IP)...)
		if b, _ := os.ReadFile(filepath.Join(elsewhere, "var/lib/app/db")); code != 0 || string(b) != "rows" {
			t.Fatalf("restore elsewhere, confirmed: exit %d, file %q\n%s\n%s", code, b, out, errOut)
		}
		code, _, errOut = runRoot(ctx, "", "reinstall", "--host", "localhost", "--port", h.PortString(), "--user", h.User, "-i", h.ClientKey,
			"--known-hosts", r.knownHosts, "--restore", last.Path, "--output", "plain")
		if code != cli.Failed || !strings.Contains(errOut, "another host") {
			t.Fatalf("restore onto another host: exit %d\n%s", code, errOut)
		}
	})

	t.Run("the restore into the installer fails: installed, not rebooted, the resume reboots", func(t *testing.T) {
		r := x.newRun(t)
		copyHostKey(t, x.h, r.keys)
		// Something in the installer's /mnt is in the way of the restore:
		// a file where its folder goes.
		blocker := filepath.Join(x.h.Root, filepath.Dir(src))
		if err := os.MkdirAll(filepath.Dir(blocker), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(blocker, []byte("in the way"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runRoot(ctx, "", args(r, x.flakeDir, t.TempDir())...)
		all := out + errOut
		if code != cli.Failed {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if strings.Contains(all, "could not be verified") {
			t.Errorf("the failure says a reboot was tried:\n%s", all)
		}
		for _, want := range []string{"so nothing rebooted", "did not reboot", "still runs the NixOS installer", "--phases reboot", "--skip-preflight",
			"reinstall --host " + x.h.IP + " --user root", "--restore "} {
			if !strings.Contains(all, want) {
				t.Errorf("the failure lacks %q:\n%s\n%s", want, out, errOut)
			}
		}
		select {
		case s := <-saw:
			t.Errorf("the machine rebooted after a failed restore: %s", s)
		default:
		}
		rec, err := receipt.Read(x.h.IP, x.h.Port)
		if err != nil || rec.Outcome != steps.OutcomeFailed || rec.FailedPhase != steps.PhaseReboot {
			t.Errorf("receipt %+v, %v", rec, err)
		}
		if last, ok := rec.LastBackup(); !ok || last.Restored {
			t.Errorf("the receipt records the backup as restored: %+v", last)
		}
	})
}

// TestReinstallArchiveFlags: flags of the archive that contradict each
// other are refused before anything runs, and a plaintext backup is warned
// about at once.
func TestReinstallArchiveFlags(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	_, recipient := ageKey(t)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"plaintext and a recipient", []string{"--plaintext-backup", "--backup-recipient", recipient}, "contradict each other"},
		{"a restore writes no backup", []string{"--restore", "/nonexistent.tar.zst.age", "--plaintext-backup"}, "--restore writes no backup"},
		{"--restore-elsewhere alone", []string{"--restore-elsewhere"}, "goes only with --restore"},
		{"a mangled recipient", []string{"--backup-recipient", recipient[:len(recipient)-2] + "qq"}, "not an age recipient"},
		{"a recipients file that is not there", []string{"--backup-recipient", "/nonexistent/recipients.txt"}, "neither an age recipient"},
		{"an identity file that is not there", []string{"--backup-identity", "/nonexistent/keys.txt"}, "--backup-identity: reading the age identity /nonexistent/keys.txt"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runRoot(context.Background(), "", append([]string{"reinstall", "--host", "203.0.113.7", "--output", "plain"}, tt.args...)...)
			if code != cli.Usage || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, want %d and %q\n%s\n%s", code, cli.Usage, tt.want, out, errOut)
			}
		})
	}
	// The warning comes before anything else is said or done: here the
	// missing flake stops the run.
	_, _, errOut := runRoot(context.Background(), "", "reinstall", "--host", "203.0.113.7", "--output", "plain", "--plaintext-backup")
	if !strings.HasPrefix(errOut, "bigbang: WARNING: --plaintext-backup: the archive is NOT encrypted") {
		t.Fatalf("no warning first:\n%s", errOut)
	}
	// A restore's --yes-wipe must name the host.
	code, _, errOut := runRoot(context.Background(), "", "reinstall", "--host", "203.0.113.7", "--output", "plain", "--restore", "/nonexistent", "--yes-wipe", "203.0.113.8")
	if code != cli.Usage || !strings.Contains(errOut, "--yes-wipe") {
		t.Fatalf("a --yes-wipe for another host: exit %d\n%s", code, errOut)
	}
}
