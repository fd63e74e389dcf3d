package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/spf13/cobra"
)

// reinstallSourceEnv and reinstallBackupsEnv carry --source and
// --backup-dir into TestReinstallWizardProcess.
const (
	reinstallSourceEnv   = "BIGBANG_REINSTALL_SOURCE"
	reinstallBackupsEnv  = "BIGBANG_REINSTALL_BACKUPS"
	reinstallServicesEnv = "BIGBANG_REINSTALL_SERVICES"
)

// TestReinstallWizardProcess is `bigbang reinstall` on a terminal in a
// process of its own, started in a tmux window by
// TestReinstallWizardEndToEnd; it does nothing in a normal run.
func TestReinstallWizardProcess(t *testing.T) {
	runTestProcess(t, "TestReinstallWizardEndToEnd", func(ctx context.Context, root *cobra.Command, cfg *steps.Config) error {
		o := engine.ReinstallOptions{Source: os.Getenv(reinstallSourceEnv), BackupDir: os.Getenv(reinstallBackupsEnv), Services: strings.Fields(os.Getenv(reinstallServicesEnv))}
		return runWizard(ctx, root, cfg, 20*time.Second, 0, &o)
	})
}

// TestReinstallWizardEndToEnd drives `bigbang reinstall` in a real terminal
// against the real-sshd test host, whose key the extra-files tree does not
// hold yet, and the stand-in nixos-anywhere: the host key step copying the
// machine's key in and the drift, then the preflight (which sees that
// key), the backup, the wipe warning naming the backup, the install, the
// restore (a file deleted after the backup comes back), the result.
func TestReinstallWizardEndToEnd(t *testing.T) {
	x := newE2E(t)
	const wait = 60 * time.Second
	r := x.newRun(t)
	// The tree lacks the machine's key: the host key step copies it in.
	r.dropHostKey(t)
	src := filepath.Join(t.TempDir(), "persistent")
	db := filepath.Join(src, "var", "lib", "app", "db")
	if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, []byte("rows"), 0o600); err != nil {
		t.Fatal(err)
	}
	backups := t.TempDir()
	// The archive goes to the recipient of the flake's .sops.yaml, whose
	// identity is where sops looks.
	keyFile, recipient := ageKey(t)
	if err := os.WriteFile(filepath.Join(x.flakeDir, ".sops.yaml"), []byte("creation_rules:\n  - age: "+recipient+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	saw := firstBoot(t, x.h, src)
	tm, _ := x.processTerm(t, r, 120, 40, "TestReinstallWizardProcess", reinstallSourceEnv+"="+src, reinstallBackupsEnv+"="+backups,
		"SOPS_AGE_KEY_FILE="+keyFile)
	flat := func(s string) string { return strings.Join(strings.Fields(s), "") }
	fp := testhost.Fingerprint(t, x.h.HostKeyPub())

	// The host key step and the drift come first, as in the scripted
	// reinstall: the preflight has not run yet.
	toPreflight(tm, wait, nil)
	s := tm.waitFor(wait, "Reinstall required")
	for _, want := range []string{"Copied the machine's host key", fp, "reinstall required because"} {
		if !strings.Contains(flat(s), flat(want)) {
			t.Errorf("the drift screen lacks %q:\n%s", want, s)
		}
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the host key step did not copy the key in (0600): %v %v", fi, err)
	}
	tm.keys("Enter")
	// The preflight's local.hostkey sees the key the step copied in.
	s = tm.waitFor(wait, "Nothing blocks the install")
	if !strings.Contains(flat(s), flat(fp)) || strings.Contains(s, "no host key at") {
		t.Errorf("the preflight does not see the copied host key %s:\n%s", fp, s)
	}
	tm.keys("Enter")
	s = tm.waitFor(wait, "Backup verified")
	if !strings.Contains(s, "It holds the machine's secrets") || !strings.Contains(flat(s), flat("encrypted with age to "+recipient)) {
		t.Errorf("the backup screen does not warn about secrets and say who can open the archive:\n%s", s)
	}
	r0, err := receipt.Read(x.h.IP, x.h.Port)
	if err != nil {
		t.Fatalf("the backup is not in the receipt: %v", err)
	}
	archive, ok := r0.LastBackup()
	if !ok || !strings.HasPrefix(archive.Path, backups) || !strings.Contains(flat(s), flat(archive.Path)) {
		t.Fatalf("the backup screen does not name the backup %+v:\n%s", archive, s)
	}
	if b, err := os.ReadFile(archive.Path); err != nil || !strings.HasPrefix(string(b), "age-encryption.org/v1\n") {
		t.Fatalf("the archive is not age ciphertext: %v", err)
	}
	// What the wipe takes away: the restore must bring it back.
	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	tm.keys("Enter")
	tm.waitFor(wait, "Where to build")
	tm.keys("Enter")
	tm.waitFor(wait, "Plan")
	tm.keys("Enter")
	s = tm.waitFor(wait, "to wipe it and restore")
	if !strings.Contains(flat(s), "towipeitandrestore"+flat(archive.Path)) {
		t.Errorf("the typed confirmation does not name the backup %s:\n%s", archive.Path, s)
	}
	tm.typeText(x.h.IP)
	tm.keys("Enter")
	s = tm.waitFor(wait, "NixOS is reinstalled on "+x.h.IP)
	for _, want := range []string{"Backup" + flat(archive.Path), "restored before the first boot and compared with the archive", "Receipt", "✔Reboot"} {
		if !strings.Contains(flat(s), flat(want)) {
			t.Errorf("the result screen lacks %q:\n%s", want, s)
		}
	}
	// The restore went into the installer's /mnt before the stand-in's
	// reboot: the new system found the file at its first start.
	select {
	case got := <-saw:
		if got != "rows" {
			t.Errorf("the new system's first boot: %s", got)
		}
	default:
		t.Error("the test host did not reboot")
	}
	if b, err := os.ReadFile(db); err != nil || string(b) != "rows" {
		t.Errorf("the restore did not bring back %s: %q, %v", db, b, err)
	}
	tm.quit(wait, "q", "0")
	rec, err := receipt.Read(x.h.IP, x.h.Port)
	if err != nil {
		t.Fatal(err)
	}
	if last, ok := rec.LastBackup(); !ok || last.Path != archive.Path || !last.Restored || len(rec.Phases) == 0 {
		t.Errorf("the receipt does not record the restored backup: %+v", rec)
	}
}

// TestReinstallWizardQuitStartsUnits drives the reinstall wizard with a
// unit named (--service) to a verified backup and leaves with q before the
// wipe: the unit was stopped for the backup and is started again (the test
// host's systemctl is a stub that records its calls).
func TestReinstallWizardQuitStartsUnits(t *testing.T) {
	extra, units := systemctlStub(t)
	x := newE2EWith(t, testhost.Options{User: "root", WatchRebootRequests: true, RootAtMnt: true, Extra: extra})
	needVPS(t)
	const wait = 60 * time.Second
	r := x.newRun(t)
	r.dropHostKey(t)
	src := filepath.Join(t.TempDir(), "persistent")
	if err := os.MkdirAll(filepath.Join(src, "var", "lib", "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "ran")
	t.Setenv("STANDIN_MARKER", marker)
	keyFile, recipient := ageKey(t)
	if err := os.WriteFile(filepath.Join(x.flakeDir, ".sops.yaml"), []byte("creation_rules:\n  - age: "+recipient+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tm, _ := x.processTerm(t, r, 120, 40, "TestReinstallWizardProcess", reinstallSourceEnv+"="+src, reinstallBackupsEnv+"="+t.TempDir(), reinstallServicesEnv+"=app.service",
		"SOPS_AGE_KEY_FILE="+keyFile)
	toPreflight(tm, wait, nil)
	tm.waitFor(wait, "Reinstall required")
	tm.keys("Enter")
	tm.waitFor(wait, "Nothing blocks the install")
	tm.keys("Enter")
	s := tm.waitFor(wait, "Backup verified")
	if !strings.Contains(strings.Join(strings.Fields(s), " "), "Stopped app.service on "+x.h.IP+" for a consistent backup") {
		t.Errorf("the backup screen does not say the unit was stopped:\n%s", s)
	}
	if got := unitCalls(t, units); got != "stop -- app.service" {
		t.Fatalf("systemctl calls %q before the wipe, want the unit stopped", got)
	}
	tm.quit(wait, "q", "0")
	if got := unitCalls(t, units); got != "stop -- app.service\nstart -- app.service" {
		t.Errorf("systemctl calls %q after leaving before the wipe, want the unit started again", got)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("nixos-anywhere ran although the operator left before the wipe")
	}
}

// dropHostKey removes the machine's host key from the run's extra-files
// tree, for the reinstall's host key step to copy it in.
func (r *e2eRun) dropHostKey(t *testing.T) {
	t.Helper()
	keyFile := strings.TrimSuffix(sshexec.ExpectedHostKeyFile(r.keys), ".pub")
	for _, f := range []string{keyFile, keyFile + ".pub"} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
}
