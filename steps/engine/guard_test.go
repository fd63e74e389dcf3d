package engine

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
)

// TestCheckLog: an existing file that is not a transcript is refused and
// left exactly as it was (not even its mode changes); a transcript is
// appended to; a folder that takes no write refuses the run before
// anything starts.
func TestCheckLog(t *testing.T) {
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte("my notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := checkLog(notes); !errors.Is(err, ErrNotTranscript) {
		t.Errorf("checkLog(notes) = %v, want ErrNotTranscript", err)
	}
	if fi, _ := os.Stat(notes); fi.Mode().Perm() != 0o644 {
		t.Errorf("a refused --log was chmod'ed to %04o", fi.Mode().Perm())
	}
	old := filepath.Join(dir, "run.log")
	if err := os.WriteFile(old, []byte("### Uploading install SSH keys ###\nbigbang: exit status 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := checkLog(old); err != nil {
		t.Errorf("an earlier transcript is refused: %v", err)
	}
	if _, err := checkLog(filepath.Join(dir, "new", "deeper", "run.log")); err != nil {
		t.Errorf("a new transcript in a folder to make: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("checkLog left files behind: %v", ents)
	}

	if os.Geteuid() != 0 {
		t.Skip("a full file system needs a tmpfs mount (root)")
	}
	full := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", full).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", full).Run() })
	_ = os.WriteFile(filepath.Join(full, "fill"), make([]byte, 1<<20), 0o600)
	if _, err := checkLog(filepath.Join(full, "run.log")); err == nil || !strings.Contains(err.Error(), "free some space") {
		t.Errorf("a full file system for the transcript: %v, want a refusal that says to free space", err)
	}
}

// TestLock: one run per machine at a time; the second is told who holds
// it; after the first ends the machine is free again, and another port of
// the same address is another machine.
func TestLock(t *testing.T) {
	e := New(World{LockDir: t.TempDir()})
	target := steps.Target{Host: "203.0.113.7", Port: 22}
	unlock, err := e.lock(target, "install")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.lock(target, "restore"); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "install of 203.0.113.7") {
		t.Errorf("second lock: %v, want ErrLocked naming the install that holds it", err)
	}
	other, err := e.lock(target.WithPort(2222), "install")
	if err != nil {
		t.Errorf("another port is another machine: %v", err)
	} else {
		other()
	}
	unlock()
	again, err := e.lock(target, "install")
	if err != nil {
		t.Fatalf("after the release: %v", err)
	}
	again()
}
