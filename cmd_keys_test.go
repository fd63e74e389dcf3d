package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

// runKeysCmd runs `bigbang keys args…` in process, with nothing on
// standard input, and returns its exit code and everything it printed.
func runKeysCmd(args ...string) (int, string) {
	code, out, errOut := runRoot(context.Background(), "", append([]string{"keys"}, args...)...)
	return code, out + errOut
}

func TestKeysGeneratesAndFixesMode(t *testing.T) {
	testutil.Need(t, "nix")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/flakes/seed")); err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(dir, "keys dir")
	args := []string{"--flake", dir + "#no-disko", "--extra-files", extra}
	code, out := runKeysCmd(args...)
	key := filepath.Join(extra, "persistent", "etc", "ssh", "ssh_host_ed25519_key")
	if code != 0 || !strings.Contains(out, "generated a new host key "+key) || !strings.Contains(out, "age          age1") {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key not generated 0600: %v", err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := runKeysCmd(args...); code == 0 || !strings.Contains(out, "chmod 600") {
		t.Fatalf("mode 0644 without --fix-mode: exit %d\n%s", code, out)
	}
	if code, out := runKeysCmd(append(args, "--fix-mode")...); code != 0 || strings.Contains(out, "generated") {
		t.Fatalf("--fix-mode: exit %d\n%s", code, out)
	}
	if st, _ := os.Stat(key); st.Mode().Perm() != 0o600 {
		t.Fatalf("--fix-mode left %04o", st.Mode().Perm())
	}
}
